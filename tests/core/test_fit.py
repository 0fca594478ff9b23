import numpy as np
import pytest
import torch

from napari_sgi.core.fit import FitCancelled, fit, make_model
from napari_sgi.core.image import ValueRange, to_tensor
from napari_sgi.core.metrics import psnr
from napari_sgi.core.presets import PRESETS, FitConfig, get_preset
from napari_sgi.core.schedule import Schedule

TINY = FitConfig(iterations=12, levels=2, feature_dim=6, gaussians_per_seed=3, density=0.1)


def test_unknown_distortion_is_refused():
    with pytest.raises(ValueError, match="distortion"):
        FitConfig(distortion="l2")


def test_presets():
    paper = get_preset("paper")
    assert (
        paper.iterations,
        paper.levels,
        paper.feature_dim,
        paper.gaussians_per_seed,
        paper.lmbda,
    ) == (15000, 3, 50, 10, 0.001)
    assert set(PRESETS) == {"paper", "default", "fast", "compact"}
    compact = get_preset("compact")
    assert compact.grid_levels == 0 and compact.distortion == "mse"
    assert make_model((1, 64, 64), compact).context.grid is None
    assert PRESETS["fast"].iterations < PRESETS["default"].iterations < paper.iterations
    with pytest.raises(ValueError, match="unknown preset"):
        get_preset("best")
    with pytest.raises(TypeError, match="unknown fit option"):
        paper.with_overrides(speed=3)
    with pytest.raises(ValueError, match="iterations"):
        FitConfig(iterations=0)


@pytest.mark.parametrize("iterations", [15000, 1000, 37])
def test_schedule_scales_with_the_run(iterations):
    schedule = Schedule(iterations, 3)
    stages = schedule.stages
    assert [s.level for s in stages] == [2, 1, 0]
    assert stages[0].start == 0 and stages[-1].stop == iterations
    assert all(a.stop == b.start for a, b in zip(stages, stages[1:], strict=False))
    assert schedule.rate_start >= stages[-1].start
    assert schedule.noise(iterations - 1) == "adaptive"
    assert schedule.learning_rate("offsets", 0) == pytest.approx(0.01)
    assert schedule.learning_rate("offsets", iterations - 1) == pytest.approx(1e-3)
    assert schedule.learning_rate("features", iterations // 2) == pytest.approx(0.0075)


def test_fixed_seed_gives_identical_results():
    image = torch.rand(1, 20, 24, generator=torch.Generator().manual_seed(3))
    first = fit(image, TINY).model
    second = fit(image, TINY).model
    for a, b in zip(first.parameters(), second.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    third = fit(image, TINY.with_overrides(rng_seed=5)).model
    assert not torch.equal(first.features, third.features)


def test_pixels_of_weight_zero_do_not_move_a_fit():
    # Two images that differ only where the weights are 0 (and far enough from where they are
    # not that the coarser level's antialiased target does not see it) fit to the same model.
    first = torch.rand(1, 32, 64, generator=torch.Generator().manual_seed(4))
    second = first.clone()
    second[..., 48:] = torch.rand(1, 32, 16, generator=torch.Generator().manual_seed(5))
    weights = torch.ones(32, 64)
    weights[:, 32:] = 0
    config = TINY.with_overrides(levels=2, seed_layout="uniform")
    a = fit(first, config, pixel_weights=weights)
    b = fit(second, config, pixel_weights=weights)
    for x, y in zip(a.model.parameters(), b.model.parameters(), strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=0)
    assert [e.psnr for e in a.history] == [e.psnr for e in b.history]
    unweighted = fit(second, config)
    assert not torch.equal(unweighted.model.features, b.model.features)


def test_weights_of_one_are_the_plain_fit():
    image = torch.rand(1, 20, 24, generator=torch.Generator().manual_seed(3))
    plain = fit(image, TINY)
    weighted = fit(image, TINY, pixel_weights=torch.ones(20, 24))
    assert [e.loss for e in weighted.history] == pytest.approx(
        [e.loss for e in plain.history], rel=1e-4
    )


def test_pixel_weights_must_fit_the_image():
    with pytest.raises(ValueError, match="pixel weights"):
        fit(torch.rand(1, 20, 24), TINY, pixel_weights=torch.ones(24, 20))


def test_progress_reports_every_step_and_cancel_stops():
    image = torch.rand(2, 16, 16)
    reports = []
    fit(image, TINY, progress=reports.append)
    assert [r.step for r in reports] == list(range(1, 13))
    assert {r.level for r in reports} == {0, 1}
    assert reports[-1].phase == "adaptive"
    with pytest.raises(FitCancelled):
        fit(image, TINY, cancel=lambda: len(reports) > 15, progress=reports.append)
    assert len(reports) == 16


@pytest.mark.parametrize("distortion", ["l1", "mse"])
def test_short_fit_on_a_real_crop_clearly_improves_psnr(ihc_crop, distortion):
    value_range = ValueRange.of(ihc_crop)
    image = to_tensor(ihc_crop, value_range)
    config = FitConfig(
        iterations=150,
        levels=2,
        feature_dim=16,
        gaussians_per_seed=6,
        density=0.25,
        distortion=distortion,
        lmbda=0.001 if distortion == "l1" else 3e-5,
        grid_levels=6,
    )
    model = make_model(tuple(image.shape), config)
    with torch.no_grad():
        before = psnr(model.render(0).clamp(0, 1), image)
    after_model = fit(image, config, model=model).model
    with torch.no_grad():
        after = psnr(after_model.render(0, after_model.quantized_attributes(0)).clamp(0, 1), image)
    assert after > before + 8, (before, after)
    assert after > 19


def test_fit_respects_the_rate_weight(nuclei_crop):
    """A larger lambda must give a cheaper model (fewer estimated bits)."""
    from napari_sgi.core.entropy import ideal_bits

    image = to_tensor(nuclei_crop, ValueRange.of(nuclei_crop))
    bits = []
    for lmbda in (0.0, 0.05):
        config = FitConfig(
            iterations=120, levels=2, feature_dim=8, gaussians_per_seed=4, density=0.2, lmbda=lmbda
        )
        model = fit(image, config).model
        with torch.no_grad():
            quantized = model.quantized_attributes(0).as_groups()
            bits.append(sum(ideal_bits(quantized, model.entropy_models(0)).values()))
    assert bits[1] < bits[0] * 0.9, bits
    assert np.isfinite(bits).all()


def _decoded_psnr(model, image) -> float:
    with torch.no_grad():
        return float(psnr(model.render(0, model.quantized_attributes(0)).clamp(0, 1), image))


def test_early_stop_skips_settled_steps_and_keeps_the_quality(nuclei_crop):
    image = to_tensor(nuclei_crop, ValueRange.of(nuclei_crop))
    config = get_preset("compact").with_overrides(
        iterations=400, levels=2, gaussians_per_seed=4, density=0.1
    )
    full = fit(image, config)
    reports = []
    early = fit(image, config.with_overrides(settle=0.03), progress=reports.append)
    assert full.steps_run == 400
    assert early.steps_run < 400
    steps = [r.step for r in reports]
    assert len(steps) == early.steps_run
    assert steps == sorted(set(steps)) and steps[-1] == 400  # skips forward, ends the bar
    assert reports[-1].phase == "refine"
    assert _decoded_psnr(early.model, image) > _decoded_psnr(full.model, image) - 0.2


@pytest.mark.parametrize("soft_round", [True, False])
def test_a_steered_fit_runs_every_step_with_its_own_noise(soft_round):
    y, x = torch.meshgrid(torch.linspace(0, 1, 32), torch.linspace(0, 1, 32), indexing="ij")
    smooth = (0.3 + 0.4 * torch.exp(-((x - 0.5) ** 2 + (y - 0.5) ** 2) / 0.05))[None]
    config = TINY.with_overrides(iterations=600, feature_dim=4, settle=0.5, soft_round=soft_round)
    assert fit(smooth, config).steps_run < 600  # settles at once when nothing steers λ
    steered = fit(smooth, config, budget_bits=2000.0)
    assert steered.steps_run == 600
    every_step = fit(smooth, config.with_overrides(settle=0.0), budget_bits=2000.0)
    other_noise = fit(
        smooth, config.with_overrides(settle=0.0, soft_round=not soft_round), budget_bits=2000.0
    )
    pairs = list(zip(steered.model.parameters(), every_step.model.parameters(), strict=True))
    assert all(torch.equal(a, b) for a, b in pairs)
    others = zip(steered.model.parameters(), other_noise.model.parameters(), strict=True)
    assert not all(torch.equal(a, b) for a, b in others)  # the noise is the config's


def test_a_quality_target_trains_on_plain_noise():
    y, x = torch.meshgrid(torch.linspace(0, 1, 32), torch.linspace(0, 1, 32), indexing="ij")
    smooth = (0.3 + 0.4 * torch.exp(-((x - 0.5) ** 2 + (y - 0.5) ** 2) / 0.05))[None]
    config = TINY.with_overrides(iterations=300, feature_dim=4, settle=0.0)
    soft = fit(smooth, config.with_overrides(soft_round=True), psnr_target=30.0)
    plain = fit(smooth, config.with_overrides(soft_round=False), psnr_target=30.0)
    pairs = zip(soft.model.parameters(), plain.model.parameters(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)


@pytest.mark.parametrize("settle", [-0.01, 1.0])
def test_invalid_early_stop_is_refused(settle):
    with pytest.raises(ValueError, match="settle"):
        FitConfig(settle=settle)


def test_a_gated_fit_trains_its_blend_head_in_the_fit_and_the_refinement():
    """The head starts at zero (every Gaussian weight 1, gate 1/2); the fit moves it, and the
    fit's and the refinement's optimisers hold it with the colour MLP (one schedule)."""
    from napari_sgi.core import refine as refine_module
    from napari_sgi.core.fit import _optimizer

    image = torch.rand(1, 48, 48, generator=torch.Generator().manual_seed(3))
    model = fit(image, TINY.with_overrides(iterations=40, blend="gated")).model
    assert model.config.blend == 1 and model.image_modules()[-1] == "mlp_blend"
    assert model.mlp_blend.linear.weight.abs().sum() > 0 and model.mlp_blend.linear.bias.any()
    head = {id(p) for p in model.mlp_blend.parameters()}
    _, groups = _optimizer(model)
    assert head <= {id(p) for p in groups["mlp_color"]["params"]}
    assert head <= {id(p) for p in refine_module._parameters(model)["mlp_color"]}
    assert make_model((1, 20, 24), TINY).mlp_blend is None  # the plain sum has no head
    # 16 seeds: the head's 42 weights would be 16 % of the values, so the region draws the sum.
    assert make_model((1, 20, 24), TINY.with_overrides(blend="gated")).mlp_blend is None
