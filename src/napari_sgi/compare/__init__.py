"""An ``.sgi`` file against the codecs users already have, at the same size: no torch, no Qt.

Each slice is coded with JPEG 2000 and JPEG XL (JPEG and AVIF on request) through imagecodecs, at
the largest size not above the slice's share of the ``.sgi`` file, decoded, and measured like the
SGI slice. Used by ``napari-sgi compare``, the napari widget and the benchmarks.

- :mod:`~napari_sgi.compare.codecs`: the codecs, their settings and sweeps
- :mod:`~napari_sgi.compare.mapping`: how 16-bit, float and multichannel data reach a codec
- :mod:`~napari_sgi.compare.same_size`: the largest encoding within a byte budget
- :mod:`~napari_sgi.compare.metrics`: PSNR and SSIM in numpy (the engine's definitions)
- :mod:`~napari_sgi.compare.slices`: one slice compared (dataclasses), RD curves, slice budgets
- :mod:`~napari_sgi.compare.report`: files compared slice by slice, as a table or JSON
- :mod:`~napari_sgi.compare.plot`: the rate-distortion plot (matplotlib, any thread)
"""

from napari_sgi.compare.codecs import CODECS, DEFAULT_CODECS, Codec, parse_codecs
from napari_sgi.compare.mapping import Mapping, mapping_for
from napari_sgi.compare.metrics import quality
from napari_sgi.compare.same_size import Encoded, encode_at_most
from napari_sgi.compare.slices import (
    SGI,
    CodecResult,
    SliceComparison,
    compare_slice,
    rd_curve,
    sgi_result,
    slice_budgets,
)

__all__ = [
    "CODECS",
    "DEFAULT_CODECS",
    "SGI",
    "Codec",
    "CodecResult",
    "Encoded",
    "Mapping",
    "SliceComparison",
    "compare_slice",
    "encode_at_most",
    "mapping_for",
    "parse_codecs",
    "quality",
    "rd_curve",
    "sgi_result",
    "slice_budgets",
]
