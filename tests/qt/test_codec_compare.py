"""The widget compared with JPEG 2000 / JPEG XL at the same size: layers, table, plot, cancel."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from napari_sgi._qt import codec_job
from napari_sgi._qt.codec_layers import CodecLayers
from napari_sgi._qt.compare import viewer_grid
from napari_sgi.compare.slices import CodecResult, SliceComparison
from napari_sgi.core.image import ValueRange


@pytest.fixture
def wait_compared(qtbot):
    """Wait until the compression and the comparison after it have both ended."""

    def wait(widget, timeout: int = 60_000) -> None:
        qtbot.waitUntil(lambda: not widget.busy and not widget.comparison.busy, timeout=timeout)

    return wait


def _torch_quality(decoded, original, value_range):
    from napari_sgi.core.image import to_tensor
    from napari_sgi.core.metrics import psnr, ssim

    a, b = to_tensor(decoded, value_range), to_tensor(original, value_range)
    return psnr(a, b), ssim(a, b)


def _table(widget) -> dict[str, list[str]]:
    """The rows of the comparison table as shown: cell texts by codec."""
    table = widget.comparison.table
    return {
        table.verticalHeaderItem(r).text(): [
            table.item(r, c).text() for c in range(table.columnCount())
        ]
        for r in range(table.rowCount())
    }


def _compress(widget, layer, path, iterations=10):
    widget.set_layer(layer)
    widget.preset.value = "fast"
    widget.iterations.value = iterations
    widget.device.value = "cpu"
    widget.output.value = path
    assert widget.start() is not None


def test_classic_layers_table_and_plot(sgi_widget, fake_api, tiny_image, tmp_path, wait_compared):
    viewer, widget = sgi_widget
    layer = viewer.add_image(tiny_image, name="tiny", contrast_limits=(100, 2500))
    widget.difference.value = True
    _compress(widget, layer, tmp_path / "tiny.sgi")
    wait_compared(widget)
    names = [x.name for x in viewer.layers]
    assert names == [
        "tiny",
        "tiny [SGI]",
        "tiny [SGI − original]",
        "tiny [JPEG 2000, same size]",
        "tiny [JPEG XL, same size]",
    ]
    budget = (tmp_path / "tiny.sgi").stat().st_size  # not a container: the file's size, 1 slice
    rows = _table(widget)
    assert list(rows) == ["SGI", "JPEG 2000", "JPEG XL"]
    assert sum("★" in cell for row in rows.values() for cell in row) == 2  # best PSNR, best SSIM
    value_range = ValueRange.of(tiny_image)
    for codec in ("JPEG 2000", "JPEG XL"):
        classic = viewer.layers[f"tiny [{codec}, same size]"]
        assert tuple(classic.contrast_limits) == (100, 2500)
        assert classic.data.shape == tiny_image.shape and classic.data.dtype == np.uint16
        (row,) = classic.metadata["slices"].values()
        assert row["bytes"] <= budget and int(rows[codec][0].replace(",", "")) == row["bytes"]
        assert "uint16 values" in classic.metadata["mapping"]
        # What the table shows is an independent computation on the layer's own pixels.
        psnr, ssim = _torch_quality(np.asarray(classic.data), tiny_image, value_range)
        assert rows[codec][2].rstrip(" ★") == f"{psnr:.2f}"
        assert rows[codec][3].rstrip(" ★") == f"{ssim:.4f}"
    plot = widget.comparison.plot
    assert plot is not None and plot.png.startswith(b"\x89PNG")
    assert viewer.window._wrapped_dock_widgets  # the plot is docked
    saved = plot.save_png(tmp_path / "rd")
    assert saved.name == "rd.png" and saved.read_bytes() == plot.png
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rd.png", "tiny.sgi"]  # nothing else
    # Closing the plot's dock stops plotting; ticking the box again brings it back (cached curves).
    viewer.window.remove_dock_widget(plot)
    assert widget.comparison.plot is None and not widget.comparison.with_plot.value
    widget.comparison.with_plot.value = True
    wait_compared(widget)
    assert widget.comparison.plot is not None and widget.comparison.plot.png.startswith(b"\x89PNG")


def test_jpeg_on_request_rgb(sgi_widget, fake_api, ihc_crop, tmp_path, wait_compared):
    viewer, widget = sgi_widget
    layer = viewer.add_image(ihc_crop[:32, :32], name="ihc", rgb=True)
    widget.comparison.with_jpeg.value = True
    widget.comparison.with_plot.value = False
    _compress(widget, layer, tmp_path / "ihc.sgi")
    wait_compared(widget)
    assert list(_table(widget)) == ["SGI", "JPEG", "JPEG 2000", "JPEG XL"]
    for codec in ("JPEG", "JPEG 2000", "JPEG XL"):
        classic = viewer.layers[f"ihc [{codec}, same size]"]
        assert classic.rgb and classic.data.shape == (32, 32, 3)
        assert classic.metadata["mapping"].startswith(f"{codec}: one colour image; uint8")
    assert widget.comparison.plot is None


def test_16_bit_stack_slice_by_slice(
    real_api, sgi_widget, tmp_path, qtbot, wait_compared, monkeypatch
):
    from napari_sgi.compare import slice_budgets

    viewer, widget = sgi_widget
    y, x = np.mgrid[:32, :32]
    stack = np.stack(
        [
            300 + 40 * x + 3000 * np.exp(-((y - 8 - 6 * z) ** 2 + (x - 16) ** 2) / 20)
            for z in (0, 1, 2)
        ]
    ).astype(np.uint16)
    layer = viewer.add_image(stack, name="stack")
    viewer.dims.set_current_step(0, 0)
    widget.comparison.with_plot.value = False
    _compress(widget, layer, tmp_path / "stack.sgi")
    wait_compared(widget)
    comparison = widget.comparison
    assert set(comparison.cache) == {0}  # only the slice under the slider
    budgets = slice_budgets(tmp_path / "stack.sgi")
    j2k = viewer.layers["stack [JPEG 2000, same size]"]
    assert j2k.data.shape == stack.shape
    assert np.asarray(j2k.data[2]).max() == 0  # not compared yet
    viewer.dims.set_current_step(0, 2)
    qtbot.waitUntil(lambda: 2 in comparison.cache, timeout=30_000)
    wait_compared(widget)
    assert set(comparison.cache) == {0, 2}
    file_range = comparison.source.value_range
    for index in (0, 2):
        done = comparison.cache[index]
        assert done.budget == budgets[index]
        for codec in ("JPEG 2000", "JPEG XL"):
            result = done.results[codec]
            assert result.bytes <= budgets[index]
            decoded = np.asarray(viewer.layers[f"stack [{codec}, same size]"].data[index])
            assert np.array_equal(decoded, done.decoded[codec])
            expected = _torch_quality(decoded, stack[index], file_range)
            assert (result.psnr, result.ssim) == pytest.approx(expected, abs=1e-9)
    rows = _table(widget)
    assert int(rows["SGI"][0].replace(",", "")) == budgets[2]  # the table follows the slider
    # Back to a slice already compared: shown from the cache, no new work.
    viewer.dims.set_current_step(0, 0)
    qtbot.wait(400)
    assert not comparison.busy and int(_table(widget)["SGI"][0].replace(",", "")) == budgets[0]


def _slow_codecs(monkeypatch, times: int = 1_000) -> list[str]:
    """Make the first ``times`` codecs wait for a cancel (their names are listed as they start)."""
    real, started = codec_job.code_at_budget, []

    def slow(codec, *args, **kwargs):
        cancel = args[-1]
        if len(started) < times:
            started.append(codec.name)
            deadline = time.monotonic() + 20
            while not cancel() and time.monotonic() < deadline:
                time.sleep(0.01)
        return real(codec, *args, **kwargs)

    monkeypatch.setattr(codec_job, "code_at_budget", slow)
    return started


def test_cancel_midway_leaves_nothing(
    sgi_widget, fake_api, tiny_image, tmp_path, qtbot, wait_compared, monkeypatch
):
    real = codec_job.code_at_budget
    started = _slow_codecs(monkeypatch)
    viewer, widget = sgi_widget
    layer = viewer.add_image(tiny_image, name="tiny")
    _compress(widget, layer, tmp_path / "tiny.sgi")
    qtbot.waitUntil(lambda: bool(started), timeout=20_000)
    widget.comparison.cancel_button.clicked()
    wait_compared(widget)
    qtbot.wait(200)  # anything still queued would arrive now
    assert [x.name for x in viewer.layers] == ["tiny", "tiny [SGI]"]
    assert widget.comparison.cache == {} and widget.comparison.table.isHidden()
    assert widget.comparison.plot is None
    assert "cancelled" in widget.comparison.status.value
    # Asking again compares it whole.
    monkeypatch.setattr(codec_job, "code_at_budget", real)
    widget.comparison.compare_button.clicked()
    wait_compared(widget)
    assert "tiny [JPEG XL, same size]" in [x.name for x in viewer.layers]
    assert set(widget.comparison.cache[0].results) == {"SGI", "JPEG 2000", "JPEG XL"}


def test_new_file_while_comparing_compares_the_new_one(
    sgi_widget, fake_api, tiny_image, tmp_path, qtbot, wait_compared, monkeypatch
):
    slow_once = _slow_codecs(monkeypatch, times=1)
    viewer, widget = sgi_widget
    layer = viewer.add_image(tiny_image, name="tiny")
    _compress(widget, layer, tmp_path / "first.sgi")
    qtbot.waitUntil(lambda: bool(slow_once), timeout=20_000)
    first = widget.comparison.source
    _compress(widget, layer, tmp_path / "second.sgi")  # cancels the comparison of the first
    wait_compared(widget)
    comparison = widget.comparison
    assert comparison.source is not first and comparison.source.path.endswith("second.sgi")
    assert set(comparison.cache[0].results) == {"SGI", "JPEG 2000", "JPEG XL"}
    names = [x.name for x in viewer.layers]
    assert names.count("tiny [JPEG 2000, same size]") == 1


def test_new_file_reuses_the_layers(sgi_widget, fake_api, tiny_image, tmp_path, wait_compared):
    viewer, widget = sgi_widget
    layer = viewer.add_image(tiny_image, name="tiny", contrast_limits=(100, 2500))
    widget.comparison.with_plot.value = False
    _compress(widget, layer, tmp_path / "first.sgi")
    wait_compared(widget)
    before = {name: viewer.layers[f"tiny [{name}, same size]"] for name in ("JPEG 2000", "JPEG XL")}
    _compress(widget, layer, tmp_path / "second.sgi")
    wait_compared(widget)
    names = [x.name for x in viewer.layers]
    for name, classic in before.items():
        assert names.count(f"tiny [{name}, same size]") == 1
        assert viewer.layers[f"tiny [{name}, same size]"] is classic  # reused, not re-added
        assert tuple(classic.contrast_limits) == (100, 2500)
        assert np.array_equal(classic.data, widget.comparison.cache[0].decoded[name])
        assert list(classic.metadata["slices"]) == [0] and classic.metadata["mapping"]


def test_classic_layers_fill_cells_laid_out_once(
    sgi_widget, fake_api, tiny_image, tmp_path, wait_compared
):
    """The grid is laid out once, with the cells of the classic layers; they are added hidden
    and unselected, then shown; the grid then gets its automatic shape back."""
    viewer, widget = sgi_widget
    grid = viewer_grid(viewer)
    shapes = []  # the grid's layout each time a layer comes or is shown, grid on

    def record(*_):
        if grid.enabled:
            shapes.append(grid.actual_shape(viewer.layers))

    def on_inserted(event):
        event.value.events.visible.connect(record)
        record()

    viewer.layers.events.inserted.connect(on_inserted)
    grid.events.enabled.connect(record)
    layer = viewer.add_image(tiny_image, name="tiny")
    widget.comparison.with_plot.value = False
    _compress(widget, layer, tmp_path / "tiny.sgi")
    wait_compared(widget)
    names = [x.name for x in viewer.layers]
    assert names[2:] == ["tiny [JPEG 2000, same size]", "tiny [JPEG XL, same size]"]
    assert all(x.visible for x in viewer.layers)
    assert viewer.layers.selection.active.name == "tiny [SGI]"  # not taken by the comparison
    assert len(shapes) >= 3 and set(shapes) == {(2, 2)}  # never 1×2 in between
    assert tuple(grid.shape) == (-1, -1)
    # Their controls, made before they were inserted: one page each, shown when selected.
    controls = _controls(viewer)
    assert set(controls.widgets) == set(viewer.layers)
    assert controls.count() == len(viewer.layers) + 1  # and the empty page: none made twice
    classic = viewer.layers["tiny [JPEG XL, same size]"]
    viewer.layers.selection.active = classic
    assert controls.currentWidget() is controls.widgets[classic]


def test_a_grid_shape_of_the_users_is_kept(
    sgi_widget, fake_api, tiny_image, tmp_path, wait_compared
):
    viewer, widget = sgi_widget
    viewer_grid(viewer).shape = (1, -1)  # one row
    layer = viewer.add_image(tiny_image, name="tiny")
    widget.comparison.with_plot.value = False
    _compress(widget, layer, tmp_path / "tiny.sgi")
    wait_compared(widget)
    assert len(viewer.layers) == 4 and tuple(viewer_grid(viewer).shape) == (1, -1)
    assert viewer_grid(viewer).actual_shape(viewer.layers) == (1, 4)


def _controls(viewer):
    """napari's layer controls: a page per layer (and its empty page)."""
    return viewer.window._qt_viewer.controls


def test_layers_on_their_way_when_the_next_file_comes(make_napari_viewer, tiny_image, qtbot):
    viewer = make_napari_viewer(show=True)
    original = viewer.add_image(tiny_image, name="tiny")
    result = CodecResult("j2k", "JPEG 2000", 90, 0.7, 40.0, 0.9)
    done = SliceComparison(
        0, 100, tiny_image.shape, {"JPEG 2000": result}, {"JPEG 2000": tiny_image + 1},
        {"JPEG 2000": "uint16 values"},
    )  # fmt: skip

    def layers_after(steps: list[str]) -> CodecLayers:
        layers = CodecLayers(viewer, original, [], tiny_image.shape, (), False)
        layers.show(done)
        layers._timer.stop()
        assert [layers._step() for _ in steps] == steps
        return layers

    # Its controls made, not inserted yet: they go, nothing is left of it.
    first = layers_after(["controls"])
    (made,) = first.layers.values()
    assert made not in viewer.layers and made in _controls(viewer).widgets
    CodecLayers(viewer, original, [], tiny_image.shape, (), False).take_over(first)
    assert set(_controls(viewer).widgets) == {original} and not first.adding
    # Inserted, not shown yet: the next file's comparison reuses it and shows it.
    first = layers_after(["controls", "insert"])
    layer = viewer.layers["tiny [JPEG 2000, same size]"]
    assert not layer.visible and viewer.layers.selection.active is original
    second = CodecLayers(viewer, original, [], tiny_image.shape, (), False)
    second.take_over(first)
    qtbot.waitUntil(lambda: not second.adding, timeout=5_000)
    assert layer.visible and second.layers == {"JPEG 2000": layer} and not first.adding
    assert not np.asarray(layer.data).any()  # blanked until the new file's results come
    assert set(_controls(viewer).widgets) == {original, layer}


def test_a_paused_job_waits_at_its_next_check():
    """Paused while napari adds the layers of its result, a job goes on when resumed; a cancel
    ends the wait too."""
    job = codec_job.ComparisonJob(source=None, index=0, codecs=[])
    job.pause()
    checks: list[bool] = []
    waiting = threading.Thread(target=lambda: checks.append(job._stopped()))
    waiting.start()
    waiting.join(0.3)
    assert waiting.is_alive() and checks == []
    job.resume()
    waiting.join(5)
    assert checks == [False]
    job.pause()
    job.cancel()
    assert job._stopped() is True
