"""Open microscopy images lazily as a stack of 2D slices.

:func:`open_input` turns a numpy/dask array, a zarr array or group, an OME-Zarr
image (NGFF 0.4 / 0.5), a TIFF / OME-TIFF, a PNG/JPEG or a ``.npy`` file into an
:class:`ImageSource`: a lazy dask array plus axes, physical scale, units and
channel names. Pixel data is read only by :meth:`ImageSource.read_slice`.

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

Example
-------
>>> import numpy as np
>>> src = open_input(np.zeros((3, 64, 64), np.uint16))
>>> src.axes, src.n_slices, src.read_slice((1,)).shape
('ZYX', 3, (64, 64))
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np

from napari_sgi.inputs.axes import (
    guess_axes,
    is_rgb_samples,
    map_tifffile_axes,
    normalize_unit,
    validate_axes,
)

__all__ = ["ImageSource", "open_input"]

HEADER_VERSION = 1
_TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".tf8", ".tf2")
_PIL_SUFFIXES = (".png", ".jpg", ".jpeg")


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

    def iter_slices(self) -> Iterator[tuple[tuple[int, ...], np.ndarray]]:
        """Yield ``(key, slice)`` pairs in :meth:`slice_keys` order."""
        for key in self.slice_keys():
            yield key, self.read_slice(key)

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


def open_input(source: Any, *, axes: str | None = None, series: int = 0) -> ImageSource:
    """Open an image lazily as an :class:`ImageSource`.

    Parameters
    ----------
    source : array-like or path
        numpy or dask array; zarr array or group (object or path, zarr v2 or v3);
        OME-Zarr image (level 0 is used); ``.tif``/``.ome.tif`` (read through
        tifffile's zarr store, never whole); ``.png``/``.jpg`` (small, read
        eagerly); ``.npy`` (memory-mapped).
    axes : str, optional
        Axis letters in the source's order, overriding metadata and guessing.
    series : int
        TIFF series (image) to open.

    Returns
    -------
    ImageSource

    Raises
    ------
    FileNotFoundError
        The path does not exist.
    ValueError
        Unsupported file type, dtype or shape, or axes not matching the data.

    Examples
    --------
    >>> import numpy as np
    >>> open_input(np.zeros((256, 256, 3), np.uint8)).axes
    'YXS'
    """
    if isinstance(source, np.ndarray | da.Array):
        return _build(source, axes, name=None)
    if isinstance(source, str | os.PathLike):
        return _open_path(Path(source), axes, series)
    import zarr

    if isinstance(source, zarr.Group):
        return _from_zarr_group(source, axes, name=None)
    if isinstance(source, zarr.Array):
        return _from_zarr_array(source, axes, name=None)
    if hasattr(source, "shape") and hasattr(source, "dtype") and hasattr(source, "__getitem__"):
        return _build(source, axes, name=None)
    raise TypeError(f"cannot open {type(source).__name__}: expected an array or a path")


# --------------------------------------------------------------------------- build


def _build(
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


# --------------------------------------------------------------------------- paths


def _open_path(path: Path, axes: str | None, series: int) -> ImageSource:
    if not path.exists():
        raise FileNotFoundError(f"no such file or directory: {str(path)!r}")
    suffix = path.suffix.lower()
    if path.is_dir() or suffix == ".zarr":
        return _open_zarr_path(path, axes)
    if suffix in _TIFF_SUFFIXES:
        return _open_tiff(path, axes, series)
    if suffix in _PIL_SUFFIXES:
        return _open_pil(path, axes)
    if suffix == ".npy":
        # mmap: a large .npy is paged in slice by slice, never read whole
        return _build(np.load(path, mmap_mode="r"), axes, name=path.name)
    raise ValueError(
        f"unsupported file type {suffix or '(none)'!r} for {str(path)!r}; supported: zarr / "
        f"OME-Zarr folders, {', '.join(_TIFF_SUFFIXES + _PIL_SUFFIXES)}, .npy"
    )


def _open_pil(path: Path, axes: str | None) -> ImageSource:
    from PIL import Image

    with Image.open(path) as img:
        if img.mode in ("P", "PA", "LA"):
            img = img.convert("RGBA" if "A" in img.mode or "transparency" in img.info else "RGB")
        elif img.mode == "1":
            img = img.convert("L")
        elif img.mode not in ("L", "I;16", "I;16B", "I", "F", "RGB", "RGBA"):
            img = img.convert("RGB")
        arr = np.asarray(img)
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return _build(arr, axes or ("YXS" if arr.ndim == 3 else "YX"), name=path.name)


# --------------------------------------------------------------------------- zarr


_NGFF_NAMES = {"t": "T", "c": "C", "z": "Z", "y": "Y", "x": "X"}
_NGFF_TYPES = {"time": "T", "channel": "C"}
_RGB_COLORS = ["FF0000", "00FF00", "0000FF", "FFFFFF"]


def _open_zarr_path(path: Path, axes: str | None) -> ImageSource:
    import zarr

    try:
        node = zarr.open(str(path), mode="r")
    except Exception as exc:  # zarr raises several types for "not a zarr store"
        raise ValueError(f"{str(path)!r} is not a readable zarr array or group: {exc}") from exc
    if isinstance(node, zarr.Group):
        return _from_zarr_group(node, axes, name=path.name)
    return _from_zarr_array(node, axes, name=path.name)


def _from_zarr_array(arr: Any, axes: str | None, name: str | None) -> ImageSource:
    if axes is None:
        # dimension names: zarr v3 metadata, or xarray's attribute in zarr v2
        names = getattr(arr.metadata, "dimension_names", None) or arr.attrs.get("_ARRAY_DIMENSIONS")
        if names and all(isinstance(n, str) and len(n) == 1 and n in "tczyxsTCZYXS" for n in names):
            axes = "".join(n.upper() for n in names)
    return _build(da.from_zarr(arr), axes, name=name)


def _from_zarr_group(group: Any, axes: str | None, name: str | None) -> ImageSource:
    attrs = dict(group.attrs)
    meta = attrs.get("ome", attrs)  # NGFF 0.5 nests everything under "ome"
    if "multiscales" not in meta:
        if "bioformats2raw.layout" in meta and "0" in group:
            return _from_zarr_group(group["0"], axes, name)
        arrays = sorted(k for k, _ in group.arrays())
        raise ValueError(
            f"zarr group {name or group.path!r} has no OME-Zarr 'multiscales' metadata; "
            f"open one of its arrays instead: {arrays[:10]}"
        )
    ms = meta["multiscales"][0]
    ds0 = ms["datasets"][0]
    arr = group[ds0["path"]]
    ngff_axes = ms.get("axes") or [{"name": n} for n in "tczyx"[-arr.ndim :]]
    ngff_axes = [a if isinstance(a, dict) else {"name": a} for a in ngff_axes]  # NGFF 0.3
    if axes is None:
        letters = []
        for ax in ngff_axes:
            letter = _NGFF_NAMES.get(str(ax.get("name", "")).lower()) or _NGFF_TYPES.get(
                ax.get("type", "")
            )
            if letter is None:
                raise ValueError(f"OME-Zarr axis {ax} cannot be mapped to T, C, Z, Y, X")
            letters.append(letter)
        axes = "".join(letters)
    axes = validate_axes(axes, arr.ndim)
    factors = np.ones(arr.ndim)
    for transforms in (
        ds0.get("coordinateTransformations", []),
        ms.get("coordinateTransformations", []),
    ):
        for t in transforms:
            if t.get("type") == "scale" and "scale" in t:
                factors = factors * np.asarray(t["scale"], dtype=float)
    units = {a: ax.get("unit") for a, ax in zip(axes, ngff_axes, strict=True)}
    scale = {a: f for a, f in zip(axes, factors, strict=True) if a in "TZYX"}
    channels = meta.get("omero", {}).get("channels") or []
    names = [c.get("label", f"channel {i}") for i, c in enumerate(channels)] or None
    colors = [str(c.get("color", "")).upper() for c in channels]
    if (
        "C" in axes
        and "S" not in axes
        and colors == _RGB_COLORS[: len(colors)]
        and (is_rgb_samples(arr.shape[axes.index("C")], arr.dtype))
    ):
        # NGFF has no sample axis; red/green/blue(/white) uint8 channels, as
        # write_ome_zarr stores RGB(A), are colour samples again
        axes, names = axes.replace("C", "S"), None
    windows = [c.get("window", {}) for c in channels]
    limits = [[float(w["start"]), float(w["end"])] for w in windows if "start" in w and "end" in w]
    return _build(
        da.from_zarr(arr),
        axes,
        name=name,
        scale=scale,
        units=units,
        channel_names=names,
        contrast_limits=limits if limits and len(limits) == len(channels) else None,
    )


# --------------------------------------------------------------------------- tiff


class _TiffArray:
    """Array view of one TIFF series (level 0), opened on first read.

    Pickles as its path, so a dask graph over it can run on distributed workers
    (tifffile's zarr store itself holds a file handle and does not pickle).
    """

    def __init__(self, path: str, series: int, shape: tuple[int, ...], dtype: np.dtype):
        self.path, self.series, self.shape, self.dtype = path, series, shape, np.dtype(dtype)
        self.ndim = len(shape)
        self._store: Any = None
        self._array: Any = None
        self._lock = threading.Lock()

    def _open(self) -> Any:
        with self._lock:
            if self._array is None:
                import tifffile
                import zarr

                self._store = tifffile.imread(self.path, aszarr=True, series=self.series, level=0)
                self._array = zarr.open_array(self._store, mode="r")
            return self._array

    def __getitem__(self, key: Any) -> np.ndarray:
        return self._open()[key]

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
            self._store = self._array = None

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "series": self.series, "shape": self.shape, "dtype": self.dtype}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)


def _open_tiff(path: Path, axes: str | None, series: int) -> ImageSource:
    import tifffile

    try:
        tf = tifffile.TiffFile(path)
    except tifffile.TiffFileError as exc:
        raise ValueError(f"{str(path)!r} is not a readable TIFF file: {exc}") from exc
    with tf:  # reads IFDs and metadata only
        if not 0 <= series < len(tf.series):
            raise ValueError(f"{path.name!r} has {len(tf.series)} series; series={series}")
        s = tf.series[series]
        shape, dtype = tuple(s.shape), s.dtype
        meta: dict[str, Any] = {}
        if axes is None:
            axes = map_tifffile_axes(s.axes)
            if tf.is_ome:
                meta = _ome_tiff_meta(tf.ome_metadata, series)
            elif tf.is_imagej:
                meta = _imagej_meta(tf.imagej_metadata or {}, tf.pages[0])
            else:
                meta = _plain_tiff_meta(tf)
    wrapper = _TiffArray(str(path), series, shape, dtype)
    return _build(wrapper, axes, name=path.name, closers=[wrapper], **meta)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [] if value is None else [value]


def _ome_tiff_meta(xml: str, series: int) -> dict[str, Any]:
    import tifffile

    images = _as_list(tifffile.xml2dict(xml).get("OME", {}).get("Image"))
    if series >= len(images):
        return {}
    px = images[series].get("Pixels", {})
    scale, units = {}, {}
    for letter, key, default_unit in (
        ("X", "PhysicalSizeX", "µm"),
        ("Y", "PhysicalSizeY", "µm"),
        ("Z", "PhysicalSizeZ", "µm"),
        ("T", "TimeIncrement", "s"),
    ):
        if key in px:
            scale[letter] = px[key]
            # the OME schema's default units apply when the attribute is absent
            units[letter] = px.get(key + "Unit", default_unit)
    names = [c.get("Name") for c in _as_list(px.get("Channel"))]
    return {
        "scale": scale,
        "units": units,
        "channel_names": names if names and all(names) else None,
    }


def _imagej_meta(ij: dict[str, Any], page: Any) -> dict[str, Any]:
    unit = ij.get("unit")
    if isinstance(unit, str):
        unit = unit.replace("\\u00B5", "µ")
    scale: dict[str, float] = {}
    units: dict[str, str | None] = {}
    if unit:
        for letter, tag in (("X", "XResolution"), ("Y", "YResolution")):
            res = page.tags.get(tag)
            if res is not None and res.value[0]:
                scale[letter], units[letter] = res.value[1] / res.value[0], unit
        if "spacing" in ij:
            scale["Z"], units["Z"] = ij["spacing"], unit
    if ij.get("finterval"):
        scale["T"], units["T"] = ij["finterval"], ij.get("tunit", "s")
    return {"scale": scale, "units": units}


def _plain_tiff_meta(tf: Any) -> dict[str, Any]:
    page = tf.pages[0]
    if tf.is_svs:
        from tifffile.tifffile import svs_description_metadata

        mpp = svs_description_metadata(page.description).get("MPP")
        if mpp:
            return {"scale": {"X": mpp, "Y": mpp}, "units": {"X": "µm", "Y": "µm"}}
    # Only centimetre resolutions are trusted: inch values are nearly always the
    # 72/96/300 dpi placeholders of image software, not a pixel size.
    if page.tags.get("ResolutionUnit") is None or page.tags["ResolutionUnit"].value != 3:
        return {}
    scale = {}
    for letter, tag in (("X", "XResolution"), ("Y", "YResolution")):
        res = page.tags.get(tag)
        if res is not None and res.value[0]:
            scale[letter] = 1e4 * res.value[1] / res.value[0]
    return {"scale": scale, "units": dict.fromkeys(scale, "µm")}
