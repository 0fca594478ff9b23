import copy

import pytest
import torch

from napari_sgi.core.entropy import discretized_gaussian_bits
from napari_sgi.core.fit import FitCancelled, fit
from napari_sgi.core.model import Attributes
from napari_sgi.core.presets import FitConfig
from napari_sgi.core.refine import refine

CONFIG = FitConfig(
    iterations=60,
    levels=2,
    feature_dim=4,
    gaussians_per_seed=3,
    density=0.08,
    grid_levels=0,
    lmbda=1e-4,
    distortion="mse",
    attribute_lr_scale=8.0,
)


def _image(seed: int = 5) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.linspace(0, 1, 24), torch.linspace(0, 1, 28), indexing="ij")
    blobs = torch.exp(-((y - 0.4) ** 2 + (x - 0.6) ** 2) / 0.02)
    return (0.7 * blobs + 0.1 * torch.rand(1, 24, 28, generator=generator)).clamp(0, 1)


def rounded_loss(model, target, lmbda) -> float:
    """Distortion + lambda * bits per value of the rounded attributes (refine's objective)."""
    with torch.no_grad():
        models = model.entropy_models(0)
        rounded = {
            name: torch.round(values / models[name].step) * models[name].step
            for name, values in model.attributes().as_groups().items()
        }
        attributes = Attributes.from_groups(rounded, model.config.gaussians_per_seed)
        mse = torch.mean((model.render(0, attributes) - target) ** 2)
        bits = sum(
            discretized_gaussian_bits(rounded[n], m.mean, m.scale, m.step).sum()
            for n, m in models.items()
        )
        return float(mse + lmbda * bits / sum(v.numel() for v in rounded.values()))


@pytest.fixture(scope="module")
def fitted():
    target = _image()
    return target, fit(target, CONFIG).model


def test_refine_lowers_the_loss_of_the_rounded_model(fitted):
    target, model = fitted
    before = rounded_loss(model, target, CONFIG.lmbda)
    refined = copy.deepcopy(model)
    best = refine(refined, target, 40, CONFIG.lmbda)
    after = rounded_loss(refined, target, CONFIG.lmbda)
    assert after == pytest.approx(best, rel=1e-5)  # the best step's parameters were restored
    assert after < before


def test_refined_attributes_are_already_rounded(fitted):
    target, model = fitted
    refined = copy.deepcopy(model)
    refine(refined, target, 5, CONFIG.lmbda)
    models = refined.entropy_models(0)
    for name, values in refined.attributes().as_groups().items():
        step = models[name].step
        torch.testing.assert_close(values, torch.round(values / step) * step, rtol=0, atol=0)


def test_the_encoder_stores_the_refined_values(fitted):
    from napari_sgi.codec.model import encode_model

    target, model = fitted
    refined = copy.deepcopy(model)
    refine(refined, target, 5, CONFIG.lmbda)
    before = {k: v.detach().clone() for k, v in refined.attributes().as_groups().items()}
    steps = {k: m.step for k, m in refined.entropy_models(0).items()}
    encode_model(refined)
    for name, values in refined.attributes().as_groups().items():
        # The same symbols: the stored values differ from refine's only as much as the encoder's
        # step (float16 prior, snapped) differs from the fit's, a tiny fraction of a step.
        step = steps[name].detach()
        assert torch.equal(torch.round(values / step), torch.round(before[name] / step))
        assert bool(((values - before[name]).abs() <= 0.01 * step).all())


def test_a_raising_callback_leaves_the_best_rounded_model(fitted):
    target, model = fitted
    refined = copy.deepcopy(model)
    start = rounded_loss(refined, target, CONFIG.lmbda)

    def stop_at_third(step, loss, mse):
        if step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        refine(refined, target, 50, CONFIG.lmbda, on_step=stop_at_third)
    assert rounded_loss(refined, target, CONFIG.lmbda) <= start * (1 + 1e-6)


def test_fit_ends_with_the_refinement_phase():
    config = CONFIG.with_overrides(refine=0.25)
    outcome = fit(_image(), config)
    phases = [event.phase for event in outcome.history]
    assert len(phases) == config.iterations == outcome.iterations
    assert phases[-config.refine_steps :] == ["refine"] * 15
    assert "refine" not in phases[: -config.refine_steps]
    assert [event.step for event in outcome.history] == list(range(1, 61))


def test_fit_cancels_during_refinement():
    config = CONFIG.with_overrides(refine=0.25)
    events = []

    def cancel():
        return bool(events) and events[-1].phase == "refine"

    with pytest.raises(FitCancelled, match="step 46 of 60"):
        fit(_image(), config, progress=events.append, cancel=cancel)


@pytest.mark.parametrize("refine_fraction", [-0.1, 1.0, 0.999])
def test_refine_fraction_is_checked(refine_fraction):
    with pytest.raises(ValueError, match="refine"):
        FitConfig(iterations=100, refine=refine_fraction)
