import torch

from napari_sgi.core.entropy import (
    ContextModel,
    GroupModel,
    add_soft_noise,
    base_steps,
    discretized_gaussian_bits,
    quantize,
    rate_bits_per_value,
    soft_round,
)
from napari_sgi.core.hashgrid import BinaryHashGrid, level_table_sizes


def test_bins_sum_to_one_for_every_regime():
    for mean, scale, step in [
        (0.3, 2.0, 1.0),
        (-4.1, 0.7, 0.5),
        (0.0, 0.05, 0.2),
        (10.0, 30.0, 3.0),
    ]:
        symbols = torch.arange(-2000, 2001, dtype=torch.float64)[None]
        values = symbols * step
        bits = discretized_gaussian_bits(
            values,
            torch.full_like(values, mean),
            torch.full_like(values, scale),
            torch.full((1, 1), step, dtype=torch.float64),
        )
        mass = 2.0**-bits
        # The 1e-6 floor adds mass only to bins with almost none; the real mass sums to one.
        real = mass[mass > 1.01e-6].sum()
        assert abs(float(real) - 1.0) < 1e-5, (mean, scale, step, float(real))


def test_bits_are_smaller_near_the_mean_and_differentiable():
    values = torch.tensor([[0.0, 1.0, 5.0]], requires_grad=True)
    mean = torch.zeros(1, 3, requires_grad=True)
    scale = torch.ones(1, 3, requires_grad=True)
    bits = discretized_gaussian_bits(values, mean, scale, torch.ones(1, 1))
    assert bits[0, 0] < bits[0, 1] < bits[0, 2]
    bits.sum().backward()
    assert torch.isfinite(scale.grad).all() and scale.grad.abs().sum() > 0


def test_quantize_rounds_with_a_straight_through_gradient():
    values = torch.tensor([0.26, -0.74, 1.0], requires_grad=True)
    out = quantize(values, torch.tensor(0.5))
    assert out.tolist() == [0.5, -0.5, 1.0]
    out.sum().backward()
    assert values.grad.tolist() == [1.0, 1.0, 1.0]


def test_hash_grid_shapes_binary_values_and_bits():
    grid = BinaryHashGrid()
    assert sum(level_table_sizes()) == grid.table.shape[0] == 62976
    features = grid(torch.rand(100, 2))
    assert features.shape == (100, 48)
    assert set(torch.unique(grid.binary_table()).tolist()) <= {-1.0, 1.0}
    assert torch.all(grid(torch.tensor([[1.5, 0.5]])) == 0)  # outside [0, 1]^2
    # One Bernoulli over ~252k entries: at most one bit each, plus the 32-bit probability.
    assert 0 < float(grid.bits().detach()) <= grid.table.numel() + 32


def test_context_model_outputs_and_rate():
    model = ContextModel(feature_dim=6, gaussians_per_seed=3)
    groups = model(torch.rand(20, 2), level=1)
    assert groups["features"].mean.shape == (20, 6)
    assert groups["log_scaling"].scale.shape == (20, 4)
    assert groups["offsets"].mean.shape == (20, 6)
    for name, group in groups.items():
        assert torch.all(group.scale > 0)
        q0 = base_steps(1)[name]
        assert torch.all(group.step > 0) and torch.all(group.step < 2 * q0)
    values = {name: torch.randn(20, g.mean.shape[1]) for name, g in groups.items()}
    rate = rate_bits_per_value(values, groups)
    assert rate.ndim == 0 and float(rate) > 0


def test_calibrate_fits_the_prior_to_the_attributes():
    torch.manual_seed(0)
    model = ContextModel(6, 3, grid_levels=4)
    coords = torch.rand(500, 2)
    groups = {
        "features": torch.randn(500, 6) * 3.0,
        "log_scaling": 1.5 + 0.2 * torch.randn(500, 4),
        "offsets": 0.5 + torch.randn(500, 6),
    }

    def bits_and_means():
        models = model(coords)
        values = {name: quantize(v, models[name].step) for name, v in groups.items()}
        means = {name: models[name].mean.mean(0) for name in groups}
        return float(rate_bits_per_value(values, models)), means

    before, _ = bits_and_means()
    model.calibrate(coords, groups)
    after, means = bits_and_means()
    assert after < before - 1.0, (before, after)
    for name, values in groups.items():
        torch.testing.assert_close(means[name], values.mean(0), atol=1e-4, rtol=0)


def test_a_context_model_without_grid_gives_every_seed_the_same_calibrated_prior():
    context = ContextModel(4, 3, grid_levels=0)
    assert context.grid is None and context.grid_bits() == 0.0
    coords = torch.rand(50, 2)
    values = {
        "features": torch.randn(50, 4) * 3 + 5,
        "log_scaling": torch.randn(50, 4) * 0.5 + 1.5,
        "offsets": torch.randn(50, 6) * 0.3,
    }
    context.calibrate(coords, values)
    models = context(coords)
    for name, group in models.items():
        # one row for all seeds, broadcast where it is used
        assert group.mean.shape == group.scale.shape == (1, values[name].shape[1])
        assert group.step.shape == (1, 1)
        assert torch.allclose(group.mean[0], values[name].mean(0), atol=1e-5)
        assert torch.allclose(group.scale[0], values[name].std(0, unbiased=False), rtol=1e-3)


def test_shared_distributions_price_seeds_as_their_copies_do():
    """A row shared by every seed gives the same bits and gradients as one copy per seed."""
    torch.manual_seed(0)
    context = ContextModel(4, 3, grid_levels=0)
    with torch.no_grad():
        context.prior.normal_()
    values = {name: torch.randn(40, dim) for name, dim in context.dims.items()}
    seeds = torch.tensor([3, 7, 11, 30])
    shared = {name: g.rows(seeds) for name, g in context(torch.rand(40, 2)).items()}
    rate = rate_bits_per_value({n: v[seeds] for n, v in values.items()}, shared)
    (shared_grad,) = torch.autograd.grad(rate, context.prior)
    copies = {
        name: GroupModel(g.mean.expand(40, -1), g.scale.expand(40, -1), g.step.expand(40, 1))
        for name, g in context(torch.rand(40, 2)).items()
    }
    copies = {
        name: GroupModel(g.mean[seeds], g.scale[seeds], g.step[seeds]) for name, g in copies.items()
    }
    copied_rate = rate_bits_per_value({n: v[seeds] for n, v in values.items()}, copies)
    (copied_grad,) = torch.autograd.grad(copied_rate, context.prior)
    assert torch.allclose(rate, copied_rate, rtol=1e-6)
    assert torch.allclose(shared_grad, copied_grad, rtol=1e-5, atol=1e-7)
    assert shared_grad.abs().sum() > 0


def test_soft_round_goes_from_identity_to_rounding_with_the_temperature():
    z = torch.linspace(-2.4, 2.4, 97, dtype=torch.float64) + 0.01  # no ties at .5
    torch.testing.assert_close(soft_round(z, 1e-3), torch.round(z))
    assert (soft_round(z, 100.0) - z).abs().max() < 1e-4
    middle = soft_round(z, 0.3)  # between: nearer the integer, same order, continuous
    assert ((middle - torch.round(z)).abs() <= (z - torch.round(z)).abs() + 1e-12).all()
    assert (middle.diff() >= 0).all()


def test_soft_noise_lands_in_the_bin_and_passes_gradients_to_values_and_steps():
    values = torch.linspace(-3, 3, 500, dtype=torch.float64, requires_grad=True)
    step = torch.tensor([[0.5]], dtype=torch.float64, requires_grad=True)
    generator = torch.Generator().manual_seed(0)
    rate_value = add_soft_noise(values[None], step, 0.1, generator, round_again=False)
    centre = soft_round(values[None] / step, 0.1)
    assert ((rate_value / step - centre).abs() <= 0.5 + 1e-9).all()  # s(z) + U: within a bin
    noised = add_soft_noise(values[None], step, 1e-4, generator)
    off_grid = (noised - torch.round(noised / step) * step).abs() > 1e-6
    assert off_grid.double().mean() < 0.01  # twice rounded at a low temperature: on the grid
    add_soft_noise(values[None], step, 0.3, generator).sum().backward()
    assert values.grad.abs().sum() > 0 and step.grad.abs() > 0
