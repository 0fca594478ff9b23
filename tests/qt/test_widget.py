"""The dock widget in a real viewer: settings reach compress, the worker runs, cancels, compares.

These use ``fake_api`` (the API contract, without the fitting) so that they take milliseconds; the
same paths run with the real API in test_real_api.py.
"""

from __future__ import annotations

import numpy as np
from napari.layers import Image

from napari_sgi._qt.compare import viewer_grid
from napari_sgi._qt.widget import SGIWidget


def test_menu_command_opens_widget_for_active_layer(make_napari_viewer, tiny_image):
    from napari._app_model import get_app_model

    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((8, 8)), name="other")
    layer = viewer.add_image(tiny_image, name="tiny")
    viewer.layers.selection.active = layer
    get_app_model().commands.execute_command("napari-sgi.compress_active_layer").result()
    dock = viewer.window._wrapped_dock_widgets["SGI compression (napari-sgi)"]
    widget = dock.inner_widget()
    assert isinstance(widget, SGIWidget)
    assert widget.image.value is layer
    assert widget.output.value.name == "tiny.sgi"
    assert "1 slice × 12,500 steps" in widget.estimate.value  # the default preset
    assert widget.preset.value == "default" and widget.k.value == 6  # one channel: K=6


def test_sliders_reach_compress(sgi_widget, fake_api, tiny_image, tmp_path, wait_idle):
    viewer, widget = sgi_widget
    layer = viewer.add_image(tiny_image, name="tiny", scale=(0.5, 0.5))
    widget.set_layer(layer)
    widget.preset.value = "fast"
    widget.lmbda = 0.02  # sets the log10 slider
    widget.k.value = 4
    widget.density.value = 0.1
    widget.iterations.value = 30
    widget.levels.value = 2
    widget.device.value = "cpu"
    widget.output.value = tmp_path / "out.sgi"
    assert "30 steps" in widget.estimate.value
    assert widget.start() is not None
    wait_idle(widget)
    (call,) = fake_api.calls
    assert call["preset"] == "fast" and call["gaussians_per_seed"] == 4
    assert call["iterations"] == 30 and call["levels"] == 2 and call["device"] == "cpu"
    assert call["lmbda"] == 0.02 and widget.log_lmbda.label.startswith("λ = 0.02")
    widget.log_lmbda.value = -2.5
    assert widget.parameters()["lmbda"] == 0.00316
    assert call["density"] == 0.1 and call["axes"] == "YX" and call["scale"] == (0.5, 0.5)
    assert call["contrast_limits"] == tuple(layer.contrast_limits)
    assert call["path"] == str(tmp_path / "out.sgi")


def test_worker_adds_decoded_layer(sgi_widget, fake_api, tiny_image, tmp_path, wait_idle):
    viewer, widget = sgi_widget
    layer = viewer.add_image(tiny_image, name="tiny", contrast_limits=(100, 2500))
    viewer.add_image(np.zeros((4, 4)), name="on top")
    widget.set_layer(layer)
    widget.iterations.value = 20
    widget.difference.value = True
    widget.comparison.active.value = False  # test_codec_compare.py adds the classic codecs
    widget.output.value = tmp_path / "tiny.sgi"
    worker = widget.start()
    wait_idle(widget)
    assert (tmp_path / "tiny.sgi").exists()
    names = [x.name for x in viewer.layers]
    assert names == ["tiny", "tiny [SGI]", "tiny [SGI − original]", "on top"]
    decoded = viewer.layers["tiny [SGI]"]
    assert decoded.multiscale and tuple(decoded.contrast_limits) == (100, 2500)
    assert viewer_grid(viewer).enabled
    assert worker.pbar.n == worker.pbar.total == 20  # one yield per step
    assert "16.0:1" in widget.result_label.value and "PSNR 40.00 dB" in widget.result_label.value
    assert widget.run_button.enabled and not widget.cancel_button.enabled
    widget.toggle_button.clicked()
    assert not viewer_grid(viewer).enabled


def test_stack_shows_psnr_per_slice(sgi_widget, fake_api, tmp_path, wait_idle):
    viewer, widget = sgi_widget
    layer = viewer.add_image(np.arange(3 * 16 * 16, dtype=np.uint16).reshape(3, 16, 16))
    widget.set_layer(layer)
    widget.iterations.value = 10
    widget.output.value = tmp_path / "stack.sgi"
    assert "3 slices × 10 steps = 30 steps" in widget.estimate.value
    widget.start()
    wait_idle(widget)
    assert fake_api.calls[0]["axes"] == "ZYX"
    assert widget.slice_table.visible
    assert widget.slice_table.data.to_list() == [["40.00 dB"], ["41.00 dB"], ["42.00 dB"]]


def start_long_compress(viewer, widget, fake_api, image, tmp_path, qtbot):
    """Start a slow compress into ``tmp_path/never.sgi`` and wait until it reports progress."""
    widget.set_layer(viewer.add_image(image))
    widget.iterations.value = 10_000
    fake_api.step_seconds = 0.002
    widget.output.value = tmp_path / "never.sgi"
    worker = widget.start()
    qtbot.waitUntil(lambda: worker.pbar.n > 5, timeout=10_000)
    return worker


def test_cancel_leaves_no_file(sgi_widget, fake_api, tiny_image, tmp_path, qtbot, wait_idle):
    viewer, widget = sgi_widget
    start_long_compress(viewer, widget, fake_api, tiny_image, tmp_path, qtbot)
    widget.cancel_button.clicked()
    wait_idle(widget)
    assert list(tmp_path.iterdir()) == []
    assert widget.job.was_cancelled
    assert "Cancelled" in widget.result_label.value
    assert len(viewer.layers) == 1


def test_worker_quit_alone_cancels(sgi_widget, fake_api, tiny_image, tmp_path, qtbot, wait_idle):
    """The activity dock's cancel calls only ``worker.quit()``; that must stop compress too."""
    viewer, widget = sgi_widget
    worker = start_long_compress(viewer, widget, fake_api, tiny_image, tmp_path, qtbot)
    worker.quit()
    wait_idle(widget)
    assert list(tmp_path.iterdir()) == []
    assert widget.job.was_cancelled


def test_errors_become_notifications(
    sgi_widget, monkeypatch, tiny_image, tmp_path, wait_idle, qtbot
):
    from napari_sgi import api

    def broken(*args, **kwargs):
        raise ValueError("unsupported axes")

    monkeypatch.setattr(api, "compress", broken, raising=False)
    viewer, widget = sgi_widget
    widget.set_layer(viewer.add_image(tiny_image))
    widget.output.value = tmp_path / "x.sgi"
    # napari relays worker errors to its notification manager, which re-raises them under tests.
    with qtbot.capture_exceptions() as raised:
        widget.start()
        wait_idle(widget)
    assert any(isinstance(exc, ValueError) for _, exc, _ in raised)
    assert "unsupported axes" in widget.result_label.value
    assert widget.run_button.enabled


def test_rgb_layer_parameters(sgi_widget):
    viewer, widget = sgi_widget
    rgb = viewer.add_image(np.zeros((16, 16, 3), np.uint8), rgb=True)
    assert isinstance(rgb, Image)
    widget.set_layer(rgb)
    assert widget.parameters()["axes"] == "YXS"


def test_closing_the_dock_stops_the_work(make_napari_viewer, fake_api, tiny_image, tmp_path, qtbot):
    viewer = make_napari_viewer(show=True)
    dock, widget = viewer.window.add_plugin_dock_widget("napari-sgi", "SGI compression")
    widget.set_layer(viewer.add_image(tiny_image))
    widget.iterations.value = 10_000
    fake_api.step_seconds = 0.002
    widget.output.value = tmp_path / "never.sgi"
    widget.start()
    job = widget.job
    qtbot.waitUntil(fake_api.started.is_set, timeout=10_000)
    viewer.window.remove_dock_widget(dock)
    qtbot.waitUntil(job.finished.is_set, timeout=10_000)
    qtbot.waitUntil(lambda: not widget.busy, timeout=10_000)
    assert job.was_cancelled and list(tmp_path.iterdir()) == []
    assert len(viewer.layers) == 1


def test_the_widget_opens_on_the_default_choices_for_the_layer(sgi_widget):
    viewer, widget = sgi_widget
    layer = viewer.add_image(np.zeros((300, 300), np.uint16), name="gray")
    widget.set_layer(layer)
    assert widget.preset.value == "default"
    assert (widget.k.value, widget.levels.value) == (6, 4)  # one channel, 300 px: K=6, 4 levels
    assert widget.lmbda == 2e-5


def test_target_controls_reach_compress(sgi_widget, fake_api, tiny_image, tmp_path, wait_idle):
    viewer, widget = sgi_widget
    layer = viewer.add_image(tiny_image, name="tiny")
    widget.set_layer(layer)
    assert not widget.target_value.visible
    widget.target.value = "size (compression ratio)"
    assert widget.target_value.visible and not widget.density.enabled
    assert widget.target_value.value == 20.0
    widget.target_value.value = 12.5
    widget.iterations.value = 20
    widget.output.value = tmp_path / "out.sgi"
    params = widget.parameters()
    assert params["ratio"] == 12.5 and "density" not in params and "bpp" not in params
    assert "steps" in widget.estimate.value  # the estimate counts the pilot fits
    assert widget.start() is not None
    wait_idle(widget)
    (call,) = fake_api.calls
    assert call["ratio"] == 12.5
    widget.target.value = "quality (PSNR, dB)"
    assert widget.parameters()["psnr"] == 40.0
    widget.target.value = "none (density, λ, K)"
    assert "psnr" not in widget.parameters() and widget.density.enabled
