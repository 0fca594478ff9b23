"""Quantisation steps for the colour and covariance MLPs, chosen by what each costs and buys.

A file stores every weight tensor on a power-of-two step (:mod:`napari_sgi.codec.weights`,
layout ``SGWA``); each halving of a tensor's step costs about one bit a value, and each doubling
adds rounding noise to every Gaussian the tensor shapes. At 63 steps to every tensor's peak (the
writer's rule for weights it was not told about) the weights are 230-410 bytes: a third of a
0.1 bpp file of a 256x256 slice, where coarser steps pay, and a rounding error that costs the
RGB IHC image 0.07 dB, where finer ones do (docs/method.md, "Entropy-coded MLP weights").

:func:`choose_weight_steps` picks each tensor's step from 2^-3 to 2^4 times the 63-step one by
the trade the file's own size implies: the MSE change of rounding that one tensor (rendered
against the image) plus ``mu`` times its coded bits, where ``mu`` is the MSE a bit is worth when
a doubling of the file buys ``DB_PER_DOUBLING`` dB. The fit chooses them at the start of its rate
phase (:func:`hold_weights`) and trains from there on the weights rounded to them (a
straight-through rounding), so that the attributes and the weights' own latent values make up
what rounding moved; a size target's budget gets back the bits they save. The writer stores
values that lie on a step exactly on that step (:func:`napari_sgi.codec.weights.store_weights`).

Why not the fit's λ: with soft rounding λ hardly moves a fit's size, which the density sets
(docs/method.md, "Soft rounding"), and at the end of a size-target fit it prices a bit about ten
times below what the density's curve pays for one (z-slice at 0.1 bpp: 0.25 against 2.8 dB a
doubling).
"""

from __future__ import annotations

import math

import torch
from torch.nn.utils import parametrize

from napari_sgi.core.metrics import clamped_mse
from napari_sgi.core.model import Attributes, SGIModel

# dB a doubling of the file buys, to price a bit: the size targets' curves give 2.0-2.8 on the
# z-slice, 2.0-3.2 on IHC and 0.4-0.7 on nuclei between 0.1 and 2 bpp (docs/benchmarks.md,
# "targets"). A rule of thumb for images in general, not a fit to one.
DB_PER_DOUBLING = 2.0
REFERENCE_LEVELS = 63  # the writer's steps to a tensor's peak for weights it was not told about
STEP_SPAN = (-3, 4)  # candidate steps: 2^-3 .. 2^4 times the reference step
MIN_SPREAD = 0.25  # the coder's least sigma for a tensor's integers (codec.weights)

WeightSteps = dict[tuple[str, str], float]  # (Linear's name in the model, "weight"/"bias") -> step


def _image_tensors(model: SGIModel):
    """``(key, linear, kind)`` for every weight and bias of the colour and covariance MLPs (and
    of the blend head, in a model that has one)."""
    for module in model.image_modules():
        for name, linear in getattr(model, module).named_children():
            if isinstance(linear, torch.nn.Linear):
                for kind in ("weight", "bias"):
                    yield (f"{module}.{name}", kind), linear, kind


def coded_bits(values: torch.Tensor, step: float) -> float:
    """Bits the coder spends on ``values`` rounded to ``step``: a discretised Gaussian of zero
    mean and the integers' RMS as its sigma, as the weights section codes a tensor.

    Examples
    --------
    >>> round(coded_bits(torch.zeros(10), 0.5), 2)  # all zero: a fraction of a bit each
    0.67
    >>> noise = torch.randn(1000, generator=torch.Generator().manual_seed(0)) * 20
    >>> round(coded_bits(noise, 1.0) / 1000, 1)  # about log2(20 sqrt(2 pi e))
    6.4
    """
    q = torch.round(values.detach().double() / step).flatten()
    sigma = max(float(q.square().mean().sqrt()) if q.numel() else 0.0, MIN_SPREAD)
    upper = torch.special.ndtr((q + 0.5) / sigma)
    lower = torch.special.ndtr((q - 0.5) / sigma)
    return float(-torch.log2((upper - lower).clamp(min=1e-12)).sum())


def bit_price(mse: float, file_bits: float) -> float:
    """MSE a bit is worth in a file of ``file_bits`` bits at ``mse`` (``[0, 1]`` units), when a
    doubling of the file buys ``DB_PER_DOUBLING`` dB.

    Examples
    --------
    >>> bit_price(1e-3, 8000.0) > bit_price(1e-3, 16000.0)
    True
    """
    return mse * math.log(10) / 10 * DB_PER_DOUBLING / (file_bits * math.log(2))


@torch.no_grad()
def choose_weight_steps(
    model: SGIModel,
    target: torch.Tensor,  # [C, H, W] the image at ``level``, in [0, 1]
    attributes: Attributes,
    file_bits: float,
    level: int = 0,
    backend: str = "auto",
    weights: torch.Tensor | None = None,  # [H, W] the fit's pixel weights at ``level``
) -> tuple[WeightSteps, float]:
    """A power-of-two step for each tensor of the colour and covariance MLPs: the one with the
    least MSE change + :func:`bit_price` x :func:`coded_bits`, each tensor rounded alone with
    the others as they are, rendering ``attributes`` at ``level``. Also returns the bits the
    chosen steps save against ``REFERENCE_LEVELS`` steps to each tensor's peak (negative when
    they are finer).

    Examples
    --------
    >>> from napari_sgi.core.model import ModelConfig
    >>> model = SGIModel(ModelConfig(height=16, width=16, channels=1, feature_dim=4,
    ...                              gaussians_per_seed=2, seed_count=12))
    >>> steps, saved = choose_weight_steps(model, torch.rand(1, 16, 16), model.attributes(), 4e3)
    >>> sorted(steps)[0], all(math.log2(s).is_integer() for s in steps.values())
    (('mlp_color.0', 'bias'), True)
    """

    def mse() -> float:
        render = model.training_render(level, attributes, backend=backend)
        return clamped_mse(render, target, weights)

    unrounded = mse()
    price = bit_price(unrounded, file_bits)
    steps, saved = {}, 0.0
    for key, linear, kind in _image_tensors(model):
        tensor = getattr(linear, kind)
        values = tensor.detach().clone()
        peak = float(values.abs().max())
        if not peak > 0:
            continue
        reference = math.floor(math.log2(peak / REFERENCE_LEVELS))
        best, bits = math.inf, {}
        for exponent in range(reference + STEP_SPAN[0], reference + STEP_SPAN[1] + 1):
            step = 2.0**exponent
            if peak / step < 1:
                break
            tensor.copy_(torch.round(values / step) * step)
            bits[step] = coded_bits(values, step)
            cost = mse() - unrounded + price * bits[step]
            if cost < best:
                best, steps[key] = cost, step
        tensor.copy_(values)
        saved += bits[2.0**reference] - bits[steps[key]]
    return steps, saved


def steps_for_file(
    model: SGIModel,
    target: torch.Tensor,  # [C, H, W] the image at ``level``, in [0, 1]
    file_bits: float,
    level: int = 0,
    models: dict | None = None,
    backend: str = "auto",
    weights: torch.Tensor | None = None,  # [H, W]
) -> tuple[WeightSteps, float]:
    """:func:`choose_weight_steps` for a file of about ``file_bits`` bits, rendering the
    attributes rounded as the file stores them (with the entropy ``models`` of ``level`` when the
    caller has them)."""
    with torch.no_grad():
        attributes = model.quantized_attributes(level, models)
    return choose_weight_steps(model, target, attributes, file_bits, level, backend, weights)


def hold_weights(
    model: SGIModel,
    target: torch.Tensor,  # [C, H, W] the image at ``level``, in [0, 1]
    level: int,
    models: dict,
    file_bits: float,
    backend: str = "auto",
    weights: torch.Tensor | None = None,  # [H, W]
) -> float:
    """Choose the MLPs' steps (:func:`steps_for_file`) and train on them from now on
    (:func:`hold_on_steps`); return the bits they save."""
    steps, saved = steps_for_file(model, target, file_bits, level, models, backend, weights)
    hold_on_steps(model, steps)
    return saved


class _OnStep(torch.nn.Module):
    """Straight-through rounding to a fixed step: the forward pass sees the rounded values, the
    gradient passes to the latent ones."""

    def __init__(self, step: float) -> None:
        super().__init__()
        self.step = step

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        return values + (torch.round(values / self.step) * self.step - values).detach()


def hold_on_steps(model: SGIModel, steps: WeightSteps) -> None:
    """From now on ``model`` computes with its MLP tensors rounded to ``steps``; the trainable
    parameters become the latent values (``parametrizations.<kind>.original``)."""
    for key, linear, kind in _image_tensors(model):
        if key in steps:
            parametrize.register_parametrization(linear, kind, _OnStep(steps[key]))


def release_steps(model: SGIModel) -> None:
    """Undo :func:`hold_on_steps`, leaving every tensor at its rounded value."""
    for _, linear, kind in _image_tensors(model):
        if parametrize.is_parametrized(linear, kind):
            parametrize.remove_parametrizations(linear, kind, leave_parametrized=True)
