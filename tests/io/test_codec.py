import copy

import torch

from napari_sgi.core.fit import fit
from napari_sgi.core.metrics import psnr
from napari_sgi.core.presets import FitConfig
from napari_sgi.io.codec import encode_model, round_weights_to_half


def test_float16_weights_cost_no_measurable_quality(ihc_crop):
    """The file stores the MLPs as float16: the render barely moves (far below quantisation)."""
    from napari_sgi.core.image import ValueRange, to_tensor

    image = to_tensor(ihc_crop, ValueRange.of(ihc_crop))
    model = fit(
        image,
        FitConfig(iterations=120, levels=2, feature_dim=16, gaussians_per_seed=6, density=0.25),
    ).model
    half = copy.deepcopy(model)
    round_weights_to_half(half)
    with torch.no_grad():
        full_render = model.render(0, model.quantized_attributes(0)).clamp(0, 1)
        half_render = half.render(0, half.quantized_attributes(0)).clamp(0, 1)
    assert abs(psnr(full_render, image) - psnr(half_render, image)) < 0.05
    assert psnr(half_render, full_render) > 45


def test_sections_hold_everything_and_only_the_needed_bytes():
    model = fit(
        torch.rand(1, 32, 32),
        FitConfig(iterations=5, levels=2, feature_dim=8, gaussians_per_seed=4, density=0.1),
    ).model
    sections = encode_model(model)
    assert set(sections) == {"weights", "hash_grid", "features", "log_scaling", "offsets"}
    n_weights = sum(
        p.numel() for name in ("mlp_color", "mlp_cov") for p in getattr(model, name).parameters()
    )
    n_weights += sum(p.numel() for p in model.context.mlp.parameters())
    assert len(sections["weights"]) == 2 * n_weights
    # The hash grid: one Bernoulli-coded bit per entry at most, plus a small header.
    assert len(sections["hash_grid"]) <= model.context.grid.table.numel() / 8 + 64


def test_fast_table_helpers_match_numpy_sorts():
    """The decoder's radix order and dense row lookup are the numpy sorts they replace."""
    import numpy as np

    from napari_sgi.core._coding_cdf import distinct_rows, stable_argsort

    rng = np.random.default_rng(0)
    for spread in (1, 300, 70000, 2**40):  # radix/dense paths and their wide-range fallbacks
        keys = rng.integers(0, spread, 5000) + 16000
        assert np.array_equal(stable_argsort(keys), np.argsort(keys, kind="stable"))
        first, inverse = distinct_rows(keys)
        assert np.array_equal(keys[first][inverse], keys)
        assert len(first) == len(np.unique(keys))
