"""Compiled seed decode for training: seeds to a level's Gaussians and tile boxes, in one call.

A training step decodes every seed into K Gaussians, scales them to the level it renders and
boxes them for the rasterizer. In PyTorch that is some sixty small operations forward and as many
backward (:meth:`.SGIModel.level_gaussians`, :func:`.raster_rules.gaussian_pixel_bounds`), each
paying a dispatch and an autograd node on a few thousand values; here it is one C call each way
(``_kernels/gaussian_decode.cpp``, in the rasterizer's library). The PyTorch code is the reference,
and what a file's decoder runs: the two agree to float32 rounding (tests), and a fit measures the
quality it reports with the reference, so the kernel only ever changes how fast a fit trains.

Examples
--------
>>> from napari_sgi.core.model import ModelConfig, SGIModel
>>> model = SGIModel(ModelConfig(height=32, width=48, channels=1, feature_dim=4,
...                              gaussians_per_seed=2, seed_count=6))
>>> means, conics, colors, bounds = level_gaussians_cpu(model, level=1)
>>> means.shape, conics.shape, colors.shape, bounds.shape
(torch.Size([12, 2]), torch.Size([12, 3]), torch.Size([12, 1]), torch.Size([12, 4]))
"""

from __future__ import annotations

import ctypes
import functools

import torch

from napari_sgi.core._raster_cpu import _F32, _I32, _check, _library, _ptr, kernel_threads
from napari_sgi.core.image import level_factors, level_shape

_I64 = ctypes.c_int64
_FLOATS = [ctypes.c_float] * 5  # scale_x, scale_y, and the conic's three factors


@functools.cache
def _decoder() -> ctypes.CDLL:
    lib = _library()
    lib.sgi_decode_forward.argtypes = [
        ctypes.c_int,
        _I64,
        _I64,
        *[_F32] * 4,
        *_FLOATS,
        _I64,
        _I64,
        _F32,
        _F32,
        _I32,
    ]
    lib.sgi_decode_forward.restype = ctypes.c_int
    lib.sgi_decode_backward.argtypes = [ctypes.c_int, _I64, _I64, *[_F32] * 3, *_FLOATS]
    lib.sgi_decode_backward.argtypes += [_F32] * 5
    lib.sgi_decode_backward.restype = ctypes.c_int
    return lib


def level_gaussians_cpu(model, level: int = 0, attributes=None):
    """What ``model.level_gaussians(level, attributes)`` returns, plus the rasterizer's boxes
    (``gaussian_pixel_bounds`` of those means and conics), through the compiled decode.

    Returns means ``[N*K, 2]``, conics ``[N*K, 3]``, colors ``[N*K, C]`` and bounds ``[N*K, 4]``
    int32; the first three are differentiable in the attributes and the MLPs' weights.
    """
    attributes = attributes or model.attributes()
    cov, colors = model.mlp_outputs(attributes.features)  # [N, K, 3], [N*K, C]
    height, width = model.config.height, model.config.width
    mean_factors, conic_factors = level_factors(height, width, level)
    # float32 values, as SGIModel.level_gaussians multiplies by them
    factors = torch.tensor(mean_factors + conic_factors, dtype=torch.float32).tolist()
    size = level_shape(height, width, level)
    means, conics, bounds = _DecodeCpu.apply(
        model.anchors, attributes.offsets, attributes.log_scaling, cov, size, factors
    )
    return means, conics, colors, bounds


class _DecodeCpu(torch.autograd.Function):
    @staticmethod
    def forward(ctx, anchors, offsets, log_scaling, cov, size, factors):
        anchors, offsets, log_scaling, cov = (
            t.detach().to(torch.float32).contiguous() for t in (anchors, offsets, log_scaling, cov)
        )
        seeds, k = offsets.shape[:2]
        means = torch.empty(seeds * k, 2)
        conics = torch.empty(seeds * k, 3)
        bounds = torch.empty(seeds * k, 4, dtype=torch.int32)
        status = _decoder().sgi_decode_forward(
            kernel_threads(),
            seeds,
            k,
            *(_ptr(t, _F32) for t in (anchors, offsets, log_scaling, cov)),
            *factors,
            *size,
            _ptr(means, _F32),
            _ptr(conics, _F32),
            _ptr(bounds, _I32),
        )
        _check(status)
        ctx.save_for_backward(offsets, log_scaling, cov)
        ctx.factors = factors
        ctx.mark_non_differentiable(bounds)
        return means, conics, bounds

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_means, grad_conics, _grad_bounds):
        offsets, log_scaling, cov = ctx.saved_tensors
        # Held in names: the kernel reads them after _ptr has returned.
        grad_means = grad_means.to(torch.float32).contiguous()
        grad_conics = grad_conics.to(torch.float32).contiguous()
        grads = [torch.empty_like(t) for t in (offsets, log_scaling, cov)]
        seeds, k = offsets.shape[:2]
        status = _decoder().sgi_decode_backward(
            kernel_threads(),
            seeds,
            k,
            *(_ptr(t, _F32) for t in (offsets, log_scaling, cov)),
            *ctx.factors,
            _ptr(grad_means, _F32),
            _ptr(grad_conics, _F32),
            *(_ptr(g, _F32) for g in grads),
        )
        _check(status)
        return None, *grads, None, None
