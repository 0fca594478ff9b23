"""Image quality metrics on normalised images: PSNR relative to the data range, and SSIM."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def psnr(image: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB, over all pixels and channels.

    Examples
    --------
    >>> target = torch.zeros(1, 4, 4)
    >>> round(psnr(target + 0.1, target), 2)
    20.0
    """
    mse = float(torch.mean((image.double() - target.double()) ** 2))
    if mse == 0:
        return math.inf
    return 10.0 * math.log10(data_range**2 / mse)


def distortion(
    render: torch.Tensor,  # [C, H, W]
    target: torch.Tensor,  # [C, H, W]
    kind: str = "mse",
    weights: torch.Tensor | None = None,  # [H, W] >= 0, not all 0
) -> torch.Tensor:
    """A fit's distortion term: mean squared (``"mse"``) or absolute (``"l1"``) error, one fused
    op forward and one backward (a training step takes it on every render).

    With ``weights``, the weighted mean over the pixels (``sum(w * e) / sum(w)``, per channel):
    a region of a large slice weighs its box by the blend weight the decoder gives each pixel
    (:func:`napari_sgi.core.regions.box_weights`). All-one weights give the plain mean.

    Examples
    --------
    >>> float(distortion(torch.full((1, 2, 2), 0.5), torch.zeros(1, 2, 2), "l1"))
    0.5
    >>> float(distortion(torch.tensor([[[1.0, 0.0]]]), torch.zeros(1, 1, 2), "mse",
    ...                  torch.tensor([[1.0, 3.0]])))
    0.25
    """
    if weights is None:
        return F.mse_loss(render, target) if kind == "mse" else F.l1_loss(render, target)
    error = (render - target) ** 2 if kind == "mse" else (render - target).abs()
    return (error * weights).sum() / (weights.sum() * render.shape[0])


def clamped_mse(
    render: torch.Tensor,  # [C, H, W]
    target: torch.Tensor,  # [C, H, W]
    weights: torch.Tensor | None = None,  # [H, W], as :func:`distortion` takes them
) -> float:
    """Mean squared error of ``render`` clamped to [0, 1], as a file would store it, without
    gradients: what a fit's progress reports turn into PSNR.

    Examples
    --------
    >>> clamped_mse(torch.full((1, 2, 2), 1.5), torch.full((1, 2, 2), 0.5))
    0.25
    """
    with torch.no_grad():
        return float(distortion(render.clamp(0, 1), target, "mse", weights))


def _gaussian_window(size: int, sigma: float, dtype, device) -> torch.Tensor:
    coords = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim(image: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> float:
    """Structural similarity of two ``[C, H, W]`` images (11x11 Gaussian window, sigma 1.5).

    The same definition as the SGI paper's evaluation (per channel, zero padding, mean of the map),
    so that our numbers compare with its tables.

    Examples
    --------
    >>> target = torch.rand(3, 32, 32)
    >>> round(ssim(target, target), 6)
    1.0
    """
    image = image.double()[None]
    target = target.double()[None]
    channels = image.shape[1]
    # The 11x11 Gaussian window is separable: two 1D passes (zero padding in each) give the same
    # map as the 2D convolution at a fraction of its cost.
    g = _gaussian_window(11, 1.5, image.dtype, image.device)[5:6, :].reshape(-1)
    g = g / g.sum()
    rows = g.view(1, 1, 1, 11).expand(channels, 1, 1, 11).contiguous()
    cols = g.view(1, 1, 11, 1).expand(channels, 1, 11, 1).contiguous()

    def blur(x):
        x = F.conv2d(x, rows, padding=(0, 5), groups=channels)
        return F.conv2d(x, cols, padding=(5, 0), groups=channels)

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_x, mu_y = blur(image), blur(target)
    var_x = blur(image * image) - mu_x**2
    var_y = blur(target * target) - mu_y**2
    cov = blur(image * target) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    )
    return float(ssim_map.mean())
