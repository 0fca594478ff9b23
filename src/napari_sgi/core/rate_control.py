"""Rate control: steer λ during a fit so that the stored attributes land at a bit budget.

A size target (``--bpp``, ``--ratio``) is met in two moves. The density (how many Gaussians) sets
the rate's order of magnitude; the encoder chooses it from the target (:mod:`napari_sgi.core.
targets`). What is left, ±30 % at the most, is closed here: in the rate phase of the fit, every
``interval`` steps the bits of the attributes as the file will store them (rounded with their
adaptive steps, priced by the entropy model: the coder lands within 0.1-0.5 % of this) are
compared with the budget, and λ is multiplied by ``(bits / budget) ** gain``. Raising λ makes
the fit trade distortion for rate; lowering it gives the rate back, down to λ's floor.

Measured on 256x256 crops at density 0.02 (3000 steps): λ from 5e-6 to 3.2e-4 moved the file from
0.39 to 0.27 bpp (nuclei) for 0.4 dB, so λ alone spans about ±20 % around its default; the
controller allows λ from 1/100 to 10^4 times its start, so that a density chosen too high can
still be brought down to the budget, at some cost in quality.

Examples
--------
>>> control = LambdaControl(lmbda=2e-5, budget_bits=10_000)
>>> round(control.update(12_000) / 2e-5, 3)  # 20 % over the budget: λ x 1.2 ** 3
1.728
>>> round(control.update(5_000) / 2e-5, 3)  # half the budget: x 0.125, limited to x 0.5
0.864
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from napari_sgi.core.entropy import ideal_bits
from napari_sgi.core.metrics import clamped_mse

# A step of the controller changes λ at most by this factor: the fit needs some tens of steps to
# answer a new λ, so larger jumps overshoot.
MAX_STEP_FACTOR = 2.0
# λ stays within these multiples of where it started.
LAMBDA_RANGE = (1e-2, 1e4)


def _stepped(lmbda: float, start: float, factor: float) -> float:
    """``lmbda * factor``, the factor limited to x``MAX_STEP_FACTOR`` either way and the result
    to ``LAMBDA_RANGE`` times ``start``."""
    factor = min(max(factor, 1 / MAX_STEP_FACTOR), MAX_STEP_FACTOR)
    low, high = LAMBDA_RANGE
    return min(max(lmbda * factor, start * low), max(start, 1e-9) * high)


@dataclass
class LambdaControl:
    """Multiplicative control of λ towards ``budget_bits`` (see the module docstring).

    Parameters
    ----------
    lmbda
        λ at the start of the rate phase (the preset's).
    budget_bits
        The bits the stored attributes (and hash grid) should take.
    gain
        Exponent of the correction: λ *= (bits / aim) ** gain per update.
    glide
        Updates over which the aim comes down from the first reading to the budget (0: the
        budget from the first update). A soft-rounded fit keeps the cheaper bins λ pushes its
        values into, so it must reach the budget from above, not fall through it.
    """

    lmbda: float
    budget_bits: float
    gain: float = 3.0
    glide: int = 0
    history: list[tuple[float, float]] = field(default_factory=list)  # (bits, λ) per update

    def __post_init__(self) -> None:
        if not (self.budget_bits > 0 and math.isfinite(self.budget_bits)):
            raise ValueError(f"the bit budget must be positive, got {self.budget_bits}")
        self._start = self.lmbda

    def aim(self, bits: float) -> float:
        """The bits aimed at by the update that reads ``bits``."""
        done = len(self.history)
        if done >= self.glide:
            return self.budget_bits
        first = self.history[0][0] if self.history else bits
        share = done / self.glide
        return max(self.budget_bits, (1 - share) * first + share * self.budget_bits)

    def update(self, bits: float) -> float:
        """Take the attributes' current bits; return the new λ."""
        factor = (bits / self.aim(bits)) ** self.gain
        self.lmbda = _stepped(self.lmbda, self._start, factor)
        self.history.append((bits, self.lmbda))
        return self.lmbda


@dataclass
class QualityControl:
    """Multiplicative control of λ towards a PSNR: more λ (fewer bits) while above it.

    A quality target's density is chosen from short pilots with some headroom; what the density
    gives beyond the target is traded for rate here. λ doubles per ``1 / gain`` dB above
    ``psnr`` and halves per as much below (at most x2 a step), but never below where it started:
    the preset's λ is the efficient one, and lowering it buys little quality for many bits
    (measured on IHC at a 27 dB target: +16 % bytes for +0.05 dB). Too few Gaussians are the
    density's to fix, not λ's.

    Examples
    --------
    >>> control = QualityControl(lmbda=2e-5, psnr=30.0)
    >>> round(control.update(30.25) / 2e-5, 3), round(control.update(29.75) / 2e-5, 3)
    (1.414, 1.0)
    >>> round(control.update(29.0) / 2e-5, 3)  # below the target: λ stays at its start
    1.0
    """

    lmbda: float
    psnr: float
    gain: float = 2.0
    # dB the rest of the fit is expected to add to the PSNRs it is given (the refinement's gain,
    # :func:`refinement_gain`): λ steers them to ``psnr - allowance``.
    allowance: float = 0.0
    history: list[tuple[float, float]] = field(default_factory=list)  # (psnr, λ) per update

    def __post_init__(self) -> None:
        self._start = self.lmbda

    def update(self, psnr: float) -> float:
        """Take the current PSNR; return the new λ."""
        excess = psnr + self.allowance - self.psnr
        factor = 2.0 ** (self.gain * excess) if math.isfinite(psnr) else MAX_STEP_FACTOR
        self.lmbda = max(_stepped(self.lmbda, self._start, factor), self._start)
        self.history.append((psnr, self.lmbda))
        return self.lmbda


def stored_bits(model, level: int = 0, models: dict | None = None) -> float:
    """Bits of the attributes (and hash grid) as a file stores them, priced by the entropy model.

    The attributes are rounded with their adaptive steps, as the encoder rounds them; the entropy
    coder comes within 0.1-0.5 % of this (docs/benchmarks.md, "coding"). ``models``: the entropy
    models of ``level`` when the caller has them already.
    """
    with torch.no_grad():
        if models is None:
            models = model.entropy_models(level)
        rounded = model.quantized_attributes(level, models).as_groups()
        bits = sum(ideal_bits(rounded, models).values())
        return float(bits) + float(model.context.grid_bits())


def stored_psnr(
    model,
    target: torch.Tensor,  # [C, H, W] the full-resolution image in [0, 1]
    models: dict,
    backend: str = "auto",
    weights: torch.Tensor | None = None,  # [H, W] the fit's pixel weights
) -> float:
    """PSNR in dB of the full-resolution render from the attributes as a file stores them
    (rounded with ``models``' adaptive steps), clamped to [0, 1] as the decoder clamps it;
    over the pixels weighted by ``weights`` when given (:func:`.metrics.distortion`).

    What a quality target steers by: the training render carries quantisation noise, and lay
    0.05-0.3 dB (depending on the image) below the decoded file.
    """
    with torch.no_grad():
        attributes = model.quantized_attributes(0, models)
        mse = clamped_mse(model.render(0, attributes, backend=backend), target, weights)
    return 10 * math.log10(1 / mse) if mse > 0 else math.inf


def refinement_gain(
    model,
    target: torch.Tensor,  # [C, H, W] the full-resolution image in [0, 1]
    steps: int,
    lmbda: float,
    distortion: str = "mse",
    backend: str = "auto",
    on_step=None,
    weights: torch.Tensor | None = None,  # [H, W] the fit's pixel weights
) -> float:
    """dB that ``steps`` of refinement add to the stored attributes' PSNR, tried on a copy.

    ``on_step`` is refinement's callback (:func:`napari_sgi.core.refine.refine`): it may raise to
    cancel, which leaves ``model`` as it was.

    Refinement (the end of a fit) trains the MLPs on the rounded attributes the file stores and
    adds 0.05-0.3 dB to their PSNR, the most on RGB images at high density (IHC at 29 dB: 0.3).
    A quality target that steered λ without knowing it landed that far above the target.
    """
    import copy

    from napari_sgi.core.refine import refine

    # Refinement leaves the context model, and so the coding distributions, as they are.
    models = model.entropy_models(0)
    trial = copy.deepcopy(model)
    before = stored_psnr(model, target, models, backend, weights)
    refine(
        trial, target, steps, lmbda, distortion, backend=backend, on_step=on_step, weights=weights
    )
    return stored_psnr(trial, target, models, backend, weights) - before
