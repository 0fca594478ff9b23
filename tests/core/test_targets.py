import math

import pytest

from napari_sgi.core.targets import DENSITY_RANGE, density_for_psnr, psnr_pilot_lengths


def _pilots(model):
    calls = []

    def pilot(density, steps):
        calls.append((density, steps))
        return model(density, steps)

    return pilot, calls


@pytest.mark.parametrize("target", [28.0, 31.0, 34.0])
def test_a_quality_target_runs_two_lengths_at_two_densities_and_solves_the_line(target):
    # PSNR linear in log density and log steps: the prediction is exact up to the step factor.
    model = lambda d, n: 30 + 1.5 * math.log2(d / 0.01) + 0.4 * math.log2(n / 1000)  # noqa: E731
    pilot, calls = _pilots(model)
    density, predicted = density_for_psnr(target, 12500, pilot)
    short, long = psnr_pilot_lengths(12500)
    assert sorted({steps for _, steps in calls}) == [short, long]
    assert len(calls) == 4 and len({d for d, _ in calls}) == 2
    assert predicted == pytest.approx(target)
    assert model(density, long) + 1.5 * 0.4 == pytest.approx(target)


def test_a_flat_image_does_not_extrapolate_to_absurd_densities():
    pilot, _ = _pilots(lambda d, n: 40.0 + 0.01 * math.log2(d))  # no gain from anything
    density, predicted = density_for_psnr(60.0, 12500, pilot)
    assert density == DENSITY_RANGE[1]  # the most it may ask for
    assert predicted < 60.0  # and it says that it will fall short
