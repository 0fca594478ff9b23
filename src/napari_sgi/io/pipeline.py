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

from .. import __version__
from ..core.fit import FitCancelled
from ..core.image import ValueRange
from ..core.presets import FitConfig, get_preset
from .container import SGIWriter
from .inputs import ImageSource, open_input

FILE_KIND = "napari-sgi image"
MODEL_SECTIONS = ("weights", "hash_grid", "features", "log_scaling", "offsets")


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
            "path": str(self.path), "bytes": self.bytes, "bpp": round(self.bpp, 5),
            "compression_ratio": round(self.compression_ratio, 3),
            "psnr": round(self.psnr, 4) if math.isfinite(self.psnr) else None,
            "ssim": round(self.ssim, 6), "seconds": round(self.seconds, 3),
            "n_slices": self.n_slices, "gaussians": self.gaussians,
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
    progress: Callable | None = None,
    cancel: Callable[[], bool] | None = None,
) -> dict:
    """Fit one 2D slice, quantise it to its file sections and measure the decoded result.

    Returns a dict with ``sections`` (name -> bytes), ``model`` (ModelConfig dict), ``psnr``,
    ``ssim``, ``mse`` and ``gaussians``. The quality is that of the decoded image in its dtype.
    """
    import torch

    from ..core.fit import fit
    from ..core.image import from_tensor, to_tensor, validate_image
    from ..core.metrics import psnr, ssim
    from .codec import encode_model

    image = validate_image(image)
    target = to_tensor(image, value_range).to(device)
    outcome = fit(target, config, progress=progress, cancel=cancel, backend=backend)
    model = outcome.model
    sections = encode_model(model)
    with torch.no_grad():
        render = model.render(0, backend=backend).clamp(0, 1)
    decoded = from_tensor(render, value_range, image.ndim)
    measured = to_tensor(decoded, value_range)
    target = target.cpu()
    return {
        "sections": sections, "model": model.config.to_dict(),
        "psnr": psnr(measured, target), "ssim": ssim(measured, target),
        "mse": float(torch.mean((measured.double() - target.double()) ** 2)),
        "gaussians": model.config.gaussians,
    }


def _slice_task(source: ImageSource, key, config, value_range, device, backend) -> dict:
    # Runs on a dask worker: reads its own slice so that no pixels travel through the scheduler.
    import torch

    torch.set_num_threads(max(1, int(os.environ.get("NAPARI_SGI_THREADS", "1"))))
    return compress_slice(source.read_slice(key), config, value_range, device=device,
                          backend=backend)


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


def _fingerprint(source: ImageSource, config: FitConfig, value_range: ValueRange) -> str:
    description = json.dumps({"layout": source.to_header(), "fit": config.to_dict(),
                              "range": [value_range.low, value_range.high],
                              "encoder": __version__}, sort_keys=True, default=str)
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
    **overrides,
) -> CompressResult:
    """Compress an image, a stack or an image file into one `.sgi` file.

    Parameters
    ----------
    data
        A numpy or dask array, a zarr/OME-Zarr/TIFF/PNG/NPY path or object (see
        :func:`napari_sgi.io.inputs.open_input`), or an :class:`ImageSource`.
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
        A ``dask.distributed.Client``: slices are fitted on its workers.
    resume
        Reuse the finished slices of an interrupted run of the same job.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> stack = (np.random.default_rng(0).random((2, 24, 24)) * 1000).astype(np.uint16)
    >>> out = os.path.join(tempfile.mkdtemp(), "stack.sgi")
    >>> result = compress(stack, out, preset="fast", iterations=10)
    >>> result.n_slices, result.bytes == os.path.getsize(out)
    (2, True)
    """
    from ..api import resolve_device

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
    parts = _Parts(path, _fingerprint(source, config, value_range))
    done = parts.open() if resume else (parts.remove() or parts.open())
    keys = source.slice_keys()
    todo = [i for i in range(len(keys)) if i not in done]
    try:
        if client is not None:
            _run_distributed(client, source, keys, todo, config, value_range, device, backend,
                             parts, progress, is_cancelled)
        else:
            _run_local(source, keys, todo, config, value_range, device, backend, parts,
                       progress, is_cancelled)
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
            raise ValueError(f"{name} needs one value per axis of the data ({len(source.shape)}), "
                             f"got {len(values)}")
        order = source.source_axes or source.axes
        changes[name] = tuple(values[order.index(a)] for a in source.axes)
    if channel_names is not None:
        changes["channel_names"] = [str(c) for c in channel_names]
    return dataclasses.replace(source, **changes) if changes else source


def _run_local(source, keys, todo, config, value_range, device, backend, parts, progress,
               is_cancelled) -> None:
    n, steps = len(keys), config.iterations
    for order, index in enumerate(todo):
        base = (n - len(todo) + order) * steps

        def report(event, index=index, base=base):
            if progress is not None:
                progress(CompressProgress(base + event.step, n * steps, index, n, event.psnr))

        result = compress_slice(source.read_slice(keys[index]), config, value_range,
                                device=device, backend=backend, progress=report,
                                cancel=is_cancelled)
        parts.save(index, result)


def _run_distributed(client, source, keys, todo, config, value_range, device, backend, parts,
                     progress, is_cancelled) -> None:
    from distributed import as_completed

    n, steps = len(keys), config.iterations
    workers = max(1, len(client.scheduler_info().get("workers", {})))
    window = 2 * workers  # bounded in flight: memory does not grow with the number of slices
    pending = list(todo)
    futures = {}

    def submit() -> None:
        while pending and len(futures) < window:
            index = pending.pop(0)
            future = client.submit(_slice_task, source, keys[index], config, value_range,
                                   device, backend, key=f"napari-sgi-slice-{index}-{id(parts)}")
            futures[future] = index

    submit()
    finished = n - len(todo)
    completed = as_completed(list(futures))
    for future in completed:
        index = futures.pop(future)
        if is_cancelled is not None and is_cancelled():
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


def _finite_or_none(value: float) -> float | None:
    """JSON has no infinity: a lossless slice's PSNR is stored as null."""
    return float(value) if math.isfinite(value) else None


def _assemble(path, source, keys, config, value_range, contrast_limits, parts) -> CompressResult:
    layout = source.to_header()
    slice_shape = source.slice_shape
    height, width = slice_shape[0], slice_shape[1]
    header = {
        "kind": FILE_KIND, "encoder_version": __version__, "layout": layout,
        "value_range": [value_range.low, value_range.high],
        "contrast_limits": list(contrast_limits or (value_range.low, value_range.high)),
        "fit": config.to_dict(), "n_slices": len(keys),
    }
    slices, mses, ssims, gaussians = [], [], [], 0
    with SGIWriter(path, header) as writer:
        for index, key in enumerate(keys):
            result = parts.load(index)  # one slice in memory at a time
            for name in MODEL_SECTIONS:
                writer.add_section(f"slice/{index}/{name}", result["sections"][name])
            slices.append({"key": list(key), "model": result["model"],
                           "psnr": _finite_or_none(result["psnr"]), "ssim": result["ssim"]})
            mses.append(result["mse"])
            ssims.append(result["ssim"])
            gaussians += result["gaussians"]
        overall = 10 * math.log10(1 / np.mean(mses)) if np.mean(mses) > 0 else math.inf
        writer.header["slices"] = slices
        writer.header["quality"] = {"psnr": _finite_or_none(overall),
                                    "ssim": float(np.mean(ssims))}
    size = path.stat().st_size
    pixels = len(keys) * height * width
    original = math.prod(source.shape) * np.dtype(source.dtype).itemsize
    return CompressResult(
        path=path, bytes=size, bpp=8 * size / pixels, compression_ratio=original / size,
        psnr=overall, ssim=float(np.mean(ssims)),
        slice_psnr=[math.inf if s["psnr"] is None else s["psnr"] for s in slices],
        slice_ssim=ssims, seconds=0.0, n_slices=len(keys), gaussians=gaussians,
        config=config.to_dict(),
    )
