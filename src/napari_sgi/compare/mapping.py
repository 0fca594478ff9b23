"""How an image is given to a classic codec and how its decoded pixels come back.

As ``benchmarks/bench_rd.py`` does it: uint8 data is coded as it is; any other dtype (uint16, signed
integers, floats) is stretched linearly from its own minimum..maximum to the codec's full sample
range (16-bit for JPEG 2000 and JPEG XL, 12-bit for AVIF, 8-bit for JPEG) and the decoded samples
are stretched back to the original units and dtype (integers rounded and clipped). One channel is
coded as a grey image and three as a colour image; any other number of channels (2, 4, 5, ...) as
one grey image per channel at the same setting, their sizes added.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Mapping:
    """The mapping of one image to one codec's samples (see the module's docstring)."""

    dtype: str  #: the original's dtype, which decoded images come back in
    low: float  #: original value mapped to 0
    high: float  #: original value mapped to the codec's top
    bits: int  #: bits per sample the codec is given
    channels: int  #: channels of the original (1 for an ``(H, W)`` image)
    squeeze: bool  #: the original is ``(H, W)`` (not ``(H, W, 1)``)

    @property
    def stretched(self) -> bool:
        return not (self.dtype == "uint8" and self.bits == 8)

    @property
    def top(self) -> int:
        return (1 << self.bits) - 1

    @property
    def layout(self) -> str:
        """``grey``, ``colour`` or ``planes`` (one grey image per channel)."""
        return {1: "grey", 3: "colour"}.get(self.channels, "planes")

    @property
    def sample_dtype(self) -> np.dtype:
        return np.dtype(np.uint8 if self.bits <= 8 else np.uint16)

    def to_codec(self, image: np.ndarray) -> list[np.ndarray]:
        """The arrays the codec encodes: one (grey or colour) or one grey image per channel."""
        image = np.asarray(image)
        if self.stretched:
            span = self.high - self.low if self.high > self.low else 1.0
            scaled = (image.astype(np.float64) - self.low) / span * self.top
            samples = np.rint(np.clip(scaled, 0, self.top)).astype(self.sample_dtype)
        else:
            samples = image
        if samples.ndim == 3 and self.channels == 1:
            samples = samples[:, :, 0]
        if self.layout == "planes":
            return [np.ascontiguousarray(samples[:, :, c]) for c in range(self.channels)]
        return [np.ascontiguousarray(samples)]

    def from_codec(self, decoded: list[np.ndarray]) -> np.ndarray:
        """Decoded codec arrays back to the original's shape, units and dtype."""
        samples = decoded[0] if len(decoded) == 1 else np.stack(decoded, axis=-1)
        if self.channels == 1 and not self.squeeze:
            samples = samples[:, :, None]
        if not self.stretched:
            return samples.astype(self.dtype, copy=False)
        span = self.high - self.low if self.high > self.low else 1.0
        values = samples.astype(np.float64) / self.top * span + self.low
        dtype = np.dtype(self.dtype)
        if dtype.kind in "ui":
            info = np.iinfo(dtype)
            return np.clip(np.rint(values), info.min, info.max).astype(dtype)
        return values.astype(dtype)

    def describe(self, codec: str) -> str:
        """One sentence for a layer's metadata and the documentation."""
        shape = {
            "grey": "one grey image",
            "colour": "one colour image",
            "planes": f"{self.channels} grey images, one per channel, at the same setting "
            "(sizes added)",
        }[self.layout]
        if not self.stretched:
            values = "uint8 samples as they are"
        else:
            values = (
                f"{self.dtype} values {self.low:g}..{self.high:g} stretched linearly to "
                f"0..{self.top} ({self.bits}-bit samples), decoded samples stretched back"
                + (" (rounded, clipped)" if np.dtype(self.dtype).kind in "ui" else "")
            )
        return f"{codec}: {shape}; {values}"


def mapping_for(image: np.ndarray, bits: int) -> Mapping:
    """The mapping of ``image`` (``(H, W)`` or ``(H, W, C)``) to a codec of ``bits`` per sample.

    Examples
    --------
    >>> m = mapping_for(np.array([[10, 20], [30, 40]], np.uint16), 16)
    >>> m.to_codec(np.array([[10, 40]], np.uint16))[0].tolist()
    [[0, 65535]]
    >>> m.describe("JPEG 2000")
    'JPEG 2000: one grey image; uint16 values 10..40 stretched linearly to 0..65535 (16-bit samples), decoded samples stretched back (rounded, clipped)'
    """  # noqa: E501
    image = np.asarray(image)
    if image.ndim not in (2, 3):
        raise ValueError(f"expected an (H, W) or (H, W, C) image, got shape {image.shape}")
    channels = 1 if image.ndim == 2 else int(image.shape[2])
    if image.dtype == np.uint8:
        # 8-bit data keeps its samples for every codec (as bench_rd gives it to them).
        return Mapping("uint8", 0.0, 255.0, 8, channels, image.ndim == 2)
    if image.dtype.kind not in "uif" or image.dtype == bool:
        raise ValueError(f"unsupported dtype {image.dtype}")
    low, high = float(np.min(image)), float(np.max(image))
    if not (np.isfinite(low) and np.isfinite(high)):
        raise ValueError("the image contains NaN or infinite values")
    return Mapping(image.dtype.name, low, high, bits, channels, image.ndim == 2)
