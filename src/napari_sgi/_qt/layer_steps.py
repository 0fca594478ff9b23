"""napari's work of adding a layer, cut into shorter turns of the event loop (GUI thread only).

napari adds a layer in one go, on its layer list's ``inserted`` event: it builds the layer's
vispy visual and its Qt controls, selects it (its controls shown, the layer buttons, the key
bindings) and lays the grid out again when the number of cells changes; the canvas draws it at
the next paint. On a small CPU under a software renderer that is 0.1-0.3 s in one turn. With
these helpers the decoded layer and the comparison's layers come in three turns each: their
controls (:func:`make_controls`), their insertion, hidden and not selected
(:func:`insert_quietly`), and their first drawing (the layer shown; see
:class:`napari_sgi._qt.compare.DecodedLayers` and :mod:`napari_sgi._qt.codec_layers`).

They use napari internals (0.9: ``Window._qt_viewer.controls``, its ``_add``, ``_remove`` and
``widgets``, ``LayerList._activate_on_insert``, and for :func:`grid_layout_steps` the vispy
canvas's ``grid``, ``grid_views`` and ``grid_cameras``); where one is missing, napari does that
part itself, in one go, as it always does.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack, suppress
from types import SimpleNamespace
from typing import Any

import numpy as np

#: between two steps of adding layers: the canvas draws, and the user's input is handled
STEP_INTERVAL_MS = 30


def step_timer(parent: Any, step: Callable[[], object], interval_ms: int) -> Any:
    """A single-shot timer that takes ``step`` ``interval_ms`` after each ``start()``: one step
    of adding layers per turn of the event loop. Parented, it dies with ``parent``."""
    from qtpy.QtCore import QTimer

    timer = QTimer(parent)
    timer.setSingleShot(True)
    timer.setInterval(interval_ms)
    timer.timeout.connect(step)
    return timer


def _unwrapped(obj: Any) -> Any:
    """``obj`` itself: the viewer napari gives a plugin hides private names behind a proxy."""
    return getattr(obj, "__wrapped__", obj)


def _controls(viewer: Any) -> Any:
    """napari's container of layer controls, or None where it is not where 0.9 keeps it."""
    try:
        container = _unwrapped(viewer).window._qt_viewer.controls
    except AttributeError:
        return None
    needed = ("_add", "_remove", "widgets")
    return container if all(hasattr(container, name) for name in needed) else None


def can_stage(viewer: Any) -> bool:
    """Whether napari has the internals these helpers use (else a layer is added in one go)."""
    layers = _unwrapped(getattr(viewer, "layers", None))
    return _controls(viewer) is not None and hasattr(layers, "_activate_on_insert")


def make_controls(viewer: Any, layer: Any) -> bool:
    """Build the controls of ``layer``, not inserted yet; True if napari has them now.

    Its own turn: napari's controls of an image (sliders, combo boxes, styled) take a third of
    the time it spends adding the layer.
    """
    container = _controls(viewer)
    if container is None:
        return False
    container._add(SimpleNamespace(value=layer))
    return layer in container.widgets


def drop_controls(viewer: Any, layer: Any) -> None:
    """Remove the controls made for ``layer`` when it is not going to be inserted after all."""
    container = _controls(viewer)
    if container is not None and layer in container.widgets:
        container._remove(SimpleNamespace(value=layer))


def insert_quietly(viewer: Any, index: int, layer: Any, controls_made: bool = False) -> None:
    """Insert ``layer`` at ``index`` of the layer list without selecting it, and without
    building its controls again when :func:`make_controls` did.

    A comparison finishing in the background should not take the user's selection anyway.
    """
    layers = _unwrapped(viewer.layers)
    container = _controls(viewer) if controls_made else None
    activate = getattr(layers, "_activate_on_insert", None)
    with ExitStack() as stack:
        if container is not None and layer in container.widgets:
            stack.enter_context(layers.events.inserted.blocker(container._add))
        if activate is not None:
            layers._activate_on_insert = False
            stack.callback(setattr, layers, "_activate_on_insert", activate)
        layers.insert(index, layer)


def _vispy_canvas(viewer: Any) -> Any:
    """napari's vispy canvas, or None where it is not where 0.9 keeps it (or lacks a part)."""
    try:
        canvas = _unwrapped(viewer).window._qt_viewer.canvas
    except AttributeError:
        return None
    needed = ("grid", "grid_views", "grid_cameras", "central_widget", "_scene_canvas", "viewer")
    return canvas if all(hasattr(canvas, name) for name in needed) else None


def viewer_grid(viewer: Any) -> Any:
    """The grid settings: ``viewer.canvas.grid`` since napari 0.9, ``viewer.grid`` before."""
    canvas = getattr(viewer, "canvas", None)
    return canvas.grid if canvas is not None and hasattr(canvas, "grid") else viewer.grid


def grid_layout_steps(viewer: Any, per_step: int = 2) -> list[Callable[[], None]]:
    """napari's layout of its grid (``VispyCanvas._init_or_update_grid``: a vispy view and a
    camera per cell, about 15 ms a cell on a small CPU), cut into steps of ``per_step`` cells,
    to run in turns of the event loop before the grid is switched on.

    When the grid is switched on, napari lays it out again only if the cells there do not have
    its shape; after these steps they do. Only for a grid that is off, with a fixed shape (as
    :func:`napari_sgi._qt.compare.reserve_grid` leaves it), not laid out for that shape yet;
    otherwise (or without napari's internals) there is nothing to do here: an empty list.
    """
    grid, canvas = viewer_grid(viewer), _vispy_canvas(viewer)
    shape = tuple(int(n) for n in grid.shape)
    if canvas is None or grid.enabled or min(shape) < 1:
        return []
    if tuple(canvas.grid.grid_size) == shape:
        return []  # laid out for it already (the grid was on with this shape before)
    try:
        from napari._vispy.camera import VispyCamera
    except ImportError:
        return []
    cells = [tuple(int(i) for i in cell) for cell in np.ndindex(shape)]  # napari's order

    def new_grid() -> None:
        # What napari does before laying a grid out: the old one's cameras and views go.
        for camera in canvas.grid_cameras:
            with suppress(TypeError, ValueError, RuntimeError):
                canvas._scene_canvas.events.draw.disconnect(camera.on_draw)
            camera._2D_camera.parent = None
            camera._3D_camera.parent = None
        canvas.grid_cameras.clear()
        canvas.grid_views.clear()
        canvas.grid.parent = None
        canvas.grid = canvas.central_widget.add_grid(border_width=0)

    def add_cells(chunk: list[tuple[int, int]]) -> Callable[[], None]:
        def step() -> None:
            if tuple(canvas.grid.grid_size) == shape or grid.enabled:
                return  # napari got there first (the grid was switched on meanwhile)
            for row, col in chunk:
                view = canvas.grid[row, col]
                view.border_width = 0  # as napari sets them (see vispy issue 1492)
                view.border_color = None
                camera = VispyCamera(view, canvas.viewer.scene.camera, canvas.viewer.dims)
                canvas.grid_views.append(view)
                canvas.grid_cameras.append(camera)

        return step

    chunks = [cells[i : i + per_step] for i in range(0, len(cells), per_step)]
    return [new_grid, *[add_cells(chunk) for chunk in chunks]]
