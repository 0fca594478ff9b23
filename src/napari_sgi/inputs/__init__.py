"""Inputs: open microscopy images lazily as a stack of 2D slices, the unit of compression.

:func:`open_input` turns a numpy/dask array, a zarr array or group, an OME-Zarr image (NGFF 0.4 /
0.5), a TIFF / OME-TIFF / ImageJ TIFF, a PNG/JPEG/BMP or a ``.npy`` file into an
:class:`ImageSource`: a lazy dask array plus axes, physical scale, units and channel names. Pixel
data is read only by :meth:`ImageSource.read_slice`.

Modules: :mod:`~napari_sgi.inputs.source` (the :class:`ImageSource` and its layout rules),
:mod:`~napari_sgi.inputs.open` (choosing the reader), :mod:`~napari_sgi.inputs.tiff`,
:mod:`~napari_sgi.inputs.zarr`, :mod:`~napari_sgi.inputs.images` (the readers) and
:mod:`~napari_sgi.inputs.axes` (axis letters and units, shared with the exports).
"""

from napari_sgi.inputs.open import open_input
from napari_sgi.inputs.source import ImageSource

__all__ = ["ImageSource", "open_input"]
