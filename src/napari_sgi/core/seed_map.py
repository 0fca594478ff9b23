"""Content-adaptive seed layouts: a small coded map of seed density, regenerated exactly.

A uniform jittered grid spends as many seeds on a dark fluorescence background or on flat stroma
as on the structure, and the offsets (most of a file) then pay to move Gaussians to where the
detail is. A seed map instead shares the seeds out over square cells of the image in proportion
to a density level per cell, chosen by the encoder from the image's local detail. Decoder and
encoder regenerate the same positions from the map, the seed count and the RNG seed: positions
still cost no bits, the map a few dozen bytes.

The map is a string ``"c<CELL>:<base64>"``: the cell side in pixels (a power of two), then one
4-bit level per cell (row-major, two cells a byte, high nibble first). A cell's weight is
``2^(level / 2)`` times its area; the seed counts follow by integer largest remainders, so that
every platform derives the same counts.
"""

from __future__ import annotations

import base64
import math
import re

import numpy as np

LEVELS = 16  # 4 bits a cell: weights from 1 to 2^7.5 (x181)
# Integer weights 2^(level/2) (x64, rounded): the counts are derived in exact integer arithmetic.
LEVEL_WEIGHTS = tuple(round(64 * 2 ** (level / 2)) for level in range(LEVELS))
MIN_CELL, MAX_CELL = 8, 4096
MAX_CELLS = 1 << 20
SEEDS_PER_CELL = 2  # the encoder's cells hold at least this many seeds on average
# Detail levels: cells with little detail still get seeds (a flat area needs a few large
# Gaussians); the floor adds this fraction of the mean detail energy to every cell.
DETAIL_FLOOR = 0.1
DETAIL_POWER = 0.5  # seeds ∝ (detail energy)^0.5, i.e. ∝ the local RMS of the fine detail
# Fewer seeds than this are not shared out: a few cells would get none and leave holes that no
# Gaussian covers (a 96x96 image with 6 seeds lost 6 dB); the uniform grid covers best.
MIN_MAP_SEEDS = 64
_MAP = re.compile(r"c(\d{1,4}):([A-Za-z0-9+/]*={0,2})")


def cell_grid(height: int, width: int, cell: int) -> tuple[int, int]:
    """Rows and columns of ``cell``-pixel cells that cover an image (the last ones cut).

    Examples
    --------
    >>> cell_grid(100, 64, 32)
    (4, 2)
    """
    return -(-height // cell), -(-width // cell)


def parse_seed_map(text: str, height: int, width: int, count: int) -> tuple[int, np.ndarray]:
    """The cell side and the ``[rows, cols]`` levels of the map of ``count`` seeds; ValueError
    when it is malformed.

    A map has at most about one cell per seed (the encoder's cells hold two or more on average,
    plus the cut cells along two edges), so that the work it makes a reader do, a few operations a
    cell, stays in proportion to the seeds: a 700 KB map of a million cells for a thousand seeds
    would cost a second.

    Examples
    --------
    >>> text = format_seed_map(32, np.array([[0, 15], [3, 7]]))
    >>> cell, levels = parse_seed_map(text, 64, 64, count=10)
    >>> cell, levels.tolist()
    (32, [[0, 15], [3, 7]])
    """
    match = _MAP.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"a seed map is 'c<cell>:<base64>', got {text[:40]!r}")
    cell = int(match.group(1))
    if not (MIN_CELL <= cell <= MAX_CELL and cell & (cell - 1) == 0):
        raise ValueError(f"the seed map's cell must be a power of two in 8..4096, got {cell}")
    rows, cols = cell_grid(height, width, cell)
    if rows * cols > MAX_CELLS:
        raise ValueError(f"the seed map has {rows * cols} cells, at most {MAX_CELLS}")
    try:
        packed = np.frombuffer(base64.b64decode(match.group(2), validate=True), np.uint8)
    except ValueError:
        raise ValueError("the seed map is not valid base64") from None
    if len(packed) != -(-rows * cols // 2):
        raise ValueError(
            f"the seed map holds {len(packed)} bytes; {rows}x{cols} cells need "
            f"{-(-rows * cols // 2)}"
        )
    if rows * cols > count + rows + cols:
        raise ValueError(f"the seed map has {rows * cols} cells for {count} seeds: too many")
    levels = np.stack([packed >> 4, packed & 15], 1).ravel()[: rows * cols]
    return cell, levels.reshape(rows, cols).astype(np.int64)


def format_seed_map(cell: int, levels: np.ndarray) -> str:
    """The map string of ``[rows, cols]`` levels in 0..15 (inverse of :func:`parse_seed_map`)."""
    flat = np.asarray(levels, np.uint8).ravel()
    if len(flat) % 2:
        flat = np.append(flat, np.uint8(0))
    packed = (flat[0::2] << 4) | flat[1::2]
    return f"c{cell}:{base64.b64encode(packed.tobytes()).decode('ascii')}"


def cell_counts(height: int, width: int, count: int, cell: int, levels: np.ndarray) -> np.ndarray:
    """Seeds of each cell (``[rows * cols]``, row-major), summing to ``count``.

    Shares are ``count * weight * area / total``, floored, the rest given to the largest
    remainders (the first cell on ties), all in Python integers: exact on every platform.

    Examples
    --------
    >>> cell_counts(64, 64, 10, 32, np.array([[0, 0], [0, 2]])).tolist()
    [2, 2, 2, 4]
    """
    rows, cols = levels.shape
    heights = [min(cell, height - r * cell) for r in range(rows)]
    widths = [min(cell, width - c * cell) for c in range(cols)]
    weighted = [
        LEVEL_WEIGHTS[int(levels[r, c])] * heights[r] * widths[c]
        for r in range(rows)
        for c in range(cols)
    ]
    total = sum(weighted)
    counts = [count * w // total for w in weighted]
    remainders = [count * w % total for w in weighted]
    order = sorted(range(len(weighted)), key=lambda i: (-remainders[i], i))
    for i in order[: count - sum(counts)]:
        counts[i] += 1
    return np.array(counts, np.int64)


def map_positions(
    height: int, width: int, count: int, rng_seed: int, seed_map: str
) -> np.ndarray:  # [N, 2] float32 (x, y)
    """Seed positions of a map: in each cell, its seeds on a jittered grid of that cell.

    A cell of n seeds has a G x G jittered grid (G = ceil(sqrt(n))) of candidates; the n with the
    smallest random keys are kept. Seeds come cell by cell (row-major), and within a cell in the
    grid's row-major order. Two draws of one PCG64 stream, in this order, make every number: the
    jitter of all candidates (cell by cell), then their keys; all in numpy, with no loop over
    cells (a 4096x4096 slice has thousands).

    Examples
    --------
    >>> text = format_seed_map(32, np.array([[15, 9]]))  # weights 2^7.5 and 2^4.5
    >>> positions = map_positions(32, 64, 20, 0, text)
    >>> positions.shape, int((positions[:, 0] < 32).sum())
    ((20, 2), 18)
    """
    cell, levels = parse_seed_map(seed_map, height, width, count)
    counts = cell_counts(height, width, count, cell, levels)
    sides = np.ceil(np.sqrt(counts)).astype(np.int64)
    sides[counts == 0] = 0
    candidates = sides * sides
    owner = np.repeat(np.arange(len(counts)), candidates)  # the cell of every candidate
    first = np.cumsum(candidates) - candidates
    index = np.arange(len(owner)) - first[owner]  # row-major index in its cell's grid
    rng = np.random.Generator(np.random.PCG64(rng_seed))
    jitter = rng.random((len(owner), 2))
    keys = rng.random(len(owner))
    # Within each cell, the candidates by key; keep the first `count` of each.
    by_key = np.lexsort((keys, owner))
    rank = np.empty(len(owner), np.int64)
    rank[by_key] = np.arange(len(owner)) - first[owner[by_key]]
    kept = np.flatnonzero(rank < counts[owner])  # ascending: cell by cell, row-major within
    cell_row, cell_col = np.divmod(owner[kept], levels.shape[1])
    side = sides[owner[kept]]
    grid_row, grid_col = np.divmod(index[kept], side)
    y0, x0 = cell_row * cell, cell_col * cell
    cell_h = np.minimum(cell, height - y0)
    cell_w = np.minimum(cell, width - x0)
    x = x0 + (grid_col + jitter[kept, 0]) * (cell_w / side)
    y = y0 + (grid_row + jitter[kept, 1]) * (cell_h / side)
    return np.stack([x, y], axis=1).astype(np.float32)


def seed_map_for_image(
    image: np.ndarray,  # [C, H, W] float in [0, 1]
    count: int,
    pixel_weights: np.ndarray | None = None,  # [H, W] >= 0: how much each pixel's error counts
) -> str:
    """The encoder's map for an image: seeds where the fine detail is; ``""`` (a uniform layout)
    below :data:`MIN_MAP_SEEDS` seeds.

    Detail is the energy of the image minus its Gaussian blur at half the uniform seed spacing
    (what a uniform layout of ``count`` seeds leaves least resolved), per cell, plus a floor;
    levels are ``2 log2`` of its power :data:`DETAIL_POWER`, the densest cell at level 15.
    Cells hold about :data:`SEEDS_PER_CELL` seeds on average (sides of 16 pixels or more), so
    that the map costs little against the seeds it places. With ``pixel_weights`` (the fit's:
    a region's blend) a cell's detail and floor count with its mean weight, so that a margin
    no blend shows gets next to no seeds.

    Examples
    --------
    >>> image = np.zeros((1, 64, 64))
    >>> image[0, :32, :32] = np.random.default_rng(0).random((32, 32))
    >>> text = seed_map_for_image(image, 100)
    >>> cell, levels = parse_seed_map(text, 64, 64, count=100)
    >>> cell, int(levels[0, 0]) > int(levels[3, 3])
    (16, True)
    """
    if count < MIN_MAP_SEEDS:
        return ""
    channels, height, width = image.shape
    spacing = math.sqrt(height * width / max(count, 1))
    cell = map_cell(spacing)
    energy, _ = cell_detail(np.asarray(image, np.float64).mean(0), spacing, cell)
    weight = detail_weight(energy, DETAIL_FLOOR * energy.mean())
    if pixel_weights is not None:
        weight = weight * cell_means(np.asarray(pixel_weights, np.float64), cell) ** DETAIL_POWER
    # A cell of weight 0 (a margin no blend shows) takes the lowest level, as the clip gives it.
    relative = np.maximum(weight / weight.max(), 2.0**-LEVELS)
    levels = np.round(2 * np.log2(relative)) + LEVELS - 1
    return format_seed_map(cell, np.clip(levels, 0, LEVELS - 1).astype(np.int64))


def map_cell(spacing: float) -> int:
    """The side of the encoder's cells for seeds ``spacing`` pixels apart: a power of two (at
    least 16) that holds about :data:`SEEDS_PER_CELL` seeds.

    Examples
    --------
    >>> map_cell(24.0), map_cell(3.0)
    (64, 16)
    """
    return min(1 << max(4, math.ceil(math.log2(spacing * math.sqrt(SEEDS_PER_CELL)))), MAX_CELL)


def cell_detail(
    gray: np.ndarray,  # [H, W]
    spacing: float,
    cell: int,
    window: tuple[int, int, int, int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean energy of the fine detail in each ``cell``-pixel cell, and the cells' pixel counts.

    The detail is what a uniform layout of seeds ``spacing`` pixels apart leaves least resolved:
    the image minus its Gaussian blur at half that spacing. ``window`` ``(y0, y1, x0, x1)``: only
    the cells of that part of ``gray`` (the rest is the blur's context); default: all of it.

    Examples
    --------
    >>> gray = np.zeros((32, 48))
    >>> gray[:16, :16] = np.random.default_rng(0).random((16, 16))
    >>> energy, area = cell_detail(gray, 4.0, 16)
    >>> energy.shape, area.tolist(), bool(energy[0, 0] > 10 * energy[1, 2])
    ((2, 3), [[256, 256, 256], [256, 256, 256]], True)
    """
    from scipy.ndimage import gaussian_filter

    detail = gray - gaussian_filter(gray, spacing / 2, mode="nearest")
    if window is not None:
        y0, y1, x0, x1 = window
        detail = detail[y0:y1, x0:x1]
    sums, area = _cell_sums(detail**2, cell)
    return sums / area, area.astype(np.int64)


def cell_means(values: np.ndarray, cell: int) -> np.ndarray:  # [H, W] -> [rows, cols]
    """Mean of ``values`` over each ``cell``-pixel cell (the last row and column may be short).

    Examples
    --------
    >>> cell_means(np.arange(6.0).reshape(2, 3), 2).tolist()
    [[2.0, 3.5]]
    """
    sums, area = _cell_sums(values, cell)
    return sums / area


def _cell_sums(values: np.ndarray, cell: int) -> tuple[np.ndarray, np.ndarray]:
    """Sum of ``values`` [H, W] over each ``cell``-pixel cell, and the pixels each cell holds."""
    height, width = values.shape
    rows, cols = cell_grid(height, width, cell)
    padded = np.zeros((rows * cell, cols * cell))
    padded[:height, :width] = values
    inside = np.zeros_like(padded)
    inside[:height, :width] = 1
    return tuple(a.reshape(rows, cell, cols, cell).sum((1, 3)) for a in (padded, inside))


def detail_weight(energy: np.ndarray, floor: float) -> np.ndarray:
    """Seeds a pixel of each cell deserves (relative): ``(energy + floor) ^`` :data:`DETAIL_POWER`.

    Cells with little detail still get seeds (a flat area needs a few large Gaussians): the floor
    is a fraction (:data:`DETAIL_FLOOR`) of the mean detail energy.

    Examples
    --------
    >>> detail_weight(np.array([0.0, 0.9, 3.9]), floor=0.1).round(3).tolist()
    [0.316, 1.0, 2.0]
    """
    return (energy + floor + 1e-12) ** DETAIL_POWER
