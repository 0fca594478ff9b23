"""Fit one 2D slice region by region and measure what a reader will decode: :func:`compress_slice`.

Each region's model is quantised to its file sections (the very bytes the `.sgi` file holds), and
the slice is measured core by core on the blended decode (:class:`CoreMeter`), as the reader
renders it, in the original dtype. A slice of several regions has them fitted by worker
processes at the same time (:mod:`napari_sgi.encode.parallel`), into the same bytes.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from napari_sgi.core.image import ValueRange
from napari_sgi.core.presets import FitConfig
from napari_sgi.core.regions import (
    REGION_MARGIN,
    REGION_SIZE,
    Region,
    blend,
    plan_regions,
    regions_in,
)
from napari_sgi.encode.parallel import (
    FittedRegion,
    fit_box,
    fit_in_processes,
    region_worker_count,
)

if TYPE_CHECKING:
    from napari_sgi.core.model import ModelConfig, SGIModel


@dataclass(frozen=True)
class RegionResult:
    """One fitted region: where it lies, its model's shape and its file sections."""

    region: Region
    model: ModelConfig
    sections: dict[str, bytes]


@dataclass(frozen=True)
class SliceResult:
    """One fitted slice: its regions, the blend ramp width, and the decoded slice's quality.

    ``mse`` is the mean squared error of the normalised decode ([0, 1] range), ``ssim`` the mean
    SSIM, both over the whole slice (cores weighted by their pixels).
    """

    regions: list[RegionResult]
    blend: int
    mse: float
    ssim: float

    @property
    def psnr(self) -> float:
        """PSNR in dB of the decoded slice; infinite when it is lossless."""
        return 10 * math.log10(1 / self.mse) if self.mse > 0 else math.inf

    @property
    def gaussians(self) -> int:
        return sum(r.model.gaussians for r in self.regions)

    def decoded_models(self) -> list[SGIModel]:
        """The regions' models as a reader decodes them from their sections."""
        from napari_sgi.codec.model import decode_model

        return [decode_model(r.model, r.sections) for r in self.regions]


def compress_slice(
    image: np.ndarray,
    config: FitConfig,
    value_range: ValueRange,
    *,
    device: str = "cpu",
    backend: str = "auto",
    progress: Callable[[int, int, float], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    region_size: int = REGION_SIZE,
    region_margin: int = REGION_MARGIN,
    start_models: list[SGIModel] | None = None,
    region_workers: int | None = None,
) -> SliceResult:
    """Fit one 2D slice region by region, quantise each model to its file sections, and measure
    the decoded result (in the original dtype) against the slice.

    The regions are blended across their borders with ramps ``region_margin`` pixels wide
    (:func:`napari_sgi.core.regions.blend`, as the reader does). Each core is measured as soon as
    every region that reaches into it is fitted, and a region's render is dropped once no core
    left needs it, so memory holds at most about two rows of regions, not the slice.

    Parameters
    ----------
    progress
        Called as ``progress(step, total, psnr)`` with the steps of this slice over its regions
        (every step here; a few times a second from worker processes).
    cancel
        Checked after every step (here) or every 0.1 s (worker processes): when it returns True
        the fit raises :class:`~napari_sgi.errors.FitCancelled`.
    start_models
        One model per region to start from (warm start), e.g. the previous slice's.
    region_workers
        Worker processes fitting regions at the same time (:mod:`napari_sgi.encode.parallel`);
        1 fits them one after the other in this process. None: one per core (at most one per
        region) for a large slice of several regions on the CPU, else 1
        (:func:`~napari_sgi.encode.parallel.region_worker_count`). The file's bytes do not
        depend on it.

    With a target in ``config`` (``target_bpp``, ``target_psnr``) each region is fitted to it
    (:func:`napari_sgi.encode.targeting.fit_region`). With an adaptive seed layout the slice's
    Gaussians, or a size target's bits, are shared out over the regions by their detail
    (:func:`napari_sgi.encode.targeting.region_configs`); a warm start keeps each region's
    model, and with it its share.
    """
    from napari_sgi.core.image import validate_image
    from napari_sgi.encode.targeting import pilot_steps_per_region, region_configs

    image = validate_image(image)
    regions = plan_regions(image.shape[0], image.shape[1], region_size, region_margin)
    meter = CoreMeter(image, regions, value_range, region_margin)
    steps = config.iterations + pilot_steps_per_region(config)
    workers = region_worker_count(region_workers, regions, device)
    options = {
        "device": device,
        "backend": backend,
        "steps": steps,
        "progress": progress,
        "cancel": cancel,
        "start_models": start_models,
        "blend_width": region_margin,
    }
    configs = region_configs(image, regions, config)
    if workers > 1:
        fitted = fit_in_processes(image, regions, configs, value_range, workers=workers, **options)
    else:
        fitted = _fit_here(image, regions, configs, value_range, **options)
    results = []
    with contextlib.closing(fitted):  # stops the worker processes whatever happens here
        # Regions arrive in their order whoever fits them, so the meter's sums are the same.
        for number, region_fit in enumerate(fitted):
            meter.add(number, region_fit.render)
            results.append(RegionResult(regions[number], region_fit.model, region_fit.sections))
            del region_fit  # the meter alone decides which renders to keep
    mse, ssim = meter.result()
    return SliceResult(results, meter.width, mse, ssim)


def _fit_here(
    image: np.ndarray,
    regions: list[Region],
    configs: list[FitConfig],
    value_range: ValueRange,
    *,
    device: str,
    backend: str,
    steps: int,
    progress: Callable[[int, int, float], None] | None,
    cancel: Callable[[], bool] | None,
    start_models: list[SGIModel] | None,
    blend_width: int,
) -> Iterator[FittedRegion]:
    """The regions fitted one after the other in this process, in their order, each weighing
    its box by the blend (:func:`~napari_sgi.encode.parallel.fit_box`)."""
    total = steps * len(regions)
    for number, region in enumerate(regions):
        by0, by1, bx0, bx1 = region.box

        def report(event, base=number * steps):
            if progress is not None:
                progress(base + event.step, total, event.psnr)

        yield fit_box(
            image[by0:by1, bx0:bx1],
            region,
            configs[number],
            value_range,
            device=device,
            backend=backend,
            start=start_models[number] if start_models else None,
            progress=report,
            cancel=cancel,
            blend=(image.shape[:2], blend_width),
        )


class CoreMeter:
    """Squared error and SSIM of a slice's blended decode, core by core, as regions arrive.

    Any order measures the same cores; :func:`compress_slice` adds the regions in their order so
    that the sums, and with them the quality recorded in the file, are the same to the last bit.
    """

    def __init__(
        self, image: np.ndarray, regions: list[Region], value_range: ValueRange, width: int
    ):
        self.image, self.regions, self.value_range, self.width = image, regions, value_range, width
        self.shape = image.shape[:2]
        self.needs = {
            n: set(regions_in(regions, 0, r.core, self.shape, width)) for n, r in enumerate(regions)
        }
        self.renders: dict[int, np.ndarray] = {}
        self.squared_error, self.ssim_sum, self.pixels = 0.0, 0.0, 0

    def add(self, number: int, render: np.ndarray) -> None:
        """Take region ``number``'s render; measure every core that now has all it needs."""
        self.renders[number] = render
        for core in [c for c, need in self.needs.items() if need <= self.renders.keys()]:
            self._measure(core)
            del self.needs[core]
        wanted = set().union(*self.needs.values())
        for done in [n for n in self.renders if n not in wanted]:
            del self.renders[done]

    def _measure(self, core: int) -> None:
        from napari_sgi.core.image import to_tensor
        from napari_sgi.core.metrics import ssim

        y0, y1, x0, x1 = window = self.regions[core].core
        pixels = blend(self.regions, self.renders.__getitem__, 0, window, self.shape, self.width)
        decoded = self.value_range.denormalize(pixels if self.image.ndim == 3 else pixels[:, :, 0])
        measured = to_tensor(decoded, self.value_range).double()
        target = to_tensor(self.image[y0:y1, x0:x1], self.value_range).double()
        n_core = (y1 - y0) * (x1 - x0)
        self.squared_error += float(((measured - target) ** 2).mean()) * n_core
        self.ssim_sum += float(ssim(measured, target)) * n_core
        self.pixels += n_core

    def result(self) -> tuple[float, float]:
        """Mean squared error and mean SSIM over the slice (cores weighted by their pixels)."""
        return self.squared_error / self.pixels, self.ssim_sum / self.pixels
