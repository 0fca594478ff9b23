"""Show a decoded SGI file next to its original layer; called on the GUI thread only."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
from napari.components.grid import GridCanvas

DECODED_SUFFIX = " [SGI]"
DIFFERENCE_SUFFIX = " [SGI − original]"


def add_decoded_layer(
    viewer: Any, original: Any, sgi: Any, *, difference: bool = False, side_by_side: bool = True
) -> list[Any]:
    """Add ``sgi`` (an opened ``.sgi``) as a multiscale layer right after ``original``.

    The decoded layer gets the original's contrast limits, colormap, gamma and placement so that
    both look the same where the compression is faithful. Returns the layers added.
    """
    levels = list(sgi.levels)
    common: dict[str, Any] = {
        "scale": original.scale,
        "translate": original.translate,
        "blending": original.blending,
    }
    for name in ("axis_labels", "units"):  # napari >= 0.6; same units keep the scale bar on
        if getattr(original, name, None) is not None:
            common[name] = getattr(original, name)
    decoded = viewer.add_image(
        levels,
        multiscale=True,
        rgb=original.rgb,
        name=original.name + DECODED_SUFFIX,
        contrast_limits=tuple(original.contrast_limits),
        **({} if original.rgb else {"colormap": original.colormap, "gamma": original.gamma}),
        metadata={"sgi_path": getattr(sgi, "path", None), "sgi": dict(sgi.metadata or {})},
        **common,
    )
    added = [decoded]
    if difference:
        span = float(original.contrast_limits[1] - original.contrast_limits[0]) or 1.0
        diff_levels = difference_levels(original, levels)
        added.append(
            viewer.add_image(
                diff_levels,
                multiscale=True,
                rgb=False,
                colormap="PiYG",
                # ±10 % of the original's display range: small errors stay visible.
                contrast_limits=(-0.1 * span, 0.1 * span),
                name=original.name + DIFFERENCE_SUFFIX,
                **common,
            )
        )
    _place_after(viewer, original, added)
    if side_by_side:
        show_side_by_side(viewer, True)
    return added


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


def _place_after(viewer: Any, original: Any, layers: list[Any]) -> None:
    """Move ``layers`` to just above ``original`` so the grid shows them side by side."""
    if original not in viewer.layers:
        return
    for offset, layer in enumerate(layers, start=1):
        viewer.layers.move(viewer.layers.index(layer), viewer.layers.index(original) + offset)


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


def viewer_grid(viewer: Any) -> Any:
    """The grid settings: ``viewer.canvas.grid`` since napari 0.9, ``viewer.grid`` before."""
    canvas = getattr(viewer, "canvas", None)
    return canvas.grid if canvas is not None and hasattr(canvas, "grid") else viewer.grid
