"""Seed positions on a jittered grid, regenerated exactly from a stored RNG seed (zero bits), or
from a coded seed map (:mod:`.seed_map`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SeedGrid:
    """Everything needed to regenerate the seed positions bit for bit.

    Positions are in full-resolution pixels (x = column, y = row, pixel centres at +0.5). Unlike the
    reference, they are not snapped to integer pixel corners: nothing codes them.

    Examples
    --------
    >>> grid = SeedGrid(height=64, width=96, count=100, rng_seed=0)
    >>> positions = grid.positions()
    >>> positions.shape, positions.dtype
    ((100, 2), dtype('float32'))
    >>> bool((positions == grid.positions()).all())
    True
    """

    height: int
    width: int
    count: int
    rng_seed: int = 0
    seed_map: str = ""  # empty: one jittered grid over the image; else :mod:`.seed_map`'s map

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError(f"the seed count must be at least 1, got {self.count}")
        if self.height < 1 or self.width < 1:
            raise ValueError(f"the seed grid needs a positive size, got {self.height}x{self.width}")

    def positions(self) -> np.ndarray:  # [N, 2] float32 (x, y)
        """Jittered-grid positions: one uniform point per cell of a G x G grid, G = ceil(sqrt(N)).

        N of the G^2 candidates are kept, drawn without replacement, and returned in row-major
        order (y, then x), the order in which seed attributes are stored. With a seed map, the
        same within each of its cells (:func:`.seed_map.map_positions`).
        """
        if self.seed_map:
            from napari_sgi.core.seed_map import map_positions

            return map_positions(self.height, self.width, self.count, self.rng_seed, self.seed_map)
        side = math.ceil(math.sqrt(self.count))
        # PCG64 with float64 draws is specified bit for bit by numpy on every platform.
        rng = np.random.Generator(np.random.PCG64(self.rng_seed))
        cols, rows = np.meshgrid(np.arange(side), np.arange(side), indexing="xy")
        jitter = rng.random((side * side, 2))
        x = (cols.ravel() + jitter[:, 0]) * (self.width / side)
        y = (rows.ravel() + jitter[:, 1]) * (self.height / side)
        keep = np.sort(rng.choice(side * side, size=self.count, replace=False))
        return np.stack([x[keep], y[keep]], axis=1).astype(np.float32)

    def to_dict(self) -> dict:
        return {
            "height": self.height,
            "width": self.width,
            "count": self.count,
            "rng_seed": self.rng_seed,
            **({"seed_map": self.seed_map} if self.seed_map else {}),
        }


def seed_count_for_density(
    height: int, width: int, gaussians_per_pixel: float, gaussians_per_seed: int
) -> int:
    """Seeds needed for ``gaussians_per_pixel`` Gaussians per full-resolution pixel.

    Examples
    --------
    >>> seed_count_for_density(512, 512, 0.07, 10)
    1835
    """
    if gaussians_per_pixel <= 0:
        raise ValueError(f"the Gaussian density must be positive, got {gaussians_per_pixel}")
    return max(1, round(height * width * gaussians_per_pixel / gaussians_per_seed))


def initial_log_scaling(positions: np.ndarray, coarse_factor: float) -> np.ndarray:  # [N]
    """Initial log-scaling per seed: log of the RMS distance to the 3 nearest seeds.

    As in the reference, the value is clamped to [1e-4, 0.5] in *coarsest-level* pixels (the
    reference initialises at the coarsest level); it is returned in full-resolution pixels.
    """
    from scipy.spatial import cKDTree

    coarse = positions.astype(np.float64) / coarse_factor
    n_neighbours = min(3, len(coarse) - 1)
    if n_neighbours < 1:
        mean_sq = np.ones(len(coarse))
    else:
        distances, _ = cKDTree(coarse).query(coarse, k=n_neighbours + 1)
        mean_sq = np.mean(distances[:, 1:] ** 2, axis=1)
    log_scale = np.clip(np.log(np.sqrt(np.maximum(mean_sq, 1e-12))), 1e-4, 0.5)
    return (log_scale + math.log(coarse_factor)).astype(np.float32)
