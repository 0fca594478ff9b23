"""napari_sgi.codec.model: a model to its file sections and back (named apart from
tests/core/test_model.py)."""

import copy

import torch

from napari_sgi.codec.model import encode_model, round_to_stored
from napari_sgi.codec.weights import rows_size
from napari_sgi.core.fit import fit
from napari_sgi.core.metrics import psnr
from napari_sgi.core.presets import FitConfig


def _int8_row_bytes(mlps) -> int:
    """Weight matrices as int8 rows with a float16 scale per row, biases as float16."""
    return sum(
        layer.weight.numel() + 2 * layer.weight.shape[0] + 2 * layer.bias.numel()
        for mlp in mlps
        for layer in mlp[::2]
    )


def test_stored_weights_cost_no_measurable_quality_and_few_bits(ihc_crop):
    """The file stores the weights rounded (coded, or int8 rows): the render barely moves (far below
    quantisation) and the attributes' bits hardly change."""
    from napari_sgi.core.entropy import ideal_bits
    from napari_sgi.core.image import ValueRange, to_tensor

    image = to_tensor(ihc_crop, ValueRange.of(ihc_crop))
    model = fit(
        image,
        FitConfig(iterations=120, levels=2, feature_dim=16, gaussians_per_seed=6, density=0.25),
    ).model
    half = copy.deepcopy(model)
    round_to_stored(half)
    with torch.no_grad():
        full_render = model.render(0, model.quantized_attributes(0)).clamp(0, 1)
        half_render = half.render(0, half.quantized_attributes(0)).clamp(0, 1)

        def bits(m):
            return sum(
                ideal_bits(m.quantized_attributes(0).as_groups(), m.entropy_models()).values()
            )

        full_bits, half_bits = bits(model), bits(half)
    assert abs(psnr(full_render, image) - psnr(half_render, image)) < 0.05
    assert psnr(half_render, full_render) > 45
    assert abs(half_bits - full_bits) < 0.01 * full_bits, (full_bits, half_bits)


def test_sections_hold_everything_and_only_the_needed_bytes():
    model = fit(
        torch.rand(1, 32, 32),
        FitConfig(
            iterations=5, levels=2, feature_dim=8, gaussians_per_seed=4, density=0.1, grid_levels=4
        ),
    ).model
    sections = encode_model(model)
    assert set(sections) == {"weights", "hash_grid", "features", "log_scaling", "offsets"}
    mlps = (model.mlp_color, model.mlp_cov, model.context.mlp)
    assert rows_size(model) == 4 + _int8_row_bytes(mlps)
    assert len(sections["weights"]) <= rows_size(model)  # coded when that is smaller
    # The hash grid: one Bernoulli-coded bit per entry at most, plus a small header.
    assert len(sections["hash_grid"]) <= model.context.grid.table.numel() / 8 + 64


def test_a_model_without_hash_grid_stores_its_prior_and_decodes_exactly():
    """``grid_levels=0``: no grid bits, a stored prior instead of the context MLP, and the
    decoder renders exactly what the encoder measured."""
    from napari_sgi.codec.model import decode_model

    model = fit(
        torch.rand(1, 32, 32),
        FitConfig(
            iterations=30,
            levels=2,
            feature_dim=6,
            gaussians_per_seed=4,
            density=0.1,
            grid_levels=0,
        ),
    ).model
    assert model.context.grid is None and model.context.mlp is None
    sections = encode_model(model)
    assert sections["hash_grid"] == b""
    mlp_bytes = _int8_row_bytes((model.mlp_color, model.mlp_cov))
    assert rows_size(model) == 4 + mlp_bytes + 2 * model.context.prior.numel()
    assert len(sections["weights"]) < rows_size(model)
    decoded = decode_model(model.config, sections)
    with torch.no_grad():
        assert torch.equal(decoded.render(0), model.render(0))
        assert torch.equal(decoded.context.prior, model.context.prior)
