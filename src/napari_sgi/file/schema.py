"""The header of a napari-sgi image, in one schema that builds it (encoder) and parses it (reader).

The container (:mod:`.container`) stores any JSON header; a file napari-sgi writes holds this one
(``docs/format.md``, "A napari-sgi image"). :class:`ImageHeader` and its parts are plain
dataclasses: ``to_dict()`` gives the JSON object the encoder writes, key for key and in order, and
``ImageHeader.from_dict`` checks a file's header and refuses, with an
:class:`~napari_sgi.errors.SGIFormatError` naming the field, whatever a reader could not render
from: another kind of file, a layout without stack axes before ``Y``, ``X`` (and ``S``), a slice
list that does not match the shape, regions whose cores do not tile the slice, a missing or
absurd blend width, a value range that the dtype cannot hold, a model larger than
:mod:`.budget` allows. :func:`section_name` names the sections of each region's model.

Examples
--------
>>> model = {"height": 64, "width": 64, "channels": 1, "feature_dim": 4, "gaussians_per_seed": 4,
...          "seed_count": 40, "rng_seed": 0, "levels": 3, "grid_levels": 0, "grid_features": 4,
...          "grid_log2_table": 13}
>>> region = RegionEntry((0, 64, 0, 64), (0, 64, 0, 64), model)
>>> header = ImageHeader(
...     encoder_version="0.1.0",
...     layout={"axes": "YX", "shape": [64, 64], "dtype": "|u1"},
...     value_range=(0.0, 255.0),
...     contrast_limits=(0.0, 255.0),
...     fit={"iterations": 10},
...     slices=[SliceEntry.measured((), [region], 32, 35.123456, 0.91234567)],
...     quality=Quality.measured(35.123456, 0.91234567),
... )
>>> data = header.to_dict()
>>> " ".join(data)
'kind encoder_version layout value_range contrast_limits fit n_slices slices quality'
>>> data["slices"][0]["psnr"], data["quality"]
(35.1235, {'psnr': 35.1235, 'ssim': 0.912346})
>>> ImageHeader.from_dict(data) == header
True
>>> section_name(2, 0, "features")
'slice/2/r0/features'
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from napari_sgi.errors import SGIFormatError
from napari_sgi.file.header import (
    FILE_KIND,
    MODEL_SECTIONS,
    check_model_config,
    is_int,
    is_number,
    is_range,
    shown,
    validate_header,
)

__all__ = [
    "MAX_BLEND",
    "ImageHeader",
    "Quality",
    "RegionEntry",
    "SliceEntry",
    "section_name",
    "stored_figure",
]

MAX_BLEND = 1 << 16  # widest blend ramp a reader accepts, in full-resolution pixels
RGB_SAMPLES = (3, 4)  # what a YXS layout's last axis may hold (the encoder keeps RGB(A) only)
PSNR_DIGITS, SSIM_DIGITS = 4, 6  # what the header keeps of the measured quality


def section_name(slice_index: int, region: int, part: str) -> str:
    """The name of section ``part`` (one of ``MODEL_SECTIONS``) of a region's model.

    Examples
    --------
    >>> section_name(0, 3, "weights")
    'slice/0/r3/weights'
    """
    if part not in MODEL_SECTIONS:
        raise ValueError(f"unknown model section {part!r}: one of {', '.join(MODEL_SECTIONS)}")
    return f"slice/{int(slice_index)}/r{int(region)}/{part}"


def stored_figure(value: float, digits: int) -> float | None:
    """A measured figure as the header stores it: rounded, and null when not finite.

    JSON has no infinity (a lossless slice's PSNR); more digits than a PSNR to 1e-4 dB or an SSIM
    to 1e-6 are noise that costs a few incompressible bytes of every slice.

    Examples
    --------
    >>> stored_figure(41.123456, 4), stored_figure(float("inf"), 4)
    (41.1235, None)
    """
    return round(float(value), digits) if math.isfinite(value) else None


def _fail(where: str, message: str, value: Any = None) -> SGIFormatError:
    return SGIFormatError(f"invalid napari-sgi header: {where} {message} (got {shown(value)})")


def _pair(where: str, value: Any) -> tuple[Any, Any]:
    if not is_range(value) or not math.isfinite(value[1] - value[0]):
        raise _fail(where, "must be [low, high] with low <= high, a finite span", value)
    return value[0], value[1]


def _value_range(value: Any, dtype_name: str) -> tuple[Any, Any]:
    """``value_range``: a pair within what the dtype holds (a decoder maps [0, 1] onto it)."""
    low, high = _pair("value_range", value)
    dtype = np.dtype(dtype_name)
    if dtype.kind in "ui":
        if not (float(low).is_integer() and float(high).is_integer()):
            raise _fail("value_range", f"must be whole numbers for {dtype.name}", value)
        info = np.iinfo(dtype)  # compared exactly: 2**64 is a float, but no uint64
        inside = int(info.min) <= int(low) and int(high) <= int(info.max)
    else:
        inside = -float(np.finfo(dtype).max) <= low and high <= float(np.finfo(dtype).max)
    if not inside:
        raise _fail("value_range", f"must lie within the range of {dtype.name}", value)
    return low, high


def _figure(where: str, value: Any) -> float | None:
    if value is not None and not is_number(value):
        raise _fail(where, "must be a number or null", value)
    return value


def _rectangle(where: str, value: Any, height: int, width: int) -> tuple[int, int, int, int]:
    if not (isinstance(value, list) and len(value) == 4 and all(map(is_int, value))):
        raise _fail(where, "must be [y0, y1, x0, x1] in pixels", value)
    y0, y1, x0, x1 = value
    if not (0 <= y0 < y1 <= height and 0 <= x0 < x1 <= width):
        raise _fail(where, f"must lie in the {height}x{width} slice", value)
    return y0, y1, x0, x1


def _check_tiling(where: str, cores: list[tuple[int, int, int, int]], height: int, width: int):
    """The cores must be the cells of a grid over the whole slice (each once, in any order)."""
    rows = sorted({(c[0], c[1]) for c in cores})
    cols = sorted({(c[2], c[3]) for c in cores})
    ok = len(set(cores)) == len(cores) == len(rows) * len(cols)
    for bands, end in ((rows, height), (cols, width)):
        edges = [edge for band in bands for edge in band]
        ok = ok and edges[0] == 0 and edges[-1] == end and edges == sorted(edges)
        ok = ok and all(a[1] == b[0] for a, b in itertools.pairwise(bands))
    if not ok:
        raise _fail(where, f"cores do not tile the {height}x{width} slice as a grid", cores)


def _check_layout_counts(layout: Mapping[str, Any], slice_shape: tuple, count: int) -> None:
    """The layout's own ``slice_shape`` and ``n_slices``, where given, must agree with its shape."""
    for key, wanted in (("slice_shape", list(slice_shape)), ("n_slices", count)):
        if key in layout and layout[key] != wanted:
            raise _fail(f"layout.{key}", f"must be {wanted}, as the shape says", layout[key])


@dataclass
class RegionEntry:
    """One region of a slice: its ``core`` and ``box`` (``(y0, y1, x0, x1)`` in full-resolution
    pixels of the slice) and its model's configuration (``ModelConfig.to_dict()``)."""

    core: tuple[int, int, int, int]
    box: tuple[int, int, int, int]
    model: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {"core": list(self.core), "box": list(self.box), "model": dict(self.model)}

    @classmethod
    def from_dict(cls, data: Any, slice_shape: Sequence[int], where: str) -> RegionEntry:
        """Parse and check one region of a slice of ``slice_shape`` (``(H, W)`` or
        ``(H, W, S)``)."""
        if not isinstance(data, Mapping):
            raise _fail(where, "must be an object", data)
        height, width = slice_shape[0], slice_shape[1]
        channels = slice_shape[2] if len(slice_shape) == 3 else 1
        core = _rectangle(f"{where}.core", data.get("core"), height, width)
        box = _rectangle(f"{where}.box", data.get("box"), height, width)
        if not (box[0] <= core[0] < core[1] <= box[1] and box[2] <= core[2] < core[3] <= box[3]):
            raise _fail(f"{where}.box", f"must contain the core {list(core)}", list(box))
        model = data.get("model")
        try:
            check_model_config(model)
        except SGIFormatError as error:
            raise _fail(f"{where}.model", f"is invalid: {error}", model) from None
        size = (model["height"], model["width"], model.get("channels"))
        if size != (box[1] - box[0], box[3] - box[2], channels):
            raise _fail(f"{where}.model", "must be as large as the box, with the slice's channels")
        return cls(core, box, dict(model))


@dataclass
class SliceEntry:
    """One 2D slice: its ``key`` (index over the stack axes), regions, blend width and measured
    quality (``psnr`` null when lossless)."""

    key: tuple[int, ...]
    regions: list[RegionEntry]
    blend: int
    psnr: float | None
    ssim: float | None

    @classmethod
    def measured(
        cls,
        key: Sequence[int],
        regions: Sequence[RegionEntry],
        blend: int,
        psnr: float,
        ssim: float,
    ) -> SliceEntry:
        """The entry of a slice as measured by the encoder (PSNR in dB, possibly infinite)."""
        return cls(
            tuple(int(k) for k in key),
            list(regions),
            int(blend),
            stored_figure(psnr, PSNR_DIGITS),
            stored_figure(ssim, SSIM_DIGITS),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": list(self.key),
            "regions": [region.to_dict() for region in self.regions],
            "blend": self.blend,
            "psnr": self.psnr,
            "ssim": self.ssim,
        }

    @classmethod
    def from_dict(
        cls, data: Any, index: int, key: tuple[int, ...], slice_shape: Sequence[int]
    ) -> SliceEntry:
        """Parse and check slice ``index``, whose key must be ``key`` (C order of the stack)."""
        where = f"slices[{index}]"
        if not isinstance(data, Mapping):
            raise _fail(where, "must be an object", data)
        if data.get("key") != list(key):
            raise _fail(f"{where}.key", f"must be {list(key)}", data.get("key"))
        blend = data.get("blend")
        if not is_int(blend) or not 0 <= blend <= MAX_BLEND:
            raise _fail(f"{where}.blend", f"must be a width in [0, {MAX_BLEND}] pixels", blend)
        regions = data.get("regions")
        if not isinstance(regions, list) or not regions:
            raise _fail(f"{where}.regions", "must be a non-empty list", regions)
        entries = [
            RegionEntry.from_dict(region, slice_shape, f"{where}.regions[{number}]")
            for number, region in enumerate(regions)
        ]
        _check_tiling(f"{where}.regions", [e.core for e in entries], *slice_shape[:2])
        psnr = _figure(f"{where}.psnr", data.get("psnr"))
        ssim = _figure(f"{where}.ssim", data.get("ssim"))
        return cls(tuple(key), entries, blend, psnr, ssim)


@dataclass
class Quality:
    """The quality over the whole image: ``psnr`` (from the mean squared error of every slice;
    null when lossless) and the mean ``ssim``."""

    psnr: float | None
    ssim: float | None

    @classmethod
    def measured(cls, psnr: float, ssim: float) -> Quality:
        return cls(stored_figure(psnr, PSNR_DIGITS), stored_figure(ssim, SSIM_DIGITS))

    def to_dict(self) -> dict[str, Any]:
        return {"psnr": self.psnr, "ssim": self.ssim}

    @classmethod
    def from_dict(cls, data: Any) -> Quality:
        if not isinstance(data, Mapping):
            raise _fail("quality", "must be an object", data)
        return cls(
            _figure("quality.psnr", data.get("psnr")), _figure("quality.ssim", data.get("ssim"))
        )


@dataclass
class ImageHeader:
    """The header of a napari-sgi image (``kind`` ``"napari-sgi image"``).

    Parameters
    ----------
    encoder_version
        The napari-sgi version that wrote the file.
    layout
        ``ImageSource.to_header()``: ``axes`` (stack axes, then ``YX`` or ``YXS``), ``shape``,
        ``dtype``, ``scale``, ``units``... kept as written.
    value_range
        ``(low, high)`` of the data, mapped to [0, 1] for every slice.
    contrast_limits
        The display window for viewers.
    fit
        The fit configuration (``FitConfig.to_header()``: the fields that differ from the
        defaults), kept as written.
    slices
        One entry per 2D slice, in C order over the stack axes (empty while a file is written).
    quality
        Over the whole image (None until measured).
    """

    encoder_version: str
    layout: dict[str, Any]
    value_range: tuple[float, float]
    contrast_limits: tuple[float, float]
    fit: dict[str, Any]
    slices: list[SliceEntry] = field(default_factory=list)
    quality: Quality | None = None

    kind = FILE_KIND

    @property
    def axes(self) -> str:
        return self.layout["axes"]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.layout["shape"])

    @property
    def stack_shape(self) -> tuple[int, ...]:
        """The shape over the stack axes (before ``Y``); ``()`` for one 2D image."""
        return self.shape[: len(self.axes.removesuffix("S")) - 2]

    @property
    def slice_shape(self) -> tuple[int, ...]:
        """``(H, W)``, or ``(H, W, S)`` for RGB(A) samples."""
        return self.shape[len(self.stack_shape) :]

    @property
    def rgb(self) -> bool:
        return self.axes.endswith("S")

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of the file's header (what the encoder writes, in its key order)."""
        return {
            "kind": self.kind,
            "encoder_version": self.encoder_version,
            "layout": dict(self.layout),
            "value_range": list(self.value_range),
            "contrast_limits": list(self.contrast_limits),
            "fit": dict(self.fit),
            "n_slices": len(self.slices),
            "slices": [entry.to_dict() for entry in self.slices],
            "quality": None if self.quality is None else self.quality.to_dict(),
        }

    @classmethod
    def from_dict(cls, header: Mapping[str, Any]) -> ImageHeader:
        """Parse and check a file's header; any problem is an :class:`SGIFormatError`."""
        if not isinstance(header, Mapping) or header.get("kind") != FILE_KIND:
            kind = header.get("kind") if isinstance(header, Mapping) else None
            raise SGIFormatError(
                f"the file is a .sgi container but not a napari-sgi image (kind {kind!r:.40})"
            )
        validate_header(header)  # the generic fields, as the container checks them
        version = header.get("encoder_version")
        if not isinstance(version, str):
            raise _fail("encoder_version", "must be a string", version)
        layout = header.get("layout")
        if not isinstance(layout, Mapping):
            raise _fail("layout", "must be an object", layout)
        axes, shape = layout.get("axes"), layout.get("shape")
        if not isinstance(axes, str) or not isinstance(shape, list) or "dtype" not in layout:
            raise _fail("layout", "must have axes, shape and dtype", dict(layout))
        stack_axes = axes.removesuffix("S").removesuffix("YX")
        if len(stack_axes) != len(axes) - 2 - axes.endswith("S") or set(stack_axes) & set("YXS"):
            raise _fail("layout.axes", "must be stack axes, then YX or YXS", axes)
        if axes.endswith("S") and shape[-1] not in RGB_SAMPLES:
            raise _fail("layout.shape", "must end with 3 or 4 samples (RGB, RGBA) for YXS", shape)
        fit = header.get("fit")
        if not isinstance(fit, Mapping):
            raise _fail("fit", "must be an object", fit)
        image = cls(
            encoder_version=version,
            layout=dict(layout),
            value_range=_value_range(header.get("value_range"), layout["dtype"]),
            contrast_limits=_pair("contrast_limits", header.get("contrast_limits")),
            fit=dict(fit),
        )
        slices, n_slices = header.get("slices"), header.get("n_slices")
        count = math.prod(image.stack_shape)
        _check_layout_counts(layout, image.slice_shape, count)
        if not isinstance(slices, list) or n_slices != len(slices) or len(slices) != count:
            length = len(slices) if isinstance(slices, list) else slices
            raise _fail(
                "slices", f"must list the {count} slices of shape {list(image.shape)}", length
            )
        keys = itertools.product(*(range(n) for n in image.stack_shape))
        image.slices = [
            SliceEntry.from_dict(entry, index, key, image.slice_shape)
            for index, (entry, key) in enumerate(zip(slices, keys, strict=True))
        ]
        if header.get("quality") is not None:
            image.quality = Quality.from_dict(header["quality"])
        return image
