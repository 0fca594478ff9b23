"""The entropy model: adaptive quantisation steps, a context MLP over the binary hash grid, and the
discretised-Gaussian bit estimate that makes the rate term of the loss (sgi-method §6-7).

Attribute groups of a seed: features ``f`` [F], log-scalings ``log l`` [4], offsets ``O`` [K, 2].
Deviation from the reference (see docs/method.md): scalings are quantised in the log domain, so that
a small Gaussian never rounds to a zero size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from napari_sgi.core.hashgrid import RESOLUTIONS, BinaryHashGrid

Q0_FEATURE = 1.0
Q0_LOG_SCALING = 1.0 / 16.0
MIN_PROBABILITY = 1e-6
# Where calibration starts each group's adaptive step, as a multiple of its base step (in (0, 2));
# benchmarks vary it (bench_ablation).
INITIAL_STEP_FACTOR = 1.0
GROUPS = ("features", "log_scaling", "offsets")
# Soft rounding in the rate phase (Agustsson & Theis 2020, as C3 and Cool-chic train): the
# attributes train on Q·s(s(x/Q) + U) and the rate on Q·(s(x/Q) + U), with the temperature of
# s annealed linearly from start to end over the phase (C3's 0.3 -> 0.1). Against training on
# x + U·Q (None, the reference's) it gave +0.25 (IHC), +0.08 (nuclei) and +0.15 dB (z-slice)
# BD-PSNR at 3000 steps; Cool-chic 5's 0.35 -> 0.08 the same (docs/method.md, "Soft rounding").
SOFT_ROUND: tuple[float, float] | None = (0.3, 0.1)
# Soft rounding before the rate phase too, on the base steps, at this temperature (None: plain
# noise there). Cost 0.2-0.3 dB against SOFT_ROUND alone; kept for the ablation.
SOFT_ROUND_BASE: float | None = None


def q0_offset(level: int) -> float:
    """Base step of the offsets at pyramid level ``level`` (0 = full resolution)."""
    return 0.2 * 2.0 ** (-level)


def base_steps(level: int) -> dict[str, float]:
    """Base quantisation step ``Q0`` of each attribute group at a pyramid level."""
    return {"features": Q0_FEATURE, "log_scaling": Q0_LOG_SCALING, "offsets": q0_offset(level)}


@dataclass
class GroupModel:
    """Per-seed distribution of one attribute group: value ~ N(mean, scale), step ``step``."""

    mean: torch.Tensor  # [N, D], or [1, D] shared by every seed (a model without context)
    scale: torch.Tensor  # [N, D] or [1, D], > 0
    step: torch.Tensor  # [N, 1] or [1, 1], broadcast over D

    def rows(self, seeds: torch.Tensor) -> GroupModel:
        """The distributions of the seeds ``seeds`` [S] (shared ones stay one row)."""
        if self.mean.shape[0] == 1:
            return self
        return GroupModel(self.mean[seeds], self.scale[seeds], self.step[seeds])


class ContextModel(nn.Module):
    """Hash grid + MLP: the mean, scale and adaptive step of every attribute of a seed.

    Parameters
    ----------
    feature_dim
        F, features per seed.
    gaussians_per_seed
        K, offsets per seed.
    grid_levels
        Levels of the binary hash grid; 0 means no spatial context: one learned distribution per
        attribute for all seeds (``prior``), and neither grid nor MLP to store.
    """

    def __init__(
        self,
        feature_dim: int,
        gaussians_per_seed: int,
        *,
        grid_levels: int = 12,
        grid_features: int = 4,
        grid_log2_table: int = 13,
    ):
        super().__init__()
        self.dims = {"features": feature_dim, "log_scaling": 4, "offsets": 2 * gaussians_per_seed}
        n_out = 2 * sum(self.dims.values()) + len(GROUPS)
        self.grid: BinaryHashGrid | None = None
        self.mlp: nn.Sequential | None = None
        self.prior: nn.Parameter | None = None
        if grid_levels == 0:
            # One learned distribution per attribute, shared by every seed: on a small image the
            # hash grid collapses to one sign anyway, and the context MLP's weights then cost more
            # bytes than the spatial context saves.
            self.prior = nn.Parameter(torch.zeros(n_out))
            return
        self.grid = BinaryHashGrid(RESOLUTIONS[:grid_levels], grid_features, grid_log2_table)
        self.mlp = nn.Sequential(
            nn.Linear(self.grid.output_dim, 2 * feature_dim),
            nn.ReLU(),
            nn.Linear(2 * feature_dim, n_out),
        )

    def raw(self, coords: torch.Tensor) -> torch.Tensor:  # [N, 2] -> [N, n_out]
        """The unconstrained outputs (means, raw scales, step logits) for every seed."""
        if self.prior is not None:
            return coords.new_zeros(len(coords), 1) + self.prior
        return self.mlp(self.grid(coords))

    def output_bias(self) -> torch.Tensor:  # [n_out]
        """The parameter that shifts every seed's outputs alike (what calibration moves)."""
        return self.prior if self.prior is not None else self.mlp[-1].bias

    def grid_bits(self) -> torch.Tensor | float:
        """Bits of the binarised hash grid in a file (0 without a grid)."""
        return self.grid.bits() if self.grid is not None else 0.0

    def forward(self, coords: torch.Tensor, level: int = 0) -> dict[str, GroupModel]:
        """Distributions of the attributes of seeds at normalised positions ``coords`` [N, 2].

        Without context (``grid_levels=0``) every seed has the same distributions: they come as
        one row ``[1, D]`` that broadcasts over the seeds, rather than N copies of it.
        """
        out = self.prior[None] if self.prior is not None else self.raw(coords)
        q0 = base_steps(level)
        models, start = {}, 0
        step_logits = out[:, -len(GROUPS) :]
        for i, group in enumerate(GROUPS):
            dim = self.dims[group]
            mean = out[:, start : start + dim]
            # softplus keeps the scale positive with a gradient everywhere (the reference clamps a
            # output at 1e-9, where it then gets no gradient).
            scale = F.softplus(out[:, start + dim : start + 2 * dim]) + 1e-6
            step = q0[group] * (1 + torch.tanh(step_logits[:, i : i + 1]))
            models[group] = GroupModel(mean, scale, step)
            start += 2 * dim
        return models

    @torch.no_grad()
    def calibrate(
        self,
        coords: torch.Tensor,  # [N, 2] normalised seed positions
        groups: dict[str, torch.Tensor],  # group -> [N, D] attribute values
    ) -> None:
        """Shift the output biases so that the predicted means and scales fit ``groups`` on average.

        The context model gets its first gradient when the rate phase starts; without this its
        predicted means start near 0 while log-scalings sit near 1-2, and a short rate phase
        never closes that gap (measured: 9-11 bits per log-scaling value).
        """
        out = self.raw(coords)
        bias = self.output_bias()
        start = 0
        for group in GROUPS:
            dim = self.dims[group]
            values = groups[group]
            mean = out[:, start : start + dim]
            shift = (values - mean).mean(0)
            bias[start : start + dim] += shift
            spread = (values - mean - shift).pow(2).mean(0).sqrt().clamp_min(1e-3)
            raw_scale = out[:, start + dim : start + 2 * dim].mean(0)
            # inverse softplus: log(exp(y) - 1)
            bias[start + dim : start + 2 * dim] += torch.log(torch.expm1(spread)) - raw_scale
            start += 2 * dim
        if INITIAL_STEP_FACTOR != 1.0:
            logits = out[:, -len(GROUPS) :].mean(0)
            bias[-len(GROUPS) :] += math.atanh(INITIAL_STEP_FACTOR - 1.0) - logits


def discretized_gaussian_bits(
    values: torch.Tensor,  # [N, D] quantised or noised values
    mean: torch.Tensor,  # [N, D]
    scale: torch.Tensor,  # [N, D]
    step: torch.Tensor,  # [N, 1] or [N, D]
) -> torch.Tensor:  # [N, D]
    """Bits of each value under a Gaussian integrated over its quantisation bin (Eq. 11).

    ``P = Phi((x + Q/2 - mu) / sigma) - Phi((x - Q/2 - mu) / sigma)``, floored at 1e-6 (no gradient
    below the floor). The difference is taken in the tail nearer to the value, which keeps it exact
    far from the mean.

    Examples
    --------
    >>> x = torch.arange(-10, 11, dtype=torch.float64)[None]
    >>> mean, scale = torch.zeros_like(x), 2 * torch.ones_like(x)
    >>> bits = discretized_gaussian_bits(x, mean, scale, torch.ones(1, 1))
    >>> round(float((2 ** -bits).sum()), 6)  # the bins of all symbols sum to one
    1.0
    """
    centred = values - mean
    # Use the upper tail for values above the mean: Phi(b) - Phi(a) == Phi(-a) - Phi(-b).
    sign = torch.where(centred > 0, -1.0, 1.0).to(values.dtype)
    upper = torch.special.ndtr(sign * (centred + sign * 0.5 * step) / scale)
    lower = torch.special.ndtr(sign * (centred - sign * 0.5 * step) / scale)
    probability = torch.clamp(upper - lower, min=MIN_PROBABILITY)
    return -torch.log2(probability)


def add_uniform_noise(
    values: torch.Tensor, step: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Training proxy of quantisation: ``x + U(-0.5, 0.5) * Q``."""
    noise = torch.rand(values.shape, generator=generator, dtype=values.dtype, device=values.device)
    return values + (noise - 0.5) * step


def soft_round(z: torch.Tensor, temperature: float) -> torch.Tensor:
    """A differentiable rounding, ``round(z)`` as the temperature goes to 0, ``z`` as it grows.

    Examples
    --------
    >>> z = torch.tensor([0.2, 0.5, 1.9])
    >>> [round(v, 3) for v in soft_round(z, 0.01).tolist()]
    [0.0, 0.5, 2.0]
    """
    floor = torch.floor(z)
    remainder = z - floor - 0.5
    return floor + 0.5 * torch.tanh(remainder / temperature) / math.tanh(0.5 / temperature) + 0.5


def add_soft_noise(
    values: torch.Tensor,
    step: torch.Tensor,
    temperature: float,
    generator: torch.Generator | None = None,
    *,
    round_again: bool = True,
) -> torch.Tensor:
    """Soft-rounded quantisation proxy: ``Q * s(s(x / Q) + U(-0.5, 0.5))``; without
    ``round_again`` ``Q * (s(x / Q) + U)``, the value the rate is measured on."""
    noise = torch.rand(values.shape, generator=generator, dtype=values.dtype, device=values.device)
    noised = soft_round(values / step, temperature) + (noise - 0.5)
    return step * (soft_round(noised, temperature) if round_again else noised)


def add_training_noise(
    values: torch.Tensor,
    step: torch.Tensor,
    generator: torch.Generator | None = None,
    temperature: float | None = None,
    *,
    round_again: bool = True,
) -> torch.Tensor:
    """The training proxy of quantisation: :func:`add_uniform_noise` without a temperature,
    :func:`add_soft_noise` with one (``round_again`` as there)."""
    if temperature is None:
        return add_uniform_noise(values, step, generator)
    return add_soft_noise(values, step, temperature, generator, round_again=round_again)


def quantize(values: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
    """Round to the step grid with a straight-through gradient: ``round(x / Q) * Q``."""
    rounded = torch.round(values / step) * step
    return values + (rounded - values).detach()


def rate_bits_per_value(
    attributes: dict[str, torch.Tensor],  # group -> [N, D] (noised) values of a subset of seeds
    models: dict[str, GroupModel],  # the same seeds' distributions
) -> torch.Tensor:
    """Mean bits per stored value over the given seeds (the per-seed rate of Eq. 14)."""
    total_bits, total_values = 0.0, 0
    for group in GROUPS:
        model = models[group]
        bits = discretized_gaussian_bits(attributes[group], model.mean, model.scale, model.step)
        total_bits = total_bits + bits.sum()
        total_values += bits.numel()
    return total_bits / max(total_values, 1)


def ideal_bits(
    attributes: dict[str, torch.Tensor], models: dict[str, GroupModel]
) -> dict[str, float]:
    """Total ideal bits -sum(log2 P) of each group, for quantised values (size estimates)."""
    out = {}
    for group in GROUPS:
        model = models[group]
        bits = discretized_gaussian_bits(attributes[group], model.mean, model.scale, model.step)
        out[group] = float(bits.sum())
    return out
