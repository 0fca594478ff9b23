"""The MLP weights' steps chosen by what they cost and buy, training on them, and storing them."""

import copy
import math

import numpy as np
import pytest
import torch

from napari_sgi.codec.gaussian_stream import encode_gaussian
from napari_sgi.codec.model import decode_model, encode_model
from napari_sgi.codec.weights import _exponent, _spread_code, store_weights
from napari_sgi.core.fit import fit
from napari_sgi.core.presets import FitConfig
from napari_sgi.core.weight_steps import (
    REFERENCE_LEVELS,
    _image_tensors,
    choose_weight_steps,
    coded_bits,
    hold_on_steps,
    release_steps,
)

CONFIG = FitConfig(
    iterations=80,
    levels=2,
    feature_dim=4,
    gaussians_per_seed=3,
    density=0.08,
    grid_levels=0,
    lmbda=1e-4,
    distortion="mse",
    attribute_lr_scale=8.0,
    refine=0.1,
)


def _image() -> torch.Tensor:
    generator = torch.Generator().manual_seed(5)
    y, x = torch.meshgrid(torch.linspace(0, 1, 24), torch.linspace(0, 1, 28), indexing="ij")
    blobs = torch.exp(-((y - 0.4) ** 2 + (x - 0.6) ** 2) / 0.02)
    return (0.7 * blobs + 0.1 * torch.rand(1, 24, 28, generator=generator)).clamp(0, 1)


@pytest.fixture(scope="module")
def fitted():
    target = _image()
    return target, fit(target, CONFIG).model


def _tensors(model) -> dict:
    tensors = _image_tensors(model)
    return {key: getattr(linear, kind).detach().clone() for key, linear, kind in tensors}


def test_coded_bits_are_what_the_coder_spends():
    values = torch.from_numpy(np.random.default_rng(0).laplace(0, 0.3, 400)).float()
    q = np.rint(values.double().numpy() / 2**-6).astype(np.int64)
    sigma = 2.0 ** (_spread_code(q) / 16 - 2)
    stream = encode_gaussian(q, 0.0, np.full(q.size, sigma), 1.0)
    estimate = coded_bits(values, 2**-6)
    assert 8 * (len(stream) - 18) == pytest.approx(estimate, rel=0.03)  # 18: the stream's head


def test_a_smaller_file_chooses_coarser_steps(fitted):
    target, model = fitted
    before = _tensors(model)
    attributes = model.quantized_attributes(0)
    small, saved_small = choose_weight_steps(model, target, attributes, 2e3)
    large, saved_large = choose_weight_steps(model, target, attributes, 2e7)
    assert set(small) == set(large) == set(before)
    assert all(small[key] >= large[key] for key in small)
    assert any(small[key] > large[key] for key in small)
    assert saved_small > saved_large
    after = _tensors(model)  # tried on the model's own tensors, and put back
    assert all(torch.equal(before[key], after[key]) for key in before)


def test_training_on_steps_leaves_the_weights_on_them(fitted):
    target, model = fitted
    model = copy.deepcopy(model)
    steps, _ = choose_weight_steps(model, target, model.quantized_attributes(0), 2e3)
    latent = _tensors(model)
    hold_on_steps(model, steps)
    for key, values in _tensors(model).items():  # the model computes with rounded values
        assert torch.equal(values, torch.round(latent[key] / steps[key]) * steps[key])
    loss = model.render(0).square().sum()
    loss.backward()
    original = model.mlp_color[2].parametrizations.weight.original
    assert original.grad is not None and original.grad.abs().sum() > 0  # straight through
    release_steps(model)
    assert not any(hasattr(m, "parametrizations") for m in (model.mlp_color[0], model.mlp_cov[2]))
    assert all(isinstance(p, torch.nn.Parameter) for p in model.mlp_cov.parameters())
    for key, values in _tensors(model).items():
        assert torch.equal(values, torch.round(values / steps[key]) * steps[key])


def test_the_writer_stores_weights_on_their_steps_exactly():
    values = np.array([3, -7, 0, 12], np.float64) * 2.0**-9  # on a step 8x the 63-step rule's
    assert _exponent(values, 63) == -9
    assert math.floor(math.log2(np.abs(values).max() / 63)) == -12
    finer = np.array([1001, -3, 4000], np.float64) * 2.0**-12  # finer than 63 steps: kept
    assert _exponent(finer, 63) == -12
    off_grid = np.array([0.1234567, -0.5], np.float64)  # no exact step: 63 steps to the peak
    assert _exponent(off_grid, 63) == math.floor(math.log2(0.5 / 63))


def test_a_fit_told_its_file_size_stores_the_steps_it_trained_on():
    target = _image()
    model = fit(target, CONFIG, fixed_bits=1500.0).model
    trained = _tensors(model)
    assert all(isinstance(p, torch.nn.Parameter) for p in model.mlp_color.parameters())
    moved = 0
    for values in trained.values():  # each on the power-of-two step the writer finds
        exponent = _exponent(values.double().numpy(), REFERENCE_LEVELS)
        assert torch.equal(values, torch.round(values / 2.0**exponent) * 2.0**exponent)
        peak = float(values.abs().max())
        moved += exponent != math.floor(math.log2(peak / REFERENCE_LEVELS))
    assert moved  # a 1500-bit file: some tensors on steps other than 63 to their peak
    sections = encode_model(model)  # stores them unchanged, and the file decodes to the same
    assert all(torch.equal(trained[key], values) for key, values in _tensors(model).items())
    decoded = decode_model(model.config, sections)
    with torch.no_grad():
        assert torch.equal(decoded.render(0), model.render(0))
    assert store_weights(copy.deepcopy(model)) == sections["weights"]
