"""The Python API shared by the CLI, the napari plugin and users' scripts, in one place.

Each name is defined where its stage lives; this module only gathers them (``import napari_sgi``
stays light: the package imports each name on first use, from its own module).

Examples
--------
>>> import numpy as np
>>> from napari_sgi.api import fit_image
>>> image = (np.random.default_rng(0).random((32, 32)) * 4000).astype(np.uint16)
>>> result = fit_image(image, preset="fast", iterations=20)
>>> result.decoded.dtype, result.decoded.shape
(dtype('uint16'), (32, 32))

From the napari console:

>>> from napari_sgi.api import compress, open_sgi  # doctest: +SKIP
>>> result = compress(viewer.layers["nuclei"].data, "nuclei.sgi", lmbda=0.002)  # doctest: +SKIP
>>> image = open_sgi("nuclei.sgi")  # doctest: +SKIP
>>> viewer.add_image(image.levels, multiscale=True)  # doctest: +SKIP
"""

from __future__ import annotations

from napari_sgi.core.device import resolve_device
from napari_sgi.core.presets import PRESETS, FitConfig, get_preset
from napari_sgi.encode.fitting import FitResult, fit_image
from napari_sgi.encode.pipeline import CompressProgress, CompressResult, compress
from napari_sgi.errors import FitCancelled, SGIFormatError
from napari_sgi.reader import SGIImage, open_sgi

__all__ = [
    "PRESETS",
    "CompressProgress",
    "CompressResult",
    "FitCancelled",
    "FitConfig",
    "FitResult",
    "SGIFormatError",
    "SGIImage",
    "compress",
    "fit_image",
    "get_preset",
    "open_sgi",
    "resolve_device",
]
