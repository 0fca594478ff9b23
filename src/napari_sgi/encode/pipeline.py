"""Compress an image or a stack slice by slice into a `.sgi` file: locally or on dask.distributed,
resumable after an interruption, with progress and cancellation.

Finished slices are kept in ``<output>.parts/`` until the whole file is assembled, so an interrupted
run (Ctrl-C, kill -9, a dead worker) leaves no `.sgi` under the destination name, and running the
same command again fits only the slices that are missing. Fits are deterministic, so a resumed run
writes the same file as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from napari_sgi import __version__
from napari_sgi.core.device import resolve_device
from napari_sgi.core.image import ValueRange
from napari_sgi.core.presets import FitConfig, get_preset
from napari_sgi.core.regions import (
    REGION_MARGIN,
    REGION_SIZE,
    blend,
    plan_regions,
    regions_in,
    render_box,
)
from napari_sgi.errors import FitCancelled
from napari_sgi.file.container import SGIWriter
from napari_sgi.file.header import FILE_KIND, MODEL_SECTIONS, model_config_from_header
from napari_sgi.inputs.sources import ImageSource, open_input

_SMALL_TASK_BYTES = 1 << 20


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
    start_models: list | None = None,
) -> dict:
    """Fit one 2D slice region by region, quantise each model to its file sections, and measure
    the decoded result (in the original dtype) against the slice.

    The regions are blended across their borders with ramps ``region_margin`` pixels wide
    (:func:`napari_sgi.core.regions.blend`, as the reader does). Each core is measured as soon as
    every region that reaches into it is fitted, and a region's render is dropped once no core
    left needs it, so memory holds at most about two rows of regions, not the slice.

    Parameters
    ----------
    progress
        Called as ``progress(step, total, psnr)`` with the steps of this slice over its regions.
    start_models
        One model per region to start from (warm start), e.g. the previous slice's.

    Returns
    -------
    dict with ``regions`` (each: ``region``, ``sections``, ``model``), ``blend`` (the ramp width),
    ``psnr``, ``ssim``, ``mse`` and ``gaussians``.
    """
    from napari_sgi.codec.model import encode_model
    from napari_sgi.core.fit import fit
    from napari_sgi.core.image import to_tensor, validate_image

    image = validate_image(image)
    regions = plan_regions(image.shape[0], image.shape[1], region_size, region_margin)
    measure = _CoreMeter(image, regions, value_range, region_margin)
    total = config.iterations * len(regions)
    gaussians, out = 0, []
    for number, region in enumerate(regions):
        by0, by1, bx0, bx1 = region.box
        target = to_tensor(image[by0:by1, bx0:bx1], value_range).to(device)

        def report(event, base=number * config.iterations):
            if progress is not None:
                progress(base + event.step, total, event.psnr)

        start = start_models[number] if start_models else None
        model = fit(
            target, config, model=start, progress=report, cancel=cancel, backend=backend
        ).model
        sections = encode_model(model)
        measure.add(number, render_box(model, 0, backend))
        gaussians += model.config.gaussians
        out.append(
            {"region": region.to_dict(), "sections": sections, "model": model.config.to_dict()}
        )
    mse, ssim_mean = measure.result()
    return {
        "regions": out,
        "blend": measure.width,
        "mse": mse,
        "psnr": 10 * math.log10(1 / mse) if mse > 0 else math.inf,
        "ssim": ssim_mean,
        "gaussians": gaussians,
    }


class _CoreMeter:
    """Squared error and SSIM of a slice's blended decode, core by core, as regions arrive."""

    def __init__(self, image: np.ndarray, regions: list, value_range: ValueRange, width: int):
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
        self.ssim_sum += ssim(measured, target) * n_core
        self.pixels += n_core

    def result(self) -> tuple[float, float]:
        """Mean squared error and mean SSIM over the slice (cores weighted by their pixels)."""
        return self.squared_error / self.pixels, self.ssim_sum / self.pixels


def _slice_task(source, key, config, value_range, device, backend, regions) -> dict:
    # Runs on a dask worker. A file-backed source reads its own slice there, so no pixels travel
    # through the scheduler; an in-memory array arrives as the slice itself (``key`` is None).
    import torch

    torch.set_num_threads(max(1, int(os.environ.get("NAPARI_SGI_THREADS", "1"))))
    return compress_slice(
        source if key is None else source.read_slice(key),
        config,
        value_range,
        device=device,
        backend=backend,
        region_size=regions[0],
        region_margin=regions[1],
    )


class _Parts:
    """Finished slices of one job, each in its own file, written atomically."""

    def __init__(self, output: Path, fingerprint: str):
        self.folder = output.with_name(output.name + ".parts")
        self.fingerprint = fingerprint

    def open(self) -> set[int]:
        job = self.folder / "job.json"
        if self.folder.exists():
            try:
                same = json.loads(job.read_text()).get("fingerprint") == self.fingerprint
            except (OSError, ValueError):
                same = False
            if not same:  # another job's leftovers: start afresh
                shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        job.write_text(json.dumps({"fingerprint": self.fingerprint}))
        return {int(p.stem.split("-")[1]) for p in self.folder.glob("slice-*.part")}

    def path(self, index: int) -> Path:
        return self.folder / f"slice-{index:07d}.part"

    def save(self, index: int, result: dict) -> None:
        temporary = self.path(index).with_suffix(".tmp")
        with open(temporary, "wb") as f:
            pickle.dump(result, f, protocol=pickle.HIGHEST_PROTOCOL)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, self.path(index))

    def load(self, index: int) -> dict:
        with open(self.path(index), "rb") as f:
            return pickle.load(f)

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def _fingerprint(
    source: ImageSource, config: FitConfig, value_range: ValueRange, regions: tuple[int, int]
) -> str:
    description = json.dumps(
        {
            "layout": source.to_header(),
            "fit": config.to_dict(),
            "regions": list(regions),
            "range": [value_range.low, value_range.high],
            "encoder": __version__,
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(description.encode()).hexdigest()


def compress(
    data,
    path: str | os.PathLike,
    *,
    preset: str = "default",
    device: str = "auto",
    backend: str = "auto",
    axes: str | None = None,
    scale=None,
    units=None,
    channel_names: list[str] | None = None,
    contrast_limits: tuple[float, float] | None = None,
    progress: Callable[[CompressProgress], None] | None = None,
    cancel=None,
    client=None,
    resume: bool = True,
    region_size: int = REGION_SIZE,
    region_margin: int = REGION_MARGIN,
    warm_start: bool = False,
    warm_fraction: float = 0.4,
    **overrides,
) -> CompressResult:
    """Compress an image, a stack or an image file into one `.sgi` file.

    Parameters
    ----------
    data
        A numpy or dask array, a zarr/OME-Zarr/TIFF/PNG/NPY path or object (see
        :func:`napari_sgi.inputs.sources.open_input`), or an :class:`ImageSource`.
    path
        The `.sgi` file to write (replaced atomically when the whole file is written).
    preset, **overrides
        The fit configuration: a preset name and any :class:`FitConfig` field to change
        (``lmbda``, ``gaussians_per_seed``, ``iterations``, ``levels``, ``density``, ``seeds``).
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
    if path.suffix.lower() != ".sgi":
        raise ValueError(f"the output must be a .sgi file, got {path.name!r}")
    if not path.parent.exists():
        raise FileNotFoundError(f"the output folder does not exist: {path.parent}")
    config = get_preset(preset).with_overrides(**overrides)
    device = resolve_device(device)
    source = data if isinstance(data, ImageSource) else open_input(data, axes=axes)
    source = _with_metadata(source, scale, units, channel_names)
    value_range = stack_value_range(source)
    is_cancelled = cancel.is_set if hasattr(cancel, "is_set") else cancel
    regions = (region_size, region_margin)
    plan_regions(64, 64, *regions)  # validate before any work
    if warm_start and client is not None:
        raise ValueError("warm start fits slices one after the other: run it without a client")
    if not 0 < warm_fraction <= 1:
        raise ValueError(f"warm_fraction must be in (0, 1], got {warm_fraction}")
    warm = warm_fraction if warm_start else None
    parts = _Parts(path, _fingerprint(source, config, value_range, (*regions, warm)))
    done = parts.open() if resume else (parts.remove() or parts.open())
    keys = source.slice_keys()
    todo = [i for i in range(len(keys)) if i not in done]
    job = _Job(
        source, keys, config, value_range, device, backend, parts, progress, is_cancelled, regions
    )
    try:
        if client is not None:
            _run_distributed(job, client, todo)
        else:
            _run_local(job, todo, warm)
    except FitCancelled:
        parts.remove()  # asked to stop: leave nothing behind (an interruption keeps the parts)
        raise
    result = _assemble(path, source, keys, config, value_range, contrast_limits, parts)
    parts.remove()
    result.seconds = time.perf_counter() - started
    return result


def _with_metadata(source: ImageSource, scale, units, channel_names) -> ImageSource:
    """The source with caller-given scale/units (per axis of the data) and channel names."""
    import dataclasses

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


@dataclass(frozen=True)
class _Job:
    """What every slice of one compression shares."""

    source: ImageSource
    keys: list
    config: FitConfig
    value_range: ValueRange
    device: str
    backend: str
    parts: _Parts
    progress: Callable[[CompressProgress], None] | None
    is_cancelled: Callable[[], bool] | None
    regions: tuple[int, int]

    @property
    def steps_per_slice(self) -> int:
        n_regions = len(plan_regions(*self.source.slice_shape[:2], *self.regions))
        return self.config.iterations * n_regions


def _run_local(job: _Job, todo: list[int], warm: float | None) -> None:
    source, keys, config, parts, progress = (
        job.source,
        job.keys,
        job.config,
        job.parts,
        job.progress,
    )
    n = len(keys)
    n_regions = job.steps_per_slice // config.iterations
    warm_config = None
    if warm is not None:
        warm_config = config.with_overrides(
            iterations=max(1, round(warm * config.iterations)), levels=1
        )
    slice_steps = [config.iterations * n_regions] + [
        (warm_config or config).iterations * n_regions
    ] * (n - 1)
    total = sum(slice_steps)
    for index in todo:
        base = sum(slice_steps[:index])

        def report(step, _total, psnr, index=index, base=base):
            if progress is not None:
                progress(CompressProgress(base + step, total, index, n, psnr))

        start_models, slice_config = None, config
        if warm_config is not None and index > 0:
            # From the previous slice as decoded from its part: the same start whether this run
            # fitted that slice or an earlier, interrupted run did.
            start_models, slice_config = _decoded_models(parts.load(index - 1)), warm_config
        result = compress_slice(
            source.read_slice(keys[index]),
            slice_config,
            job.value_range,
            device=job.device,
            backend=job.backend,
            progress=report,
            cancel=job.is_cancelled,
            region_size=job.regions[0],
            region_margin=job.regions[1],
            start_models=start_models,
        )
        parts.save(index, result)


def _decoded_models(result: dict) -> list:
    from napari_sgi.codec.model import decode_model

    return [
        decode_model(model_config_from_header(region["model"]), region["sections"])
        for region in result["regions"]
    ]


def _run_distributed(job: _Job, client, todo: list[int]) -> None:
    from distributed import as_completed

    source, keys, parts, progress = job.source, job.keys, job.parts, job.progress

    n, steps = len(keys), job.steps_per_slice
    workers = max(1, len(client.scheduler_info().get("workers", {})))
    window = 2 * workers  # bounded in flight: memory does not grow with the number of slices
    pending = list(todo)
    futures = {}
    # A source holding its pixels in memory would travel whole with every task: send its slices.
    # Any other source goes to every worker once: a task that unpickled its own copy would open
    # the file again (~35 ms a slice for a TIFF; reading from an open one takes ~2 ms).
    in_memory = len(pickle.dumps(source, protocol=pickle.HIGHEST_PROTOCOL)) > _SMALL_TASK_BYTES
    shared = None if in_memory else client.scatter(source, broadcast=True, hash=False)

    def submit() -> None:
        while pending and len(futures) < window:
            index = pending.pop(0)
            task_source, task_key = shared, keys[index]
            if in_memory:
                task_source, task_key = source.read_slice(keys[index]), None
            future = client.submit(
                _slice_task,
                task_source,
                task_key,
                job.config,
                job.value_range,
                job.device,
                job.backend,
                job.regions,
                key=f"napari-sgi-slice-{index}-{id(parts)}",
            )
            futures[future] = index

    submit()
    finished = n - len(todo)
    completed = as_completed(list(futures))
    for future in completed:
        index = futures.pop(future)
        if job.is_cancelled is not None and job.is_cancelled():
            for other in futures:
                other.cancel()
            raise FitCancelled("compression cancelled")
        parts.save(index, future.result())
        finished += 1
        if progress is not None:
            progress(CompressProgress(finished * steps, n * steps, index, n, math.nan))
        before = set(futures)
        submit()
        for new in set(futures) - before:
            completed.add(new)


def _finite_or_none(value: float, digits: int = 4) -> float | None:
    """A quality figure as the header stores it: rounded, and null for a lossless slice's PSNR.

    JSON has no infinity; more digits than a PSNR to 1e-4 dB or an SSIM to 1e-6 are noise that
    costs a few incompressible bytes of every slice.
    """
    return round(float(value), digits) if math.isfinite(value) else None


def _assemble(path, source, keys, config, value_range, contrast_limits, parts) -> CompressResult:
    layout = source.to_header()
    slice_shape = source.slice_shape
    height, width = slice_shape[0], slice_shape[1]
    header = {
        "kind": FILE_KIND,
        "encoder_version": __version__,
        "layout": layout,
        "value_range": [value_range.low, value_range.high],
        "contrast_limits": list(contrast_limits or (value_range.low, value_range.high)),
        "fit": config.to_dict(),
        "n_slices": len(keys),
    }
    slices, psnrs, mses, ssims, gaussians = [], [], [], [], 0
    with SGIWriter(path, header) as writer:
        for index, key in enumerate(keys):
            result = parts.load(index)  # one slice in memory at a time
            entries = []
            for number, region in enumerate(result["regions"]):
                for name in MODEL_SECTIONS:
                    writer.add_section(f"slice/{index}/r{number}/{name}", region["sections"][name])
                entries.append({**region["region"], "model": region["model"]})
            slices.append(
                {
                    "key": list(key),
                    "regions": entries,
                    "blend": int(result.get("blend", 0)),  # parts of older runs were cut
                    "psnr": _finite_or_none(result["psnr"]),
                    "ssim": _finite_or_none(result["ssim"], 6),
                }
            )
            psnrs.append(float(result["psnr"]))
            mses.append(result["mse"])
            ssims.append(result["ssim"])
            gaussians += result["gaussians"]
        overall = 10 * math.log10(1 / np.mean(mses)) if np.mean(mses) > 0 else math.inf
        writer.header["slices"] = slices
        writer.header["quality"] = {
            "psnr": _finite_or_none(overall),
            "ssim": _finite_or_none(np.mean(ssims), 6),
        }
    size = path.stat().st_size
    pixels = len(keys) * height * width
    original = math.prod(source.shape) * np.dtype(source.dtype).itemsize
    return CompressResult(
        path=path,
        bytes=size,
        bpp=8 * size / pixels,
        compression_ratio=original / size,
        psnr=overall,
        ssim=float(np.mean(ssims)),
        slice_psnr=psnrs,
        slice_ssim=ssims,
        seconds=0.0,
        n_slices=len(keys),
        gaussians=gaussians,
        config=config.to_dict(),
    )
