"""Validation, normalisation and pyramids of the images that the engine fits.

The engine works on float32 tensors ``[C, H, W]`` in [0, 1]. The value range used for normalisation
is kept (:class:`ValueRange`) so that a decoded image comes back in the original dtype and range.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SUPPORTED_KINDS = "uif"  # unsigned and signed integers, floats
MIN_SIDE = 4


@dataclass(frozen=True)
class ValueRange:
    """The data range ``[low, high]`` mapped to [0, 1], and the dtype to decode back to.

    uint8 images use their full range 0..255 (as image codecs do); every other dtype uses the data's
    own minimum and maximum, so that PSNR is relative to the range the data really uses.

    Examples
    --------
    >>> ValueRange.of(np.array([[0, 1000], [20, 30]], dtype=np.uint16))
    ValueRange(low=0.0, high=1000.0, dtype='uint16')
    """

    low: float
    high: float
    dtype: str

    @classmethod
    def of(cls, array: np.ndarray) -> ValueRange:
        if array.dtype == np.uint8:
            return cls(0.0, 255.0, "uint8")
        return cls(float(np.min(array)), float(np.max(array)), array.dtype.name)

    @property
    def span(self) -> float:
        # A constant image still needs a finite, non-zero scale.
        return self.high - self.low if self.high > self.low else 1.0

    def normalize(self, array: np.ndarray) -> np.ndarray:
        """Map the data to float32 in [0, 1]."""
        return ((np.asarray(array, dtype=np.float64) - self.low) / self.span).astype(np.float32)

    def denormalize(self, array: np.ndarray) -> np.ndarray:
        """Map [0, 1] floats back to the original dtype and range (clipped; integers rounded)."""
        values = np.clip(np.asarray(array, dtype=np.float64), 0.0, 1.0) * self.span + self.low
        dtype = np.dtype(self.dtype)
        if dtype.kind in "ui":
            return np.rint(values).astype(dtype)
        return values.astype(dtype)


def validate_image(image: np.ndarray) -> np.ndarray:
    """Check that ``image`` is a finite 2D image ``(H, W)`` or ``(H, W, C)`` and return it as numpy.

    Raises
    ------
    ValueError
        With a message naming the problem: wrong number of dimensions, too small, empty,
        unsupported dtype, NaN or infinite values.
    """
    if hasattr(image, "compute") and not isinstance(image, np.ndarray):
        image = image.compute()
    image = np.asarray(image)
    if image.dtype == bool or image.dtype.kind not in SUPPORTED_KINDS:
        raise ValueError(
            f"unsupported image dtype {image.dtype}: use an integer or floating-point image"
        )
    if image.ndim not in (2, 3):
        raise ValueError(
            f"expected a 2D image (H, W) or (H, W, C), got an array of shape {image.shape}; "
            "volumes and stacks are compressed slice by slice"
        )
    if image.size == 0:
        raise ValueError(f"the image is empty (shape {image.shape})")
    if min(image.shape[:2]) < MIN_SIDE:
        raise ValueError(
            f"the image is too small ({image.shape[0]}x{image.shape[1]}); "
            f"each side needs at least {MIN_SIDE} pixels"
        )
    if image.ndim == 3 and image.shape[2] > 64:
        raise ValueError(
            f"the last axis has {image.shape[2]} channels: expected (H, W, C) with C <= 64; "
            "is this a stack? compress stacks slice by slice"
        )
    if image.dtype.kind == "f" and not np.isfinite(image).all():
        bad = int(np.size(image) - np.isfinite(image).sum())
        raise ValueError(f"the image contains {bad} NaN or infinite values")
    return image


def to_tensor(image: np.ndarray, value_range: ValueRange):
    """Normalised float32 torch tensor ``[C, H, W]`` of an ``(H, W[, C])`` image."""
    import torch

    normalized = value_range.normalize(image)
    if normalized.ndim == 2:
        normalized = normalized[:, :, None]
    return torch.from_numpy(np.ascontiguousarray(normalized.transpose(2, 0, 1)))


def from_tensor(tensor, value_range: ValueRange, n_dims: int) -> np.ndarray:
    """Inverse of :func:`to_tensor`: ``[C, H, W]`` to ``(H, W[, C])`` in the original dtype."""
    array = tensor.detach().cpu().numpy().transpose(1, 2, 0)
    if n_dims == 2:
        array = array[:, :, 0]
    return value_range.denormalize(array)


def level_shape(height: int, width: int, level: int) -> tuple[int, int]:
    """Pixel size of pyramid level ``level`` (1/2^level of the full resolution, rounded)."""
    factor = 2**level
    return max(1, round(height / factor)), max(1, round(width / factor))


def level_factors(height: int, width: int, level: int) -> tuple[list[float], list[float]]:
    """What takes full-resolution Gaussians to pyramid level ``level``: the factors ``[fx, fy]``
    of their means (the level's exact per-axis pixel ratio) and ``[1/fx², 1/(fx fy), 1/fy²]`` of
    their conics.

    Examples
    --------
    >>> level_factors(100, 200, 1)
    ([0.5, 0.5], [4.0, 4.0, 4.0])
    """
    rows, cols = level_shape(height, width, level)
    fx, fy = cols / width, rows / height
    return [fx, fy], [1 / (fx * fx), 1 / (fx * fy), 1 / (fy * fy)]


def build_pyramid(image, levels: int) -> list:
    """Levels ``[full, 1/2, 1/4, ...]`` of a ``[C, H, W]`` tensor, each resized from the original.

    Like the reference (PIL's default resize), each level is an antialiased bicubic resize of the
    full-resolution image, not a blur of the previous level.
    """
    import torch.nn.functional as F

    _, height, width = image.shape
    pyramid = [image]
    for level in range(1, levels):
        size = level_shape(height, width, level)
        resized = F.interpolate(
            image[None], size=size, mode="bicubic", antialias=True, align_corners=False
        )[0]
        pyramid.append(resized)
    return pyramid
