"""The JSON header of a ``.sgi`` file: encoding with a size cap, strict decoding, generic checks.

The caller owns the header's content (image layout, model config, encoder version, quality...).
We check the types and ranges of the generic image fields when they are present, at the top level
or in an ``"image"`` / ``"layout"`` sub-object, because readers size allocations from them:

- ``shape``, ``slice_shape``: lists of 1..8 ints in [1, 2**24], product <= 2**38;
- ``axes``: distinct letters from ``TCZYXS``, one per dimension of ``shape``;
- ``dtype``: a numpy dtype string of an integer (1-8 bytes) or float (2, 4 or 8 bytes) type;
- ``scale``, ``pixel_sizes``: positive finite numbers or null, one per dimension;
- ``units``: strings or null, one per dimension; ``channel_names``: null or strings;
- ``contrast_limits``, ``value_range``: [lo, hi] (finite, lo <= hi), a list of such, or null;
- ``n_slices``: int in [0, 2**24]; ``encoder_version``: string.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from napari_sgi.errors import SGIFormatError
from napari_sgi.file.budget import check_model_budget

__all__ = [
    "FILE_KIND",
    "MAX_HEADER_BYTES",
    "MODEL_SECTIONS",
    "check_model_config",
    "is_sample_dtype",
    "decode_header",
    "encode_header",
    "model_config_from_header",
    "validate_header",
]

FILE_KIND = "napari-sgi image"  # the header's "kind" of a file napari-sgi writes
# The sections of one region's model, in file order: slice/<i>/r<j>/<name>.
MODEL_SECTIONS = ("weights", "hash_grid", "features", "log_scaling", "offsets")
MAX_HEADER_BYTES = 1 << 20  # 1 MiB of JSON is far more than any layout + model config needs
MAX_DIM = 1 << 24
MAX_ELEMENTS = 1 << 38  # ~2.7e11: a 100k x 100k x 3 slide or a 2k x 2k x 20k volume fit
MAX_NDIM = 8
MAX_STRING = 4096
MAX_SEED_MAP = 1 << 19  # characters: 2^20 cells of 4 bits in base64, and its prefix
AXIS_LETTERS = "TCZYXS"
_SCOPES = ("image", "layout")

_MODEL_LIMITS = {  # the fields of ModelConfig, in its order, and their largest values
    "height": 1 << 24,
    "width": 1 << 24,
    "channels": 64,
    "feature_dim": 1024,
    "gaussians_per_seed": 256,
    "seed_count": 1 << 28,
    "rng_seed": 1 << 62,
    "levels": 8,
    "grid_levels": 12,
    "grid_features": 16,
    "grid_log2_table": 24,
}
# Fields a model writes only when set, and the largest values of the integer ones: the seed
# layout (a string, :mod:`napari_sgi.core.seed_map`) and the gated blend (1, when present).
_MODEL_OPTIONS = {"seed_map": None, "blend": 1}
# What an image's samples may be: the integer and floating-point types the encoder compresses
# (no bool, complex, float128), in either byte order.
DTYPE_SIZES = {"u": (1, 2, 4, 8), "i": (1, 2, 4, 8), "f": (2, 4, 8)}


def check_model_config(data: Any) -> None:
    """Check a region's ``model`` entry without torch: every field of ``ModelConfig``, integers in
    range, and a box, Gaussians and stored values within :mod:`.budget`'s bounds.

    Examples
    --------
    >>> model = {"height": 64, "width": 64, "channels": 1, "feature_dim": 4,
    ...          "gaussians_per_seed": 4, "seed_count": 40, "rng_seed": 0, "levels": 3,
    ...          "grid_levels": 0, "grid_features": 4, "grid_log2_table": 13}
    >>> check_model_config(model)
    >>> check_model_config({**model, "width": -1})
    Traceback (most recent call last):
    ...
    napari_sgi.errors.SGIFormatError: model field 'width' out of range: -1
    """
    if not isinstance(data, dict) or set(data) - set(_MODEL_OPTIONS) != set(_MODEL_LIMITS):
        raise SGIFormatError(
            f"invalid model configuration in the header (it needs exactly the fields "
            f"{', '.join(_MODEL_LIMITS)}, and optionally {', '.join(_MODEL_OPTIONS)}): "
            f"{shown(data)}"
        )
    for name, value in data.items():
        if name == "seed_map":
            continue
        low = 0 if name in ("rng_seed", "grid_levels") else 1
        limit = _MODEL_LIMITS.get(name) or _MODEL_OPTIONS[name]
        if not is_int(value) or not low <= value <= limit:
            raise SGIFormatError(f"model field {name!r} out of range: {shown(value)}")
    check_model_budget(data)
    if "seed_map" in data:
        _check_seed_map(data["seed_map"], data["height"], data["width"], data["seed_count"])


def _check_seed_map(text: Any, height: int, width: int, count: int) -> None:
    """A seed map that parses for its box (torch-free; the map's own module is numpy only)."""
    from napari_sgi.core.seed_map import parse_seed_map

    if not isinstance(text, str) or not text or len(text) > MAX_SEED_MAP:
        raise SGIFormatError(f"model field 'seed_map' invalid: {shown(text)}")
    try:
        parse_seed_map(text, height, width, count)
    except ValueError as error:
        raise SGIFormatError(f"model field 'seed_map' invalid: {error}") from None


def model_config_from_header(data: dict):
    """A :class:`ModelConfig` from a file's header, refusing absurd values before any allocation."""
    from napari_sgi.core.model import ModelConfig  # torch: only once a model is decoded

    check_model_config(data)
    try:
        return ModelConfig(**data)
    except (TypeError, ValueError) as error:
        raise SGIFormatError(f"invalid model configuration: {error}") from None


def encode_header(header: Mapping[str, Any]) -> bytes:
    """Validate ``header`` and return its UTF-8 JSON (no NaN/Infinity, at most 1 MiB).

    Examples
    --------
    >>> encode_header({"shape": [2, 64, 64], "axes": "ZYX"})
    b'{"shape":[2,64,64],"axes":"ZYX"}'
    """
    if not isinstance(header, Mapping):
        raise TypeError(f"the header must be a mapping, got {type(header).__name__}")
    try:
        data = json.dumps(dict(header), allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"the header is not JSON-serialisable: {exc}") from exc
    raw = data.encode("utf-8")
    if len(raw) > MAX_HEADER_BYTES:
        raise ValueError(f"the header is {len(raw)} bytes of JSON, at most {MAX_HEADER_BYTES}")
    try:
        validate_header(json.loads(data))
    except SGIFormatError as exc:  # the writer's caller gets a plain ValueError
        raise ValueError(str(exc)) from None
    return raw


def _reject_constant(name: str) -> Any:
    raise SGIFormatError(f"header JSON holds {name}, which is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise SGIFormatError(f"header JSON holds a number out of range ({text[:40]})")
    return value


def decode_header(raw: bytes) -> dict[str, Any]:
    """Parse and validate a header; any problem is an :class:`SGIFormatError`.

    Examples
    --------
    >>> decode_header(b'{"axes": "YX", "shape": [4, 4]}')
    {'axes': 'YX', 'shape': [4, 4]}
    """
    if len(raw) > MAX_HEADER_BYTES:
        raise SGIFormatError(f"header is {len(raw)} bytes, at most {MAX_HEADER_BYTES}")
    try:
        text = raw.decode("utf-8")
        header = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except SGIFormatError:
        raise
    except UnicodeDecodeError as exc:
        raise SGIFormatError(f"header is not UTF-8 text: {exc}") from None
    except RecursionError:
        raise SGIFormatError("header JSON is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, and ints longer than Python's digit limit
        raise SGIFormatError(f"header is not valid JSON: {exc}") from None
    if not isinstance(header, dict):
        raise SGIFormatError(f"header must be a JSON object, got {type(header).__name__}")
    validate_header(header)
    return header


def validate_header(header: Mapping[str, Any]) -> None:
    """Check the generic fields (module docstring) where present; raise :class:`SGIFormatError`."""
    _validate_scope(header, "")
    for scope in _SCOPES:
        sub = header.get(scope)
        if isinstance(sub, Mapping):
            _validate_scope(sub, f"{scope}.")


def shown(value: Any) -> str:
    """``repr(value)``, cut to 80 characters for an error message."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _fail(key: str, message: str, value: Any) -> SGIFormatError:
    return SGIFormatError(f"header field {key!r} {message} (got {shown(value)})")


def is_int(v: Any) -> bool:
    """An integer, not a bool (JSON's true is not 1)."""
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v: Any) -> bool:
    """A finite number, not a bool."""
    return (isinstance(v, int | float) and not isinstance(v, bool)) and math.isfinite(v)


def is_range(v: Any) -> bool:
    """``[low, high]``: two finite numbers, ``low <= high``."""
    return isinstance(v, list) and len(v) == 2 and all(map(is_number, v)) and v[0] <= v[1]


def is_sample_dtype(name: Any) -> bool:
    """A numpy dtype string of the integer and float types an image may have (``DTYPE_SIZES``).

    >>> is_sample_dtype("<u2"), is_sample_dtype("float32"), is_sample_dtype("|b1")
    (True, True, False)
    """
    if not isinstance(name, str) or len(name) > 32:
        return False
    try:
        dtype = np.dtype(name)
    except (TypeError, ValueError, Warning):  # a deprecated alias, where warnings are errors
        return False
    return dtype.itemsize in DTYPE_SIZES.get(dtype.kind, ())


def _check_shape(key: str, shape: Any) -> int:
    if not isinstance(shape, list) or not 1 <= len(shape) <= MAX_NDIM:
        raise _fail(key, f"must be a list of 1 to {MAX_NDIM} sizes", shape)
    if not all(is_int(n) and 1 <= n <= MAX_DIM for n in shape):
        raise _fail(key, f"must hold integers in [1, {MAX_DIM}]", shape)
    if math.prod(shape) > MAX_ELEMENTS:
        raise _fail(
            key, f"has {math.prod(shape):.3g} elements, more than {MAX_ELEMENTS:.3g}", shape
        )
    return len(shape)


def _check_list(key: str, value: Any, ndim: int | None, item_ok, what: str) -> None:
    if not isinstance(value, list) or not all(item_ok(v) for v in value):
        raise _fail(key, f"must be a list of {what}", value)
    if ndim is not None and len(value) != ndim:
        raise _fail(key, f"must have one entry per dimension ({ndim})", value)


def _short_string(v: Any) -> bool:
    return isinstance(v, str) and len(v) <= MAX_STRING


def _validate_scope(h: Mapping[str, Any], prefix: str) -> None:
    ndim = _check_shape(prefix + "shape", h["shape"]) if "shape" in h else None
    if "slice_shape" in h:
        _check_shape(prefix + "slice_shape", h["slice_shape"])
    if "axes" in h:
        axes = h["axes"]
        if (
            not isinstance(axes, str)
            or len(set(axes)) != len(axes)
            or not set(axes.upper()) <= set(AXIS_LETTERS)
            or len(axes) > MAX_NDIM
        ):
            raise _fail(prefix + "axes", f"must be distinct letters from {AXIS_LETTERS}", axes)
        if ndim is not None and len(axes) != ndim:
            raise _fail(prefix + "axes", f"must have one letter per dimension ({ndim})", axes)
    if "dtype" in h and not is_sample_dtype(h["dtype"]):
        raise _fail(
            prefix + "dtype",
            "must name an integer (1 to 8 bytes) or floating-point (2, 4 or 8 bytes) numpy dtype",
            h["dtype"],
        )
    for key in ("scale", "pixel_sizes"):
        if h.get(key) is not None:
            _check_list(
                prefix + key,
                h[key],
                ndim,
                lambda v: v is None or (is_number(v) and v > 0),
                "positive numbers or null",
            )
    if h.get("units") is not None:
        _check_list(
            prefix + "units", h["units"], ndim, lambda v: v is None or _short_string(v), "strings"
        )
    if h.get("channel_names") is not None:
        _check_list(prefix + "channel_names", h["channel_names"], None, _short_string, "strings")
    for key in ("contrast_limits", "value_range"):
        v = h.get(key)
        pairs = v if isinstance(v, list) and v and isinstance(v[0], list) else [v]
        if v is not None and not (len(pairs) <= MAX_STRING and all(map(is_range, pairs))):
            raise _fail(prefix + key, "must be [low, high] (or one per channel), low <= high", v)
    if "n_slices" in h and not (is_int(h["n_slices"]) and 0 <= h["n_slices"] <= MAX_DIM):
        raise _fail(prefix + "n_slices", f"must be an integer in [0, {MAX_DIM}]", h["n_slices"])
    if "encoder_version" in h and not _short_string(h["encoder_version"]):
        raise _fail(prefix + "encoder_version", "must be a string", h["encoder_version"])
