"""Axis letters, axis guessing and physical units shared by inputs and exports.

napari-sgi names axes with single letters:

====  ==========================================================
T     time
C     channel (fluorescence channels; compressed one by one)
Z     depth
Y, X  the 2D plane of one slice
S     colour samples of RGB(A) images (kept inside a slice)
====  ==========================================================

Units use the NGFF / UDUNITS names (``"micrometer"``, ``"second"``) so that they
can go straight into OME-Zarr; OME-TIFF symbols (``"µm"``) are converted on the way
in and out.

Examples
--------
>>> guess_axes((60, 256, 256), "uint16")
'ZYX'
>>> normalize_unit("µm")
'micrometer'
"""

from __future__ import annotations

import numpy as np

AXIS_LETTERS = "TCZYXS"
#: Canonical order used by OME-Zarr (S is written there as a channel axis).
CANONICAL_ORDER = "TCZYXS"
#: OME-Zarr has no sample axis: RGB(A) samples are written as channels of these ``omero`` colours,
#: and channels coloured so (uint8, 3 or 4 of them) are read back as samples.
RGB_CHANNEL_COLORS = ["FF0000", "00FF00", "0000FF", "FFFFFF"]

# tifffile letters without a napari-sgi meaning: Q (unknown), I (generic image
# sequence), and exotic dimensions. They become the first free of Z, T so that the
# common "QYX" multi-page stack opens as a z-stack instead of failing.
_TIFFFILE_GENERIC = "QIRHLVPAM"

_UNIT_ALIASES = {
    # length
    "angstrom": "angstrom",
    "å": "angstrom",
    "a": "angstrom",
    "pm": "picometer",
    "picometer": "picometer",
    "nm": "nanometer",
    "nanometer": "nanometer",
    "nanometre": "nanometer",
    "um": "micrometer",
    "µm": "micrometer",
    "μm": "micrometer",
    "micron": "micrometer",
    "microns": "micrometer",
    "micrometer": "micrometer",
    "micrometre": "micrometer",
    "mm": "millimeter",
    "millimeter": "millimeter",
    "millimetre": "millimeter",
    "cm": "centimeter",
    "centimeter": "centimeter",
    "centimetre": "centimeter",
    "m": "meter",
    "meter": "meter",
    "metre": "meter",
    "inch": "inch",
    "in": "inch",
    # time
    "ns": "nanosecond",
    "nanosecond": "nanosecond",
    "us": "microsecond",
    "µs": "microsecond",
    "μs": "microsecond",
    "microsecond": "microsecond",
    "ms": "millisecond",
    "millisecond": "millisecond",
    "s": "second",
    "sec": "second",
    "second": "second",
    "min": "minute",
    "minute": "minute",
    "h": "hour",
    "hr": "hour",
    "hour": "hour",
    "d": "day",
    "day": "day",
}

# OME-XML (UnitsLength / UnitsTime enumerations) symbols for the NGFF names.
_OME_SYMBOLS = {
    "angstrom": "Å",
    "picometer": "pm",
    "nanometer": "nm",
    "micrometer": "µm",
    "millimeter": "mm",
    "centimeter": "cm",
    "meter": "m",
    "inch": "in",
    "nanosecond": "ns",
    "microsecond": "µs",
    "millisecond": "ms",
    "second": "s",
    "minute": "min",
    "hour": "h",
    "day": "d",
}


def normalize_unit(unit: str | None) -> str | None:
    """Return the NGFF name of a unit, or None when the unit is unknown or empty.

    Unrecognised units are kept as given (lower case) rather than dropped: a
    reader downstream may still know them.

    >>> normalize_unit("um"), normalize_unit("pixel"), normalize_unit(None)
    ('micrometer', None, None)
    """
    if unit is None:
        return None
    key = str(unit).strip().lower()
    if key in ("", "pixel", "pixels", "px", "none"):
        return None
    return _UNIT_ALIASES.get(key, key)


def ome_unit_symbol(unit: str | None) -> str | None:
    """Return the OME-XML symbol of an NGFF unit name (``"micrometer"`` -> ``"µm"``)."""
    if unit is None:
        return None
    return _OME_SYMBOLS.get(unit, unit)


def is_rgb_samples(size: int, dtype: np.dtype) -> bool:
    """Whether a sample axis of this size/dtype is kept inside a slice as colour.

    Only 8-bit RGB / RGBA (size 3 or 4) counts as colour: it is what brightfield
    and histology images are and what napari shows as ``rgb=True``. Anything else
    (16-bit or multi-sample data) is treated as separate channels.
    """
    return size in (3, 4) and np.dtype(dtype) == np.uint8


def guess_axes(shape: tuple[int, ...], dtype: np.dtype | str) -> str:
    """Guess axes for an array without metadata.

    The trailing letters of the OME order ``TCZYX`` are used (2D ``YX``, 3D
    ``ZYX``, 4D ``CZYX``, 5D ``TCZYX``); a last axis of size 3/4 in uint8 is taken
    as RGB(A) samples ``S``.

    >>> guess_axes((512, 512, 3), "uint8")
    'YXS'
    """
    ndim = len(shape)
    if ndim >= 3 and is_rgb_samples(shape[-1], np.dtype(dtype)) and shape[-2] > 4:
        return guess_axes(shape[:-1], "float32") + "S"
    if ndim < 2:
        raise ValueError(f"an image needs at least 2 dimensions (Y, X); got shape {shape}")
    if ndim > 5:
        raise ValueError(
            f"cannot guess the axes of a {ndim}-D array (shape {shape}); pass axes=, "
            "e.g. axes='TCZYX'"
        )
    return "TCZYX"[-ndim:]


def map_tifffile_axes(axes: str) -> str:
    """Map tifffile's axis letters onto T, C, Z, Y, X, S.

    Generic letters (``Q``, ``I`` and other exotic dimensions) take the first free
    of Z, T; spectral ``E`` becomes C when C is free.

    >>> map_tifffile_axes("QYX"), map_tifffile_axes("IZYX"), map_tifffile_axes("EYX")
    ('ZYX', 'TZYX', 'CYX')
    """
    axes = axes.upper()
    out = []
    for letter in axes:
        if letter in AXIS_LETTERS:
            out.append(letter)
            continue
        if letter == "E" and "C" not in axes and "C" not in out:
            out.append("C")
            continue
        if letter in _TIFFFILE_GENERIC or letter == "E":
            free = [c for c in "ZT" if c not in axes and c not in out]
            if free:
                out.append(free[0])
                continue
        raise ValueError(
            f"cannot map TIFF axis {letter!r} of {axes!r} onto T, C, Z, Y, X, S; "
            "pass axes= explicitly"
        )
    return "".join(out)


def validate_axes(axes: str, ndim: int) -> str:
    """Check an axes string against an array's ndim and return it upper-cased.

    >>> validate_axes("zyx", 3)
    'ZYX'
    """
    if not isinstance(axes, str):
        raise TypeError(f"axes must be a string such as 'ZYX', got {type(axes).__name__}")
    axes = axes.upper()
    if len(axes) != ndim:
        raise ValueError(f"axes {axes!r} has {len(axes)} letters but the array has {ndim} dims")
    bad = sorted(set(axes) - set(AXIS_LETTERS))
    if bad:
        raise ValueError(f"axes {axes!r} has unknown letters {bad}; use only {AXIS_LETTERS}")
    dup = sorted({a for a in axes if axes.count(a) > 1})
    if dup:
        raise ValueError(f"axes {axes!r} repeats {dup}")
    if "Y" not in axes or "X" not in axes:
        raise ValueError(f"axes {axes!r} must contain both Y and X")
    return axes
