"""Region-wise fitting of large slices, with bounded memory, and the blending of the regions.

A slice larger than the region size is cut into cores on a grid; each core is fitted as its own
model over a box that adds a margin on every side, so that the Gaussians near a core's border are
trained on the image beyond it. Decoding renders each model over its box and blends neighbouring
models across every core border with weights that form a partition of unity: a linear ramp
``width`` pixels wide (full resolution), centred on the border, so that both models are at least
``margin - width / 2`` pixels inside their boxes wherever they are blended (:func:`blend`).
``width = 0`` is a hard cut (files written before blending). The encoder measures the quality of
exactly what :func:`blend` returns, and the reader renders with the same function.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

REGION_SIZE = 1024
REGION_MARGIN = 32


@dataclass(frozen=True)
class Region:
    """``core`` and ``box`` as ``(y0, y1, x0, x1)`` in full-resolution pixels of the slice."""

    core: tuple[int, int, int, int]
    box: tuple[int, int, int, int]

    @property
    def box_shape(self) -> tuple[int, int]:
        return self.box[1] - self.box[0], self.box[3] - self.box[2]

    @property
    def box_pixels(self) -> int:
        return (self.box[1] - self.box[0]) * (self.box[3] - self.box[2])

    @property
    def core_pixels(self) -> int:
        return (self.core[1] - self.core[0]) * (self.core[3] - self.core[2])

    def to_dict(self) -> dict:
        return {"core": list(self.core), "box": list(self.box)}

    @classmethod
    def from_dict(cls, data: dict) -> Region:
        return cls(tuple(int(v) for v in data["core"]), tuple(int(v) for v in data["box"]))


def plan_regions(
    height: int, width: int, size: int = REGION_SIZE, margin: int = REGION_MARGIN
) -> list[Region]:
    """Cores of at most ``size`` pixels a side (row-major) and their boxes with ``margin``.

    ``size`` and ``margin`` must be multiples of 32, so that cores and boxes stay aligned with the
    16-pixel tiles down to pyramid level 1 and the margins stay whole pixels down to level 5.

    Examples
    --------
    >>> [r.core for r in plan_regions(100, 80)]
    [(0, 100, 0, 80)]
    >>> regions = plan_regions(2000, 1100, size=1024, margin=32)
    >>> len(regions), regions[1].core, regions[1].box
    (4, (0, 1024, 1024, 1100), (0, 1056, 992, 1100))
    """
    if size % 32 or margin % 32 or size <= 0 or margin < 0:
        raise ValueError(f"region size and margin must be multiples of 32, got {size}, {margin}")
    regions = []
    for row in range(math.ceil(height / size)):
        for col in range(math.ceil(width / size)):
            y0, x0 = row * size, col * size
            y1, x1 = min(y0 + size, height), min(x0 + size, width)
            box = (
                max(0, y0 - margin),
                min(height, y1 + margin),
                max(0, x0 - margin),
                min(width, x1 + margin),
            )
            regions.append(Region((y0, y1, x0, x1), box))
    return regions


def render_box(model, level: int, backend: str = "auto") -> np.ndarray:
    """``[h, w, C]`` float32 render of a region's model over its whole box, clamped to [0, 1].

    The one rendering of a region that the encoder measures and the reader shows.
    """
    import torch

    with torch.no_grad():
        return model.render(level, backend=backend).clamp(0, 1).numpy().transpose(1, 2, 0)


def axis_weights(centres: np.ndarray, start: int, stop: int, length: int, width: int) -> np.ndarray:
    """Blend weight (float64) of the core ``[start, stop)`` of an axis ``length`` pixels long.

    ``centres`` are pixel centres in full-resolution pixels. The weight rises linearly from 0 to 1
    across ``[start - width/2, start + width/2]`` and falls back across the same band around
    ``stop``; at the slice's own edges it stays 1. Neighbouring cores' weights sum to exactly 1:
    ``ramp(t) + ramp(-t) = 1``, and for power-of-two widths every weight is a short dyadic number.
    ``width = 0`` is a hard cut (a centre on a border goes to the core that starts there).

    Examples
    --------
    >>> centres = np.arange(28, 36) + 0.5
    >>> left, right = axis_weights(centres, 0, 32, 64, 8), axis_weights(centres, 32, 64, 64, 8)
    >>> left.tolist()
    [0.9375, 0.8125, 0.6875, 0.5625, 0.4375, 0.3125, 0.1875, 0.0625]
    >>> bool(np.all(left + right == 1.0))
    True
    """
    weight = np.ones(len(centres))
    if start > 0:
        weight *= _ramp(centres - start, width) if width else centres >= start
    if stop < length:
        weight *= _ramp(stop - centres, width) if width else centres < stop
    return weight


def box_weights(region: Region, shape: tuple[int, int], width: int) -> np.ndarray | None:
    """``[h, w]`` float32: the blend weight :func:`blend` gives each pixel of ``region``'s box in
    a slice of full-resolution ``shape``, or None where it is 1 everywhere (a slice of one region).

    What a region's fit weighs its pixels by (:func:`napari_sgi.core.fit.fit`): the squared
    blended error ``(w e_a + (1 - w) e_b)^2`` is at most ``w e_a^2 + (1 - w) e_b^2``, so each
    region minimising its own weighted error minimises a bound on the slice's, and the outer
    half of a margin, which no blend shows, costs no Gaussians.

    Examples
    --------
    >>> left, right = plan_regions(64, 96, size=64, margin=32)
    >>> weights = box_weights(left, (64, 96), 32)
    >>> weights.shape, weights[0, 40].item(), weights[0, 80].item()
    ((64, 96), 1.0, 0.0)
    >>> box_weights(plan_regions(64, 64)[0], (64, 64), 32) is None
    True
    """
    y0, y1, x0, x1 = region.box
    wy = axis_weights(np.arange(y0, y1) + 0.5, region.core[0], region.core[1], shape[0], width)
    wx = axis_weights(np.arange(x0, x1) + 0.5, region.core[2], region.core[3], shape[1], width)
    if np.all(wy == 1) and np.all(wx == 1):
        return None
    return np.outer(wy, wx).astype(np.float32)


def _ramp(distance: np.ndarray, width: int) -> np.ndarray:
    return np.clip(0.5 + distance / width, 0.0, 1.0)


def _support(region: Region, level: int, window, shape, width: int):
    """Rows and columns of ``window`` where ``region`` has a non-zero weight, or None.

    Returns ``(r0, r1, wy, c0, c1, wx)``: the bounding ranges (window-relative) and the weights
    along each axis over them.
    """
    y0, y1, x0, x1 = window
    factor = 2**level
    ys = (np.arange(y0, y1) + 0.5) * factor
    xs = (np.arange(x0, x1) + 0.5) * factor
    wy = axis_weights(ys, region.core[0], region.core[1], shape[0], width)
    wx = axis_weights(xs, region.core[2], region.core[3], shape[1], width)
    rows, cols = np.flatnonzero(wy), np.flatnonzero(wx)
    if not len(rows) or not len(cols):
        return None
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    return r0, r1, wy[r0:r1], c0, c1, wx[c0:c1]


def regions_in(regions: list[Region], level: int, window, shape, width: int) -> list[int]:
    """Numbers of the regions that contribute to pixels ``window = (y0, y1, x0, x1)``."""
    return [
        number
        for number, region in enumerate(regions)
        if _support(region, level, window, shape, width) is not None
    ]


def _box_pixels(pixels: np.ndarray, top: int, left: int, rows: range, cols: range) -> np.ndarray:
    """Slice-level ``rows`` x ``cols`` of a box render whose first pixel is ``(top, left)``.

    Coordinates outside the render (only where a deep pyramid level does not divide the box
    offsets) repeat its edge pixels.
    """
    ys = np.arange(rows.start, rows.stop) - top
    xs = np.arange(cols.start, cols.stop) - left
    if ys[0] >= 0 and ys[-1] < pixels.shape[0] and xs[0] >= 0 and xs[-1] < pixels.shape[1]:
        return pixels[ys[0] : ys[-1] + 1, xs[0] : xs[-1] + 1]
    ys = np.clip(ys, 0, pixels.shape[0] - 1)
    xs = np.clip(xs, 0, pixels.shape[1] - 1)
    return pixels[ys][:, xs]


def blend(
    regions: list[Region],
    render: Callable[[int], np.ndarray],
    level: int,
    window: tuple[int, int, int, int],
    shape: tuple[int, int],
    width: int,
) -> np.ndarray:
    """Pixels ``window = (y0, y1, x0, x1)`` of a slice at pyramid ``level``, blended from regions.

    Parameters
    ----------
    regions
        The slice's regions (:func:`plan_regions`).
    render
        ``render(number)``: region ``number``'s :func:`render_box` at ``level``; called only for
        the regions that contribute to the window.
    shape
        The slice's full-resolution ``(height, width)``.
    width
        Blend ramp width in full-resolution pixels (0: hard cut).

    Returns
    -------
    numpy.ndarray, float64 ``[y1 - y0, x1 - x0, C]``
        ``sum_r w_r * render_r / sum_r w_r`` with the separable weights of :func:`axis_weights`.
        Every pixel gets the same value whatever window it is read in (the weights depend only on
        its position, and regions are added in their fixed order), so chunks, whole slices and the
        encoder's measurement agree exactly.
    """
    y0, y1, x0, x1 = window
    factor = 2**level
    acc = total = None
    for number, region in enumerate(regions):
        support = _support(region, level, window, shape, width)
        if support is None:
            continue
        r0, r1, wy, c0, c1, wx = support
        pixels = render(number)
        sub = _box_pixels(
            pixels,
            region.box[0] // factor,
            region.box[2] // factor,
            range(y0 + r0, y0 + r1),
            range(x0 + c0, x0 + c1),
        )
        if acc is None:
            acc = np.zeros((y1 - y0, x1 - x0, pixels.shape[2]))
            total = np.zeros((y1 - y0, x1 - x0))
        weight = wy[:, None] * wx[None, :]
        acc[r0:r1, c0:c1] += weight[:, :, None] * sub
        total[r0:r1, c0:c1] += weight
    if acc is None:
        raise ValueError(f"no region covers the window {window}")
    return acc / total[:, :, None]
