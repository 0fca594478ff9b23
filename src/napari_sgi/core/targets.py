"""What a user asks for, a file size or a quality, turned into the settings of a fit.

A size target (bits per pixel, or a compression ratio, which is the same thing) is met in two
moves: a short *pilot* fit at a guessed density measures how many bits a Gaussian of this image
takes, which sets the density; then the full fit steers λ so that the stored attributes land on
their share of the budget (:mod:`.rate_control`). A quality target (PSNR) sets the density from
pilots too: PSNR grows about linearly with the logarithm of the density, and the full fit's
PSNR lies a multiple of the pilots' gain from doubling their steps above the longer pilot, so
pilots at two densities and two lengths predict the full fit's PSNR.

Examples
--------
>>> target_options(ratio=10, bits_per_pixel=8)
{'target_bpp': 0.8}
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

BITS_PER_GAUSSIAN_GUESS = 18.0  # the pilot's start: 15-26 bits on the sample images
PILOT_FRACTION = 0.08  # of the full fit's steps, per pilot
MIN_PILOT_STEPS = 150
# The attributes' bits grow from a pilot of PILOT_FRACTION of the steps to the full fit (measured:
# x1.22 on nuclei and x1.29 on IHC from 400 to 3000 steps): aim the density's natural rate this
# far above the budget, so that rate control only has to bring it down (it cannot raise it).
PILOT_GROWTH = 1.25
HEADROOM = 1.12
# A quality target's pilots: the longer one takes this fraction of the full fit's steps, the other
# half that. The full fit (12500 steps) gained 1.4-2.8x the gain between 750 and 1500 steps above
# the 1500-step pilot on the sample images at densities 0.005-0.02 (1.8-1.9x on most; 1.1-1.7x
# between 1000 and 2000 steps): predicting 1.5x errs on the safe side (density too high) for all
# but one, and λ control trades the excess for rate.
PSNR_PILOT_FRACTION = 0.12
STEP_GAIN_TO_FULL = 1.5
# The longer pilot runs at least this many steps (the length the rule above was measured at), or
# the whole fit when that is shorter. At 3000 steps, pilots of 12 % (180 and 360 steps) misjudged
# the full fit by -2 to +0.3 dB depending on the image: the curves bend at different lengths.
MIN_LONG_PILOT = 1500
# A short quality target's fit runs free (core.fit.steers_quality), soft-rounded like its pilots:
# it lands this many gains of the pilots' last doubling per doubling of the steps left above the
# longer pilot. At 3000 steps (one doubling): 1.0 landed IHC 27 dB at +0.09 dB, the z-slice 30 dB
# at +0.41 and nuclei 33 dB at +0.16; 0.49 (the steered rule's) at +0.93, +0.58 and +0.18.
FREE_STEP_GAIN = 1.0
# The first guess of the gain per doubling of the density, to place the second pair of pilots: on
# the low side (0.3-0.5 dB on nuclei, 1.6-2 on IHC and the z-slice), so that the two densities
# tend to bracket the answer.
ASSUMED_DENSITY_GAIN = 0.5
# PSNR is concave in log density (it flattens as Gaussians are added): beyond the two pilot
# densities the line through them promises too much either way, so its slope is taken this much
# flatter going up and as much steeper going down (both ask for more Gaussians).
EXTRAPOLATION_DAMPING = 0.7
# The second pilot density lies at most this many doublings from the first: denser pilots cost
# more steps' time (x4 the Gaussians made a quality target's pilots 0.53x a full fit on IHC).
MAX_DOUBLINGS = 1.5
# A density this many doublings or more beyond both pilot densities gets a third pair of pilots
# there (at most MAX_DOUBLINGS beyond): with the gated blend, nuclei's 32.6 dB target lay 1.2
# doublings below its pilots, whose slope (0.16 dB per doubling) was a third of the curve's
# there, and the file landed 0.6 dB short.
MAX_EXTRAPOLATION = 0.5
# Gaussians per pixel: 0.2 is ~3-5 bpp with the compact model, past any useful size target.
DENSITY_RANGE = (1e-4, 0.2)
# dB per doubling of the density that a quality target assumes at least: flatter pilots would
# extrapolate to absurd densities (0.16-0.3 dB measured on the flattest sample, nuclei).
MIN_DENSITY_GAIN = 0.15


def target_options(
    *,
    bpp: float | None = None,
    ratio: float | None = None,
    psnr: float | None = None,
    bits_per_pixel: float | None = None,
) -> dict[str, float]:
    """The :class:`~napari_sgi.core.presets.FitConfig` fields of the target a user set.

    At most one of ``bpp``, ``ratio`` (original size over file size) and ``psnr``;
    ``bits_per_pixel`` (the original's, all channels: 8 x channels x bytes per sample) turns a
    ratio into bits per pixel. FitConfig checks the values themselves.

    Examples
    --------
    >>> target_options(ratio=16, bits_per_pixel=16)
    {'target_bpp': 1.0}
    >>> target_options(psnr=40), target_options()
    ({'target_psnr': 40}, {})
    """
    options = {"bpp": bpp, "ratio": ratio, "psnr": psnr}
    given = {name: value for name, value in options.items() if value is not None}
    if len(given) > 1:
        raise ValueError(f"give one target, not {' and '.join(given)}")
    if ratio is not None:
        if not isinstance(ratio, int | float) or not math.isfinite(ratio) or ratio <= 1:
            raise ValueError(f"a compression ratio must be a number above 1, got {ratio!r}")
        if bits_per_pixel is None:
            raise ValueError("a ratio target needs the original's bits per pixel")
        return {"target_bpp": bits_per_pixel / ratio}
    if bpp is not None:
        return {"target_bpp": bpp}
    return {"target_psnr": psnr} if psnr is not None else {}


def describe_target(target_bpp: float | None, target_psnr: float | None) -> str:
    """``"0.25 bpp"``, ``"PSNR 40 dB"`` or ``""``."""
    if target_bpp is not None:
        return f"{target_bpp:g} bpp"
    return f"PSNR {target_psnr:g} dB" if target_psnr is not None else ""


def pilot_steps(iterations: int) -> int:
    """Steps of one pilot fit.

    Examples
    --------
    >>> pilot_steps(12500), pilot_steps(500)
    (1000, 150)
    """
    return max(MIN_PILOT_STEPS, round(PILOT_FRACTION * iterations))


def psnr_pilot_steps(iterations: int) -> int:
    """Steps of all the pilots a quality target may run (:func:`density_for_psnr`): two pairs,
    and a third where the target lies far beyond them.

    Examples
    --------
    >>> psnr_pilot_steps(12500)
    6750
    """
    short, long = psnr_pilot_lengths(iterations)
    return 3 * (short + long)


def psnr_pilot_lengths(iterations: int) -> tuple[int, int]:
    """The two lengths of a quality target's pilots: ``PSNR_PILOT_FRACTION`` of the full fit's
    steps but at least :data:`MIN_LONG_PILOT` (at most the whole fit), and half that.

    Examples
    --------
    >>> psnr_pilot_lengths(12500), psnr_pilot_lengths(3000), psnr_pilot_lengths(600)
    ((750, 1500), (750, 1500), (300, 600))
    """
    long = min(iterations, max(MIN_LONG_PILOT, round(PSNR_PILOT_FRACTION * iterations)))
    return long // 2, long


def clamp_density(density: float) -> float:
    low, high = DENSITY_RANGE
    return min(max(density, low), high)


def density_for_bits(
    pixels: int,
    budget_bits: float,
    pilot: Callable[[float], float],
) -> float:
    """The density whose full fit's natural rate lies ``HEADROOM`` above ``budget_bits``.

    ``pilot(density)`` runs a pilot fit and returns the bits of its stored attributes.

    Examples
    --------
    >>> density_for_bits(10_000, 1800.0, lambda d: 15.0 * d * 10_000)  # 15 bits a Gaussian
    0.010752
    """
    guess = clamp_density(budget_bits / (BITS_PER_GAUSSIAN_GUESS * pixels))
    measured = pilot(guess)
    per_gaussian = max(measured, 1.0) / (guess * pixels)
    wanted = HEADROOM * budget_bits / (PILOT_GROWTH * per_gaussian * pixels)
    return round(clamp_density(wanted), 6)


def density_for_psnr(
    target: float,
    iterations: int,
    pilot: Callable[[float, int], float],
    start: float = 0.01,
    steered: bool = True,
) -> tuple[float, float]:
    """The density whose full fit is predicted to reach ``target`` dB, and that prediction.

    ``pilot(density, steps)`` runs a pilot fit and returns its PSNR. At each of two densities,
    two pilots (:func:`psnr_pilot_lengths`) give the PSNR and its gain from doubling the steps;
    the full fit is predicted ``STEP_GAIN_TO_FULL`` such gains further on (``steered``: a fit
    whose λ is steered to the target), or one such gain a doubling of the steps left (a short
    fit that runs free, :data:`FREE_STEP_GAIN`). The second density is
    placed from the first prediction (``ASSUMED_DENSITY_GAIN`` dB per doubling); the density then
    comes from the line through both predictions in log density. Where that line reaches the
    target more than ``MAX_EXTRAPOLATION`` doublings beyond both densities, a third pair of
    pilots measures there (at most ``MAX_DOUBLINGS`` on), and the line through the points
    nearest the target decides.

    Examples
    --------
    >>> model = lambda d, n: 30 + 2 * math.log2(d / 0.01) + 0.5 * math.log2(n / 1000)
    >>> density, predicted = density_for_psnr(33.0, 12500, model)
    >>> round(density, 4), round(predicted, 2)
    (0.0197, 33.0)
    """
    short, long = psnr_pilot_lengths(iterations)
    # Calibrated for pilots of PSNR_PILOT_FRACTION; short fits have longer pilots (at least
    # MIN_LONG_PILOT), so fewer doublings of the steps are left to the full fit.
    to_full = STEP_GAIN_TO_FULL * math.log2(iterations / long) / -math.log2(PSNR_PILOT_FRACTION)
    if not steered:
        to_full = FREE_STEP_GAIN * math.log2(iterations / long)

    def full_fit(density: float) -> float:
        at_short, at_long = pilot(density, short), pilot(density, long)
        return at_long + max(to_full, 0.0) * max(at_long - at_short, 0.0)

    first = full_fit(start)
    doublings = min(max((target - first) / ASSUMED_DENSITY_GAIN, -MAX_DOUBLINGS), MAX_DOUBLINGS)
    if abs(doublings) < 0.5:  # far enough apart for a slope
        doublings = 0.5 if target >= first else -0.5
    other = clamp_density(start * 2**doublings)
    if other == start:  # at the end of the range: measure on the side that is left
        other = clamp_density(start * 2 ** (-doublings))
    points = [(math.log2(start), first), (math.log2(other), full_fit(other))]
    density, predicted = _density_on_curve(points, target)
    # Far beyond both pilots the line's slope is a guess (flat curves bend most): measure there,
    # at most MAX_DOUBLINGS past the nearer pilot, and solve again with the nearer points.
    low, high = min(x for x, _ in points), max(x for x, _ in points)
    x = math.log2(density)
    if x < low - MAX_EXTRAPOLATION or x > high + MAX_EXTRAPOLATION:
        x = min(max(x, low - MAX_DOUBLINGS), high + MAX_DOUBLINGS)
        third = clamp_density(2**x)
        if third not in (start, other):
            points.append((math.log2(third), full_fit(third)))
            density, predicted = _density_on_curve(points, target)
    return density, predicted


def _density_on_curve(points: list[tuple[float, float]], target: float) -> tuple[float, float]:
    """The density predicted to reach ``target`` from predicted PSNRs at pilot densities
    (``(log2 density, dB)``), and that prediction: on the line through the two adjacent points
    that bracket the target, or beyond the points, a damped line through the two at that end.

    Examples
    --------
    >>> round(_density_on_curve([(-7.0, 30.0), (-6.0, 31.0)], 30.5)[0], 5)
    0.01105
    >>> _density_on_curve([(-7.0, 30.0), (-6.0, 31.0), (-5.0, 31.5)], 31.25)[1]
    31.25
    """
    points = sorted(points)
    values = [y for _, y in points]
    if target > max(values):  # above all: flatter, from the densest two
        (x0, y0), (x1, y1) = points[-2:]
        slope = max((y1 - y0) / (x1 - x0), MIN_DENSITY_GAIN) * EXTRAPOLATION_DAMPING
        x, y = x1, y1
    elif target < min(values):  # below all: steeper, from the sparsest two
        (x0, y0), (x1, y1) = points[:2]
        slope = max((y1 - y0) / (x1 - x0), MIN_DENSITY_GAIN) / EXTRAPOLATION_DAMPING
        x, y = x0, y0
    else:  # the sparsest adjacent pair that brackets it (noisy curves need not be monotone)
        (x, y), (x1, y1) = next(
            (a, b)
            for a, b in itertools.pairwise(points)
            if min(a[1], b[1]) <= target <= max(a[1], b[1])
        )
        slope = max((y1 - y) / (x1 - x), MIN_DENSITY_GAIN)
    density = clamp_density(2 ** (x + (target - y) / slope))
    return density, y + slope * (math.log2(density) - x)
