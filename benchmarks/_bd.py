"""Bjøntegaard delta PSNR: the mean PSNR gap between two rate-distortion curves.

Each curve is interpolated in log rate by a monotone piecewise-cubic (PCHIP, as the current
Bjøntegaard implementations do instead of the original cubic polynomial, which swings between
few points), and the gap is averaged over the rates both curves cover, optionally cut to a
stated range.
"""

from __future__ import annotations

import math

import numpy as np


def bd_psnr(
    rates_a: list[float],  # [N] bpp of curve A
    psnr_a: list[float],  # [N] dB
    rates_b: list[float],  # [M] bpp of curve B (the reference)
    psnr_b: list[float],  # [M] dB
    rate_range: tuple[float, float] | None = None,
) -> tuple[float, tuple[float, float]] | None:
    """Mean PSNR of A minus that of B over their common log-rate range, and that range in bpp.

    None when the curves (cut to ``rate_range``) share no range or a curve has under two points.

    Examples
    --------
    >>> gap, (low, high) = bd_psnr([0.1, 0.2, 0.4], [30, 33, 36], [0.1, 0.2, 0.4], [29, 32, 35])
    >>> round(gap, 3), round(low, 3), round(high, 3)
    (1.0, 0.1, 0.4)
    """
    from scipy.interpolate import PchipInterpolator

    curves = []
    for rates, psnr in ((rates_a, psnr_a), (rates_b, psnr_b)):
        x, y = np.log(np.asarray(rates, float)), np.asarray(psnr, float)
        order = np.argsort(x)
        x, y = x[order], y[order]
        keep = np.concatenate([[True], np.diff(x) > 0])
        if keep.sum() < 2:
            return None
        curves.append((x[keep], y[keep]))
    low = max(curves[0][0][0], curves[1][0][0])
    high = min(curves[0][0][-1], curves[1][0][-1])
    if rate_range is not None:
        low, high = max(low, math.log(rate_range[0])), min(high, math.log(rate_range[1]))
    if high <= low:
        return None
    areas = [PchipInterpolator(x, y).integrate(low, high) for x, y in curves]
    return float((areas[0] - areas[1]) / (high - low)), (math.exp(low), math.exp(high))
