"""Weights sections: int8 rows and float16 round trips, and what is refused."""

import copy

import numpy as np
import pytest
import torch

from napari_sgi.codec.weights import load_weights, store_weights
from napari_sgi.core.model import ModelConfig, SGIModel


def _model(seed: int) -> SGIModel:
    torch.manual_seed(seed)
    config = ModelConfig(
        height=16,
        width=16,
        channels=3,
        feature_dim=6,
        gaussians_per_seed=3,
        seed_count=10,
        grid_levels=2,
    )
    return SGIModel(config)


def _params(model):
    modules = (model.mlp_color, model.mlp_cov, model.context.mlp)
    return [p.detach().clone() for m in modules for p in m.parameters()]


def test_stored_weights_round_trip_exactly_and_are_smaller_than_float16():
    source = _model(0)
    data = store_weights(source)  # rounds source in place to what it stored
    target = _model(1)
    load_weights(target, data)
    for a, b in zip(_params(source), _params(target), strict=True):
        assert torch.equal(a, b)
    assert len(data) < 2 * sum(p.numel() for p in _params(source))


def test_weight_rows_are_int8_close_to_the_weights():
    model = _model(0)
    before = _params(model)
    store_weights(model)
    for a, b in zip(before, _params(model), strict=True):
        peak = a.abs().max().item()
        assert (a - b).abs().max().item() <= peak / 254 + 1e-6


def test_a_section_of_the_wrong_length_is_refused():
    model = _model(0)
    data = store_weights(copy.deepcopy(model))
    for bad in (data[:-1], data + b"\0", b"", np.zeros(3, np.uint8).tobytes()):
        with pytest.raises(ValueError, match="weight section"):
            load_weights(model, bad)


def test_a_section_of_another_layout_is_refused():
    """Only ``SGW9`` is read: the pre-release layouts (``SGW8``, magic-less float16) are not."""
    model = _model(0)
    data = store_weights(copy.deepcopy(model))
    with pytest.raises(ValueError, match="SGW8"):
        load_weights(model, b"SGW8" + data[4:])
    float16 = b"".join(p.half().numpy().tobytes() for p in _params(model))
    with pytest.raises(ValueError, match="weight section"):
        load_weights(model, float16)
