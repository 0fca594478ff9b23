"""The contribution rule shared by every rasterizer backend (see docs/method.md, rasterizer).

A Gaussian g adds ``colour_g * min(0.999, exp(-sigma))`` to pixel p if and only if
(i) p lies in g's box of whole 16x16 tiles around its 3-sigma radius, (ii) sigma >= 0 and
(iii) sigma <= ln 255, i.e. exp(-sigma) >= 1/255. The test is made on sigma, not on exp(-sigma), so
that every backend takes exactly the same pairs whatever its exp implementation.
"""

from __future__ import annotations

import math

import torch

TILE = 16
ALPHA_MAX = 0.999
SIGMA_CUT = float(torch.tensor(math.log(255.0), dtype=torch.float32))  # 5.5412636


def gaussian_pixel_bounds(
    means: torch.Tensor,  # [P, 2] (x, y) in pixels
    conics: torch.Tensor,  # [P, 3] (A, B, C) of the inverse covariance
    height: int,
    width: int,
) -> torch.Tensor:  # [P, 4] int32 (x0, y0, x1, y1)
    """Pixel box ``[x0, x1) x [y0, y1)`` of the tiles a Gaussian touches, clipped to the image.

    The radius is ``ceil(3 * sqrt(lambda_max))`` of the covariance (the conic's inverse), with the
    eigenvalue floor of the reference rasterizer; Gaussians whose conic is not positive definite, or
    whose box is empty, get an empty box and are never rendered.

    Examples
    --------
    >>> means = torch.tensor([[20.0, 5.0]])
    >>> conics = torch.tensor([[1.0, 0.0, 1.0]])  # unit isotropic Gaussian
    >>> gaussian_pixel_bounds(means, conics, 64, 64).tolist()
    [[16, 0, 32, 16]]
    """
    with torch.no_grad():
        means = means.double()
        a, b, c = conics.double().unbind(-1)
        det_conic = a * c - b * b
        valid = (
            (det_conic > 0) & (a > 0) & torch.isfinite(det_conic) & torch.isfinite(means).all(-1)
        )
        safe_det = torch.where(valid, det_conic, torch.ones_like(det_conic))
        cov_xx, cov_yy = c / safe_det, a / safe_det
        det_cov = 1.0 / safe_det
        mid = 0.5 * (cov_xx + cov_yy)
        lambda_max = mid + torch.sqrt(torch.clamp(mid * mid - det_cov, min=0.1))
        radius = torch.ceil(3.0 * torch.sqrt(lambda_max))
        tiles_x, tiles_y = -(-width // TILE), -(-height // TILE)
        x, y = means.unbind(-1)
        tx0 = torch.floor((x - radius) / TILE).clamp(0, tiles_x)
        ty0 = torch.floor((y - radius) / TILE).clamp(0, tiles_y)
        tx1 = torch.floor((x + radius) / TILE + 1).clamp(0, tiles_x)
        ty1 = torch.floor((y + radius) / TILE + 1).clamp(0, tiles_y)
        x0, y0 = tx0 * TILE, ty0 * TILE
        x1, y1 = (tx1 * TILE).clamp(max=width), (ty1 * TILE).clamp(max=height)
        empty = ~valid | (x1 <= x0) | (y1 <= y0)
        box = torch.stack([x0, y0, x1, y1], -1)
        box[empty] = 0
        return box.to(torch.int32).to(conics.device)
