"""Region-wise fitting of large slices, with bounded memory.

A slice larger than the region size is cut into cores on a grid; each core is fitted as its own
model over a box that adds a margin on every side, so that the Gaussians near a core's border are
trained on the image beyond it. Decoding renders each model over its box and keeps only its core:
every pixel belongs to exactly one core, at every pyramid level. Cores are cut, not blended, so a
short fit can leave a visible step along their borders (measured in docs/benchmarks.md, "volume").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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

    def core_in_box(self, level: int = 0) -> tuple[int, int, int, int]:
        """The core in the box's own pixels at pyramid ``level`` (margins: multiples of 2^level)."""
        from ..core.image import level_shape

        factor = 2**level
        height, width = level_shape(*self.box_shape, level)
        top = (self.core[0] - self.box[0]) // factor
        left = (self.core[2] - self.box[2]) // factor
        bottom = height - (self.box[1] - self.core[1]) // factor
        right = width - (self.box[3] - self.core[3]) // factor
        return top, bottom, left, right

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
