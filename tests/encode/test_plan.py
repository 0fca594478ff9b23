"""The work plan: one count of regions, steps and Gaussians for the pipeline and the widget."""

import numpy as np
import pytest

from napari_sgi.core.presets import get_preset
from napari_sgi.core.regions import plan_regions
from napari_sgi.core.seeds import seed_count_for_density
from napari_sgi.encode.pipeline import compress
from napari_sgi.encode.plan import plan_from_params, plan_work

FAST = get_preset("fast").with_overrides(iterations=100)


def test_a_2048_slice_counts_four_regions_of_steps():
    work = plan_work((2048, 2048), 3, FAST)
    assert (work.regions, work.steps_per_slice, work.total_steps) == (4, 400, 1200)
    boxes = [r.box_shape for r in plan_regions(2048, 2048)]
    assert work.seeds == sum(seed_count_for_density(*b, FAST.density, 10) for b in boxes)
    assert work.gaussians == work.seeds * FAST.gaussians_per_seed
    assert "3 slices × 400 steps (4 regions × 100) = 1,200 steps" in work.describe()


def test_one_region_and_fixed_seeds():
    work = plan_work((512, 512, 3), 1, FAST.with_overrides(seeds=77))
    assert (work.regions, work.total_steps, work.seeds) == (1, 100, 77)
    assert work.describe().startswith("1 slice × 100 steps = 100 steps\n")


def test_warm_start_runs_a_fraction_of_the_steps_after_the_first_slice():
    work = plan_work((64, 64), 4, FAST, region_size=32, region_margin=32, warm_fraction=0.4)
    assert work.regions == 4 and work.slice_steps(0) == 400 and work.slice_steps(3) == 160
    assert [work.steps_before(i) for i in range(5)] == [0, 400, 560, 720, 880]
    assert work.total_steps == 880 and "warm start" in work.describe()
    with pytest.raises(ValueError, match="warm_fraction"):
        plan_work((64, 64), 2, FAST, warm_fraction=0)


def test_params_as_compress_takes_them():
    params = {"preset": "fast", "iterations": 50, "region_size": 32, "device": "cpu", "axes": "YX"}
    assert plan_from_params((64, 64), 2, params).total_steps == 2 * 4 * 50
    warm = plan_from_params((64, 64), 2, {**params, "warm_start": True, "warm_fraction": 0.5})
    assert warm.total_steps == 4 * 50 + 4 * 25
    with pytest.raises(ValueError, match="multiples of 32"):
        plan_from_params((64, 64), 1, {"region_size": 48})


@pytest.mark.parametrize("warm_start", [False, True])
def test_the_pipeline_reports_the_planned_steps(tmp_path, warm_start):
    image = (np.random.default_rng(0).random((2, 64, 64)) * 255).astype(np.uint8)
    options = dict(preset="fast", iterations=5, levels=1, feature_dim=4, region_size=32)
    reports = []
    compress(image, tmp_path / "a.sgi", progress=reports.append, warm_start=warm_start, **options)
    planned = plan_from_params((64, 64), 2, {**options, "warm_start": warm_start})
    assert [r.done for r in reports] == list(range(1, planned.total_steps + 1))
    assert {r.total for r in reports} == {planned.total_steps}
