"""Write the `.sgi` file from a job's finished slices: the header (the schema of
:mod:`napari_sgi.file.schema`), every region's sections, and the quality measured over the whole
stack (:func:`assemble`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from napari_sgi import __version__
from napari_sgi.encode.resume import PartError
from napari_sgi.file.container import SGIWriter
from napari_sgi.file.header import MODEL_SECTIONS
from napari_sgi.file.schema import ImageHeader, Quality, RegionEntry, SliceEntry, section_name

if TYPE_CHECKING:
    from napari_sgi.core.image import ValueRange
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


def slice_entry(key: tuple[int, ...], result: SliceResult) -> SliceEntry:
    """A slice's entry in the header: its key, regions with their models, blend and quality."""
    regions = [RegionEntry(r.region.core, r.region.box, r.model.to_dict()) for r in result.regions]
    return SliceEntry.measured(key, regions, result.blend, result.psnr, result.ssim)


def image_header(
    source: ImageSource,
    fit: dict,
    value_range: ValueRange,
    contrast_limits: tuple[float, float] | None,
) -> ImageHeader:
    """The file's header before any slice: layout, value range, display window, and the fit
    record (:func:`napari_sgi.core.presets.fit_record`)."""
    low, high = value_range.low, value_range.high
    return ImageHeader(
        encoder_version=__version__,
        layout=source.to_header(),
        value_range=(low, high),
        contrast_limits=tuple(contrast_limits or (low, high)),
        fit=fit,
    )


def assemble(
    path: Path,
    source: ImageSource,
    fit: dict,
    value_range: ValueRange,
    contrast_limits: tuple[float, float] | None,
    store: ResumeStore,
) -> Assembled:
    """Write ``path`` (atomically) from the finished slices in ``store``, one at a time."""
    header = image_header(source, fit, value_range, contrast_limits)
    psnrs, mses, ssims, gaussians = [], [], [], 0
    with SGIWriter(path, header.to_dict()) as writer:
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
                    writer.add_section(section_name(index, number, name), region.sections[name])
            header.slices.append(slice_entry(key, result))
            psnrs.append(float(result.psnr))
            mses.append(result.mse)
            ssims.append(result.ssim)
            gaussians += result.gaussians
        overall = 10 * math.log10(1 / np.mean(mses)) if np.mean(mses) > 0 else math.inf
        header.quality = Quality.measured(overall, float(np.mean(ssims)))
        writer.header.update(header.to_dict())
    return Assembled(
        bytes=path.stat().st_size,
        slice_psnr=psnrs,
        slice_ssim=ssims,
        psnr=overall,
        ssim=float(np.mean(ssims)),
        gaussians=gaussians,
    )
