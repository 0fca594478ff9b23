import math

import pytest
import torch

import napari_sgi.core.fit as fit_module
from napari_sgi.core.fit import fit
from napari_sgi.core.presets import FitConfig
from napari_sgi.core.rate_control import LambdaControl, QualityControl, stored_bits


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
    )
    free = fit(image, config)
    natural = stored_bits(free.model)
    held = fit(image, config, budget_bits=0.6 * natural)
    assert held.lmbda > config.lmbda
    assert stored_bits(held.model) < 0.8 * natural
