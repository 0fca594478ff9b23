"""Write the `.sgi` file from a job's finished slices: the header (:func:`sgi_header`), every
region's sections, and the quality measured over the whole stack (:func:`assemble`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_sgi import __version__
from napari_sgi.encode.resume import PartError
from napari_sgi.file.container import SGIWriter
from napari_sgi.file.header import FILE_KIND, MODEL_SECTIONS

if TYPE_CHECKING:
    from napari_sgi.core.image import ValueRange
    from napari_sgi.core.presets import FitConfig
    from napari_sgi.encode.resume import ResumeStore
    from napari_sgi.encode.slices import SliceResult
    from napari_sgi.inputs import ImageSource


@dataclass(frozen=True)
class Assembled:
    """What the written file holds: its size, and the quality per slice and overall."""

    bytes: int
    slice_psnr: list[float]
    slice_ssim: list[float]
    psnr: float
    ssim: float
    gaussians: int


def _finite_or_none(value: float, digits: int = 4) -> float | None:
    """A quality figure as the header stores it: rounded, and null for a lossless slice's PSNR.

    JSON has no infinity; more digits than a PSNR to 1e-4 dB or an SSIM to 1e-6 are noise that
    costs a few incompressible bytes of every slice.
    """
    return round(float(value), digits) if math.isfinite(value) else None


def slice_entry(key: tuple[int, ...], result: SliceResult) -> dict[str, Any]:
    """A slice's entry in the header: its key, regions with their models, blend and quality."""
    return {
        "key": list(key),
        "regions": [{**r.region.to_dict(), "model": r.model.to_dict()} for r in result.regions],
        "blend": int(result.blend),
        "psnr": _finite_or_none(result.psnr),
        "ssim": _finite_or_none(result.ssim, 6),
    }


def sgi_header(
    source: ImageSource,
    config: FitConfig,
    value_range: ValueRange,
    contrast_limits: tuple[float, float] | None,
    slices: list[dict[str, Any]],
    quality: dict[str, float | None] | None,
) -> dict[str, Any]:
    """The whole header of a compressed file, in one place (the slices' entries come from
    :func:`slice_entry`; ``quality`` holds the stack's ``psnr`` and ``ssim``)."""
    return {
        "kind": FILE_KIND,
        "encoder_version": __version__,
        "layout": source.to_header(),
        "value_range": [value_range.low, value_range.high],
        "contrast_limits": list(contrast_limits or (value_range.low, value_range.high)),
        "fit": config.to_dict(),
        "n_slices": source.n_slices,
        "slices": slices,
        "quality": quality,
    }


def assemble(
    path: Path,
    source: ImageSource,
    config: FitConfig,
    value_range: ValueRange,
    contrast_limits: tuple[float, float] | None,
    store: ResumeStore,
) -> Assembled:
    """Write ``path`` (atomically) from the finished slices in ``store``, one at a time."""
    header = sgi_header(source, config, value_range, contrast_limits, [], None)
    slices, psnrs, mses, ssims, gaussians = [], [], [], [], 0
    with SGIWriter(path, header) as writer:
        for index, key in enumerate(source.slice_keys()):
            try:
                result = store.load(index)
            except PartError as error:  # verified when the run began: changed since
                raise PartError(
                    f"the finished slice {index} in {store.folder} changed during the run "
                    f"({error}); run again to fit it anew"
                ) from None
            for number, region in enumerate(result.regions):
                for name in MODEL_SECTIONS:
                    writer.add_section(f"slice/{index}/r{number}/{name}", region.sections[name])
            slices.append(slice_entry(key, result))
            psnrs.append(float(result.psnr))
            mses.append(result.mse)
            ssims.append(result.ssim)
            gaussians += result.gaussians
        overall = 10 * math.log10(1 / np.mean(mses)) if np.mean(mses) > 0 else math.inf
        quality = {"psnr": _finite_or_none(overall), "ssim": _finite_or_none(np.mean(ssims), 6)}
        writer.header.update(
            sgi_header(source, config, value_range, contrast_limits, slices, quality)
        )
    return Assembled(
        bytes=path.stat().st_size,
        slice_psnr=psnrs,
        slice_ssim=ssims,
        psnr=overall,
        ssim=float(np.mean(ssims)),
        gaussians=gaussians,
    )
