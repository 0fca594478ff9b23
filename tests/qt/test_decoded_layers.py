"""The decoded SGI layer (and its difference) added in turns of the event loop, or in one go.

In steps (:class:`napari_sgi._qt.compare.DecodedLayers`): controls, hidden insertion, the grid's
cells a few at a time, the grid switched on, each layer shown, the SGI layer selected. Without
napari's internals: in one go. Either way the layers end up the same; stopped midway, nothing of
them is left. Also: the heap frozen once the widget's imports are in, and thawed when it closes.
"""

from __future__ import annotations

import gc
import weakref
from types import SimpleNamespace

import numpy as np
import pytest

from napari_sgi._qt import compare, layer_steps
from napari_sgi._qt.compare import DecodedLayers, reserve_grid, viewer_grid

STEPS = [
    *["controls", "insert"] * 2,
    *["layout"] * 3,  # the old grid out, then 2 cells, 2 cells (2×2)
    "grid",
    *["show"] * 2,
    "select",
]


def _controls(viewer):
    return viewer.window._qt_viewer.controls


def _canvas(viewer):
    return viewer.window._qt_viewer.canvas


@pytest.fixture
def scene(make_napari_viewer, tiny_image):
    """A shown viewer with a layer above the original, and an opened ``.sgi`` of it."""
    viewer = make_napari_viewer(show=True)
    original = viewer.add_image(
        tiny_image, name="tiny", contrast_limits=(100, 2500), scale=(0.5, 0.5), colormap="magma"
    )
    viewer.add_image(np.zeros((4, 4)), name="on top")
    viewer.layers.selection.active = viewer.layers["on top"]
    decoded = (tiny_image + 7).astype(np.uint16)
    sgi = SimpleNamespace(
        levels=[decoded, decoded[::2, ::2]], metadata={"k": 6}, path="/tmp/tiny.sgi"
    )
    return viewer, original, sgi


def _take(adding: DecodedLayers, n: int | None = None) -> list[str]:
    """Take ``n`` steps (all without ``n``) by hand, the timer kept out of it."""
    taken = []
    while adding.adding and (n is None or len(taken) < n):
        adding._timer.stop()
        taken.append(adding._step())
    adding._timer.stop()
    return taken


def _check_added(viewer, original, sgi, layers) -> None:
    names = [x.name for x in viewer.layers]
    assert names == ["tiny", "tiny [SGI]", "tiny [SGI − original]", "on top"]
    decoded, difference = viewer.layers["tiny [SGI]"], viewer.layers["tiny [SGI − original]"]
    assert list(layers) == [decoded, difference]
    assert decoded.multiscale and len(decoded.data) == 2
    assert np.array_equal(np.asarray(decoded.data[0]), sgi.levels[0])
    assert tuple(decoded.contrast_limits) == (100, 2500)
    assert decoded.colormap.name == original.colormap.name == "magma"
    assert tuple(decoded.scale) == (0.5, 0.5)
    assert decoded.metadata == {"sgi_path": "/tmp/tiny.sgi", "sgi": {"k": 6}}
    assert np.array_equal(np.asarray(difference.data[0]), np.full(sgi.levels[0].shape, 7.0))
    assert tuple(difference.contrast_limits) == pytest.approx((-240.0, 240.0))
    assert all(x.visible for x in viewer.layers)
    grid = viewer_grid(viewer)
    assert grid.enabled
    cells = {
        cell: [viewer.layers[i].name for i in at] for cell, at in grid.iter_viewboxes(viewer.layers)
    }
    assert cells[(0, 1)] == ["tiny [SGI]"] and cells[(1, 0)] == ["tiny [SGI − original]"]
    assert set(_controls(viewer).widgets) == set(viewer.layers)
    assert _controls(viewer).count() == len(viewer.layers) + 1  # none made twice


def test_decoded_layers_come_in_steps(scene):
    viewer, original, sgi = scene
    reserved = reserve_grid(viewer, 2)
    assert reserved == (2, 2)
    adding = DecodedLayers(viewer, original, sgi, difference=True)
    done = []
    adding.on_done = done.append
    assert adding.start()
    assert _take(adding, 2) == ["controls", "insert"]
    decoded = viewer.layers["tiny [SGI]"]
    assert viewer.layers.index(decoded) == 1 and not decoded.visible
    assert viewer.layers.selection.active.name == "on top"  # not taken while it comes
    assert _take(adding, 5) == ["controls", "insert", "layout", "layout", "layout"]
    laid_out = _canvas(viewer).grid
    assert tuple(laid_out.grid_size) == (2, 2) and not viewer_grid(viewer).enabled
    assert _take(adding, 1) == ["grid"]
    assert _canvas(viewer).grid is laid_out  # napari found the cells there: not laid out again
    assert not done
    assert _take(adding) == ["show", "show", "select"]
    assert not adding.adding and done == [adding.layers]
    _check_added(viewer, original, sgi, done[0])
    assert viewer.layers.selection.active is decoded
    assert len(_canvas(viewer).grid_views) == 4


def test_without_napari_internals_they_come_in_one_go(scene, monkeypatch):
    viewer, original, sgi = scene
    monkeypatch.setattr(layer_steps, "_controls", lambda viewer: None)
    reserve_grid(viewer, 2)
    adding = DecodedLayers(viewer, original, sgi, difference=True)
    done = []
    adding.on_done = done.append
    assert not adding.start()  # added already
    assert not adding.adding and done == [adding.layers]
    _check_added(viewer, original, sgi, done[0])


def test_the_one_go_function_adds_them_the_same(scene):
    viewer, original, sgi = scene
    reserve_grid(viewer, 2)
    layers = compare.add_decoded_layer(viewer, original, sgi, difference=True)
    _check_added(viewer, original, sgi, layers)


@pytest.mark.parametrize("stop_after", range(1, len(STEPS)))
def test_stopped_midway_nothing_is_left(scene, qtbot, stop_after):
    viewer, original, sgi = scene
    reserve_grid(viewer, 2)
    adding = DecodedLayers(viewer, original, sgi, difference=True)
    done = []
    adding.on_done = done.append
    adding.start()
    assert _take(adding, stop_after) == STEPS[:stop_after]
    adding.abort()
    qtbot.wait(50)  # a timer left running would take a step now
    assert [x.name for x in viewer.layers] == ["tiny", "on top"] and not done
    assert not adding.adding
    assert set(_controls(viewer).widgets) == set(viewer.layers)
    assert all(x.visible for x in viewer.layers)


def test_a_layer_removed_meanwhile(scene, qtbot):
    """The user removes the SGI layer before it is shown: the rest still comes.

    (Not tested: the original removed meanwhile. napari 0.9 under Mesa/Xvfb crashes in OpenGL
    drawing any layer added after it, in one go or not.)
    """
    viewer, original, sgi = scene
    adding = DecodedLayers(viewer, original, sgi, difference=True, side_by_side=False)
    adding.start()
    _take(adding, 2)
    viewer.layers.remove(viewer.layers["tiny [SGI]"])
    qtbot.wait(50)
    assert _take(adding) == ["controls", "insert", "show", "show", "select"]
    assert [x.name for x in viewer.layers] == ["tiny", "tiny [SGI − original]", "on top"]
    assert viewer.layers["tiny [SGI − original]"].visible and not viewer_grid(viewer).enabled


def test_a_failing_step_undoes_the_rest(scene, monkeypatch):
    viewer, original, sgi = scene
    adding = DecodedLayers(viewer, original, sgi)
    failed = []
    adding.on_failed = failed.append
    adding.start()
    _take(adding, 2)
    monkeypatch.setattr(compare, "show_side_by_side", lambda *a: 1 / 0)
    _take(adding)
    assert [type(e) for e in failed] == [ZeroDivisionError]
    assert [x.name for x in viewer.layers] == ["tiny", "on top"]


# ----------------------------------------------------------------------------- in the widget
@pytest.fixture
def slow_steps(monkeypatch):
    """Steps a second apart: time to stop them midway."""
    monkeypatch.setattr(compare, "STEP_INTERVAL_MS", 1000)


def _compress_midway(viewer, widget, tiny_image, tmp_path, qtbot):
    layer = viewer.add_image(tiny_image, name="tiny")
    widget.set_layer(layer)
    widget.iterations.value = 10
    widget.output.value = tmp_path / "tiny.sgi"
    widget.start()
    qtbot.waitUntil(lambda: widget.adding is not None and widget.adding.adding, timeout=20_000)
    qtbot.waitUntil(lambda: "tiny [SGI]" in [x.name for x in viewer.layers], timeout=5_000)
    assert widget.busy and widget.cancel_button.enabled and not widget.run_button.enabled


def test_cancel_while_adding_leaves_the_file_and_no_layer(
    sgi_widget, fake_api, tiny_image, tmp_path, qtbot, wait_idle, slow_steps
):
    viewer, widget = sgi_widget
    _compress_midway(viewer, widget, tiny_image, tmp_path, qtbot)
    widget.cancel_button.clicked()
    wait_idle(widget)
    qtbot.wait(100)
    assert [x.name for x in viewer.layers] == ["tiny"]
    assert (tmp_path / "tiny.sgi").exists()
    assert "adding its layer was cancelled" in widget.result_label.value
    assert tuple(viewer_grid(viewer).shape) == (-1, -1)  # the reserved cells given back
    assert widget.run_button.enabled and not widget.cancel_button.enabled
    assert widget.comparison.source is None  # no comparison of a layer that is not there


def test_closing_the_panel_while_adding_leaves_no_layer(
    make_napari_viewer, fake_api, tiny_image, tmp_path, qtbot, slow_steps
):
    viewer = make_napari_viewer(show=True)
    dock, widget = viewer.window.add_plugin_dock_widget("napari-sgi", "SGI compression")
    _compress_midway(viewer, widget, tiny_image, tmp_path, qtbot)
    viewer.window.remove_dock_widget(dock)
    qtbot.wait(1500)  # a step still due would come now
    assert [x.name for x in viewer.layers] == ["tiny"]
    assert all(x.visible for x in viewer.layers)


@pytest.mark.parametrize("staged", [True, False])
def test_the_widget_adds_them_either_way(
    sgi_widget, fake_api, tiny_image, tmp_path, wait_idle, monkeypatch, staged
):
    viewer, widget = sgi_widget
    if not staged:
        monkeypatch.setattr(layer_steps, "_controls", lambda viewer: None)
    layer = viewer.add_image(tiny_image, name="tiny", contrast_limits=(100, 2500))
    widget.set_layer(layer)
    widget.iterations.value = 10
    widget.difference.value = True
    widget.comparison.active.value = False
    widget.output.value = tmp_path / "tiny.sgi"
    widget.start()
    wait_idle(widget)
    names = [x.name for x in viewer.layers]
    assert names == ["tiny", "tiny [SGI]", "tiny [SGI − original]"]
    assert widget.decoded_layers == [viewer.layers[n] for n in names[1:]]
    decoded = viewer.layers["tiny [SGI]"]
    assert tuple(decoded.contrast_limits) == (100, 2500) and decoded.visible
    assert np.array_equal(np.asarray(decoded.data[0]), tiny_image)
    assert viewer_grid(viewer).enabled
    assert viewer_grid(viewer).actual_shape(viewer.layers) == (2, 2)
    assert viewer.layers.selection.active.name in ("tiny [SGI]", "tiny [SGI − original]")
    assert widget.comparison.source is not None  # attached once the layers were added


# ----------------------------------------------------------------------------- the heap
def test_heap_frozen_once_warm_and_thawed_on_close(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    extra = viewer.add_image(np.zeros((8, 8)), name="extra")
    _, widget = viewer.window.add_plugin_dock_widget("napari-sgi", "SGI compression")
    qtbot.waitUntil(lambda: widget._frozen_layers is not None, timeout=60_000)
    assert gc.get_freeze_count() > 0 and extra in widget._frozen_layers
    # A layer frozen with the heap, removed: collected all the same (the heap frozen again).
    ref = weakref.ref(extra)
    viewer.layers.remove(extra)
    del extra
    qtbot.waitUntil(lambda: ref() is None, timeout=5_000)
    assert gc.get_freeze_count() > 0
    viewer.close()  # the widget goes with it (Qt deletes it a moment later): the heap thawed
    qtbot.waitUntil(lambda: gc.get_freeze_count() == 0, timeout=5_000)


def test_closing_the_panel_thaws_the_heap(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    dock, widget = viewer.window.add_plugin_dock_widget("napari-sgi", "SGI compression")
    qtbot.waitUntil(lambda: widget._frozen_layers is not None, timeout=60_000)
    assert gc.get_freeze_count() > 0
    viewer.window.remove_dock_widget(dock)  # out of its dock, maybe never deleted
    assert gc.get_freeze_count() == 0 and widget._frozen_layers is None


def test_grid_layout_steps_only_where_napari_would_lay_out(scene):
    viewer, original, sgi = scene
    grid = viewer_grid(viewer)
    assert layer_steps.grid_layout_steps(viewer) == []  # automatic shape: napari's own way
    grid.shape = (1, 3)
    steps = layer_steps.grid_layout_steps(viewer)
    assert len(steps) == 3  # the old grid out; 2 cells; 1 cell
    for step in steps:
        step()
    cells = _canvas(viewer).grid
    assert tuple(cells.grid_size) == (1, 3) and len(_canvas(viewer).grid_views) == 3
    grid.enabled = True
    assert _canvas(viewer).grid is cells  # napari found them there
    assert layer_steps.grid_layout_steps(viewer) == []  # on already
    grid.enabled = False
    assert layer_steps.grid_layout_steps(viewer) == []  # laid out for this shape already
