"""Binary hash grid: the spatial context features of the entropy model (sgi-method §7.1).

Twelve 2D grids from 18 to 514 nodes per side, four features per node; the table entries are
binarised to +-1 in every forward pass (straight-through gradient), so the whole grid costs about
one bit per entry in a file.
"""

from __future__ import annotations

import math

import torch
from torch import nn

RESOLUTIONS = (18, 24, 33, 44, 59, 80, 108, 148, 201, 275, 376, 514)
FEATURES_PER_LEVEL = 4
LOG2_TABLE_SIZE = 13
_HASH_PRIME = 2654435761


def level_table_sizes(resolutions=RESOLUTIONS, log2_table_size: int = LOG2_TABLE_SIZE) -> list[int]:
    """Entries per level: ``min(2^log2, R^2)`` rounded up to a multiple of 8.

    Examples
    --------
    >>> sum(level_table_sizes())
    62976
    """
    cap = 2**log2_table_size
    return [int(math.ceil(min(cap, r * r) / 8) * 8) for r in resolutions]


class BinarizeSTE(torch.autograd.Function):
    """+1 where the parameter is >= 0, else -1; the gradient passes where |parameter| <= 1."""

    @staticmethod
    def forward(ctx, params):
        ctx.save_for_backward(params)
        return torch.where(params >= 0, 1.0, -1.0).to(params.dtype)

    @staticmethod
    def backward(ctx, grad):
        (params,) = ctx.saved_tensors
        return grad * (params.abs() <= 1).to(grad.dtype)


class BinaryHashGrid(nn.Module):
    """Multi-resolution binary hash grid over [0, 1]^2.

    Parameters
    ----------
    resolutions
        Nodes per side of each level.
    features_per_level
        Features stored per node.
    log2_table_size
        Levels with more than ``2^log2_table_size`` nodes are hashed into a table of that size.
    """

    def __init__(
        self,
        resolutions=RESOLUTIONS,
        features_per_level: int = FEATURES_PER_LEVEL,
        log2_table_size: int = LOG2_TABLE_SIZE,
    ):
        super().__init__()
        self.resolutions = tuple(int(r) for r in resolutions)
        self.features_per_level = features_per_level
        self.sizes = level_table_sizes(self.resolutions, log2_table_size)
        self.offsets = [0, *torch.tensor(self.sizes).cumsum(0).tolist()[:-1]]
        self.table = nn.Parameter(
            torch.empty(sum(self.sizes), features_per_level).uniform_(-1e-4, 1e-4)
        )

    @property
    def output_dim(self) -> int:
        return len(self.resolutions) * self.features_per_level

    def binary_table(self) -> torch.Tensor:  # [T, features_per_level] of +-1
        return BinarizeSTE.apply(self.table)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        """Context features of points in [0, 1]^2.

        Parameters
        ----------
        coords
            ``[N, 2]`` normalised (x, y); points outside [0, 1]^2 get zero features.

        Returns
        -------
        ``[N, levels * features_per_level]``, level-major.
        """
        table = self.binary_table()
        inside = ((coords >= 0) & (coords <= 1)).all(-1, keepdim=True)
        outputs = []
        for resolution, size, offset in zip(
            self.resolutions, self.sizes, self.offsets, strict=True
        ):
            outputs.append(self._level(table, coords, resolution, size, offset))
        return torch.cat(outputs, -1) * inside

    def _level(self, table, coords, resolution, size, offset):
        pos = coords.detach() * (resolution - 2) + 0.5
        base = torch.floor(pos)
        frac = pos - base
        base = base.long()
        total = 0
        weight_sum = 0
        for cx in (0, 1):
            for cy in (0, 1):
                gx = torch.clamp(base[:, 0] + cx, max=resolution - 1)
                gy = torch.clamp(base[:, 1] + cy, max=resolution - 1)
                wx = frac[:, 0] if cx else 1 - frac[:, 0]
                wy = frac[:, 1] if cy else 1 - frac[:, 1]
                # Border nodes are left out and the remaining weights renormalised (reference rule).
                interior = (gx > 0) & (gx < resolution - 1) & (gy > 0) & (gy < resolution - 1)
                weight = (wx * wy * interior)[:, None]
                total = total + weight * table[offset + self._index(gx, gy, resolution, size)]
                weight_sum = weight_sum + weight
        weight_sum = torch.where(weight_sum == 0, torch.full_like(weight_sum, 1e-9), weight_sum)
        return total / weight_sum

    @staticmethod
    def _index(gx: torch.Tensor, gy: torch.Tensor, resolution: int, size: int) -> torch.Tensor:
        if resolution * resolution <= size:
            index = gx + gy * resolution
        else:
            index = (gx ^ (gy * _HASH_PRIME)) & 0xFFFFFFFF
        return index % size

    def bits(self) -> torch.Tensor:
        """Bits to code the binarised table with one Bernoulli probability (sgi-method Eq. 13)."""
        table = self.binary_table()
        n_ones = ((table + 1) / 2).sum()
        n_total = table.numel()
        p = torch.clamp(n_ones / n_total, 1e-6, 1 - 1e-6)
        return -n_ones * torch.log2(p) - (n_total - n_ones) * torch.log2(1 - p) + 32
