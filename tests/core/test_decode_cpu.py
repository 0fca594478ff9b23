"""The compiled seed decode against its PyTorch reference (SGIModel.level_gaussians + bounds)."""

from __future__ import annotations

import pytest
import torch

from napari_sgi.core.image import level_shape
from napari_sgi.core.model import ModelConfig, SGIModel
from napari_sgi.core.raster_rules import gaussian_pixel_bounds
from napari_sgi.core.rasterize import cpu_kernel_available

pytestmark = pytest.mark.skipif(not cpu_kernel_available(), reason="compiled kernel not built")


def _model(height=45, width=70, channels=2, k=3, seeds=40, seed=0) -> SGIModel:
    torch.manual_seed(seed)
    config = ModelConfig(
        height=height,
        width=width,
        channels=channels,
        feature_dim=4,
        gaussians_per_seed=k,
        seed_count=seeds,
        grid_levels=0,
    )
    model = SGIModel(config)
    with torch.no_grad():  # away from the zero start: every term of the formulas matters
        model.offsets.normal_(0, 1.5)
        model.log_scaling.add_(torch.randn_like(model.log_scaling) * 0.5)
        model.features.normal_(0, 1)
        for layer in (model.mlp_cov[2], model.mlp_color[2]):
            layer.weight.normal_(0, 1)
    return model


def _loss(means, conics, colors, weights):
    return sum((t * w).sum() for t, w in zip((means, conics, colors), weights, strict=True))


@pytest.mark.parametrize("level", [0, 1, 2])
def test_values_and_gradients_match_the_reference(level):
    from napari_sgi.core._decode_cpu import level_gaussians_cpu

    model = _model()
    reference = model.level_gaussians(level)
    fast = level_gaussians_cpu(model, level)
    for expected, got in zip(reference, fast[:3], strict=True):
        torch.testing.assert_close(got, expected, rtol=2e-6, atol=1e-6)
    # Same means and conics in, same boxes out: the kernel follows gaussian_pixel_bounds exactly.
    height, width = level_shape(model.config.height, model.config.width, level)
    assert torch.equal(fast[3], gaussian_pixel_bounds(fast[0], fast[1], height, width))
    assert fast[3].any()

    weights = [torch.randn_like(t) for t in reference]
    parameters = [model.offsets, model.log_scaling, model.features, *model.mlp_cov.parameters()]
    expected = torch.autograd.grad(_loss(*reference, weights), parameters)
    got = torch.autograd.grad(_loss(*fast[:3], weights), parameters)
    for e, g in zip(expected, got, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-5 * float(e.abs().max()))


def test_boxes_of_degenerate_and_non_finite_gaussians_are_empty():
    from napari_sgi.core._decode_cpu import level_gaussians_cpu

    model = _model(seeds=4, k=2)
    with torch.no_grad():
        model.offsets[0, 0, 0] = float("nan")
        model.offsets[1, 1, 1] = float("inf")
        model.log_scaling[2, 2] = -200.0  # s1 underflows to 0: an infinite conic
    means, conics, _, bounds = level_gaussians_cpu(model)
    reference = gaussian_pixel_bounds(means, conics, model.config.height, model.config.width)
    assert torch.equal(bounds, reference)
    for gaussian in (0, 3, 4, 5):  # NaN mean, infinite mean, the zero-sized seed's two
        assert bounds[gaussian].tolist() == [0, 0, 0, 0]
    assert bounds[6].tolist() != [0, 0, 0, 0]


def test_same_result_on_any_number_of_threads():
    from napari_sgi.core import _raster_cpu
    from napari_sgi.core._decode_cpu import level_gaussians_cpu

    model = _model(seeds=300)
    outputs = []
    for threads in (1, 2, 3):
        _raster_cpu.set_kernel_threads(threads)
        try:
            means, conics, colors, bounds = level_gaussians_cpu(model, 1)
            grads = torch.autograd.grad((means.sum() + conics.sum()), model.log_scaling)
        finally:
            _raster_cpu.set_kernel_threads(None)
        outputs.append((means, conics, bounds, grads[0]))
    for other in outputs[1:]:
        assert all(torch.equal(a, b) for a, b in zip(outputs[0], other, strict=True))


def test_training_render_is_the_render_to_float32_rounding():
    model = _model(channels=3)
    for level in (0, 1):
        expected = model.render(level)
        torch.testing.assert_close(model.training_render(level), expected, rtol=1e-5, atol=1e-5)
    # Elsewhere than the compiled kernel it is the render itself.
    assert torch.equal(model.training_render(1, backend="torch"), model.render(1, backend="torch"))
