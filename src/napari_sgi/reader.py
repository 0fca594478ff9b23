"""Open a `.sgi` file as a lazy multiscale image: level k at 1/2^k, each a dask array whose chunks
are rendered on demand, straight from the Gaussians at that scale (no full-resolution render is
down-sampled), with a small cache of decoded models and rendered chunks.

A chunk of a slice fitted region by region blends the regions whose weights reach into it
(:func:`napari_sgi.core.regions.blend`); the regions it needs that are not cached yet are decoded
and rendered side by side on a few threads (the coarsest level needs every region of a slice).

A file is checked before anything is allocated for it: the whole header when it is opened
(:class:`~napari_sgi.file.schema.ImageHeader`, the models' sizes within
:mod:`napari_sgi.file.budget`), every region's section lengths against its model, then, per
region, the streams' symbol counts before its model is built, the tiles its Gaussians cover at
each level before it is rendered, and the render itself (finite). Whatever is wrong with a file
is an :class:`~napari_sgi.errors.SGIFormatError` (a ``ValueError``), never another exception.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from napari_sgi.core.image import ValueRange
from napari_sgi.core.regions import Region, blend, regions_in, render_box
from napari_sgi.errors import SGIFormatError
from napari_sgi.file.budget import check_section_sizes
from napari_sgi.file.container import SGIReader
from napari_sgi.file.header import MODEL_SECTIONS, model_config_from_header
from napari_sgi.file.schema import ImageHeader, SliceEntry, section_name

CHUNK = 512
MIN_LEVEL_SIDE = 256
DECODE_THREADS = min(4, os.cpu_count() or 1)
CACHE_BYTES = 1 << 29  # decoded models, and region renders, each keep at most this much
# The rasterizer lists, per 16x16 tile, the Gaussians that reach it (16 bytes each) and evaluates
# them there: at most this many entries per Gaussian (the encoder's models: 1 to 13 at level 0,
# fewer below), and this many in all, at any level.
TILES_PER_GAUSSIAN = 64
MAX_TILE_ENTRIES = 1 << 25


@contextlib.contextmanager
def _format_errors(what: str) -> Iterator[None]:
    """Any failure inside is the file's: an :class:`SGIFormatError` that says ``what`` failed.

    ``ValueError`` is how the decoders refuse a stream; anything else (a RuntimeError from torch,
    a MemoryError) would be a check missing before it, and is chained for whoever hunts those.
    """
    try:
        yield
    except SGIFormatError:
        raise
    except ValueError as error:
        raise SGIFormatError(f"{what}: {error}") from None
    except (OSError, KeyboardInterrupt):
        raise
    except Exception as error:  # noqa: BLE001 - a bad file must never escape as another type
        raise SGIFormatError(f"{what}: {type(error).__name__}: {error}") from error


def level_count(height: int, width: int) -> int:
    """Levels until the larger side is at most 256 pixels.

    Examples
    --------
    >>> level_count(512, 512), level_count(4096, 3000), level_count(100, 80)
    (2, 5, 1)
    """
    return 1 + max(0, math.ceil(math.log2(max(height, width) / MIN_LEVEL_SIDE)))


class SGIFile:
    """A `.sgi` file: its header, and slices decoded and rendered on demand.

    ``header`` is the file's JSON header as written; ``image`` the same, parsed and checked
    (:class:`~napari_sgi.file.schema.ImageHeader`), and ``slices`` its slice entries.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from napari_sgi.encode.pipeline import compress
    >>> out = os.path.join(tempfile.mkdtemp(), "a.sgi")
    >>> _ = compress(np.zeros((20, 20), np.uint8), out, preset="fast", iterations=2)
    >>> SGIFile(out).render_slice(0).shape
    (20, 20)
    """

    def __init__(self, path: str | Path, *, cache_models: int = 32, cache_chunks: int = 64):
        self.path = Path(path)
        self._reader = SGIReader(self.path)
        try:
            self.image = ImageHeader.from_dict(self._reader.header)
            self._check_sections()
        except SGIFormatError as error:
            self._reader.close()
            raise SGIFormatError(f"{self.path.name}: {error}") from None
        self.header = self._reader.header
        self.layout = self.image.layout
        self.slices: list[SliceEntry] = self.image.slices
        low, high = self.image.value_range
        self.value_range = ValueRange(float(low), float(high), self.layout["dtype"])
        self.axes: str = self.image.axes
        self.shape = self.image.shape
        self.lead_shape = self.image.stack_shape
        self.slice_shape = self.image.slice_shape
        self._lock = threading.RLock()
        self._models: OrderedDict = OrderedDict()
        self._renders: OrderedDict = OrderedDict()
        self._chunks: OrderedDict = OrderedDict()
        self._in_flight: dict = {}
        self._sizes: dict = {}  # bytes of each cached model and render
        self._cache_models, self._cache_chunks = cache_models, cache_chunks

    def _check_sections(self) -> None:
        """Every region's five sections exist, with the lengths its model implies (index only)."""
        sizes = self._reader.section_sizes
        for index, entry in enumerate(self.image.slices):
            for number, region in enumerate(entry.regions):
                names = {part: section_name(index, number, part) for part in MODEL_SECTIONS}
                missing = [name for name in names.values() if name not in sizes]
                if missing:
                    raise SGIFormatError(f"the file has no section {missing[0]!r}")
                check_section_sizes(
                    region.model,
                    {part: sizes[name] for part, name in names.items()},
                    f"slice {index} region {number}",
                )

    @property
    def rgb(self) -> bool:
        return self.image.rgb

    @property
    def n_slices(self) -> int:
        return len(self.slices)

    def regions(self, index: int) -> list[Region]:
        """Where slice ``index``'s regions lie (their cores tile the slice)."""
        return [Region(entry.core, entry.box) for entry in self.slices[index].regions]

    def blend_width(self, index: int) -> int:
        """Width of the ramps that blend slice ``index``'s regions (0: a hard cut)."""
        return self.slices[index].blend

    def _cached(self, cache: OrderedDict, key, compute: Callable, limit: int, size=None):
        """``cache[key]``, computed once even when several threads ask for it at the same time.

        The cache keeps at most ``limit`` values and, with ``size`` (bytes of a value), at most
        ``CACHE_BYTES`` of them (the newest value always).
        """
        while True:
            with self._lock:
                if key in cache:
                    cache.move_to_end(key)
                    return cache[key]
                waiting = self._in_flight.get(key)
                if waiting is None:
                    done = self._in_flight[key] = threading.Event()
            if waiting is None:
                break
            waiting.wait()  # then look again: the other thread's value, or its failure
        try:
            value = compute()
            with self._lock:
                cache[key] = value
                if size is not None:
                    self._sizes[key] = size(value)
                while len(cache) > limit or (
                    size is not None
                    and len(cache) > 1
                    and sum(self._sizes.get(k, 0) for k in cache) > CACHE_BYTES
                ):
                    self._sizes.pop(cache.popitem(last=False)[0], None)
            return value
        finally:
            with self._lock:
                del self._in_flight[key]
            done.set()

    def model(self, index: int, region: int = 0):
        """The decoded model of region ``region`` of slice ``index`` (cached)."""
        return self._cached(
            self._models,
            ("model", index, region),
            lambda: self._decode(index, region),
            self._cache_models,
            _model_bytes,
        )

    def _decode(self, index: int, region: int):
        from napari_sgi.codec.model import decode_model

        config = model_config_from_header(self.slices[index].regions[region].model)
        sections = {
            part: self._reader.read_section(section_name(index, region, part))
            for part in MODEL_SECTIONS
        }
        with _format_errors(f"slice {index} region {region} does not decode"):
            model = decode_model(config, sections)
            _check_tile_entries(model)
        return model

    def _region_render(self, index: int, region: int, level: int) -> np.ndarray:
        """``[h, w, C]`` float render of one region's whole box at ``level`` (cached)."""
        return self._cached(
            self._renders,
            ("render", index, region, level),
            lambda: self._render(index, region, level),
            self._cache_models,
            lambda pixels: pixels.nbytes,
        )

    def _render(self, index: int, region: int, level: int) -> np.ndarray:
        model = self.model(index, region)
        with _format_errors(f"slice {index} region {region} does not render"):
            pixels = render_box(model, level)
        if not np.isfinite(pixels).all():
            raise SGIFormatError(f"slice {index} region {region} renders NaN or infinite values")
        return pixels

    def _render_all(self, index: int, numbers: list[int], level: int) -> None:
        """Render the regions ``numbers`` that are not cached yet, several at a time.

        Decoding is mostly numpy and torch work that releases the GIL (torchac's coder does not),
        so a few threads cut the time to the first view of a level that needs many regions. While
        they run, torch (and the rasterizer, which follows torch's count) runs on one thread in
        each: the threads already fill the cores, and a thread team in each would oversubscribe
        them.
        """
        with self._lock:
            missing = [n for n in numbers if ("render", index, n, level) not in self._renders]
        if len(missing) < 2 or DECODE_THREADS < 2:
            return
        import torch

        with ThreadPoolExecutor(
            min(DECODE_THREADS, len(missing)), initializer=torch.set_num_threads, initargs=(1,)
        ) as pool:
            list(pool.map(lambda n: self._region_render(index, n, level), missing))
        # torch's count is per thread, but setting it also sets the count that threads started
        # later begin with: give those this thread's count back, not the decode threads' 1.
        torch.set_num_threads(torch.get_num_threads())

    def render_region(
        self, index: int, level: int, y0: int, y1: int, x0: int, x1: int
    ) -> np.ndarray:
        """Pixels ``[y0:y1, x0:x1]`` of slice ``index`` at ``level``, in the file's dtype.

        The regions are rendered over their boxes and blended exactly as the encoder blended them
        when it measured the quality.
        """
        return self._cached(
            self._chunks,
            ("chunk", index, level, y0, y1, x0, x1),
            lambda: self._blend(index, level, (y0, y1, x0, x1)),
            self._cache_chunks,
        )

    def _blend(self, index: int, level: int, window: tuple[int, int, int, int]) -> np.ndarray:
        regions, width = self.regions(index), self.blend_width(index)
        shape = self.slice_shape[:2]
        self._render_all(index, regions_in(regions, level, window, shape, width), level)
        with _format_errors(f"slice {index} does not blend"):
            out = blend(
                regions,
                lambda number: self._region_render(index, number, level),
                level,
                window,
                shape,
                width,
            )
            if self.value_range.high <= self.value_range.low:
                out = np.zeros_like(out)  # a constant image: every pixel is the value range's low
            return self.value_range.denormalize(out if self.rgb else out[:, :, 0])

    def level_shape(self, level: int) -> tuple[int, int]:
        from napari_sgi.core.image import level_shape

        return level_shape(self.slice_shape[0], self.slice_shape[1], level)

    def render_slice(self, index: int, level: int = 0) -> np.ndarray:
        height, width = self.level_shape(level)
        return self.render_region(index, level, 0, height, 0, width)

    def levels(self, n_levels: int | None = None) -> list:
        """Dask arrays, largest first, each shaped like the data (stack axes, Y, X[, S])."""
        import dask.array as da

        n_levels = n_levels or level_count(*self.slice_shape[:2])
        dtype = np.dtype(self.layout["dtype"])
        arrays = []
        for level in range(n_levels):
            height, width = self.level_shape(level)
            shape = (*self.lead_shape, height, width, *self.slice_shape[2:])
            chunks = (1,) * len(self.lead_shape) + (CHUNK, CHUNK) + tuple(self.slice_shape[2:])
            source = _LevelSource(self, level, shape, dtype)
            arrays.append(
                da.from_array(
                    source,
                    chunks=chunks,
                    asarray=False,
                    fancy=False,
                    lock=False,
                    name=f"sgi-{self.path.name}-{id(self)}-{level}",
                    meta=np.empty((0,) * len(shape), dtype),
                )
            )
        return arrays

    def close(self) -> None:
        self._reader.close()


def _model_bytes(model) -> int:
    """Memory a decoded model keeps: its parameters and buffers."""
    tensors = [*model.parameters(), *model.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


def _check_tile_entries(model) -> None:
    """Refuse a model whose Gaussians would list too many (Gaussian, tile) pairs at some level.

    The rasterizer allocates 16 bytes per pair and evaluates the pixels of each: a few huge
    Gaussians cost a tiny file nothing (the context model predicts their size) and the reader
    gigabytes. The pairs are counted with the rasterizer's own bounds at every level down to one
    tile (below it, a Gaussian has one tile at most), the MLPs evaluated once. Raises a
    ``ValueError`` (the caller names the region).
    """
    import torch

    from napari_sgi.core.image import level_factors, level_shape
    from napari_sgi.core.raster_rules import TILE, gaussian_pixel_bounds

    with torch.no_grad():
        means, conics, _ = model.gaussians()
    height, width = model.config.height, model.config.width
    budget = min(TILES_PER_GAUSSIAN * max(len(means), 1024), MAX_TILE_ENTRIES)
    level = 0
    while True:
        rows, cols = level_shape(height, width, level)
        mean_factors, conic_factors = level_factors(height, width, level)
        scale = torch.tensor(mean_factors, dtype=means.dtype)
        conic_scale = torch.tensor(conic_factors, dtype=means.dtype)
        box = gaussian_pixel_bounds(means * scale, conics * conic_scale, rows, cols).long()
        tiles = ((box[:, 2] - box[:, 0] + TILE - 1) // TILE) * (
            (box[:, 3] - box[:, 1] + TILE - 1) // TILE
        )
        entries = int(tiles.sum())
        if entries > budget:  # a ValueError: the caller names the region
            raise ValueError(
                f"its {len(means)} Gaussians cover {entries} tiles at level {level}, more than "
                f"{budget} ({TILES_PER_GAUSSIAN} per Gaussian, {MAX_TILE_ENTRIES} in all)"
            )
        if rows <= TILE and cols <= TILE:
            return
        level += 1


@dataclass
class _LevelSource:
    """Array-like that dask slices chunk by chunk; each chunk is rendered from Gaussians."""

    file: SGIFile
    level: int
    shape: tuple[int, ...]
    dtype: np.dtype
    ndim: int = field(init=False)

    def __post_init__(self) -> None:
        self.ndim = len(self.shape)

    def __getitem__(self, key: tuple) -> np.ndarray:
        n_lead = len(self.file.lead_shape)
        key = tuple(key) + (slice(None),) * (self.ndim - len(key))
        lead = [
            range(*k.indices(n)) for k, n in zip(key[:n_lead], self.shape[:n_lead], strict=True)
        ]
        ys = range(*key[n_lead].indices(self.shape[n_lead]))
        xs = range(*key[n_lead + 1].indices(self.shape[n_lead + 1]))
        if ys.step != 1 or xs.step != 1:
            raise IndexError("strided reads are not supported")
        out = np.empty(
            (*[len(r) for r in lead], len(ys), len(xs), *self.shape[n_lead + 2 :]), self.dtype
        )
        for position in np.ndindex(*[len(r) for r in lead]):
            index_tuple = tuple(r[p] for r, p in zip(lead, position, strict=True))
            index = int(np.ravel_multi_index(index_tuple, self.file.lead_shape)) if n_lead else 0
            out[position] = self.file.render_region(
                index, self.level, ys.start, ys.stop, xs.start, xs.stop
            )
        return out[(Ellipsis, *key[n_lead + 2 :])] if self.ndim > n_lead + 2 else out


@dataclass
class SGIImage:
    """What napari (or a script) needs to show a `.sgi` file."""

    levels: list
    axes: str
    scale: tuple | None
    units: tuple | None
    rgb: bool
    contrast_limits: tuple[float, float]
    name: str
    metadata: dict
    slice_psnr: list[float]
    file: SGIFile

    @property
    def data(self):
        """The full-resolution level (lazy)."""
        return self.levels[0]


def open_sgi(path: str | Path, *, n_levels: int | None = None) -> SGIImage:
    """Open a `.sgi` file lazily: nothing is rendered until a chunk is read.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from napari_sgi.encode.pipeline import compress
    >>> out = os.path.join(tempfile.mkdtemp(), "b.sgi")
    >>> _ = compress(np.zeros((3, 20, 20), np.uint16), out, preset="fast", iterations=2)
    >>> image = open_sgi(out)
    >>> image.axes, image.levels[0].shape
    ('ZYX', (3, 20, 20))
    """
    file = SGIFile(path)
    layout = file.layout
    scale = layout.get("scale")
    has_scale = scale is not None and any(s is not None for s in scale)
    return SGIImage(
        levels=file.levels(n_levels),
        axes=file.axes,
        scale=tuple(1.0 if s is None else s for s in scale) if has_scale else None,
        units=tuple(layout.get("units") or ()) or None,
        rgb=file.rgb,
        contrast_limits=tuple(file.image.contrast_limits),
        name=Path(path).stem,
        metadata=file.header,
        slice_psnr=[entry.psnr for entry in file.slices],
        file=file,
    )
