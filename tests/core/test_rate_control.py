import math

import pytest
import torch

import napari_sgi.core.fit as fit_module
from napari_sgi.core.fit import fit
from napari_sgi.core.presets import FitConfig
from napari_sgi.core.rate_control import (
    LambdaControl,
    QualityControl,
    refinement_gain,
    stored_bits,
    stored_psnr,
)


def test_control_raises_lambda_over_budget_and_lowers_it_under():
    control = LambdaControl(lmbda=1e-4, budget_bits=1000)
    assert control.update(1100) == pytest.approx(1e-4 * 1.1**3)
    before = control.lmbda
    assert control.update(900) == pytest.approx(before * 0.9**3)
    assert control.update(1e9) == pytest.approx(before * 0.9**3 * 2)  # one step: at most x2
    assert [bits for bits, _ in control.history] == [1100, 900, 1e9]


def test_control_keeps_lambda_within_its_range():
    control = LambdaControl(lmbda=1e-4, budget_bits=1000)
    for _ in range(50):
        control.update(10)
    assert control.lmbda == pytest.approx(1e-6)
    for _ in range(100):
        control.update(1e6)
    assert control.lmbda == pytest.approx(1.0)


def test_quality_control_trades_an_excess_but_never_lowers_lambda_below_its_start():
    control = QualityControl(lmbda=1e-4, psnr=30.0)
    assert control.update(30.5) == pytest.approx(2e-4)  # 0.5 dB above: λ x 2
    assert control.update(29.5) == pytest.approx(1e-4)  # as much below: back
    for psnr in (29.0, 20.0, math.nan):
        assert control.update(psnr) >= 1e-4
    assert [p for p, _ in control.history][:2] == [30.5, 29.5]


@pytest.mark.parametrize("budget", [0, -1, math.nan, math.inf])
def test_control_refuses_a_bad_budget(budget):
    with pytest.raises(ValueError, match="budget"):
        LambdaControl(lmbda=1e-4, budget_bits=budget)


def test_a_budget_brings_the_stored_bits_down(monkeypatch):
    monkeypatch.setattr(fit_module, "CONTROL_INTERVAL", 5)  # a short fit: correct more often
    y, x = torch.meshgrid(torch.linspace(0, 1, 48), torch.linspace(0, 1, 48), indexing="ij")
    image = (0.5 + 0.4 * torch.sin(6 * x) * torch.cos(4 * y))[None]  # smooth: cheap distortion
    config = FitConfig(
        iterations=600,
        levels=2,
        feature_dim=4,
        gaussians_per_seed=4,
        density=0.05,
        lmbda=2e-5,
        grid_levels=0,
        distortion="mse",
        attribute_lr_scale=8.0,
        soft_round=False,  # plain noise, where λ moves a tiny fit's rate the most
    )
    free = fit(image, config)
    natural = stored_bits(free.model)
    held = fit(image, config, budget_bits=0.6 * natural)
    assert held.lmbda > config.lmbda
    assert stored_bits(held.model) < 0.8 * natural


def test_quality_control_steers_by_the_psnr_plus_its_allowance():
    control = QualityControl(lmbda=1e-4, psnr=30.0, allowance=0.5)
    assert control.update(30.0) == pytest.approx(2e-4)  # 30 + 0.5 expected later: 0.5 dB over
    assert control.update(29.5) == pytest.approx(2e-4)  # on the target once the allowance is in


def test_refinement_gain_tries_a_copy_and_leaves_the_model_alone():
    y, x = torch.meshgrid(torch.linspace(0, 1, 24), torch.linspace(0, 1, 24), indexing="ij")
    image = (0.5 + 0.4 * torch.sin(9 * x) * torch.cos(7 * y))[None]
    config = FitConfig(iterations=40, levels=1, feature_dim=4, gaussians_per_seed=2, density=0.1)
    model = fit(image, config).model
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    models = model.entropy_models(0)
    start = stored_psnr(model, image, models)
    gain = refinement_gain(model, image, 30, config.lmbda)
    assert gain >= 0  # refinement keeps its best step: never worse than where it started
    assert math.isfinite(gain)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert stored_psnr(model, image, models) == start


def test_a_quality_target_probes_the_refinement_once(monkeypatch):
    calls = []

    def probe(model, target, steps, lmbda, distortion, backend, on_step, weights):
        calls.append(steps)
        return 0.25

    monkeypatch.setattr(fit_module, "refinement_gain", probe)
    image = torch.rand(1, 20, 20, generator=torch.Generator().manual_seed(2))
    config = FitConfig(iterations=100, levels=1, feature_dim=4, gaussians_per_seed=2, refine=0.1)
    fit(image, config, psnr_target=40.0)
    assert calls == [min(fit_module.PROBE_STEPS, config.refine_steps)]
    fit(image, config)  # no target: no probe
    fit(image, config.with_overrides(refine=0.0), psnr_target=40.0)  # nothing to predict
    assert len(calls) == 1


def test_a_fit_cancels_during_the_trial_refinement(monkeypatch):
    from napari_sgi.errors import FitCancelled

    image = torch.rand(1, 20, 20, generator=torch.Generator().manual_seed(3))
    config = FitConfig(iterations=100, levels=1, feature_dim=4, gaussians_per_seed=2, refine=0.1)
    probing = []
    real_gain = fit_module.refinement_gain

    def gain(*args, **kwargs):
        probing.append(True)
        return real_gain(*args, **kwargs)

    monkeypatch.setattr(fit_module, "refinement_gain", gain)
    with pytest.raises(FitCancelled, match="step 80 of 100"):
        fit(image, config, psnr_target=40.0, cancel=lambda: bool(probing))


def test_a_gliding_aim_comes_down_to_the_budget_from_the_first_reading():
    control = LambdaControl(lmbda=1e-4, budget_bits=1000.0, glide=4)
    aims = []
    for _ in range(6):
        aims.append(control.aim(1200.0))
        control.update(1200.0)
    assert aims == pytest.approx([1200.0, 1150.0, 1100.0, 1050.0, 1000.0, 1000.0])
    # at the first reading's aim λ holds; a plain control raises it at once
    assert LambdaControl(1e-4, 1000.0, glide=4).update(1200.0) == pytest.approx(1e-4)
    assert LambdaControl(1e-4, 1000.0).update(1200.0) > 1e-4
    # the aim never drops below the budget, also when the rate starts under it
    assert LambdaControl(1e-4, 1000.0, glide=4).aim(800.0) == 1000.0
