"""What a compression will do before it starts: slices, regions, fitting steps and Gaussians.

One owner for the numbers that the pipeline's progress totals and the widget's estimate both show:
:func:`plan_work`. Torch-free, so that the widget can call it on every slider move.

Examples
--------
>>> from napari_sgi.core.presets import get_preset
>>> work = plan_work((2048, 2048), 3, get_preset("fast").with_overrides(iterations=100))
>>> work.regions, work.steps_per_slice, work.total_steps
(4, 400, 1200)
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from napari_sgi.core.presets import FitConfig, configure
from napari_sgi.core.regions import REGION_MARGIN, REGION_SIZE, plan_regions
from napari_sgi.core.seeds import seed_count_for_density
from napari_sgi.core.targets import target_options
from napari_sgi.encode.targeting import pilot_steps_per_region

#: Fraction of the steps a warm-started slice runs (``compress(warm_start=True)``).
WARM_FRACTION = 0.4


def warm_config(config: FitConfig, warm_fraction: float) -> FitConfig:
    """The fit of a warm-started slice: ``warm_fraction`` of the steps, at full resolution only."""
    if not 0 < warm_fraction <= 1:
        raise ValueError(f"warm_fraction must be in (0, 1], got {warm_fraction}")
    return config.with_overrides(
        iterations=max(1, round(warm_fraction * config.iterations)), levels=1
    )


@dataclass(frozen=True)
class WorkPlan:
    """The work of one compression.

    ``steps_per_region`` is the first slice's fit of one region; with a warm start every later
    slice runs ``warm_steps_per_region`` instead. ``seeds`` and ``gaussians`` count one slice,
    over all its regions (their boxes overlap by the margins).
    """

    slices: int
    height: int
    width: int
    regions: int
    steps_per_region: int
    warm_steps_per_region: int | None
    seeds: int
    gaussians_per_seed: int

    @property
    def steps_per_slice(self) -> int:
        """Steps of the first slice (of every slice without a warm start)."""
        return self.regions * self.steps_per_region

    def slice_steps(self, index: int) -> int:
        """Steps of slice ``index``."""
        if index > 0 and self.warm_steps_per_region is not None:
            return self.regions * self.warm_steps_per_region
        return self.steps_per_slice

    def steps_before(self, index: int) -> int:
        """Steps of the slices before slice ``index`` (where its progress starts)."""
        return 0 if index <= 0 else self.steps_per_slice + (index - 1) * self.slice_steps(1)

    @property
    def total_steps(self) -> int:
        return self.steps_before(self.slices)

    @property
    def gaussians(self) -> int:
        """Gaussians per slice (seeds x K, over its regions)."""
        return self.seeds * self.gaussians_per_seed

    def describe(self) -> str:
        """Two lines for a person: the steps, and the Gaussians of one slice."""
        per_slice = f"{self.steps_per_slice:,} steps"
        if self.regions > 1:
            per_slice += f" ({self.regions} regions × {self.steps_per_region:,})"
        warm = ""
        if self.warm_steps_per_region is not None and self.slices > 1:
            warm = f", the next ones {self.slice_steps(1):,} (warm start)"
        return (
            f"{self.slices} slice{'s' * (self.slices != 1)} × {per_slice}{warm}"
            f" = {self.total_steps:,} steps\n{self.gaussians:,} Gaussians per "
            f"{self.height}×{self.width} slice ({self.seeds:,} seeds × K="
            f"{self.gaussians_per_seed}, {self.gaussians / (self.height * self.width):.3f}"
            " per pixel)"
        )


def plan_work(
    slice_shape: tuple[int, ...],
    n_slices: int,
    config: FitConfig,
    region_size: int = REGION_SIZE,
    region_margin: int = REGION_MARGIN,
    warm_fraction: float | None = None,
) -> WorkPlan:
    """The work of compressing ``n_slices`` slices of ``slice_shape`` (``(H, W)`` or ``(H, W, C)``)
    with ``config``, region by region (:func:`napari_sgi.core.regions.plan_regions`), each later
    slice warm-started for ``warm_fraction`` of the steps when given.
    """
    height, width = int(slice_shape[0]), int(slice_shape[1])
    regions = plan_regions(height, width, region_size, region_margin)
    seeds = sum(
        config.seeds
        or seed_count_for_density(*region.box_shape, config.density, config.gaussians_per_seed)
        for region in regions
    )
    warm = None if warm_fraction is None else warm_config(config, warm_fraction).iterations
    return WorkPlan(
        slices=int(n_slices),
        height=height,
        width=width,
        regions=len(regions),
        steps_per_region=config.iterations + pilot_steps_per_region(config),
        warm_steps_per_region=warm,
        seeds=seeds,
        gaussians_per_seed=config.gaussians_per_seed,
    )


_FIT_FIELDS = frozenset(f.name for f in fields(FitConfig))


def plan_from_params(
    slice_shape: tuple[int, ...], n_slices: int, params: dict[str, Any]
) -> WorkPlan:
    """:func:`plan_work` for the keyword arguments of :func:`napari_sgi.compress` (``preset``,
    the :class:`FitConfig` fields, ``bpp``/``ratio``/``psnr``, ``region_size``,
    ``region_margin``, ``warm_start``, ``warm_fraction``); other keys are ignored.
    """
    channels = int(slice_shape[2]) if len(slice_shape) == 3 else 1
    target = target_options(
        bpp=params.get("bpp"),
        ratio=params.get("ratio"),
        psnr=params.get("psnr"),
        bits_per_pixel=params.get("bits_per_pixel", 8.0 * channels),
    )
    config = configure(
        params.get("preset") or "default",
        int(slice_shape[0]),
        int(slice_shape[1]),
        channels,
        **{k: v for k, v in params.items() if k in _FIT_FIELDS},
        **target,
    )
    warm = (params.get("warm_fraction") or WARM_FRACTION) if params.get("warm_start") else None
    margin = params.get("region_margin")
    return plan_work(
        slice_shape,
        n_slices,
        config,
        params.get("region_size") or REGION_SIZE,
        REGION_MARGIN if margin is None else margin,
        warm,
    )
