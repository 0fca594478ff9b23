"""Build of the compiled CPU rasterizer and arithmetic decoder; the rest of the package metadata
lives in pyproject.toml.

Both are plain C ABI shared libraries, loaded with ctypes. The rasterizer
(``napari_sgi.core._raster_cpu``, with the training steps' seed decode of
``napari_sgi.core._decode_cpu``) holds every instruction-set variant; the variant is chosen at run
time, so no flag here may tie the build to the machine that compiles it. The decoder
(``napari_sgi.codec.native_decoder``) decodes torchac's streams without holding the GIL.
"""

from __future__ import annotations

from setuptools import Extension, setup

RASTER_KERNELS = "src/napari_sgi/core/_kernels"
CODEC_KERNELS = "src/napari_sgi/codec/_kernels"

COMPILE_ARGS = [
    "-std=c++17",
    "-O3",
    "-fopenmp",
    "-fvisibility=hidden",
    # Without these gcc does not vectorise the masked loops (selects could trap, or set errno).
    "-fno-trapping-math",
    "-fno-math-errno",
    # sigma must round as in the PyTorch reference, so that both backends take the same pairs.
    "-ffp-contract=off",
]

raster_kernel = Extension(
    "napari_sgi.core._raster_kernel",
    sources=[f"{RASTER_KERNELS}/raster_kernel.cpp", f"{RASTER_KERNELS}/gaussian_decode.cpp"],
    depends=[f"{RASTER_KERNELS}/raster_body.inc"],
    language="c++",
    extra_compile_args=COMPILE_ARGS,
    extra_link_args=["-fopenmp"],
)

arith_decoder = Extension(
    "napari_sgi.codec._arith_decoder",
    sources=[f"{CODEC_KERNELS}/arith_decoder.c"],
    language="c",
    extra_compile_args=["-O2", "-fvisibility=hidden"],
)

setup(ext_modules=[raster_kernel, arith_decoder])
