"""Fit one 2D image and measure what a user gets back: :func:`fit_image`.

Examples
--------
>>> import numpy as np
>>> from napari_sgi import fit_image
>>> image = (np.random.default_rng(0).random((32, 32)) * 4000).astype(np.uint16)
>>> result = fit_image(image, preset="fast", iterations=20)
>>> result.decoded.dtype, result.decoded.shape
(dtype('uint16'), (32, 32))
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from napari_sgi.core.device import resolve_device
from napari_sgi.core.presets import FitConfig, configure

if TYPE_CHECKING:
    import threading

    from napari_sgi.core.fit import FitProgress
    from napari_sgi.core.image import ValueRange
    from napari_sgi.core.model import SGIModel


@dataclass
class FitResult:
    """A fitted image: the model, its quality and the decoded image in the original dtype."""

    model: SGIModel
    config: FitConfig
    value_range: ValueRange
    decoded: np.ndarray
    psnr: float
    ssim: float
    iterations: int
    steps_run: int  # ``iterations`` less the steps an early stop skipped
    seconds: float
    device: str

    @property
    def gaussians(self) -> int:
        return self.model.config.gaussians

    @property
    def seeds(self) -> int:
        return self.model.config.seed_count

    def summary(self) -> dict:
        """JSON-friendly figures of the fit."""
        return {
            "psnr": round(self.psnr, 4),
            "ssim": round(self.ssim, 6),
            "gaussians": self.gaussians,
            "seeds": self.seeds,
            "iterations": self.iterations,
            "steps_run": self.steps_run,
            "seconds": round(self.seconds, 3),
            "device": self.device,
            "shape": list(self.decoded.shape),
            "dtype": str(self.decoded.dtype),
            "config": self.config.to_dict(),
        }


def fit_image(
    image: np.ndarray,
    *,
    preset: str = "default",
    progress: Callable[[FitProgress], None] | None = None,
    cancel: Callable[[], bool] | threading.Event | None = None,
    device: str = "auto",
    backend: str = "auto",
    **overrides: object,
) -> FitResult:
    """Fit SGI to one 2D image ``(H, W)`` or ``(H, W, C)`` of any integer or float dtype.

    Parameters
    ----------
    image
        The image; uint8 is normalised by 255, other dtypes by their own min..max.
    preset
        ``"paper"``, ``"default"``, ``"fast"`` or ``"compact"``.
    progress, cancel
        See :func:`napari_sgi.core.fit.fit`; ``cancel`` may also be a ``threading.Event``.
    device
        ``"auto"``, ``"cpu"`` or ``"cuda"``.
    **overrides
        Any :class:`~napari_sgi.core.presets.FitConfig` field (``iterations``, ``lmbda``,
        ``gaussians_per_seed``, ``density``, ``seeds``, ``target_bpp``, ``target_psnr``, ...);
        ``default`` and ``fast`` choose K, the levels and λ from the image first.
    """
    import torch

    from napari_sgi.core.image import ValueRange, from_tensor, to_tensor, validate_image
    from napari_sgi.core.metrics import psnr, ssim
    from napari_sgi.encode.targeting import fit_region, for_file

    image = validate_image(image)
    channels = image.shape[2] if image.ndim == 3 else 1
    config = configure(preset, image.shape[0], image.shape[1], channels, **overrides)
    device = resolve_device(device)
    value_range = ValueRange.of(image)
    target = to_tensor(image, value_range).to(device)
    if hasattr(cancel, "is_set"):
        cancel = cancel.is_set
    started = time.perf_counter()
    pixels = image.shape[0] * image.shape[1]
    outcome = fit_region(
        target,
        for_file(config, pixels),  # a size target is a file's: less what the file takes once
        core_pixels=pixels,
        progress=progress,
        cancel=cancel,
        backend=backend,
    )
    with torch.no_grad():
        model = outcome.model
        render = model.render(0, model.quantized_attributes(0), backend=backend).clamp(0, 1)
    seconds = time.perf_counter() - started
    decoded = from_tensor(render, value_range, image.ndim)
    # Quality of what the user gets: the decoded image in its own dtype, not the float render.
    measured = to_tensor(decoded, value_range).to(device)
    return FitResult(
        model=model,
        config=config,
        value_range=value_range,
        decoded=decoded,
        psnr=psnr(measured, target),
        ssim=ssim(measured, target),
        iterations=outcome.iterations,
        steps_run=outcome.steps_run,
        seconds=seconds,
        device=device,
    )
