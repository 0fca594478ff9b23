"""One slice of a ``.sgi`` file against the classic codecs at the same size: results as dataclasses.

The byte budget of a slice is its share of the file (:func:`slice_budgets`): its own sections plus
an equal part of what the slices share (preamble, header and index), so that the budgets of all
slices add up to the file's size. Each codec gets the largest encoding not above that budget
(:func:`napari_sgi.compare.same_size.encode_at_most`); its decoded pixels, mapped back to the
original's units (:mod:`napari_sgi.compare.mapping`), are measured against the original exactly
like the SGI slice (:func:`napari_sgi.compare.metrics.quality`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from napari_sgi.compare.codecs import Codec
from napari_sgi.compare.mapping import mapping_for
from napari_sgi.compare.metrics import quality
from napari_sgi.compare.same_size import encode_at_most
from napari_sgi.core.image import ValueRange
from napari_sgi.errors import ComparisonCancelled

SGI = "SGI"


@dataclass(frozen=True)
class CodecResult:
    """Size and quality of one slice coded by one codec (or by SGI: ``key`` ``"sgi"``)."""

    key: str  #: sgi, jpeg, j2k, jxl, avif
    codec: str  #: SGI, JPEG, JPEG 2000, JPEG XL, AVIF
    bytes: int
    bpp: float  #: 8 * bytes / (height * width), whatever the channels
    psnr: float
    ssim: float
    setting: str = ""  #: the codec's setting that gave this size ("" for SGI)
    fits: bool = True  #: False: even the codec's smallest file is above the budget

    def to_dict(self) -> dict:
        out = asdict(self)
        out["psnr"] = _finite(self.psnr)
        out["ssim"] = _finite(self.ssim)
        return out


@dataclass
class SliceComparison:
    """One slice: its budget, each codec's result (SGI first) and decoded pixels, and how the
    data was given to each codec."""

    index: int
    budget: int
    shape: tuple[int, ...]
    results: dict[str, CodecResult] = field(default_factory=dict)  #: by codec name
    decoded: dict[str, np.ndarray] = field(default_factory=dict)  #: classic codecs, by name
    mappings: dict[str, str] = field(default_factory=dict)  #: classic codecs, by name

    def best(self, metric: str = "psnr") -> str | None:
        """The codec with the highest ``metric`` among those within the budget."""
        rows = [r for r in self.results.values() if r.fits and math.isfinite(getattr(r, metric))]
        rows += [r for r in self.results.values() if getattr(r, metric) == math.inf]
        return max(rows, key=lambda r: getattr(r, metric)).codec if rows else None

    def to_dict(self) -> dict:
        return {
            "slice": self.index,
            "budget_bytes": self.budget,
            "codecs": {r.key: r.to_dict() for r in self.results.values()},
            "mapping": dict(self.mappings),
        }


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def bits_per_pixel(nbytes: int, shape: Sequence[int]) -> float:
    return 8.0 * nbytes / (int(shape[0]) * int(shape[1]))


def sgi_result(
    decoded: np.ndarray, original: np.ndarray, nbytes: int, value_range: ValueRange | None = None
) -> CodecResult:
    """The SGI row: the decoded slice measured like the classic codecs' (same function)."""
    p, s = quality(np.asarray(decoded), np.asarray(original), value_range)
    return CodecResult("sgi", SGI, int(nbytes), bits_per_pixel(nbytes, original.shape), p, s)


def code_at_budget(
    codec: Codec,
    original: np.ndarray,
    budget: int,
    value_range: ValueRange | None = None,
    cancel: Callable[[], bool] | None = None,
) -> tuple[CodecResult, np.ndarray, str]:
    """``codec`` at the largest size <= ``budget``: its result, decoded pixels and mapping."""
    mapping = mapping_for(original, codec.bits)
    arrays = mapping.to_codec(original)
    encoded = encode_at_most(codec, arrays, budget, cancel=cancel)
    decoded = mapping.from_codec(codec.decode(list(encoded.streams), [a.shape for a in arrays]))
    p, s = quality(decoded, original, value_range)
    result = CodecResult(
        codec.key,
        codec.name,
        encoded.nbytes,
        bits_per_pixel(encoded.nbytes, original.shape),
        p,
        s,
        codec.label(encoded.value),
        encoded.fits,
    )
    return result, decoded, mapping.describe(codec.name)


def compare_slice(
    original: np.ndarray,
    budget: int,
    codecs: Sequence[Codec],
    *,
    sgi_decoded: np.ndarray | None = None,
    index: int = 0,
    value_range: ValueRange | None = None,
    cancel: Callable[[], bool] | None = None,
    progress: Callable[[str], None] | None = None,
) -> SliceComparison:
    """SGI's slice (when ``sgi_decoded`` is given) and each codec at ``budget`` bytes.

    ``value_range`` normalises every PSNR and SSIM (default: the original slice's own range; a
    stack's comparison passes the file's range, as its SGI figures use). ``progress`` is called
    with each codec's name before it starts; ``cancel`` is checked before every encoding.
    """
    original = np.asarray(original)
    comparison = SliceComparison(index, int(budget), tuple(original.shape))
    if sgi_decoded is not None:
        comparison.results[SGI] = sgi_result(sgi_decoded, original, budget, value_range)
    for codec in codecs:
        if cancel is not None and cancel():
            raise ComparisonCancelled("cancelled")
        if progress is not None:
            progress(codec.name)
        result, decoded, mapping = code_at_budget(codec, original, budget, value_range, cancel)
        comparison.results[codec.name] = result
        comparison.decoded[codec.name] = decoded
        comparison.mappings[codec.name] = mapping
    return comparison


def rd_curve(
    codec: Codec,
    original: np.ndarray,
    value_range: ValueRange | None = None,
    cancel: Callable[[], bool] | None = None,
) -> list[CodecResult]:
    """``codec`` at each setting of its sweep (``codec.sweep``): points of its RD curve, by size."""
    mapping = mapping_for(original, codec.bits)
    arrays = mapping.to_codec(original)
    points = []
    for value in codec.sweep:
        if cancel is not None and cancel():
            raise ComparisonCancelled("cancelled")
        streams = codec.encode(arrays, value)
        nbytes = sum(len(s) for s in streams)
        decoded = mapping.from_codec(codec.decode(streams, [a.shape for a in arrays]))
        p, s = quality(decoded, original, value_range)
        bpp = bits_per_pixel(nbytes, original.shape)
        points.append(CodecResult(codec.key, codec.name, nbytes, bpp, p, s, codec.label(value)))
    return sorted(points, key=lambda r: r.bytes)


def slice_budgets(path: str | os.PathLike) -> list[int]:
    """Each slice's share of the ``.sgi`` file at ``path``, in bytes; they add up to its size.

    A slice's own sections (``slice/<i>/...``) plus an equal part of the rest (preamble, header
    and index, and any section that is no slice's).

    Examples
    --------
    >>> from pathlib import Path
    >>> data = Path(__file__).parents[3] / "tests" / "data" / "fixture_v4.sgi"
    >>> budgets = slice_budgets(data)
    >>> len(budgets), sum(budgets) == data.stat().st_size
    (2, True)
    """
    from napari_sgi.file.container import SGIReader

    with SGIReader(path) as reader:
        n_slices = int(reader.header.get("n_slices") or 1)
        sizes = reader.section_sizes
        own = [0] * n_slices
        shared = reader.file_size - sum(sizes.values())
        for name, size in sizes.items():
            parts = name.split("/")
            if len(parts) > 2 and parts[0] == "slice" and parts[1].isdigit():
                if int(parts[1]) < n_slices:
                    own[int(parts[1])] += size
                    continue
            shared += size
    share, extra = divmod(shared, n_slices)
    return [o + share + (1 if i < extra else 0) for i, o in enumerate(own)]
