"""The plugin with the real ``compress``/``open_sgi``: widget run, cancel, npe2 reader and writer.

Skipped (with the reason shown) while ``napari_sgi.api`` has no ``compress``/``open_sgi``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from napari_sgi.core import presets

FAST = {"iterations": 10}


@pytest.fixture
def quick_default(monkeypatch):
    """The writer uses the ``default`` preset (4000 steps); make it a few steps for tests."""
    monkeypatch.setitem(
        presets.PRESETS, "default", dataclasses.replace(presets.PRESETS["fast"], **FAST)
    )


def test_widget_compresses_and_shows_decoded(real_api, sgi_widget, tiny_image, tmp_path, wait_idle):
    viewer, widget = sgi_widget
    layer = viewer.add_image(tiny_image, name="tiny", contrast_limits=(150, 3000))
    widget.set_layer(layer)
    widget.preset.value = "fast"
    widget.iterations.value = FAST["iterations"]
    widget.device.value = "cpu"
    widget.output.value = tmp_path / "tiny.sgi"
    worker = widget.start()
    wait_idle(widget, timeout=50_000)
    assert (tmp_path / "tiny.sgi").is_file()
    assert widget.result is not None and widget.result.bytes > 0
    decoded = viewer.layers["tiny [SGI]"]
    assert tuple(decoded.contrast_limits) == (150, 3000)
    assert decoded.multiscale
    level0 = np.asarray(decoded.data[0])
    assert level0.shape == tiny_image.shape
    assert worker.pbar.n == worker.pbar.total == FAST["iterations"]
    assert "PSNR" in widget.result_label.value


def test_cancel_writes_no_file(real_api, sgi_widget, tiny_image, tmp_path, qtbot, wait_idle):
    viewer, widget = sgi_widget
    widget.set_layer(viewer.add_image(tiny_image))
    widget.preset.value = "fast"
    widget.iterations.value = 20_000
    widget.device.value = "cpu"
    widget.output.value = tmp_path / "never.sgi"
    worker = widget.start()
    qtbot.waitUntil(lambda: worker.pbar.n >= 3, timeout=50_000)
    widget.cancel_button.clicked()
    wait_idle(widget, timeout=20_000)
    assert widget.job.was_cancelled
    assert not (tmp_path / "never.sgi").exists()
    assert not list(tmp_path.glob("*.sgi"))


def test_npe2_read(real_api, tmp_path, make_napari_viewer):
    import npe2

    stack = (np.random.default_rng(0).random((2, 24, 20)) * 1000).astype(np.uint16)
    path = tmp_path / "stack.sgi"
    real_api.compress(
        stack,
        path,
        preset="fast",
        iterations=5,
        device="cpu",
        axes="ZYX",
        scale=(2.0, 0.5, 0.5),
        contrast_limits=(10.0, 900.0),
    )
    ((data, meta, kind),) = npe2.read([str(path)], plugin_name="napari-sgi", stack=False)
    assert kind == "image" and not meta["rgb"]
    assert meta["multiscale"] and data[0].shape == stack.shape  # small files: a single level
    assert meta["contrast_limits"] == (10.0, 900.0)
    assert meta["scale"] == (2.0, 0.5, 0.5) and meta["axis_labels"] == ["z", "y", "x"]
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(path), plugin="napari-sgi")
    assert layer.multiscale and tuple(layer.scale) == (2.0, 0.5, 0.5)


def test_npe2_write_rgb(real_api, quick_default, tmp_path):
    import npe2

    rgb = np.zeros((24, 24, 3), np.uint8)
    rgb[4:20, 6:18] = (200, 120, 40)
    path = tmp_path / "rgb.sgi"
    written = npe2.write(
        str(path), [(rgb, {"rgb": True, "name": "rgb"}, "image")], plugin_name="napari-sgi"
    )
    assert written == [str(path)] and path.is_file()
    sgi = real_api.open_sgi(path)
    assert sgi.rgb and sgi.levels[0].shape == rgb.shape
    ((data, meta, _),) = npe2.read([str(path)], plugin_name="napari-sgi", stack=False)
    assert meta["rgb"] and "axis_labels" in meta and len(meta["axis_labels"]) == 2
