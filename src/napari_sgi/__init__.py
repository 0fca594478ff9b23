"""napari-sgi: structured 2D Gaussian (SGI) compression of large microscopy images.

Importing the package is cheap: torch, Qt and napari are imported only when a function needs them.
"""

from __future__ import annotations

import os

# OpenMP threads that spin between parallel regions steal the CPU from the threads doing the work
# whenever the machine is shared (measured: a fit step 3-4x slower, benchmarks/bench_volume.py).
# OpenMP reads this once, when a runtime starts, so it is set before torch loads; the user's own
# setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

_LAZY = {
    "fit_image": "napari_sgi.encode.fitting",
    "FitResult": "napari_sgi.encode.fitting",
    "compress": "napari_sgi.encode.pipeline",
    "open_sgi": "napari_sgi.reader",
    "FitCancelled": "napari_sgi.errors",
    "CompressProgress": "napari_sgi.encode.pipeline",
    "CompressResult": "napari_sgi.encode.pipeline",
    "SGIFormatError": "napari_sgi.errors",
    "PRESETS": "napari_sgi.core.presets",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'napari_sgi' has no attribute {name!r}")
