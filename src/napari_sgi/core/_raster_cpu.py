"""Compiled CPU backend of the sum rasterizer: a C++/OpenMP kernel in a ``torch.autograd.Function``.

The kernel (``_kernels/raster_kernel.cpp``, built by ``pip install``) is a plain C library on
float32 buffers, called through :mod:`ctypes`, which releases the GIL. It holds an AVX-512, an
AVX2+FMA and a baseline x86-64 version of the same code; the best one the CPU supports is used
unless the environment variable ``NAPARI_SGI_ISA`` (``avx512``, ``avx2`` or ``baseline``, read at
every call) asks for another. It takes exactly the (Gaussian, pixel) pairs of
:mod:`._raster_torch`, its gradients are those of the same formula, and its result does not depend
on the number of threads.

It evaluates only the pixels within a pixel of each Gaussian's ellipse ``sigma <= ln 255``, not its
whole box: the same pairs pass the sigma test, and the image and gradients are the same as with
every pixel of the box evaluated, which ``NAPARI_SGI_NO_SKIP=1`` (read at every call) forces.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import os

import torch

from napari_sgi.core.raster_rules import ALPHA_MAX, SIGMA_CUT

ISA_ENV = "NAPARI_SGI_ISA"
NO_SKIP_ENV = "NAPARI_SGI_NO_SKIP"
ISAS = ("baseline", "avx2", "avx512")  # index = the kernel's instruction-set code
_ERRORS = {1: "instruction set not supported by this CPU", 2: "bad sizes", 3: "out of memory"}

_F32 = ctypes.POINTER(ctypes.c_float)
_I32 = ctypes.POINTER(ctypes.c_int32)
_I64 = ctypes.c_int64
# isa, threads, skip; means, conics, colors; bounds; count, channels, height, width
_COMMON_ARGS = [ctypes.c_int] * 3 + [_F32] * 3 + [_I32] + [_I64] * 4


@functools.cache
def _library() -> ctypes.CDLL:
    spec = importlib.util.find_spec("napari_sgi.core._raster_kernel")
    if spec is None or not spec.origin:
        raise ImportError(
            "the compiled rasterizer is not built: run `pip install -e .` in the repository"
        )
    lib = ctypes.CDLL(spec.origin)
    lib.sgi_raster_isa_supported.argtypes = [ctypes.c_int]
    lib.sgi_raster_isa_supported.restype = ctypes.c_int
    floats = [ctypes.c_float, ctypes.c_float]
    lib.sgi_raster_forward.argtypes = [*_COMMON_ARGS, *floats, _F32]
    lib.sgi_raster_forward.restype = ctypes.c_int
    lib.sgi_raster_backward.argtypes = [*_COMMON_ARGS, *floats, _F32, _F32, _F32, _F32]
    lib.sgi_raster_backward.restype = ctypes.c_int
    lib.sgi_raster_evaluated_pairs.argtypes = [
        *_COMMON_ARGS[1:],
        ctypes.c_float,
        ctypes.POINTER(ctypes.c_int64),
    ]
    lib.sgi_raster_evaluated_pairs.restype = ctypes.c_int
    return lib


def available_isas() -> tuple[str, ...]:
    """The instruction sets of the compiled kernel that this CPU can run, slowest first."""
    lib = _library()
    return tuple(name for code, name in enumerate(ISAS) if lib.sgi_raster_isa_supported(code))


def kernel_isa() -> str:
    """The instruction set the next call will use: ``$NAPARI_SGI_ISA`` if set, else the best one.

    Raises ImportError or OSError when the kernel is not built or does not load, and ValueError when
    ``$NAPARI_SGI_ISA`` names an instruction set that is unknown or that this CPU lacks.
    """
    supported = available_isas()
    requested = os.environ.get(ISA_ENV, "").strip().lower()
    if not requested:
        return supported[-1]
    if requested not in supported:
        raise ValueError(
            f"{ISA_ENV}={requested!r}: this CPU and kernel support only {', '.join(supported)}"
        )
    return requested


def skipping_enabled() -> bool:
    """False when ``$NAPARI_SGI_NO_SKIP`` is set (to anything but ``0``): evaluate whole boxes."""
    return os.environ.get(NO_SKIP_ENV, "").strip() in ("", "0")


def evaluated_pairs(
    means: torch.Tensor,  # [P, 2] float32
    conics: torch.Tensor,  # [P, 3] float32
    colors: torch.Tensor,  # [P, C] float32
    bounds: torch.Tensor,  # [P, 4] int32
    height: int,
    width: int,
) -> int:
    """The (Gaussian, pixel) pairs the kernel evaluates, forward or backward (whole tile rows)."""
    tensors = [t.detach().to(torch.float32).contiguous() for t in (means, conics, colors)]
    bounds = bounds.to(device="cpu", dtype=torch.int32).contiguous()
    pairs = ctypes.c_int64(0)
    args = _kernel_args(ISAS[0], *tensors, bounds, int(height), int(width), skipping_enabled())
    # The count takes neither an instruction set (args[0]) nor alpha_max (args[-1]).
    _check(_library().sgi_raster_evaluated_pairs(*args[1:-1], ctypes.byref(pairs)))
    return pairs.value


def rasterize_sum_cpu(
    means: torch.Tensor,  # [P, 2] float32 (x, y) in pixels
    conics: torch.Tensor,  # [P, 3] float32 (A, B, C) of the inverse covariance
    colors: torch.Tensor,  # [P, C] float32
    bounds: torch.Tensor,  # [P, 4] int32 (x0, y0, x1, y1), pixel box, exclusive upper ends
    height: int,
    width: int,
) -> torch.Tensor:  # [C, H, W] float32
    """Differentiable sum of ``colour * min(0.999, exp(-sigma))`` over the pairs of the given boxes.

    Same contract as :func:`._raster_torch.rasterize_sum_torch`, for float32 CPU tensors only.
    Gradients flow to ``means``, ``conics`` and ``colors``; ``bounds`` is a constant.
    """
    for name, tensor in (("means", means), ("conics", conics), ("colors", colors)):
        if tensor.dtype != torch.float32 or tensor.device.type != "cpu":
            raise ValueError(
                f"the cpu rasterizer needs float32 CPU tensors; {name} is {tensor.dtype} "
                f"on {tensor.device}"
            )
    if bounds.shape != (means.shape[0], 4):
        raise ValueError(f"bounds must have shape [{means.shape[0]}, 4], got {tuple(bounds.shape)}")
    bounds = bounds.to(device="cpu", dtype=torch.int32).contiguous()
    return _RasterizeSumCpu.apply(means, conics, colors, bounds, int(height), int(width))


def _ptr(tensor: torch.Tensor, kind: type) -> ctypes._Pointer:
    return ctypes.cast(tensor.data_ptr(), kind)


class _RasterizeSumCpu(torch.autograd.Function):
    @staticmethod
    def forward(ctx, means, conics, colors, bounds, height, width):
        means, conics, colors = (t.detach().contiguous() for t in (means, conics, colors))
        isa, skip = kernel_isa(), skipping_enabled()
        image = torch.empty(colors.shape[1], height, width, dtype=torch.float32)
        status = _library().sgi_raster_forward(
            *_kernel_args(isa, means, conics, colors, bounds, height, width, skip),
            _ptr(image, _F32),
        )
        _check(status)
        ctx.save_for_backward(means, conics, colors, bounds)
        ctx.isa, ctx.skip, ctx.size = isa, skip, (height, width)
        return image

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_image):
        means, conics, colors, bounds = ctx.saved_tensors
        height, width = ctx.size
        # The gradient of image.sum(), say, arrives expanded (stride 0); the kernel reads it dense.
        grad_image = grad_image.to(torch.float32).contiguous()
        grads = [torch.empty_like(t) for t in (means, conics, colors)]
        status = _library().sgi_raster_backward(
            *_kernel_args(ctx.isa, means, conics, colors, bounds, height, width, ctx.skip),
            _ptr(grad_image, _F32),
            *(_ptr(g, _F32) for g in grads),
        )
        _check(status)
        needed = ctx.needs_input_grad
        return *(g if needed[i] else None for i, g in enumerate(grads)), None, None, None


_KERNEL_THREADS: int | None = None


def set_kernel_threads(threads: int | None) -> None:
    """Threads of the compiled kernel; None follows ``torch.get_num_threads()``.

    The fit runs torch's small element-wise ops on one thread and gives the kernel all of them:
    torch's OpenMP pool and the kernel's are different runtimes, and threads of one spinning while
    the other works cost more than the small ops gain from a second thread.
    """
    global _KERNEL_THREADS
    _KERNEL_THREADS = None if threads is None else max(1, int(threads))


def kernel_threads() -> int:
    return _KERNEL_THREADS or torch.get_num_threads()


def _kernel_args(isa, means, conics, colors, bounds, height, width, skip) -> list:
    return [
        ISAS.index(isa),
        kernel_threads(),
        int(skip),
        _ptr(means, _F32),
        _ptr(conics, _F32),
        _ptr(colors, _F32),
        _ptr(bounds, _I32),
        means.shape[0],
        colors.shape[1],
        height,
        width,
        SIGMA_CUT,
        ALPHA_MAX,
    ]


def _check(status: int) -> None:
    if status != 0:
        raise RuntimeError(f"compiled rasterizer failed: {_ERRORS.get(status, f'error {status}')}")
