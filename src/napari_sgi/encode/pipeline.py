"""Compress an image or a stack slice by slice into a `.sgi` file: locally or on dask.distributed,
resumable after an interruption, with progress and cancellation: :func:`compress`.

Finished slices are kept in ``<output>.parts/`` until the whole file is assembled, so an interrupted
run (Ctrl-C, kill -9, a dead worker) leaves no `.sgi` under the destination name, and running the
same command again fits only the slices that are missing. Fits are deterministic, so a resumed run
writes the same file as an uninterrupted one.

The stages, one module each: :mod:`~napari_sgi.encode.plan` (the work: regions, steps, Gaussians),
:mod:`~napari_sgi.encode.slices` (fit and measure one slice), :mod:`~napari_sgi.encode.resume`
(the finished slices on disk, verified before use), :mod:`~napari_sgi.encode.scheduling` (local
and distributed runs) and :mod:`~napari_sgi.encode.assemble` (the file).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_sgi.core.device import resolve_device
from napari_sgi.core.image import MIN_SIDE, ValueRange
from napari_sgi.core.presets import configure, fit_record, get_preset
from napari_sgi.core.regions import REGION_MARGIN, REGION_SIZE, plan_regions
from napari_sgi.core.targets import target_options
from napari_sgi.encode.assemble import assemble
from napari_sgi.encode.parallel import region_worker_count
from napari_sgi.encode.plan import WARM_FRACTION, plan_work, warm_config
from napari_sgi.encode.resume import ResumeStore, job_fingerprint
from napari_sgi.encode.scheduling import Job, run_distributed, run_local
from napari_sgi.encode.targeting import for_file
from napari_sgi.errors import FitCancelled
from napari_sgi.inputs import ImageSource, open_input

if TYPE_CHECKING:
    import threading


@dataclass(frozen=True)
class CompressProgress:
    """A report of a running compression: ``done`` of ``total`` fitting steps over all slices."""

    done: int
    total: int
    slice_index: int
    n_slices: int
    psnr: float


@dataclass
class CompressResult:
    """What a compression wrote and measured."""

    path: Path
    bytes: int
    bpp: float
    compression_ratio: float
    psnr: float
    ssim: float
    slice_psnr: list[float]
    slice_ssim: list[float]
    seconds: float
    n_slices: int
    gaussians: int
    config: dict = field(default_factory=dict)

    def summary(self) -> dict:
        return {
            "path": str(self.path),
            "bytes": self.bytes,
            "bpp": round(self.bpp, 5),
            "compression_ratio": round(self.compression_ratio, 3),
            "psnr": round(self.psnr, 4) if math.isfinite(self.psnr) else None,
            "ssim": round(self.ssim, 6),
            "seconds": round(self.seconds, 3),
            "n_slices": self.n_slices,
            "gaussians": self.gaussians,
            "slice_psnr": [round(p, 4) if math.isfinite(p) else None for p in self.slice_psnr],
            "target": {
                key: self.config[f"target_{key}"]
                for key in ("bpp", "psnr")
                if self.config.get(f"target_{key}") is not None
            },
        }


def stack_value_range(source: ImageSource) -> ValueRange:
    """One range for the whole stack (uint8: 0..255), so that every slice shares its contrast."""
    if np.dtype(source.dtype) == np.uint8:
        return ValueRange(0.0, 255.0, "uint8")
    import dask.array as da

    low, high = da.compute(source.data.min(), source.data.max())
    if not (np.isfinite(low) and np.isfinite(high)):
        raise ValueError("the image contains NaN or infinite values")
    return ValueRange(float(low), float(high), np.dtype(source.dtype).name)


def compress(
    data: Any,
    path: str | os.PathLike,
    *,
    preset: str = "default",
    bpp: float | None = None,
    ratio: float | None = None,
    psnr: float | None = None,
    device: str = "auto",
    backend: str = "auto",
    axes: str | None = None,
    scale: Sequence[float | None] | None = None,
    units: Sequence[str | None] | None = None,
    channel_names: list[str] | None = None,
    contrast_limits: tuple[float, float] | None = None,
    progress: Callable[[CompressProgress], None] | None = None,
    cancel: Callable[[], bool] | threading.Event | None = None,
    client: Any = None,
    resume: bool = True,
    region_size: int = REGION_SIZE,
    region_margin: int = REGION_MARGIN,
    region_workers: int | None = None,
    warm_start: bool = False,
    warm_fraction: float = WARM_FRACTION,
    **overrides: Any,
) -> CompressResult:
    """Compress an image, a stack or an image file into one `.sgi` file.

    Parameters
    ----------
    data
        A numpy or dask array, a zarr/OME-Zarr/TIFF/PNG/NPY path or object (see
        :func:`napari_sgi.inputs.open_input`), or an :class:`ImageSource`.
    path
        The `.sgi` file to write (replaced atomically when the whole file is written).
    preset, **overrides
        The fit configuration: a preset name and any :class:`FitConfig` field to change
        (``lmbda``, ``gaussians_per_seed``, ``iterations``, ``levels``, ``density``, ``seeds``).
        ``default`` (our best rate-distortion mode) and ``fast`` choose K, the pyramid levels
        and λ from the image (:func:`napari_sgi.core.presets.configure`); fields given here win.
    bpp, ratio, psnr
        A target instead of a density (at most one): the file's bits per pixel (over all
        channels), its compression ratio (original bytes over file bytes), or the decoded PSNR
        in dB of every slice. Short pilot fits choose the density, and λ is steered during the
        fit to reach a size (:mod:`napari_sgi.encode.targeting`). The header records the target;
        a target out of reach gives a :class:`~napari_sgi.encode.targeting.TargetWarning` and
        the nearest result.
    device
        ``"auto"``, ``"cpu"`` or ``"cuda"``.
    axes
        Axis letters of ``data`` when they cannot be read from it (e.g. ``"ZYX"``, ``"YXS"``).
    scale, units, channel_names
        Physical pixel size and unit per axis of ``data`` (as a napari layer's ``scale``), and
        channel names, when the data does not carry them.
    contrast_limits
        Display window stored in the file (default: the data's value range).
    progress
        Called with :class:`CompressProgress` after every fitting step (local runs) or slice
        (distributed runs).
    cancel
        A callable returning True, or a ``threading.Event``, to stop: raises :class:`FitCancelled`;
        the destination is left untouched.
    client
        A ``dask.distributed.Client``: slices are fitted on its workers, one slice a task (give
        each worker one thread and ``NAPARI_SGI_THREADS`` torch threads, default 1). A file-backed
        source goes to each worker once. :func:`napari_sgi.encode.cluster.local_client` starts a
        local cluster set up this way, without distributed's statistical profiler, which costs
        workers a few per cent (docs/benchmarks.md, "volume").
    resume
        Reuse the finished slices of an interrupted run of the same job.
    region_size, region_margin
        Slices larger than ``region_size`` pixels are fitted region by region, each over a box
        ``region_margin`` pixels larger on every side (:mod:`napari_sgi.core.regions`).
    region_workers
        Worker processes that fit the regions of one large slice at the same time (the file is
        the same whatever their number): None, one per core for slices of a megapixel or more
        on the CPU (:func:`napari_sgi.encode.parallel.region_worker_count`); 1, one region after
        the other in this process. Slices fitted on a dask cluster use one each.
    warm_start, warm_fraction
        Start each slice from the decoded model of the previous one and fit it at full
        resolution only, for ``warm_fraction`` of the steps (neighbouring slices are alike).
        Runs locally (each slice waits for the one before).

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> stack = (np.random.default_rng(0).random((2, 24, 24)) * 1000).astype(np.uint16)
    >>> out = os.path.join(tempfile.mkdtemp(), "stack.sgi")
    >>> result = compress(stack, out, preset="fast", iterations=10)
    >>> result.n_slices, result.bytes == os.path.getsize(out)
    (2, True)
    """
    started = time.perf_counter()
    path = Path(path)
    _check_output(path)
    get_preset(preset)  # an unknown name fails before the input is read
    device = resolve_device(device)
    source = data if isinstance(data, ImageSource) else open_input(data, axes=axes)
    source = _with_metadata(source, scale, units, channel_names)
    _check_fittable(source)
    channels = source.slice_shape[2] if len(source.slice_shape) == 3 else 1
    bits_per_pixel = 8.0 * channels * np.dtype(source.dtype).itemsize
    target = target_options(bpp=bpp, ratio=ratio, psnr=psnr, bits_per_pixel=bits_per_pixel)
    if target and overrides.get("density") is not None:
        raise ValueError("give a target (bpp, ratio, psnr) or a density, not both")
    if target and warm_start:
        raise ValueError("a target is met slice by slice: run it without warm start")
    height, width = source.slice_shape[:2]
    config = configure(preset, height, width, channels, **overrides, **target)
    value_range = stack_value_range(source)
    regions = plan_regions(*source.slice_shape[:2], region_size, region_margin)  # checks them
    region_worker_count(region_workers, regions, device)  # refuses a bad count now
    _check_reachable(config, regions, channels, source.n_slices)
    _check_readable(config, regions, channels)
    # What the regions fit to: a size target less the bytes the file takes once.
    fitted = for_file(config, source.n_slices * height * width)
    if warm_start and client is not None:
        raise ValueError("warm start fits slices one after the other: run it without a client")
    warm = warm_config(config, warm_fraction)  # checks warm_fraction
    warm, fraction = (warm, warm_fraction) if warm_start else (None, None)
    work = plan_work(
        source.slice_shape, source.n_slices, config, region_size, region_margin, fraction
    )
    fingerprint = job_fingerprint(
        source, config, value_range, (region_size, region_margin), fraction
    )
    store = ResumeStore(path, fingerprint, regions, region_margin, channels)
    if not resume:
        store.remove()
    finished = store.open(source.n_slices)
    todo = [i for i in range(source.n_slices) if i not in finished]

    def report(done: int, index: int, psnr: float) -> None:
        if progress is not None:
            progress(CompressProgress(done, work.total_steps, index, work.slices, psnr))

    is_cancelled = cancel.is_set if hasattr(cancel, "is_set") else cancel
    job = Job(
        source,
        source.slice_keys(),
        fitted,
        warm,
        value_range,
        device,
        backend,
        region_size,
        region_margin,
        region_workers,
        work,
        store,
        report,
        is_cancelled,
    )
    try:
        if client is not None:
            run_distributed(job, client, todo)
        else:
            run_local(job, todo)
    except FitCancelled:
        store.remove()  # asked to stop: leave nothing behind (an interruption keeps the parts)
        raise
    except BaseException:
        if not store.has_parts():
            store.remove()  # nothing finished to resume from
        raise
    fit = fit_record(preset, config, height, width, channels)
    written = assemble(path, source, fit, value_range, contrast_limits, store)
    store.remove()
    pixels = source.n_slices * work.height * work.width
    original = math.prod(source.shape) * np.dtype(source.dtype).itemsize
    _warn_if_missed(config, 8 * written.bytes / pixels, written.slice_psnr)
    return CompressResult(
        path=path,
        bytes=written.bytes,
        bpp=8 * written.bytes / pixels,
        compression_ratio=original / written.bytes,
        psnr=written.psnr,
        ssim=written.ssim,
        slice_psnr=written.slice_psnr,
        slice_ssim=written.slice_ssim,
        seconds=time.perf_counter() - started,
        n_slices=source.n_slices,
        gaussians=written.gaussians,
        config=config.to_dict(),
    )


def _check_reachable(config, regions, channels: int, n_slices: int) -> None:
    """Refuse, before any work, a size target below what the file costs with no Gaussians."""
    if config.target_bpp is None:
        return
    from napari_sgi.encode.targeting import file_bpp, fixed_bits

    pixels = sum((r.core[1] - r.core[0]) * (r.core[3] - r.core[2]) for r in regions)
    floor = len(regions) * fixed_bits(config, channels) / pixels + file_bpp(n_slices * pixels)
    if config.target_bpp <= 1.05 * floor:
        raise ValueError(
            f"{config.target_bpp:g} bpp is out of reach: a file of this image takes at least "
            f"{floor:.3f} bpp (the model's weights and headers), and its Gaussians more"
        )


def _check_readable(config, regions, channels: int) -> None:
    """Refuse, before any work, settings whose models a reader would refuse (file/budget.py)."""
    from napari_sgi.core.fit import model_config
    from napari_sgi.core.targets import DENSITY_RANGE
    from napari_sgi.errors import SGIFormatError
    from napari_sgi.file.header import check_model_config

    if config.target_bpp or config.target_psnr:  # the density is chosen later, up to this
        config = config.with_overrides(density=DENSITY_RANGE[1])
    for region in regions:
        try:
            check_model_config(model_config((channels, *region.box_shape), config).to_dict())
        except SGIFormatError as error:
            raise ValueError(
                f"these settings make a model that readers refuse ({error}): lower the density "
                "or the seeds, or the region size"
            ) from None


SIZE_TOLERANCE = 0.05  # a size target is reached when the file lands within 5 % of it


def _warn_if_missed(config, reached_bpp: float, slice_psnr: list[float]) -> None:
    """Say so when the file missed its target (the target may have been out of reach)."""
    import warnings

    from napari_sgi.encode.targeting import TargetWarning

    if config.target_bpp is not None:
        off = reached_bpp / config.target_bpp - 1
        if abs(off) > SIZE_TOLERANCE:
            warnings.warn(
                f"the file is {reached_bpp:.4f} bpp, {100 * off:+.1f} % from the "
                f"{config.target_bpp:g} bpp asked for",
                TargetWarning,
                stacklevel=3,
            )
    if config.target_psnr is not None:
        worst = min(slice_psnr)
        if worst < config.target_psnr - 0.01:
            warnings.warn(
                f"PSNR {worst:.2f} dB reached where {config.target_psnr:g} dB was asked for",
                TargetWarning,
                stacklevel=3,
            )


def _check_output(path: Path) -> None:
    """Refuse, before any work, an output that cannot be written: clear errors, nothing created."""
    if path.suffix.lower() != ".sgi":
        raise ValueError(f"the output must be a .sgi file, got {path.name!r}")
    if path.is_dir():
        raise IsADirectoryError(f"the output {path} is a directory; name a .sgi file")
    folder = path.parent
    if not folder.exists():
        raise FileNotFoundError(f"the output folder does not exist: {folder}")
    if not folder.is_dir():
        raise NotADirectoryError(f"the output folder is not a folder: {folder}")
    parts = path.with_name(path.name + ".parts")
    if parts.exists() and not parts.is_dir():
        raise FileExistsError(f"{parts} exists and is not a resume folder; move it away")
    try:  # the one sure test: permissions, ACLs, read-only file systems, quotas
        descriptor, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as error:
        raise PermissionError(
            f"cannot write in the output folder {folder}: {error.strerror or error}"
        ) from None
    os.close(descriptor)
    with contextlib.suppress(OSError):
        os.unlink(probe)


def _check_fittable(source: ImageSource) -> None:
    """Refuse slices too small to fit before anything is written (the fit would refuse them)."""
    height, width = source.slice_shape[:2]
    if min(height, width) < MIN_SIDE:
        raise ValueError(
            f"the image is too small ({height}x{width}); each side needs at least {MIN_SIDE} pixels"
        )


def _with_metadata(source: ImageSource, scale, units, channel_names) -> ImageSource:
    """The source with caller-given scale/units (per axis of the data) and channel names."""
    changes = {}
    for name, values in (("scale", scale), ("units", units)):
        if values is None:
            continue
        values = tuple(values)
        if len(values) != len(source.shape):
            raise ValueError(
                f"{name} needs one value per axis of the data ({len(source.shape)}), "
                f"got {len(values)}"
            )
        order = source.source_axes or source.axes
        changes[name] = tuple(values[order.index(a)] for a in source.axes)
    if channel_names is not None:
        changes["channel_names"] = [str(c) for c in channel_names]
    return dataclasses.replace(source, **changes) if changes else source
