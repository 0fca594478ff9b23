import math

import torch
import torch.nn.functional as F

from napari_sgi.core.metrics import psnr
from napari_sgi.core.model import Attributes, ModelConfig, SGIModel


def small_model(**kwargs) -> SGIModel:
    settings = dict(
        height=48,
        width=64,
        channels=3,
        feature_dim=8,
        gaussians_per_seed=4,
        seed_count=60,
        levels=3,
    )
    settings.update(kwargs)
    torch.manual_seed(0)
    return SGIModel(ModelConfig(**settings))


def test_shapes_and_seed_major_order():
    model = small_model()
    means, conics, colors = model.gaussians()
    assert means.shape == (240, 2) and conics.shape == (240, 3) and colors.shape == (240, 3)
    # Zero offsets: the K Gaussians of a seed sit on the seed, in seed-major order.
    torch.testing.assert_close(means[4:8], model.anchors[1].expand(4, 2))
    # Conics are positive definite.
    a, b, c = conics.unbind(-1)
    assert torch.all(a > 0) and torch.all(a * c - b * b > 0)


def test_initial_render_is_almost_black_and_channels_follow_config():
    for channels in (1, 3, 7):
        model = small_model(channels=channels)
        image = model.render(0)
        assert image.shape == (channels, 48, 64)
        assert float(image.abs().max()) < 0.05


def test_a_level_change_keeps_the_render_upscaled():
    """Positions live in full-resolution pixels, so the coarse render is the fine one, sampled."""
    model = small_model(seed_count=40)
    with torch.no_grad():
        model.log_scaling.add_(1.0)  # smooth, overlapping Gaussians
        model.features.normal_()
        model.offsets.uniform_(-1, 1)
        fine = model.render(0)
        coarse = model.render(1)
    assert coarse.shape == (3, 24, 32)
    upscaled = F.interpolate(coarse[None], size=(48, 64), mode="bilinear", align_corners=False)[0]
    span = float(fine.max() - fine.min())
    assert psnr(upscaled / span, fine / span) > 30


def test_quantized_attributes_lie_on_the_step_grid():
    model = small_model()
    with torch.no_grad():
        model.features.normal_(0, 3)
    quantized = model.quantized_attributes(0)
    steps = model.entropy_models(0)
    ratio = quantized.features / steps["features"].step
    torch.testing.assert_close(ratio, torch.round(ratio), atol=1e-4, rtol=0)
    assert isinstance(quantized, Attributes)
    assert quantized.offsets.shape == model.offsets.shape


def test_gradients_reach_every_trained_parameter():
    model = small_model()
    model.render(0).sum().backward()
    for name in ("features", "offsets", "log_scaling"):
        assert getattr(model, name).grad is not None, name
    assert all(p.grad is not None for p in model.mlp_color.parameters())
    assert all(p.grad is not None for p in model.mlp_cov.parameters())


def _gated_model(**kwargs) -> SGIModel:
    """A gated-blend model away from its start: features, offsets and the head drawn at random."""
    model = small_model(blend=1, **kwargs)
    with torch.no_grad():
        model.features.normal_()
        model.offsets.uniform_(-1, 1)
        model.mlp_color[2].weight.normal_()
        for parameter in model.mlp_blend.parameters():
            parameter.normal_(0, 0.5)
    return model


def test_a_blend_renders_its_formula():
    """sum(g w c) / (sum(g w) + eps) + sum((1 - g) G c), each sum drawn by the plain rasterizer
    with the weights and gates computed here from the head's outputs."""
    from napari_sgi.core.rasterize import rasterize_sum

    model = _gated_model()
    with torch.no_grad():
        means, conics, colors = model.level_gaussians(0)
        heads = model.mlp_blend.linear(model.features)  # [N, 2K]
        weight = heads[:, :4].clamp(-6, 6).exp().reshape(-1, 1)
        gate = torch.sigmoid(heads[:, 4:]).reshape(-1, 1)

        def drawn(values):
            return rasterize_sum(means, conics, values, 48, 64)

        eps = model.mlp_blend.EPS
        expected = drawn(colors * weight * gate) / (drawn(weight * gate) + eps)
        expected = expected + drawn(colors * (1 - gate))
        torch.testing.assert_close(model.render(0), expected)
        torch.testing.assert_close(model.training_render(0), expected, atol=1e-5, rtol=1e-5)


def test_closed_gates_give_the_plain_sum_and_open_ones_a_normalised_blend():
    plain = small_model()
    gated = small_model(blend=1)
    gated.load_state_dict(plain.state_dict(), strict=False)
    with torch.no_grad():
        for model in (plain, gated):
            model.features.normal_(generator=torch.Generator().manual_seed(1))
            model.offsets.uniform_(-1, 1, generator=torch.Generator().manual_seed(2))
            model.mlp_color[2].weight.normal_(generator=torch.Generator().manual_seed(3))
        gated.mlp_blend.linear.bias[4:] = -60.0  # every gate closed: sigmoid(-60) ~ 1e-26
        torch.testing.assert_close(gated.render(0), plain.render(0))

    # Gates open, one Gaussian alone: c w G / (w G + 0.1) where it is drawn.
    lonely = small_model(seed_count=1, gaussians_per_seed=1, channels=1, blend=1)
    shape = small_model(seed_count=1, gaussians_per_seed=1, channels=1)  # G alone, colour 1
    with torch.no_grad():
        for model, colour in ((lonely, 0.8), (shape, 1.0)):
            model.mlp_color[2].weight.zero_()
            model.mlp_color[2].bias.fill_(colour)
        lonely.mlp_blend.linear.bias.copy_(torch.tensor([2.0, 60.0]))  # w = e^2, gate open
        image, drawn = lonely.render(0), shape.render(0)
    weighted = math.e**2 * drawn
    torch.testing.assert_close(image, 0.8 * weighted / (weighted + 0.1))
    assert float(drawn.max()) > 0.5 and float(image.max()) > 0.78  # near the colour at its centre


def test_gradients_reach_the_blend_head():
    model = _gated_model()
    model.render(0).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.mlp_blend.parameters())


def test_a_plain_model_is_drawn_as_before_the_blend_head_existed():
    """Only a gated model builds the head (last), so a plain model's initial values, and the
    header entry of its configuration, are what they were."""
    plain, gated = small_model(), small_model(blend=1)
    assert plain.mlp_blend is None and plain.image_modules() == ("mlp_color", "mlp_cov")
    assert "blend" not in plain.config.to_dict()
    assert gated.config.to_dict()["blend"] == 1
    for (name, a), (_, b) in zip(plain.named_parameters(), gated.named_parameters(), strict=False):
        assert torch.equal(a, b), name


def test_the_blend_compose_matches_its_reference_forward_and_backward():
    from napari_sgi.core.model import _Compose, _compose_reference

    sums = torch.rand(7, 6, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda s: _Compose.apply(s, 0.1), (sums,))
    fast = _Compose.apply(sums, 0.1)
    reference = _compose_reference(sums, 0.1)
    assert torch.equal(fast, reference)  # the same arithmetic: a fit measures what a file draws
    weights = torch.rand_like(fast)
    (fast_grad,) = torch.autograd.grad((fast * weights).sum(), sums)
    (reference_grad,) = torch.autograd.grad((reference * weights).sum(), sums)
    torch.testing.assert_close(fast_grad, reference_grad)
