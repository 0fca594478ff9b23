"""Open any supported image lazily: :func:`open_input` picks the reader by type or file suffix.

Readers, one module each: :mod:`~napari_sgi.inputs.tiff` (TIFF, OME-TIFF, ImageJ),
:mod:`~napari_sgi.inputs.zarr` (zarr v2/v3, OME-Zarr 0.4/0.5) and
:mod:`~napari_sgi.inputs.images` (PNG/JPEG/BMP through Pillow, ``.npy``); arrays go straight to
:func:`~napari_sgi.inputs.source.build_source`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np

from napari_sgi.inputs.images import NPY_SUFFIX, PIL_SUFFIXES, open_npy, open_pil
from napari_sgi.inputs.source import ImageSource, build_source
from napari_sgi.inputs.tiff import TIFF_SUFFIXES, open_tiff
from napari_sgi.inputs.zarr import from_zarr_array, from_zarr_group, open_zarr_path

__all__ = ["open_input"]


def open_input(source: Any, *, axes: str | None = None, series: int = 0) -> ImageSource:
    """Open an image lazily as an :class:`ImageSource`.

    Parameters
    ----------
    source : array-like or path
        numpy or dask array; zarr array or group (object or path, zarr v2 or v3);
        OME-Zarr image (level 0 is used); ``.tif``/``.ome.tif`` (read through
        tifffile's zarr store, never whole); ``.png``/``.jpg``/``.bmp`` (small, read
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
        Unsupported or unreadable file, unsupported dtype or shape, or axes not matching the
        data.

    Examples
    --------
    >>> import numpy as np
    >>> open_input(np.zeros((256, 256, 3), np.uint8)).axes
    'YXS'
    >>> src = open_input(np.zeros((3, 64, 64), np.uint16))
    >>> src.axes, src.n_slices, src.read_slice((1,)).shape
    ('ZYX', 3, (64, 64))
    """
    if isinstance(source, np.ndarray | da.Array):
        return build_source(source, axes, name=None)
    if isinstance(source, str | os.PathLike):
        return _open_path(Path(source), axes, series)
    import zarr

    if isinstance(source, zarr.Group):
        return from_zarr_group(source, axes, name=None)
    if isinstance(source, zarr.Array):
        return from_zarr_array(source, axes, name=None)
    if hasattr(source, "shape") and hasattr(source, "dtype") and hasattr(source, "__getitem__"):
        return build_source(source, axes, name=None)
    raise TypeError(f"cannot open {type(source).__name__}: expected an array or a path")


def _open_path(path: Path, axes: str | None, series: int) -> ImageSource:
    if not path.exists():
        raise FileNotFoundError(f"no such file or directory: {str(path)!r}")
    suffix = path.suffix.lower()
    if path.is_dir() or suffix == ".zarr":
        return open_zarr_path(path, axes)
    if suffix in TIFF_SUFFIXES:
        return open_tiff(path, axes, series)
    if suffix in PIL_SUFFIXES:
        return open_pil(path, axes)
    if suffix == NPY_SUFFIX:
        return open_npy(path, axes)
    raise ValueError(
        f"unsupported file type {suffix or '(none)'!r} for {str(path)!r}; supported: zarr / "
        f"OME-Zarr folders, {', '.join((*TIFF_SUFFIXES, *PIL_SUFFIXES, NPY_SUFFIX))}"
    )
