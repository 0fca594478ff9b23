"""Pure-PyTorch reference of the sum rasterizer (runs on any device, differentiable by autograd).

It enumerates every (Gaussian, pixel) pair inside each Gaussian's tile box, evaluates the Gaussian
there and scatter-adds the weighted colours. Short and readable on purpose: the compiled kernels are
tested against it.
"""

from __future__ import annotations

import torch

from napari_sgi.core.raster_rules import ALPHA_MAX, SIGMA_CUT

# Pairs evaluated per chunk: bounds the temporary memory to a few hundred MB at any image size.
_PAIRS_PER_CHUNK = 1 << 22


def rasterize_sum_torch(
    means: torch.Tensor,  # [P, 2] (x, y) in pixels
    conics: torch.Tensor,  # [P, 3] (A, B, C) of the inverse covariance
    colors: torch.Tensor,  # [P, C]
    bounds: torch.Tensor,  # [P, 4] int (x0, y0, x1, y1), pixel box, exclusive upper ends
    height: int,
    width: int,
) -> torch.Tensor:  # [C, H, W]
    """Sum of ``colour * min(0.999, exp(-sigma))`` over the pairs passing the contribution rule."""
    n_channels = colors.shape[1]
    if len(means) == 0:
        # Still a function of the (empty) inputs, so that backward() works and gives empty grads.
        connect = 0 * (means.sum() + conics.sum() + colors.sum())
        return colors.new_zeros(n_channels, height, width) + connect
    image = colors.new_zeros(height * width, n_channels)
    box_w = (bounds[:, 2] - bounds[:, 0]).clamp_min(0).long()
    box_h = (bounds[:, 3] - bounds[:, 1]).clamp_min(0).long()
    pairs_per_gaussian = box_w * box_h
    ends = torch.cumsum(pairs_per_gaussian, 0)
    start = 0
    while start < len(means):
        # The largest run of Gaussians whose pairs fit in one chunk (at least one Gaussian).
        base = ends[start - 1] if start > 0 else ends.new_zeros(())
        stop = int(torch.searchsorted(ends, base + _PAIRS_PER_CHUNK, right=True))
        stop = max(stop, start + 1)
        chunk = slice(start, stop)
        counts = pairs_per_gaussian[chunk]
        gaussian = torch.repeat_interleave(torch.arange(start, stop, device=means.device), counts)
        first_pair = torch.cumsum(counts, 0) - counts
        local = torch.arange(len(gaussian), device=means.device) - torch.repeat_interleave(
            first_pair, counts
        )
        px = bounds[gaussian, 0].long() + local % box_w[gaussian]
        py = bounds[gaussian, 1].long() + local // box_w[gaussian]
        dx = means[gaussian, 0] - (px.to(means.dtype) + 0.5)
        dy = means[gaussian, 1] - (py.to(means.dtype) + 0.5)
        conic = conics[gaussian]
        sigma = 0.5 * (conic[:, 0] * dx * dx + conic[:, 2] * dy * dy) + conic[:, 1] * dx * dy
        keep = (sigma >= 0) & (sigma <= SIGMA_CUT)
        alpha = torch.clamp(torch.exp(-sigma[keep]), max=ALPHA_MAX)
        contribution = colors[gaussian[keep]] * alpha[:, None]
        image = image.index_add(0, (py * width + px)[keep], contribution)
        start = stop
    return image.T.reshape(n_channels, height, width)
