"""TIFF, OME-TIFF and ImageJ hyperstacks, read lazily through tifffile's zarr store.

Opening parses the IFDs and metadata only; pixels are read plane by plane when a slice is asked
for. Physical sizes come from OME-XML, ImageJ metadata, an SVS description or centimetre
resolution tags (inch resolutions are taken for the dpi placeholders they nearly always are).

Example
-------
>>> import numpy as np, tempfile, os, tifffile
>>> path = os.path.join(tempfile.mkdtemp(), "a.tif")
>>> tifffile.imwrite(path, np.zeros((3, 16, 16), np.uint16), photometric="minisblack")
>>> with open_tiff(path, None, 0) as src:
...     src.axes, src.read_slice((2,)).shape
('ZYX', (16, 16))
"""

from __future__ import annotations

import struct
import threading
from pathlib import Path
from typing import Any

import numpy as np

from napari_sgi.inputs.axes import map_tifffile_axes
from napari_sgi.inputs.source import ImageSource, build_source

__all__ = ["TIFF_SUFFIXES", "open_tiff"]

TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".tf8", ".tf2")


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


def open_tiff(path: str | Path, axes: str | None, series: int) -> ImageSource:
    """Open TIFF ``series`` (level 0 of a pyramid) lazily, with its axes and physical sizes."""
    import tifffile

    path = Path(path)
    try:
        tf = tifffile.TiffFile(path)
    except (tifffile.TiffFileError, struct.error) as exc:  # struct.error: a few bytes only
        raise ValueError(f"{str(path)!r} is not a readable TIFF file: {exc}") from exc
    with tf:  # reads IFDs and metadata only
        if not tf.series:
            raise ValueError(f"{str(path)!r} holds no image (a truncated or empty TIFF file)")
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
    return build_source(wrapper, axes, name=path.name, closers=[wrapper], **meta)


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
