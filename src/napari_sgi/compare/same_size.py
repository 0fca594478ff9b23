"""A classic codec at the largest size that is not above a byte budget.

The codec's one setting is bisected (JPEG 2000's target PSNR and the integer qualities linearly,
JPEG XL's distance in log scale) between a setting whose file fits and one whose file does not;
every encoding tried is kept in mind and the largest that fits wins, so the search stays right
where a codec's size is not quite monotonic in its setting.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from napari_sgi.compare.codecs import Codec
from napari_sgi.errors import ComparisonCancelled

MAX_TRIES = 14  #: encodings per search at most (a float setting to ~1/4000 of its range)


@dataclass(frozen=True)
class Encoded:
    """One encoding: the setting, the streams (one per coded array), and the search behind it."""

    codec: Codec
    value: float
    streams: tuple[bytes, ...]
    budget: int
    tries: int

    @property
    def nbytes(self) -> int:
        return sum(len(s) for s in self.streams)

    @property
    def fits(self) -> bool:
        return self.nbytes <= self.budget


def _setting(codec: Codec, t: float) -> float:
    """The setting at ``t`` in [0, 1], from the smallest file (0) to the largest (1)."""
    start, end = (codec.low, codec.high) if codec.increasing else (codec.high, codec.low)
    if not codec.increasing:  # JPEG XL's distance: bisect its logarithm
        value = math.exp(math.log(start) + t * (math.log(end) - math.log(start)))
    else:
        value = start + t * (end - start)
    return float(round(value)) if codec.integer else value


def encode_at_most(
    codec: Codec,
    arrays: list[np.ndarray],
    budget: int,
    *,
    cancel: Callable[[], bool] | None = None,
    max_tries: int = MAX_TRIES,
) -> Encoded:
    """The largest encoding of ``arrays`` with ``codec`` whose bytes are at most ``budget``.

    When even the smallest setting's file is larger, that smallest encoding is returned with
    ``fits`` False. ``cancel`` is checked before each encoding (raises
    :class:`~napari_sgi.errors.ComparisonCancelled`).

    Examples
    --------
    >>> from napari_sgi.compare.codecs import CODECS
    >>> image = (np.indices((64, 64)).sum(0) * 2).astype(np.uint8)
    >>> best = encode_at_most(CODECS["jpeg"], [image], 1500)
    >>> best.fits, best.nbytes <= 1500, best.tries <= 8
    (True, True, True)
    """
    tried: dict[float, Encoded] = {}

    def attempt(t: float) -> Encoded:
        value = _setting(codec, t)
        if value not in tried:
            if cancel is not None and cancel():
                raise ComparisonCancelled(f"{codec.name}: cancelled")
            streams = tuple(codec.encode(arrays, value))
            tried[value] = Encoded(codec, value, streams, int(budget), len(tried) + 1)
        return tried[value]

    def best() -> Encoded:
        fitting = [e for e in tried.values() if e.fits]
        if not fitting:
            return min(tried.values(), key=lambda e: e.nbytes)
        chosen = max(fitting, key=lambda e: (e.nbytes, e.value if codec.increasing else -e.value))
        return Encoded(codec, chosen.value, chosen.streams, chosen.budget, len(tried))

    if not attempt(0.0).fits or attempt(1.0).fits:
        return best()
    fit_t, over_t = 0.0, 1.0
    while len(tried) < max_tries:
        mid = (fit_t + over_t) / 2
        value = _setting(codec, mid)
        if value in (_setting(codec, fit_t), _setting(codec, over_t)):
            break  # whole-number settings: the two neighbours are known
        encoded = attempt(mid)
        if encoded.nbytes == budget:
            break
        if encoded.fits:
            fit_t = mid
        else:
            over_t = mid
    return best()
