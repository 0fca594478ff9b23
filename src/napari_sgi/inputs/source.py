"""The :class:`ImageSource`: an image seen as a stack of 2D slices, and how one is built.

Layout decisions
----------------
* Axes are letters over ``T, C, Z, Y, X, S`` (see :mod:`napari_sgi.inputs.axes`).
* One *slice* is one 2D plane, the unit of compression: ``(Y, X)``, or
  ``(Y, X, S)`` for 8-bit RGB(A). Fluorescence channels ``C`` are separate slices
  (channels differ in content and range); colour samples ``S`` stay together
  because they are one picture. A sample axis that is not uint8 RGB(A) becomes C.
* The non-plane axes keep the source's order, Y, X (and S) are moved last,
  lazily. ``source_axes`` records the original order; slices iterate in C order
  of the non-plane axes (``(0, 0), (0, 1), ...``).
* Supported dtypes: unsigned/signed integers and floats. bool, complex and
  others are refused (convert masks to uint8 first).

Every reader of :mod:`napari_sgi.inputs` ends in :func:`build_source`, which applies these rules.

Example
-------
>>> import numpy as np
>>> src = build_source(np.zeros((3, 64, 64), np.uint16), None, name=None)
>>> src.axes, src.n_slices, src.read_slice((1,)).shape
('ZYX', 3, (64, 64))
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import dask.array as da
import numpy as np

from napari_sgi.inputs.axes import guess_axes, is_rgb_samples, normalize_unit, validate_axes

__all__ = ["HEADER_VERSION", "ImageSource", "build_source"]

HEADER_VERSION = 1


@dataclass
class ImageSource:
    """A lazily read image, seen as a stack of 2D slices.

    Attributes
    ----------
    data : dask.array.Array
        Pixels in ``axes`` order (non-plane axes first, then Y, X and maybe S).
    axes : str
        Letters over T, C, Z, Y, X, S, e.g. ``"TCZYX"`` or ``"YXS"``.
    scale, units : tuple
        Physical pixel size and its NGFF unit per axis; None where unknown.
    channel_names : list of str or None
        Names along C (or S), when the source has them.
    source_axes : str
        Axis order in the source, before Y, X, S were moved last.
    contrast_limits : list of [lo, hi] or None
        Display windows per channel from OME-Zarr ``omero`` metadata, if any.

    Examples
    --------
    >>> import numpy as np
    >>> from napari_sgi.inputs import open_input
    >>> src = open_input(np.zeros((2, 4, 32, 32), np.uint8), axes="CZYX")
    >>> src.slice_keys()[:3], src.slice_shape
    ([(0, 0), (0, 1), (0, 2)], (32, 32))
    """

    data: da.Array
    axes: str
    scale: tuple[float | None, ...]
    units: tuple[str | None, ...]
    channel_names: list[str] | None = None
    source_axes: str = ""
    contrast_limits: list[list[float]] | None = None
    name: str | None = None
    _closers: list[Any] = field(default_factory=list, repr=False, compare=False)

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(n) for n in self.data.shape)

    @property
    def slice_axes(self) -> str:
        """The axes iterated over, e.g. ``"TCZ"``; empty for a single 2D image."""
        return "".join(a for a in self.axes if a not in "YXS")

    @property
    def slice_shape(self) -> tuple[int, ...]:
        """Shape of one slice: ``(Y, X)`` or ``(Y, X, S)``."""
        return self.shape[len(self.slice_axes) :]

    @property
    def is_rgb(self) -> bool:
        return self.axes.endswith("S")

    @property
    def n_slices(self) -> int:
        return math.prod(self.shape[: len(self.slice_axes)])

    def slice_keys(self) -> list[tuple[int, ...]]:
        """Index tuples over the non-plane axes, in C order (``[()]`` for 2D)."""
        return list(np.ndindex(*self.shape[: len(self.slice_axes)]))

    def read_slice(self, key: tuple[int, ...]) -> np.ndarray:
        """Read one slice as a numpy array of shape :attr:`slice_shape`."""
        key = tuple(int(k) for k in key)
        lead = self.shape[: len(self.slice_axes)]
        if len(key) != len(lead) or any(not 0 <= k < n for k, n in zip(key, lead, strict=True)):
            raise IndexError(f"slice key {key} does not index axes {self.slice_axes!r} {lead}")
        # threads: a whole-slide plane can span many chunks worth decoding in parallel;
        # never the distributed client, read_slice runs inside the task that asked.
        return np.asarray(self.data[key].compute(scheduler="threads"))

    def to_source_order(self, array: Any) -> Any:
        """Transpose an array laid out like :attr:`axes` back to :attr:`source_axes`."""
        if not self.source_axes or self.source_axes == self.axes:
            return array
        perm = [self.axes.index(a) for a in self.source_axes]
        return array.transpose(perm)

    def to_header(self) -> dict[str, Any]:
        """JSON-serialisable layout; :meth:`from_header` rebuilds the same slices."""
        return {
            "version": HEADER_VERSION,
            "axes": self.axes,
            "source_axes": self.source_axes or self.axes,
            "shape": list(self.shape),
            "dtype": np.dtype(self.dtype).str,
            "scale": [None if s is None else float(s) for s in self.scale],
            "units": list(self.units),
            "channel_names": None if self.channel_names is None else list(self.channel_names),
            "contrast_limits": self.contrast_limits,
            "slice_axes": self.slice_axes,
            "slice_shape": list(self.slice_shape),
            "n_slices": self.n_slices,
        }

    @classmethod
    def from_header(cls, header: dict[str, Any], data: Any = None) -> ImageSource:
        """Rebuild a source from :meth:`to_header`; ``data`` defaults to lazy zeros.

        A decoder uses it to get the same slice keys, shape and metadata:

        >>> import numpy as np
        >>> from napari_sgi.inputs import open_input
        >>> h = open_input(np.zeros((2, 8, 8), np.uint8)).to_header()
        >>> ImageSource.from_header(h).slice_keys()
        [(0,), (1,)]
        """
        version = header.get("version", HEADER_VERSION)
        if version > HEADER_VERSION:
            raise ValueError(f"layout header version {version} is newer than {HEADER_VERSION}")
        shape = tuple(int(n) for n in header["shape"])
        dtype = np.dtype(header["dtype"])
        axes = validate_axes(header["axes"], len(shape))
        if data is None:
            n_lead = len([a for a in axes if a not in "YXS"])
            data = da.zeros(shape, dtype=dtype, chunks=(1,) * n_lead + shape[n_lead:])
        elif not isinstance(data, da.Array):
            data = da.from_array(data)
        if tuple(data.shape) != shape:
            raise ValueError(f"data shape {tuple(data.shape)} does not match header {shape}")
        return cls(
            data=data,
            axes=axes,
            scale=tuple(header.get("scale") or [None] * len(shape)),
            units=tuple(header.get("units") or [None] * len(shape)),
            channel_names=header.get("channel_names"),
            source_axes=header.get("source_axes", axes),
            contrast_limits=header.get("contrast_limits"),
        )

    def close(self) -> None:
        """Release open file handles (TIFF); the source can still be read after."""
        for closer in self._closers:
            closer.close()

    def __enter__(self) -> ImageSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def build_source(
    data: Any,
    axes: str | None,
    *,
    name: str | None,
    scale: dict[str, float] | None = None,
    units: dict[str, str | None] | None = None,
    channel_names: list[str] | None = None,
    contrast_limits: list[list[float]] | None = None,
    closers: list[Any] | None = None,
) -> ImageSource:
    """Validate, move Y, X, S last and wrap ``data`` (any array-like) lazily."""
    shape = tuple(int(n) for n in data.shape)
    dtype = np.dtype(data.dtype)
    what = f"{name!r}" if name else "the input"
    if len(shape) < 2:
        raise ValueError(f"{what} has shape {shape}: an image needs at least 2 dims (Y, X)")
    if 0 in shape:
        raise ValueError(f"{what} has an empty axis: shape {shape}")
    if dtype.kind not in "uif":
        raise ValueError(
            f"{what} has dtype {dtype}, which cannot be compressed; supported are integer "
            "and float types (convert bool masks to uint8)"
        )
    axes = validate_axes(axes, len(shape)) if axes is not None else guess_axes(shape, dtype)
    source_axes = axes
    if "S" in axes and not is_rgb_samples(shape[axes.index("S")], dtype):
        if "C" in axes:
            raise ValueError(
                f"{what} has both C and a non-RGB sample axis S (axes {axes!r}, shape {shape})"
            )
        # multi-sample data that is not 8-bit colour is just channels
        axes = source_axes = axes.replace("S", "C")

    if not isinstance(data, da.Array):
        n_lead = len([a for a in axes if a not in "YXS"])
        plane = tuple(shape[axes.index(a)] for a in axes if a in "YXS")
        chunks = (1,) * n_lead + plane if axes.rstrip("S").endswith("YX") else "auto"
        if isinstance(data, np.ndarray):
            data = da.from_array(data, chunks=chunks)
        else:
            # explicit meta and name: dask must not read or hash the file to infer them
            data = da.from_array(
                data, chunks=chunks, meta=np.empty((0,) * len(shape), dtype), name=False
            )

    order = [a for a in axes if a not in "YXS"] + ["Y", "X"] + (["S"] if "S" in axes else [])
    if order != list(axes):
        data = data.transpose([axes.index(a) for a in order])
    norm = "".join(order)
    scale = scale or {}
    units = units or {}
    if channel_names is not None:
        n_ch = shape[axes.index("C")] if "C" in axes else (shape[-1] if "S" in axes else 0)
        channel_names = [str(c) for c in channel_names] if len(channel_names) == n_ch else None
    return ImageSource(
        data=data,
        axes=norm,
        scale=tuple(_pos_or_none(scale.get(a)) for a in norm),
        units=tuple(normalize_unit(units.get(a)) if scale.get(a) else None for a in norm),
        channel_names=channel_names,
        source_axes=source_axes,
        contrast_limits=contrast_limits,
        name=name,
        _closers=closers or [],
    )


def _pos_or_none(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and value > 0 else None
