"""The classic codecs napari-sgi compares with, through imagecodecs: JPEG, JPEG 2000, JPEG XL, AVIF.

Each has one quality setting, which the same-size search (:mod:`napari_sgi.compare.same_size`)
moves: JPEG's quality (1-100), JPEG 2000's target PSNR of its single quality layer (dB, as
``benchmarks/bench_rd.py`` sweeps it), JPEG XL's distance (smaller is better) and AVIF's quality
(0-100, libavif speed 6, its default). Every codec is run with its defaults otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

AVIF_SPEED = 6


@dataclass(frozen=True)
class Codec:
    """One codec: how it encodes an array at a setting, decodes it, and which settings exist."""

    key: str  #: short name on the command line: jpeg, j2k, jxl, avif
    name: str  #: the name users know, used in layer names and tables
    bits: int  #: bits per sample it is given for data that is not uint8
    setting: str  #: what the setting is
    low: float  #: the setting's range searched
    high: float
    integer: bool  #: whether the setting takes whole numbers only
    increasing: bool  #: whether a larger setting gives a larger file
    sweep: tuple[float, ...]  #: settings of its rate-distortion curve, small files first
    _encode: Callable[[np.ndarray, float, int], bytes] = field(repr=False)
    _decode: Callable[[bytes], np.ndarray] = field(repr=False)

    def encode(self, arrays: list[np.ndarray], value: float) -> list[bytes]:
        """Encode each array (one image, or one per channel) at setting ``value``."""
        value = int(round(value)) if self.integer else float(value)
        return [self._encode(a, value, 8 if a.dtype == np.uint8 else self.bits) for a in arrays]

    def decode(self, data: list[bytes], shapes: list[tuple[int, ...]]) -> list[np.ndarray]:
        """Decode each stream; ``shapes`` are the arrays' that were encoded (checked)."""
        out = []
        for stream, shape in zip(data, shapes, strict=True):
            decoded = self._decode(stream)
            if len(shape) == 2 and decoded.ndim == 3:
                decoded = decoded[:, :, 0]  # AVIF: grey was coded as three equal channels
            if decoded.shape != tuple(shape):
                raise RuntimeError(f"{self.name} decoded shape {decoded.shape}, not {shape}")
            out.append(decoded)
        return out

    def label(self, value: float) -> str:
        """The setting as text, e.g. ``distance 2.31``."""
        text = f"{int(round(value))}" if self.integer else f"{value:.3g}"
        return f"{self.setting.split(' (')[0]} {text}"


def _jpeg_encode(a: np.ndarray, value: int, bits: int) -> bytes:
    import imagecodecs

    return imagecodecs.jpeg8_encode(a, level=value)


def _j2k_encode(a: np.ndarray, value: float, bits: int) -> bytes:
    import imagecodecs

    return imagecodecs.jpeg2k_encode(a, level=value)


def _jxl_encode(a: np.ndarray, value: float, bits: int) -> bytes:
    import imagecodecs

    return imagecodecs.jpegxl_encode(a, distance=value)


def _avif_encode(a: np.ndarray, value: int, bits: int) -> bytes:
    import imagecodecs

    # libavif's grey (4:0:0) path ignores the quality in imagecodecs 2026.3 (it codes losslessly):
    # grey is coded as colour with three equal channels, whose flat chroma costs next to nothing.
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    return imagecodecs.avif_encode(
        a, level=value, speed=AVIF_SPEED, bitspersample=bits if a.dtype != np.uint8 else None
    )


def _decoder(name: str) -> Callable[[bytes], np.ndarray]:
    def decode(data: bytes) -> np.ndarray:
        import imagecodecs

        return getattr(imagecodecs, name)(data)

    return decode


CODECS: dict[str, Codec] = {
    codec.key: codec
    for codec in (
        Codec(
            "jpeg", "JPEG", 8, "quality (1-100)", 1, 100, True, True,
            (5, 10, 20, 35, 50, 70, 85, 95),
            _jpeg_encode, _decoder("jpeg8_decode"),
        ),
        Codec(
            "j2k", "JPEG 2000", 16, "target PSNR (dB)", 10.0, 100.0, False, True,
            (20, 24, 28, 32, 36, 40, 46, 55),
            _j2k_encode, _decoder("jpeg2k_decode"),
        ),
        Codec(
            "jxl", "JPEG XL", 16, "distance", 0.05, 25.0, False, False,
            (15.0, 8.0, 5.0, 3.0, 2.0, 1.2, 0.7, 0.3),
            _jxl_encode, _decoder("jpegxl_decode"),
        ),
        Codec(
            "avif", "AVIF", 12, "quality (0-100)", 0, 100, True, True,
            (5, 15, 30, 45, 60, 75, 90),
            _avif_encode, _decoder("avif_decode"),
        ),
    )
}  # fmt: skip
DEFAULT_CODECS = ("j2k", "jxl")
_ALIASES = {
    "jpg": "jpeg",
    "jpeg8": "jpeg",
    "jpeg2000": "j2k",
    "jp2": "j2k",
    "jpeg2k": "j2k",
    "jpegxl": "jxl",
}


def parse_codecs(names: str | Iterable[str]) -> list[Codec]:
    """Codecs from ``"jpeg,j2k,jxl,avif"`` (or a list), in that order, each once.

    Examples
    --------
    >>> [c.name for c in parse_codecs("jxl, JPEG2000,jpg")]
    ['JPEG', 'JPEG 2000', 'JPEG XL']
    """
    if isinstance(names, str):
        names = names.split(",")
    keys = set()
    for name in names:
        key = name.strip().lower().replace(" ", "").replace("-", "")
        if not key:
            continue
        key = _ALIASES.get(key, key)
        if key not in CODECS:
            raise ValueError(f"unknown codec {name.strip()!r}: choose from {', '.join(CODECS)}")
        keys.add(key)
    if not keys:
        raise ValueError(f"no codec given: choose from {', '.join(CODECS)}")
    return [codec for key, codec in CODECS.items() if key in keys]
