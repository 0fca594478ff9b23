"""Quantisation-aware refinement: the last steps of a fit train on the values a file will store.

The main fit trains on attributes plus uniform noise, a proxy of rounding. The image a file
decodes to is rendered from the *rounded* attributes, and that costs 0.1-0.2 dB (measured on the
sample images). Refinement closes part of this gap: for a few hundred steps it renders the rounded
attributes (``round(x / Q) * Q`` with a straight-through gradient, the encoder's own rounding),
minimises distortion + lambda * the bits of those very symbols, and trains the colour and
covariance MLPs with them.

Straight-through training of rounded values does not settle: once the loss stops falling, the
latent values keep drifting across rounding boundaries and the loss creeps up again. So the loss of
every step is recorded and the parameters of the best step are kept; the attributes are left
rounded, so that the encoder, which rounds them again, stores exactly the values refinement
measured. Starting from the fitted model, the result is never worse on the fitted image.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from napari_sgi.core import metrics
from napari_sgi.core.adam import Adam
from napari_sgi.core.entropy import quantize, rate_bits_per_value
from napari_sgi.core.model import Attributes, SGIModel

# Learning rates at the start of refinement (cosine decay to 5 % of them). The attributes move a
# few percent of what they moved at the end of the fit: larger rates make the rounded values
# oscillate, and the best step comes earlier and is worse (docs/method.md, "refinement").
REFINE_RATES: dict[str, float] = {
    "mlp_color": 6.3e-4,
    "mlp_cov": 1e-3,
    "features": 2.2e-4,
    "offsets": 3e-5,
    "log_scaling": 2.6e-5,
}
FINAL_FRACTION = 0.05

StepCallback = Callable[[int, float, float], None]  # (step from 0, loss, mse)


def _parameters(model: SGIModel) -> dict[str, list[torch.nn.Parameter]]:
    return {
        "mlp_color": model.colour_parameters(),
        "mlp_cov": list(model.mlp_cov.parameters()),
        "features": [model.features],
        "offsets": [model.offsets],
        "log_scaling": [model.log_scaling],
    }


def refine(
    model: SGIModel,
    target: torch.Tensor,  # [C, H, W] full-resolution image in [0, 1]
    steps: int,
    lmbda: float,
    distortion: str = "mse",
    *,
    on_step: StepCallback | None = None,
    backend: str = "auto",
    weights: torch.Tensor | None = None,  # [H, W] pixel weights of the distortion
) -> float:
    """Refine ``model`` in place on its rounded attributes; return the best loss.

    The hash grid, context MLP and seed positions do not change, so the quantisation steps and
    coding distributions stay those of the fit.

    Parameters
    ----------
    steps
        Adam steps; each renders the full-resolution image once.
    lmbda, distortion
        The fit's rate weight and distortion (``"mse"`` or ``"l1"``).
    weights
        The fit's pixel weights (:func:`napari_sgi.core.metrics.distortion`); None: every pixel
        alike.
    on_step
        Called after every step with ``(step, best loss so far, mse of this step's render,
        clamped to [0, 1])`` (``step`` counts from 0); it may raise to cancel (the model is then
        left at its best step so far).

    Examples
    --------
    >>> from napari_sgi.core.model import ModelConfig
    >>> model = SGIModel(ModelConfig(height=16, width=16, channels=1, feature_dim=4,
    ...                              gaussians_per_seed=2, seed_count=12))
    >>> loss = refine(model, torch.rand(1, 16, 16), steps=3, lmbda=1e-4)
    >>> steps = model.entropy_models(0)["features"].step
    >>> bool(torch.equal(model.features, torch.round(model.features / steps) * steps))
    True
    """
    with torch.no_grad():  # the entropy model does not train here: its outputs are constants
        distributions = model.entropy_models(0)
    parameters = _parameters(model)
    optimizer = Adam(
        [{"params": p, "lr": REFINE_RATES[name]} for name, p in parameters.items()], eps=1e-15
    )
    initial = [group["lr"] for group in optimizer.param_groups]
    tracked = [p for group in parameters.values() for p in group]
    best_loss, best = math.inf, None
    try:
        for step in range(steps):
            decay = 0.5 * (1 + math.cos(math.pi * step / steps))
            for group, rate in zip(optimizer.param_groups, initial, strict=True):
                group["lr"] = rate * (FINAL_FRACTION + (1 - FINAL_FRACTION) * decay)
            rounded = {
                name: quantize(values, distributions[name].step)
                for name, values in model.attributes().as_groups().items()
            }
            render = model.training_render(
                0, Attributes.from_groups(rounded, model.config.gaussians_per_seed), backend=backend
            )
            loss = metrics.distortion(render, target, distortion, weights)
            if lmbda > 0:
                loss = loss + lmbda * rate_bits_per_value(rounded, distributions)
            # The loss is that of the parameters before this step's update: remember them.
            if (value := loss.item()) < best_loss:
                best_loss, best = value, [p.detach().clone() for p in tracked]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if on_step is not None:
                on_step(step, best_loss, metrics.clamped_mse(render, target, weights))
    finally:
        _keep(model, tracked, best, distributions)
    return best_loss


def _keep(model, tracked, best, distributions) -> None:
    """Restore the best step's parameters and leave the attributes rounded."""
    with torch.no_grad():
        if best is not None:
            for parameter, value in zip(tracked, best, strict=True):
                parameter.copy_(value)
        for name, values in model.attributes().as_groups().items():
            rounded = torch.round(values / distributions[name].step) * distributions[name].step
            getattr(model, name).copy_(rounded.reshape(getattr(model, name).shape))
