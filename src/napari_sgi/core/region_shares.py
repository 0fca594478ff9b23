"""A large slice's Gaussians shared out over its regions by their detail, not by their area.

Each region of a large slice is fitted as its own model (:mod:`.regions`). At one density for
all, a region of empty slide or dark background gets as many Gaussians as one full of tissue,
and its seed map (:mod:`.seed_map`) can only move them about inside it. Here the slice's
Gaussians (or a size target's bits) go to the regions by the seed map's own rule, applied to
the whole slice: a pixel's share is ``(detail energy + floor) ^ 0.5``, with the floor a tenth of
the slice's mean detail energy, so that a flat region still gets the few large Gaussians it
needs. Only the encoder uses this: each region's model records its own seed count.

Examples
--------
>>> from napari_sgi.core.regions import plan_regions
>>> image = np.zeros((128, 128))
>>> image[:64, :64] = np.random.default_rng(0).random((64, 64))  # detail in one region of four
>>> shares = region_shares(image, plan_regions(128, 128, size=64, margin=32), spacing=8.0)
>>> round(float(shares.sum()), 9), bool(shares[0] > 3 * shares[3])
(1.0, True)
"""

from __future__ import annotations

import numpy as np

from napari_sgi.core.regions import Region
from napari_sgi.core.seed_map import DETAIL_FLOOR, cell_detail, detail_weight, map_cell


def region_shares(
    image: np.ndarray,  # [H, W] or [H, W, C], any dtype
    regions: list[Region],
    spacing: float,
) -> np.ndarray:  # [R], summing to 1
    """Each region's share of the slice's Gaussians, by the detail in its core.

    ``spacing``: the uniform layout's distance between seeds in pixels (``sqrt(K / density)``),
    which sets the scale of what counts as detail (:func:`.seed_map.cell_detail`). Each region's
    detail is measured over its box (the margin is the blur's context) and counted in its core,
    so that every pixel of the slice counts once. A slice's channels are averaged, as for its
    seed maps.
    """
    if len(regions) == 1:
        return np.ones(1)
    cell = map_cell(spacing)
    energies, areas = [], []
    for region in regions:
        by0, by1, bx0, bx1 = region.box
        pixels = np.asarray(image[by0:by1, bx0:bx1], np.float64)
        gray = pixels.mean(2) if pixels.ndim == 3 else pixels
        y0, y1, x0, x1 = region.core
        window = (y0 - by0, y1 - by0, x0 - bx0, x1 - bx0)
        energy, area = cell_detail(gray, spacing, cell, window)
        energies.append(energy)
        areas.append(area)
    # The floor is a tenth of the slice's mean detail energy, as a map's is of its region's.
    total = sum(float((e * a).sum()) for e, a in zip(energies, areas, strict=True))
    floor = DETAIL_FLOOR * total / sum(float(a.sum()) for a in areas)
    weights = np.array(
        [float((detail_weight(e, floor) * a).sum()) for e, a in zip(energies, areas, strict=True)]
    )
    return weights / weights.sum()
