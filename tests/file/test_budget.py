"""The bounds a reader puts on a region's model, and the section lengths it derives from them."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from napari_sgi.codec import gaussian_stream
from napari_sgi.codec.weights import rows_size, store_weights
from napari_sgi.core.model import ModelConfig, SGIModel
from napari_sgi.core.presets import PRESETS
from napari_sgi.core.regions import REGION_MARGIN, REGION_SIZE
from napari_sgi.core.seeds import seed_count_for_density
from napari_sgi.errors import SGIFormatError
from napari_sgi.file.budget import (
    CHUNK_SYMBOLS,
    MAX_BOX_VALUES,
    check_model_budget,
    coded_weights_bytes,
    min_stream_bytes,
    weights_bytes,
)
from napari_sgi.file.header import check_model_config


def _config(**fields) -> dict:
    base = dict(
        height=64,
        width=64,
        channels=1,
        feature_dim=4,
        gaussians_per_seed=4,
        seed_count=40,
        rng_seed=0,
        levels=3,
        grid_levels=0,
        grid_features=4,
        grid_log2_table=13,
    )
    return {**base, **fields}


@pytest.mark.parametrize("gated", [0, 1])
@pytest.mark.parametrize(
    ("f", "k", "c", "grid_levels", "grid_features"),
    [(1, 1, 1, 0, 4), (4, 10, 3, 0, 4), (50, 10, 1, 12, 4), (7, 3, 4, 2, 16), (16, 6, 1, 6, 1)],
)
def test_the_weights_length_is_the_models_own(f, k, c, grid_levels, grid_features, gated):
    config = _config(
        feature_dim=f,
        gaussians_per_seed=k,
        channels=c,
        grid_levels=grid_levels,
        grid_features=grid_features,
    )
    if gated:
        config["blend"] = 1
    model = SGIModel(ModelConfig(**config))
    assert weights_bytes(config) == rows_size(model)
    shortest, longest = coded_weights_bytes(config)
    assert shortest <= len(store_weights(model)) <= longest


def test_the_chunk_bound_is_the_encoders():
    assert CHUNK_SYMBOLS == gaussian_stream.CHUNK_MAX


@pytest.mark.parametrize("n", [1, 1000, CHUNK_SYMBOLS, CHUNK_SYMBOLS + 1, 3 * CHUNK_SYMBOLS])
def test_a_stream_is_never_shorter_than_its_minimum(n):
    """Symbols coded with certainty: the shortest streams an encoder writes."""
    data = gaussian_stream.encode_gaussian(np.zeros(n, np.int64), 0.0, 1e-6, 1.0)
    assert min_stream_bytes(n) <= len(data) <= min_stream_bytes(n) + 8 * (n // CHUNK_SYMBOLS + 1)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_the_presets_models_fit_the_budget(preset):
    """Every preset at the default region size, grey and RGB, at its density and at 0.25 (the
    densest the tests use), with K from 1 to 16: the reader reads what the encoder writes."""
    config = PRESETS[preset]
    side = REGION_SIZE + 2 * REGION_MARGIN
    for density, k, channels in itertools.product((config.density, 0.25), range(1, 17), (1, 3)):
        seeds = seed_count_for_density(side, side, density, k)
        model = _config(
            height=side,
            width=side,
            channels=channels,
            feature_dim=config.feature_dim,
            gaussians_per_seed=k,
            seed_count=seeds,
            grid_levels=config.grid_levels or 12,
        )
        check_model_config(model)


def test_a_gated_blend_is_read_and_any_other_value_refused():
    """``blend`` is written only for the gated blend (1); the plain sum leaves it out."""
    check_model_config(_config(blend=1))
    for value in (0, 2, True, "1", 1.0):
        with pytest.raises(SGIFormatError, match="'blend' out of range"):
            check_model_config(_config(blend=value))
    with pytest.raises(SGIFormatError, match="optionally seed_map, blend"):
        check_model_config(_config(gate=1))


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"height": 8192, "width": 8193}, "'height' too large"),
        ({"height": 4096, "width": 4096, "channels": 5}, "'height' too large"),
        ({"seed_count": 1025}, "'seed_count' too large.* at most one per pixel"),
        ({"seed_count": 1, "gaussians_per_seed": 256, "height": 4, "width": 4}, None),
        ({"height": 4096, "width": 4096, "seed_count": 1 << 20, "gaussians_per_seed": 8}, "in all"),
        ({"seed_count": 1000, "feature_dim": 64, "gaussians_per_seed": 1}, "stored values"),
        ({"seed_count": 1, "feature_dim": 1024, "height": 4, "width": 4}, None),
    ],
)
def test_models_beyond_the_budget_are_refused(fields, match):
    model = _config(**fields)
    if match is None:
        check_model_budget(model)
    else:
        with pytest.raises(SGIFormatError, match=match):
            check_model_budget(model)
    assert MAX_BOX_VALUES == 8192 * 8192


@pytest.mark.parametrize("grid_levels", [0, 2])
def test_the_shortest_coded_weights_bound_holds_for_all_zero_weights(grid_levels):
    """All-zero weights code at the least a value can cost (the smallest spread): the shortest
    bound must still be at or under that section's length."""
    import torch

    config = _config(feature_dim=24, gaussians_per_seed=10, grid_levels=grid_levels)
    model = SGIModel(ModelConfig(**config))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
    data = store_weights(model)
    shortest, _ = coded_weights_bytes(config)
    assert data[:4] == b"SGWA" and shortest <= len(data) < 2 * shortest
