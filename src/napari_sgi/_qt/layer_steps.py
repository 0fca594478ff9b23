"""napari's work of adding a layer, cut into shorter turns of the event loop (GUI thread only).

napari adds a layer in one go, on its layer list's ``inserted`` event: it builds the layer's
vispy visual and its Qt controls, selects it (its controls shown, the layer buttons, the key
bindings) and lays the grid out again when the number of cells changes; the canvas draws it at
the next paint. On a small CPU under a software renderer that is 0.1-0.3 s in one turn. With
these helpers the comparison's layers come in three turns: their controls
(:func:`make_controls`), their insertion, hidden and not selected (:func:`insert_quietly`), and
their first drawing (the layer shown; see :mod:`napari_sgi._qt.codec_layers`).

They use napari internals (0.9: ``Window._qt_viewer.controls``, its ``_add``, ``_remove`` and
``widgets``, and ``LayerList._activate_on_insert``); where one is missing, napari does that part
itself when the layer is inserted, as it always does.
"""

from __future__ import annotations

from contextlib import ExitStack
from types import SimpleNamespace
from typing import Any


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
