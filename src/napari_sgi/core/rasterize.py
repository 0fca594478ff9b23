"""Public entry point of the sum rasterizer: picks the fastest backend for the tensors' device.

Backends
--------
``"torch"``
    Pure-PyTorch reference (:mod:`._raster_torch`); any device, any float dtype.
``"cpu"``
    Compiled C++/OpenMP kernel (:mod:`._raster_cpu`), float32 on the CPU, instruction set chosen at
    run time.
``"auto"``
    ``"cpu"`` for float32 CPU tensors when the kernel is built, otherwise ``"torch"``.
"""

from __future__ import annotations

import torch

from napari_sgi.core.raster_rules import gaussian_pixel_bounds

BACKENDS = ("auto", "torch", "cpu")


def rasterize_sum(
    means: torch.Tensor,  # [P, 2] (x, y) in pixels of the rendered image, pixel centres at +0.5
    conics: torch.Tensor,  # [P, 3] (A, B, C): inverse covariance [[A, B], [B, C]]
    colors: torch.Tensor,  # [P, C] any number of channels C >= 1
    height: int,
    width: int,
    backend: str = "auto",
) -> torch.Tensor:  # [C, H, W]
    """Render the plain sum of 2D Gaussians, differentiable in ``means``, ``conics`` and ``colors``.

    Each Gaussian adds ``colour * min(0.999, exp(-sigma))`` with
    ``sigma = 0.5 * (A dx^2 + C dy^2) + B dx dy`` to the pixels of its 16x16-tile box where
    ``0 <= sigma <= ln 255`` (:mod:`.raster_rules`). Pixels no Gaussian reaches are 0.

    Examples
    --------
    >>> means = torch.tensor([[8.0, 8.0]])
    >>> conics = torch.tensor([[0.5, 0.0, 0.5]])
    >>> colors = torch.tensor([[1.0, 0.5, 0.0]])
    >>> image = rasterize_sum(means, conics, colors, 16, 16, backend="torch")
    >>> image.shape, round(float(image[0, 7, 7]), 3)
    (torch.Size([3, 16, 16]), 0.882)
    """
    _check_inputs(means, conics, colors, height, width)
    bounds = gaussian_pixel_bounds(means, conics, height, width)
    chosen = _choose_backend(backend, colors)
    if chosen == "cpu":
        from napari_sgi.core._raster_cpu import rasterize_sum_cpu

        return rasterize_sum_cpu(means, conics, colors, bounds, height, width)
    from napari_sgi.core._raster_torch import rasterize_sum_torch

    return rasterize_sum_torch(means, conics, colors, bounds, height, width)


def cpu_kernel_available() -> bool:
    """Whether the compiled CPU kernel was built and loads on this machine."""
    try:
        from napari_sgi.core._raster_cpu import kernel_isa

        kernel_isa()
    except (ImportError, OSError):
        return False
    return True


def _choose_backend(backend: str, colors: torch.Tensor) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"unknown rasterizer backend {backend!r}; choose one of {BACKENDS}")
    if backend != "auto":
        return backend
    if colors.device.type == "cpu" and colors.dtype == torch.float32 and cpu_kernel_available():
        return "cpu"
    return "torch"


def _check_inputs(means, conics, colors, height, width) -> None:
    n = means.shape[0] if means.ndim == 2 else -1
    if means.ndim != 2 or means.shape[1] != 2:
        raise ValueError(f"means must have shape [P, 2], got {tuple(means.shape)}")
    if conics.shape != (n, 3):
        raise ValueError(f"conics must have shape [{n}, 3], got {tuple(conics.shape)}")
    if colors.ndim != 2 or colors.shape[0] != n or colors.shape[1] < 1:
        raise ValueError(f"colors must have shape [{n}, C] with C >= 1, got {tuple(colors.shape)}")
    if height < 1 or width < 1:
        raise ValueError(f"image size must be positive, got {height}x{width}")
    if not (means.device == conics.device == colors.device):
        raise ValueError("means, conics and colors must be on the same device")
