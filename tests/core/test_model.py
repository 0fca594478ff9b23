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
