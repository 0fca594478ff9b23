import math

import pytest

from napari_sgi.core.targets import DENSITY_RANGE, density_for_psnr, psnr_pilot_lengths


def _pilots(model):
    calls = []

    def pilot(density, steps):
        calls.append((density, steps))
        return model(density, steps)

    return pilot, calls


def _linear(d, n):
    # PSNR linear in log density and log steps: the prediction is exact up to the step factor.
    return 30 + 1.5 * math.log2(d / 0.01) + 0.4 * math.log2(n / 1000)


@pytest.mark.parametrize("target", [28.0, 31.0, 34.0])
def test_a_quality_target_runs_two_lengths_at_two_densities_and_solves_the_line(target):
    pilot, calls = _pilots(_linear)
    density, predicted = density_for_psnr(target, 12500, pilot)
    short, long = psnr_pilot_lengths(12500)
    assert sorted({steps for _, steps in calls}) == [short, long]
    assert predicted == pytest.approx(target)
    exact = 0.01 * 2 ** ((target - _linear(0.01, long) - 1.5 * 0.4) / 1.5)
    first_two = sorted({d for d, _ in calls[:4]})
    assert len(first_two) == 2
    if first_two[0] <= exact <= first_two[1]:
        assert len(calls) == 4  # between the pilots: the line itself
        assert density == pytest.approx(exact)
    else:
        # Beyond them: a third pair measured on the way, and no fewer Gaussians than the line.
        assert len(calls) in (4, 6)
        assert density == pytest.approx(exact) or density > exact


def test_far_beyond_the_pilots_a_third_pair_measures_where_the_curve_bends():
    # Nuclei-like: flat near the start density, much steeper below (0.16 dB per doubling at the
    # pilots, 0.5 two doublings down), where a line from the pilots lands short.
    def bending(d, n):
        x = math.log2(d / 0.01)
        return 33.0 + 0.3 * x - 0.1 * x * x + 0.4 * math.log2(n / 1000)

    pilot, calls = _pilots(bending)
    target = 32.2
    density, predicted = density_for_psnr(target, 12500, pilot)
    _, long = psnr_pilot_lengths(12500)
    assert len(calls) == 6 and len({d for d, _ in calls}) == 3
    assert bending(density, long) + 1.5 * 0.4 == pytest.approx(target, abs=0.1)
    assert predicted == pytest.approx(target)


def test_beyond_the_pilots_a_concave_curve_still_gets_enough_gaussians():
    # PSNR flattening with the density, as fits do (0.8 dB per doubling at 0.01, less above).
    def concave(d, n):
        x = math.log2(d / 0.01)
        return 30 + 0.8 * x - 0.15 * x * x + 0.4 * math.log2(n / 1000)

    for target in (27.0, 30.5, 31.0):
        pilot, calls = _pilots(concave)
        density, _ = density_for_psnr(target, 12500, pilot)
        _, long = psnr_pilot_lengths(12500)
        assert concave(density, long) + 1.5 * 0.4 >= target - 0.05


def test_a_flat_image_does_not_extrapolate_to_absurd_densities():
    pilot, _ = _pilots(lambda d, n: 40.0 + 0.01 * math.log2(d))  # no gain from anything
    density, predicted = density_for_psnr(60.0, 12500, pilot)
    assert density == DENSITY_RANGE[1]  # the most it may ask for
    assert predicted < 60.0  # and it says that it will fall short


@pytest.mark.parametrize("iterations", [3000, 600])
def test_a_short_free_fit_is_predicted_a_gain_a_doubling_of_the_steps_left(iterations):
    """Short fits run free: the pilots (at least MIN_LONG_PILOT steps, at most the fit) and one
    gain of their last doubling per doubling left, which is exact on a log-linear curve."""
    pilot, calls = _pilots(_linear)
    density, predicted = density_for_psnr(31.0, iterations, pilot, steered=False)
    short, long = psnr_pilot_lengths(iterations)
    assert (short, long) == ((750, 1500) if iterations == 3000 else (300, 600))
    assert sorted({steps for _, steps in calls}) == [short, long]
    assert predicted == pytest.approx(31.0)
    assert _linear(density, iterations) == pytest.approx(31.0)  # the full fit itself
    # The steered rule counts fewer gains (0.49 of one here), so it asks for more Gaussians.
    if iterations == 3000:
        assert density_for_psnr(31.0, iterations, _pilots(_linear)[0])[0] > density
