"""PSNR and SSIM of decoded arrays in numpy, with the definitions of :mod:`napari_sgi.core.metrics`.

The same numbers as the engine's torch functions (float64; tests check the agreement), without
torch: the comparison with other codecs runs where the encoder is not loaded (the command line,
the widget's background worker).
"""

from __future__ import annotations

import math

import numpy as np

from napari_sgi.core.image import ValueRange

_WINDOW, _SIGMA = 11, 1.5


def _planes(image: np.ndarray, value_range: ValueRange) -> np.ndarray:
    """``[C, H, W]`` float64 in [0, 1] (the engine's normalisation, as float64)."""
    normalized = value_range.normalize(image).astype(np.float64)
    if normalized.ndim == 2:
        normalized = normalized[:, :, None]
    return np.ascontiguousarray(normalized.transpose(2, 0, 1))


def _gaussian() -> np.ndarray:
    coords = np.arange(_WINDOW, dtype=np.float64) - (_WINDOW - 1) / 2
    g = np.exp(-(coords**2) / (2 * _SIGMA**2))
    g = g / g.sum()
    # As core.metrics: the middle row of the normalised 2D window, normalised again.
    row = (g[:, None] * g[None, :])[_WINDOW // 2]
    return row / row.sum()


def _blur(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable correlation of ``[C, H, W]`` with ``g`` along W then H, zero padding."""
    half = len(g) // 2
    height, width = x.shape[1:]
    padded = np.pad(x, ((0, 0), (0, 0), (half, half)))
    rows = sum(g[k] * padded[:, :, k : k + width] for k in range(len(g)))
    padded = np.pad(rows, ((0, 0), (half, half), (0, 0)))
    return sum(g[k] * padded[:, k : k + height, :] for k in range(len(g)))


def psnr_planes(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a - b) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)


def ssim_planes(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two ``[C, H, W]`` images in [0, 1] (11x11 Gaussian window, sigma 1.5)."""
    g = _gaussian()
    c1, c2 = 0.01**2, 0.03**2
    mu_a, mu_b = _blur(a, g), _blur(b, g)
    var_a = _blur(a * a, g) - mu_a**2
    var_b = _blur(b * b, g) - mu_b**2
    cov = _blur(a * b, g) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    )
    return float(ssim_map.mean())


def quality(
    decoded: np.ndarray, original: np.ndarray, value_range: ValueRange | None = None
) -> tuple[float, float]:
    """PSNR (dB) and SSIM of ``decoded`` against ``original``, both ``(H, W[, C])``.

    Both are normalised by ``value_range`` (default: the original's, as the engine measures a 2D
    image: uint8 0..255, other dtypes their min..max).

    Examples
    --------
    >>> original = np.arange(256, dtype=np.uint8).reshape(16, 16)
    >>> p, s = quality(original // 4 * 4, original)
    >>> round(p, 2), round(s, 4)
    (42.69, 0.9989)
    """
    value_range = value_range or ValueRange.of(original)
    if decoded.shape != original.shape:
        raise ValueError(f"decoded shape {decoded.shape} != original shape {original.shape}")
    a, b = _planes(decoded, value_range), _planes(original, value_range)
    return psnr_planes(a, b), ssim_planes(a, b)
