"""Weights sections: the coded layout (``SGWA``) and int8 rows (``SGW9``), round trips and what
is refused."""

import copy

import numpy as np
import pytest
import torch

from napari_sgi.codec.weights import (
    COARSE_LEVELS,
    CODED_MAGIC,
    FINE_LEVELS,
    MAGIC,
    _store_rows,
    expected_size,
    load_weights,
    rows_size,
    store_weights,
)
from napari_sgi.core.entropy import GROUPS
from napari_sgi.core.model import ModelConfig, SGIModel
from napari_sgi.file.budget import coded_weights_bytes, weights_bytes


def _model(seed: int, grid_levels: int = 2, channels: int = 3, gated: int = 0) -> SGIModel:
    torch.manual_seed(seed)
    config = ModelConfig(
        height=16,
        width=16,
        channels=channels,
        feature_dim=6,
        gaussians_per_seed=3,
        seed_count=10,
        grid_levels=grid_levels,
        blend=gated,
    )
    model = SGIModel(config)
    if gated:  # a head away from its start (zeros), as a fit leaves it
        with torch.no_grad():
            for parameter in model.mlp_blend.parameters():
                parameter.normal_()
    return model


def _params(model):
    context = [model.context.prior] if model.context.prior is not None else model.context.mlp
    modules = [getattr(model, name) for name in model.image_modules()]
    params = [p for m in modules for p in m.parameters()]
    params += context if model.context.prior is not None else list(context.parameters())
    return [p.detach().clone() for p in params]


@pytest.mark.parametrize(("grid_levels", "gated"), [(0, 0), (2, 0), (0, 1), (2, 1)])
def test_the_writer_codes_the_weights_and_they_round_trip_exactly(grid_levels, gated):
    source = _model(0, grid_levels, gated=gated)
    data = store_weights(source)  # rounds source in place to what it stored
    assert data.startswith(CODED_MAGIC)
    assert len(data) < rows_size(source)  # fitted models' weights: docs/benchmarks.md
    lowest, highest = coded_weights_bytes(source.config.to_dict())
    assert lowest <= len(data) <= highest
    target = _model(1, grid_levels, gated=gated)
    load_weights(target, data)
    for a, b in zip(_params(source), _params(target), strict=True):
        assert torch.equal(a, b)
    assert store_weights(copy.deepcopy(source)) == data  # stored values store as themselves
    context = 4 if grid_levels else 1  # two Linears, or the prior
    assert len(_params(source)) == 8 + 2 * gated + context  # the blend head: a Linear


@pytest.mark.parametrize("grid_levels", [0, 2])
def test_coded_weights_are_close_and_the_step_logits_closer(grid_levels):
    model = _model(0, grid_levels)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_()  # every tensor well away from 0
    before = _params(model)
    store_weights(model)
    after = _params(model)
    steps = len(GROUPS)
    for index, (a, b) in enumerate(zip(before, after, strict=True)):
        last = index >= len(before) - (1 if grid_levels == 0 else 2)  # the context's outputs
        parts = [(a[:-steps], b[:-steps], COARSE_LEVELS), (a[-steps:], b[-steps:], FINE_LEVELS)]
        for x, y, levels in parts if last else [(a, b, COARSE_LEVELS)]:
            # A power-of-two step with at least ``levels`` steps to the peak: at most half of
            # peak / levels off, at least a quarter of it somewhere (the step is not finer).
            bound = x.abs().max().item() / levels / 2
            assert (x - y).abs().max().item() <= bound * (1 + 1e-6)
            assert (x - y).abs().max().item() >= bound / 4


@pytest.mark.parametrize("gated", [0, 1])
def test_int8_rows_are_still_read(gated):
    """Files written with ``SGW9`` (every file before the coded layout) decode as before."""
    source = _model(0, gated=gated)
    data, rounded = _store_rows(source)
    assert data.startswith(MAGIC) and len(data) == rows_size(source) == weights_bytes(
        source.config.to_dict()
    )
    target = _model(1, gated=gated)
    load_weights(target, data)
    for a, b in zip(rounded, _params(target), strict=True):
        assert torch.equal(torch.from_numpy(a).reshape(b.shape), b)


def test_the_writer_stores_rows_when_they_are_smaller():
    torch.manual_seed(0)
    config = ModelConfig(
        height=8,
        width=8,
        channels=1,
        feature_dim=1,
        gaussians_per_seed=1,
        seed_count=2,
        grid_levels=0,
    )
    model = SGIModel(config)
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-1, 1)  # few values, each costing about its full width when coded
    data = store_weights(model)
    assert data.startswith(MAGIC) and len(data) == rows_size(model)


def test_the_expected_size_is_near_a_fitted_models():
    from napari_sgi.core.fit import fit
    from napari_sgi.core.presets import FitConfig

    image = torch.rand(1, 32, 32)
    model = fit(image, FitConfig(iterations=40, levels=2, density=0.1, grid_levels=0)).model
    actual = len(store_weights(copy.deepcopy(model)))
    assert abs(expected_size(model) - actual) <= 0.15 * actual, (expected_size(model), actual)


@pytest.mark.parametrize("layout", ["rows", "coded"])
def test_a_section_of_the_wrong_length_is_refused(layout):
    model = _model(0)
    data = _store_rows(model)[0] if layout == "rows" else store_weights(copy.deepcopy(model))
    for bad in (data[:-1], data + b"\0", data[:4], data[:9]):
        with pytest.raises(ValueError, match="weight section|Gaussian stream|checksum"):
            load_weights(model, bad)


def test_a_coded_section_that_does_not_fit_the_model_is_refused():
    model = _model(0)
    data = bytearray(store_weights(copy.deepcopy(model)))
    bad_exponent = bytearray(data)
    bad_exponent[4] = 100  # the first tensor's step 2^100
    with pytest.raises(ValueError, match="step exponent"):
        load_weights(model, bytes(bad_exponent))
    other = _model(0, channels=1)  # another model's shapes: fewer values
    with pytest.raises(ValueError, match="weight section codes 773 values, the model has 731"):
        load_weights(other, bytes(data))


def test_a_section_of_another_layout_is_refused():
    """``SGWA`` and ``SGW9`` are read: the pre-release layouts (``SGW8``, magic-less float16)
    are not."""
    model = _model(0)
    data = _store_rows(model)[0]
    with pytest.raises(ValueError, match="SGW8"):
        load_weights(model, b"SGW8" + data[4:])
    float16 = b"".join(p.half().numpy().tobytes() for p in _params(model))
    with pytest.raises(ValueError, match="weight section"):
        load_weights(model, float16)


def test_the_rows_switch_stores_int8_rows(monkeypatch):
    """``CODED = False`` (benchmarks' baseline) writes ``SGW9`` and expects its size."""
    from napari_sgi.codec import weights

    monkeypatch.setattr(weights, "CODED", False)
    model = _model(0, grid_levels=0)
    data = store_weights(model)
    assert data.startswith(MAGIC) and len(data) == expected_size(model) == rows_size(model)


def test_a_damaged_coded_section_raises_value_errors_only():
    """Random byte changes anywhere in an ``SGWA`` section: a ``ValueError`` (the coder's
    checksums, the head's checks), or weights that load, never another exception."""
    model = _model(0)
    data = store_weights(copy.deepcopy(model))
    rng = np.random.default_rng(0)
    refused = 0
    for _ in range(300):
        damaged = bytearray(data)
        for position in rng.integers(0, len(data), rng.integers(1, 4)):
            damaged[position] = rng.integers(0, 256)
        try:
            load_weights(_model(1), bytes(damaged))
        except ValueError:
            refused += 1
    assert refused > 250  # most damage is caught (a changed spread code may still decode)
