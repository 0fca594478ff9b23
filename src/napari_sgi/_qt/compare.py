"""Show a decoded SGI file next to its original layer; called on the GUI thread only."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np
from napari.components.grid import GridCanvas

from napari_sgi._qt.layer_steps import (
    STEP_INTERVAL_MS,
    can_stage,
    drop_controls,
    grid_layout_steps,
    insert_quietly,
    make_controls,
    step_timer,
    viewer_grid,
)

DECODED_SUFFIX = " [SGI]"
DIFFERENCE_SUFFIX = " [SGI − original]"


def decoded_layers(
    original: Any, sgi: Any, *, difference: bool = False, visible: bool = True
) -> list[Any]:
    """The SGI layer of ``sgi`` (an opened ``.sgi``), and with ``difference`` its difference
    from ``original``: napari ``Image`` layers, not in a viewer yet.

    The decoded layer gets the original's contrast limits, colormap, gamma and placement so that
    both look the same where the compression is faithful; every display setting is given, so
    napari computes nothing from the data (no contrast range from the pixels).
    """
    from napari.layers import Image

    levels = list(sgi.levels)
    common: dict[str, Any] = {
        "scale": original.scale,
        "translate": original.translate,
        "blending": original.blending,
        "visible": visible,
    }
    for name in ("axis_labels", "units"):  # napari >= 0.6; same units keep the scale bar on
        if getattr(original, name, None) is not None:
            common[name] = getattr(original, name)
    decoded = Image(
        levels,
        multiscale=True,
        rgb=original.rgb,
        name=original.name + DECODED_SUFFIX,
        contrast_limits=tuple(original.contrast_limits),
        **({} if original.rgb else {"colormap": original.colormap, "gamma": original.gamma}),
        metadata={"sgi_path": getattr(sgi, "path", None), "sgi": dict(sgi.metadata or {})},
        **common,
    )
    layers = [decoded]
    if difference:
        span = float(original.contrast_limits[1] - original.contrast_limits[0]) or 1.0
        layers.append(
            Image(
                difference_levels(original, levels),
                multiscale=True,
                rgb=False,
                colormap="PiYG",
                # ±10 % of the original's display range: small errors stay visible.
                contrast_limits=(-0.1 * span, 0.1 * span),
                name=original.name + DIFFERENCE_SUFFIX,
                **common,
            )
        )
    return layers


def add_decoded_layer(
    viewer: Any, original: Any, sgi: Any, *, difference: bool = False, side_by_side: bool = True
) -> list[Any]:
    """Add ``sgi`` (an opened ``.sgi``) as a multiscale layer right after ``original``, in one go
    (napari's own way: built, inserted, selected and laid out in one turn of the event loop).

    :class:`DecodedLayers` adds them in short turns instead; this is its fallback where napari's
    internals are not where it expects them. Returns the layers added.
    """
    added = decoded_layers(original, sgi, difference=difference)
    for layer in added:
        viewer.layers.insert(_index_after(viewer, original, added), layer)
    if side_by_side:
        show_side_by_side(viewer, True)
    return added


class DecodedLayers:
    """Adds the SGI layer (and its difference) right after ``original``, in short turns of the
    event loop, ``STEP_INTERVAL_MS`` apart, the canvas drawing in between (GUI thread only).

    napari adds a layer in one go (its vispy visual, its Qt controls, the selection, the grid
    laid out again) and draws it at the next paint: 0.1-0.6 s on a small CPU under a software
    renderer, the first time most. Here each layer gets its controls (one turn), is inserted
    hidden and not selected (one turn: its visual; a hidden layer takes no grid cell); then, when
    asked, the grid's cells are made two at a time (:func:`layer_steps.grid_layout_steps`, with
    the shape reserved beforehand for these layers and the comparison's, see
    :func:`reserve_grid`) and the grid is switched on (one turn: napari finds its cells there and
    lays nothing out); each layer is shown in its cell (one turn, then its first drawing);
    last the SGI layer is selected, as napari selects a layer it adds. :meth:`abort` takes out
    whatever was put in. Where napari's internals are missing (:func:`layer_steps.can_stage`)
    :meth:`start` adds them in one go, as :func:`add_decoded_layer` does.
    """

    def __init__(
        self,
        viewer: Any,
        original: Any,
        sgi: Any,
        *,
        difference: bool = False,
        side_by_side: bool = True,
        parent: Any = None,
    ) -> None:
        self.viewer, self.original, self.side_by_side = viewer, original, side_by_side
        #: the SGI layer, then its difference (built hidden; shown by the steps)
        self.layers = decoded_layers(original, sgi, difference=difference, visible=False)
        self.on_done: Callable[[list[Any]], None] | None = None  #: called with the layers
        self.on_failed: Callable[[Exception], None] | None = None  #: a step raised; all undone
        self._steps: list[tuple[str, Any]] = []
        self._controls: set[int] = set()  # ids of the layers whose controls were made
        self._timer = step_timer(parent, lambda: self._step(), STEP_INTERVAL_MS)

    @property
    def adding(self) -> bool:
        """Whether steps are left (the layers not all added and shown yet)."""
        return bool(self._steps)

    def start(self) -> bool:
        """Begin; returns True if the layers come in steps, False if they were added at once."""
        if not can_stage(self.viewer):
            for layer in self.layers:
                layer.visible = True
                at = _index_after(self.viewer, self.original, self.layers)
                self.viewer.layers.insert(at, layer)
            if self.side_by_side:
                show_side_by_side(self.viewer, True)
            self._finish()
            return False
        self._steps = [(what, layer) for layer in self.layers for what in ("controls", "insert")]
        if self.side_by_side and not viewer_grid(self.viewer).enabled:
            # The grid's cells made a few at a time (with the shape reserved for these layers and
            # the comparison's), then the grid switched on: napari finds them there.
            self._steps += [("layout", step) for step in grid_layout_steps(self.viewer)]
            self._steps.append(("grid", None))
        self._steps += [("show", layer) for layer in self.layers]
        self._steps.append(("select", self.layers[0]))
        self._timer.start()
        return True

    def _step(self) -> str:
        """Take the next step; returns which ("controls", "insert", "grid", "show", "select")."""
        if not self._steps:
            return ""
        what, layer = self._steps.pop(0)
        layers = self.viewer.layers
        try:
            if what == "controls":
                if make_controls(self.viewer, layer):
                    self._controls.add(id(layer))
            elif what == "insert":
                at = _index_after(self.viewer, self.original, self.layers)
                insert_quietly(self.viewer, at, layer, id(layer) in self._controls)
            elif what == "layout":
                layer()  # one step of the grid's layout
            elif what == "grid":
                show_side_by_side(self.viewer, True)
            elif what == "show" and layer in layers:
                layer.visible = True
            elif what == "select" and layer in layers:
                layers.selection.active = layer
        except Exception as exc:  # noqa: BLE001 - napari refused: undo, and say why
            self.abort()
            if self.on_failed is not None:
                self.on_failed(exc)
            return what
        if self._steps:
            self._timer.start()
        else:
            self._finish()
        return what

    def _finish(self) -> None:
        if self.on_done is not None:
            self.on_done(list(self.layers))

    def abort(self) -> None:
        """Stop; take out the layers inserted so far and drop the controls made for the others,
        so that no layer is left half added. Nothing once all were added."""
        if not self._steps:
            return
        self._timer.stop()
        self._steps = []
        layers = self.viewer.layers
        for layer in reversed(self.layers):
            if layer in layers:
                layers.remove(layer)  # its controls go with it
            elif id(layer) in self._controls:
                drop_controls(self.viewer, layer)
        self._controls.clear()


def _index_after(viewer: Any, original: Any, layers: list[Any]) -> int:
    """Where the next of ``layers`` goes: after ``original`` and those of ``layers`` already
    there (at the top when ``original`` was removed)."""
    there = viewer.layers
    if original not in there:
        return len(there)
    return 1 + max(there.index(layer) for layer in [original, *layers] if layer in there)


def difference_levels(original: Any, levels: list[Any]) -> list[Any]:
    """Lazy ``decoded − original`` per pyramid level (channel mean for RGB), as float32.

    The original is subsampled by 2^k to match level k; dask computes only the tiles in view.
    """
    import dask.array as da

    source = original.data[0] if original.multiscale else original.data
    source = da.asarray(source)
    out = []
    for k, level in enumerate(levels):
        ref = source[_yx_subsample(source.ndim, original.rgb, 2**k)]
        dec = da.asarray(level)
        shape = tuple(min(a, b) for a, b in zip(ref.shape, dec.shape, strict=True))
        crop = tuple(slice(0, n) for n in shape)
        diff = dec[crop].astype(np.float32) - ref[crop].astype(np.float32)
        out.append(diff.mean(axis=-1) if original.rgb else diff)
    return out


def _yx_subsample(ndim: int, rgb: bool, step: int) -> tuple[slice, ...]:
    """Index taking every ``step``-th row and column (Y, X are the last non-colour axes)."""
    index = [slice(None)] * ndim
    y = ndim - (3 if rgb else 2)
    index[y] = index[y + 1] = slice(None, None, step)
    return tuple(index)


def reserve_grid(viewer: Any, coming: int) -> tuple[int, int] | None:
    """Fix the grid's shape to the one napari will need once ``coming`` more layers are shown.

    napari lays its grid out anew (a vispy view and camera per cell: 50-150 ms on the GUI
    thread under a software renderer) each time the number of cells changes. Fixed beforehand,
    the grid is laid out once, when the first of those layers is added or the grid switched on,
    and the later ones fill cells that are there already. Only an automatic shape (-1, -1) is
    fixed; :func:`release_grid` gives it back. Returns the shape fixed, or None.
    """
    grid = viewer_grid(viewer)
    if coming <= 0 or tuple(grid.shape) != (-1, -1):
        return None
    # napari's own rule, on the layers as they will be (stand-ins for those to come).
    future = [*viewer.layers, *[SimpleNamespace(visible=True)] * coming]
    shape = tuple(GridCanvas(stride=grid.stride, enabled=True).actual_shape(future))
    grid.shape = shape
    return shape


def release_grid(viewer: Any, reserved: tuple[int, int] | None) -> None:
    """Give the grid its automatic shape back, unless someone changed it since it was fixed."""
    grid = viewer_grid(viewer)
    if reserved is not None and tuple(grid.shape) == tuple(reserved):
        grid.shape = (-1, -1)


def show_side_by_side(viewer: Any, enabled: bool | None = None) -> bool:
    """Switch grid view (one linked camera per layer) on, off, or (``None``) the other way."""
    grid = viewer_grid(viewer)
    grid.enabled = (not grid.enabled) if enabled is None else enabled
    return grid.enabled
