"""Fit one region to the size or quality the user asked for (``target_bpp``, ``target_psnr``).

Pilot fits choose the density (:mod:`napari_sgi.core.targets`); for a size, the full fit then
steers λ so that the stored attributes land on their share of the file
(:mod:`napari_sgi.core.rate_control`). A region's share is the target times its core's pixels,
less what the region costs whatever its density: its weights, and the headers of its streams and
of the container; with an adaptive seed layout, the slice's regions share the attributes' part
by their detail instead (:func:`region_configs`).

Examples
--------
>>> from napari_sgi.core.presets import get_preset
>>> pilot_steps_per_region(get_preset("default").with_overrides(target_bpp=0.3))
1000
>>> pilot_steps_per_region(get_preset("default").with_overrides(target_psnr=30))
6750
>>> pilot_steps_per_region(get_preset("default"))
0
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from napari_sgi.core.presets import FitConfig
from napari_sgi.core.targets import (
    BITS_PER_GAUSSIAN_GUESS,
    clamp_density,
    density_for_bits,
    density_for_psnr,
    pilot_steps,
    psnr_pilot_steps,
)

if TYPE_CHECKING:
    import numpy as np
    import torch

    from napari_sgi.core.fit import FitOutcome, FitProgress
    from napari_sgi.core.regions import Region

# Bytes beyond the weights and the attributes' symbols, which a size target's budget leaves out.
# A file of one region took 215 in all (preamble, header and index 161 on a 0.1 bpp file of the
# 256x256 z-slice, stream headers and chunk tables the rest; with 215 the sample images' files
# landed within -2.0 to -0.3 % of their size). Each further slice of a stack added 68 bytes of
# header and index (8 slices: 640 against 161 for one): the file's own part (preamble, footer,
# the header's layout, value range and fit record, deflated) is paid once, so a stack's slices
# took 10.5 % less than a 0.1 bpp target when each paid all 215.
FILE_OVERHEAD_BYTES = 93
# A region's part: its five sections' stream headers and chunk tables, index entries, and its
# entry in the header JSON (seed map included).
REGION_OVERHEAD_BYTES = 122
# The coder's streams against the entropy model's ideal bits of the same symbols (snapped tables,
# escapes, per-chunk CRCs): 2-3 % on compact files.
CODER_OVERHEAD = 1.028
# dB above the target that the file is aimed at: λ steers the stored attributes' PSNR
# (rate_control.stored_psnr) plus what a trial refinement predicts the refinement will add (the
# fit's PROBE_STEPS) to it. With the gated blend, files steered to the target + 0.05 landed
# -0.12 to +0.03 dB from that aim (seven targets on three images): 0.15 puts all at or above.
PSNR_MARGIN = 0.15
# Doublings of the density beyond the one predicted for the target + PSNR_MARGIN, for a fit
# whose λ is steered: λ can trade an excess for rate, but cannot make up for too few Gaussians
# (it never goes below the preset's: rate_control.QualityControl). The pilots' prediction errs
# by a share of the curve's slope, not by so many dB: with the gated blend IHC's 25 dB target
# (1.8 dB a doubling) reached 0.27 dB under the prediction, nuclei's (0.25 dB a doubling) 0.04,
# both about 0.15 doublings of the density. A headroom in dB (0.3, with the margin at 0.05) sent
# nuclei's 33.4 dB to 4x the density (docs/method.md, "Quality targets").
DENSITY_HEADROOM = 0.25
# Share a large slice's Gaussians (or bits) out over its regions by their detail (region_configs);
# False gives every region the same density, or bits by its pixels (as before; for benchmarks).
REGION_SHARES = True
# Choose the MLP weights' steps for the file's size at the start of the rate phase and train on
# them (core.weight_steps), for size targets, steered quality targets and plain fits; False
# stores every tensor at 63 steps to its peak (as before; for benchmarks). A short quality
# target's free fit keeps 63 steps, as its rule was measured (a steered 3000-step fit of IHC lost
# 0.01 dB to rounding them at the end; a 12500-step one 0.25 dB).
WEIGHT_STEPS = True


class TargetWarning(UserWarning):
    """A target cannot be reached: the file gets the nearest result instead."""


def pilot_steps_per_region(config: FitConfig) -> int:
    """Steps of the pilot fits of one region (0 without a target)."""
    if config.target_bpp is not None:
        return pilot_steps(config.iterations)
    if config.target_psnr is not None:
        return psnr_pilot_steps(config.iterations)
    return 0


def fixed_bits(config: FitConfig, channels: int, seeds: int | None = None) -> float:
    """Bits a region costs whatever its density: its weights and its headers. ``seeds``: the
    region's seed count, which decides whether a gated region keeps its blend head
    (:func:`napari_sgi.core.model.blend_rule`); unknown (None), a gated region is counted with
    one."""
    import torch

    from napari_sgi.codec.weights import expected_size
    from napari_sgi.core.fit import model_config
    from napari_sgi.core.model import SGIModel, blend_rule

    shape = model_config((channels, 16, 16), config.with_overrides(seeds=1))
    f, k = config.feature_dim, config.gaussians_per_seed
    blend = blend_rule(config.blend, seeds or 1 << 30, f, k)
    with torch.random.fork_rng(devices=[]):  # sizing a model draws no number of the fit's
        model = SGIModel(replace(shape, blend=blend), initialize_scaling=False)
    return 8.0 * (expected_size(model) + REGION_OVERHEAD_BYTES)


def for_file(config: FitConfig, pixels: int) -> FitConfig:
    """``config`` as the regions of a file of ``pixels`` pixels (all slices) fit it: a size
    target less the file's own bytes (:data:`FILE_OVERHEAD_BYTES`), shared by every pixel.

    Examples
    --------
    >>> from napari_sgi.core.presets import FitConfig
    >>> for_file(FitConfig(target_bpp=0.1), 8 * 256 * 256).target_bpp
    0.0985809326171875
    >>> for_file(FitConfig(), 100).target_bpp is None
    True
    """
    if config.target_bpp is None:
        return config
    return replace(config, target_bpp=config.target_bpp - file_bpp(pixels))


def file_bpp(pixels: int) -> float:
    """Bits per pixel the file's own bytes (:data:`FILE_OVERHEAD_BYTES`) take over ``pixels``."""
    return 8.0 * FILE_OVERHEAD_BYTES / pixels


def smallest_bpp(config: FitConfig, channels: int, core_pixels: int) -> float:
    """Bits per pixel of a region's file share with no attributes at all: a floor for targets."""
    return fixed_bits(config, channels) / core_pixels


def region_configs(
    image: np.ndarray,  # [H, W] or [H, W, C]: the slice
    regions: list[Region],
    config: FitConfig,
) -> list[FitConfig]:
    """Each region's configuration, with the slice's Gaussians or bits shared out by detail.

    With an adaptive seed layout (the ``default`` and ``fast`` presets), the Gaussians that the
    density gives the whole slice, or the attributes' part of a size target, go to the regions
    in proportion to their detail (:func:`napari_sgi.core.region_shares.region_shares`), so
    that empty background does not take as much as tissue. Otherwise, with one region, a seed
    count given, or a quality target (which every region then meets with the Gaussians it
    needs), each region gets ``config`` as it is: the same density, or bits in proportion to
    its pixels.
    """
    from napari_sgi.core.region_shares import region_shares

    if (
        not REGION_SHARES
        or len(regions) == 1
        or config.seed_layout != "adaptive"
        or config.seeds is not None
        or config.target_psnr is not None
    ):
        return [config] * len(regions)
    k = config.gaussians_per_seed
    if config.target_bpp is None:
        shares = region_shares(image, regions, spacing=(k / config.density) ** 0.5)
        gaussians = config.density * sum(r.box_pixels for r in regions)
        return [
            config.with_overrides(density=float(share * gaussians / r.box_pixels))
            for share, r in zip(shares, regions, strict=True)
        ]
    channels = image.shape[2] if image.ndim == 3 else 1
    fixed = fixed_bits(config, channels)
    cores = [r.core_pixels for r in regions]
    budget = config.target_bpp * sum(cores) - fixed * len(regions)
    if budget <= 0:  # below the weights alone: fit_region says so for each region
        return [config] * len(regions)
    guess = clamp_density(config.target_bpp / BITS_PER_GAUSSIAN_GUESS)
    shares = region_shares(image, regions, spacing=(k / guess) ** 0.5)
    return [
        config.with_overrides(target_bpp=float((share * budget + fixed) / core))
        for share, core in zip(shares, cores, strict=True)
    ]


def fit_region(
    image: torch.Tensor,  # [C, H, W] the region's box, in [0, 1]
    config: FitConfig,
    *,
    core_pixels: int,
    progress: Callable[[FitProgress], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    backend: str = "auto",
    model=None,
    pixel_weights: torch.Tensor | None = None,  # [H, W]
) -> FitOutcome:
    """Fit a region's box, to its target when ``config`` has one, the pilots and the fit alike
    weighing its pixels by ``pixel_weights`` (:func:`napari_sgi.core.fit.fit`).

    ``progress`` sees the pilots' steps first, then the full fit's, counted from 1 up to
    ``config.iterations + pilot_steps_per_region(config)``.
    """
    from napari_sgi.core.fit import fit, steered_config, steers_quality

    pilots = pilot_steps_per_region(config)
    done = 0
    # λ is steered to a size, or to a quality when the rate phase is long enough to answer.
    steered = config.target_psnr is None or steers_quality(config)

    def shifted(event):
        if progress is not None:
            progress(replace(event, step=done + event.step, total=config.iterations + pilots))

    common = {"progress": shifted, "cancel": cancel, "backend": backend}

    def pilot(density: float, steps: int) -> FitOutcome:
        nonlocal done
        # Trained as the fit they size will train, every step (the rules were measured so).
        if steered:
            trained = steered_config(config, quality=config.target_psnr is not None)
        else:
            trained = replace(config, settle=0.0)
        settings = replace(trained, density=density, iterations=steps, refine=0.0)
        settings = _without_target(settings)
        outcome = fit(image, settings, pixel_weights=pixel_weights, **common)
        done += steps
        return outcome

    if config.target_bpp is not None:
        from napari_sgi.core.rate_control import stored_bits

        channels, height, width = image.shape
        # Whether the region keeps the blend head, from a first guess of its density.
        guess = clamp_density(config.target_bpp / BITS_PER_GAUSSIAN_GUESS)
        fixed = fixed_bits(config, channels, _seed_count(image, config, guess))
        budget = config.target_bpp * core_pixels - fixed
        if budget <= 0:
            raise ValueError(
                f"{config.target_bpp:g} bpp is below the smallest file of this image "
                f"({smallest_bpp(config, channels, core_pixels):.3f} bpp: the weights alone)"
            )
        budget /= CODER_OVERHEAD
        pilots_run = []

        def pilot_bits(density: float) -> float:
            pilots_run.append(pilot(density, pilot_steps(config.iterations)).model)
            return stored_bits(pilots_run[-1])

        density = density_for_bits(height * width, budget, pilot_bits)
        if WEIGHT_STEPS:  # the bits the weights' steps will save go to more Gaussians
            density = _with_weight_savings(
                density, budget, pilots_run[-1], image, fixed, backend, pixel_weights
            )
        final = _without_target(config.with_overrides(density=density))
        # Where the density the pilots chose keeps or drops the head against the guess.
        chosen = fixed_bits(config, channels, _seed_count(image, config, density))
        budget += (fixed - chosen) / CODER_OVERHEAD
        fixed = chosen
        return fit(
            image,
            final,
            budget_bits=budget,
            fixed_bits=fixed if WEIGHT_STEPS else None,
            pixel_weights=pixel_weights,
            **common,
        )
    if config.target_psnr is not None:
        # Whether it was reached is told after the file is written (compress warns then).
        density, _ = density_for_psnr(
            config.target_psnr + PSNR_MARGIN,
            config.iterations,
            lambda d, n: pilot(d, n).history[-1].psnr,
            start=config.density,
            steered=steered,
        )
        done = pilots  # the progress counts a third pair of pilots, run or not
        if not steered:  # too short for λ to answer: free, as the pilots ran
            final = _without_target(config.with_overrides(density=density))
            return fit(image, final, pixel_weights=pixel_weights, **common)
        density = clamp_density(density * 2**DENSITY_HEADROOM)
        final = _without_target(config.with_overrides(density=density))
        # The weights' steps held from the rate phase on, so that λ's control steers by the PSNR
        # the file will have: rounded at the end to 63 steps, IHC's 27 dB file lost 0.25 dB.
        return fit(
            image,
            final,
            psnr_target=config.target_psnr + PSNR_MARGIN,
            fixed_bits=_held_weight_bits(image, config, density),
            pixel_weights=pixel_weights,
            **common,
        )
    return fit(
        image,
        config,
        model=model,
        progress=progress,
        cancel=cancel,
        backend=backend,
        fixed_bits=_held_weight_bits(image, config, config.density),
        pixel_weights=pixel_weights,
    )


def _seed_count(image: torch.Tensor, config: FitConfig, density: float) -> int:
    """Seeds of the model that fits ``image`` (``[C, H, W]``) with ``config`` at ``density``."""
    from napari_sgi.core.fit import model_config

    return model_config(tuple(image.shape), config.with_overrides(density=density)).seed_count


def _held_weight_bits(image: torch.Tensor, config: FitConfig, density: float) -> float | None:
    """The region's fixed bits at ``density``, for a fit that chooses and holds its weights'
    steps (:data:`WEIGHT_STEPS`), else None (the writer's 63 steps)."""
    if not WEIGHT_STEPS:
        return None
    return fixed_bits(config, image.shape[0], _seed_count(image, config, density))


def _with_weight_savings(
    density: float, budget: float, pilot, image, fixed: float, backend: str, weights=None
) -> float:
    """``density`` scaled for a budget that also gets the bits the weights' chosen steps save
    against the 63 steps to a peak that ``fixed`` counts, estimated on the pilot's model (the
    full fit chooses again, and gives its own saving back to λ's budget)."""
    from napari_sgi.core.weight_steps import steps_for_file

    _, saved = steps_for_file(pilot, image, budget + fixed, backend=backend, weights=weights)
    return round(clamp_density(density * max(budget + saved, 0.5 * budget) / budget), 6)


def _without_target(config: FitConfig) -> FitConfig:
    return replace(config, target_bpp=None, target_psnr=None)
