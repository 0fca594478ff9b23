"""Fit a slice's regions in worker processes, several at a time: :func:`fit_in_processes`; how
many (:func:`region_worker_count`), and the fit of one region wherever it runs (:func:`fit_box`).

One fit step is mostly Python and autograd overhead on one thread, plus the compiled rasterizer on
the others: a large slice fitted region after region keeps about 1.3 of 2 cores busy. Regions are
independent until the meter blends them, so worker processes fit several at once, each with its
share of the cores (``torch.set_num_threads(cores // workers)``). Threads would not do: the
Python half of a step holds the GIL.

Workers are started with ``spawn``: torch and OpenMP are not safe to ``fork`` once their threads
run. A spawned process runs the parent's main script again unless it is guarded by
``if __name__ == "__main__":``; few microscopists' scripts are, so the workers are started with
the main module hidden (:func:`_main_script_hidden`): they need only napari_sgi. Each region's
fit depends only on its pixels and its configuration, and the compiled rasterizer's result does
not depend on its threads, so a worker returns exactly what :func:`fit_box` returns in the calling
process: the model's shape, its file sections and its render, never the module.

The calling thread keeps what the sequential path does: it hands the regions out in order, at most
``2 x workers`` ahead of the meter (submitted, or fitted and waiting for an earlier region), so that
memory stays bounded; it forwards the workers' progress (sent over a queue a few times a second);
and it checks ``cancel`` every :data:`POLL_SECONDS`, after which the workers are stopped at once and
:class:`~napari_sgi.errors.FitCancelled` is raised, as the sequential fit raises it.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import pickle
import queue
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from napari_sgi.core.image import ValueRange
from napari_sgi.core.presets import FitConfig
from napari_sgi.core.regions import Region, render_box
from napari_sgi.errors import FitCancelled

if TYPE_CHECKING:
    from napari_sgi.core.fit import FitProgress
    from napari_sgi.core.model import ModelConfig, SGIModel

POLL_SECONDS = 0.1  # the calling thread checks cancel and forwards progress this often
REPORT_SECONDS = 0.1  # a worker sends its progress at most this often (and at a region's end)

#: Pixels of a slice from which its regions are fitted in worker processes by default. A worker's
#: start costs about 3 CPU seconds (importing torch, 1.2 s; torch._dynamo, which the first Adam
#: optimiser imports, 1.5 s), while a smaller slice fits in well under a minute at ``fast`` (a
#: 512x512 image: 18 s for 800 steps, docs/benchmarks.md "fit"): there the workers would take much
#: of what they gain.
PARALLEL_PIXELS = 1024 * 1024

# A worker process's end of the progress queue and of the stop flag (set by _start_worker).
_events: multiprocessing.Queue | None = None
_stop = None

# Each region's fit weighs its box by the blend weight the decoder gives each pixel
# (core.regions.box_weights). Switch for benchmarks (bench_region_weights; the module of the
# process that fits: only in-process fits, region_workers=1, see it changed).
BLEND_WEIGHTS = True


@dataclass(frozen=True)
class FittedRegion:
    """What a slice keeps of one fitted region: its model's shape, its file sections and its
    render over its box (:func:`napari_sgi.core.regions.render_box`, for the meter)."""

    model: ModelConfig
    sections: dict[str, bytes]
    render: np.ndarray


def fit_box(
    pixels: np.ndarray,
    region: Region,
    config: FitConfig,
    value_range: ValueRange,
    *,
    device: str = "cpu",
    backend: str = "auto",
    start: SGIModel | None = None,
    progress: Callable[[FitProgress], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    blend: tuple[tuple[int, int], int] | None = None,
) -> FittedRegion:
    """Fit one region's box ``pixels`` (the slice's pixels under ``region.box``) and keep what
    the slice needs of it. The same in this process and in a worker process.

    ``blend``: the slice's ``(height, width)`` and blend width, to weigh the box's pixels by
    what the decoder shows of them (:func:`napari_sgi.core.regions.box_weights`); None: alike.
    """
    import torch

    from napari_sgi.codec.model import encode_model
    from napari_sgi.core.image import to_tensor
    from napari_sgi.core.regions import box_weights
    from napari_sgi.encode.targeting import fit_region

    target = to_tensor(pixels, value_range).to(device)
    weights = box_weights(region, *blend) if blend is not None and BLEND_WEIGHTS else None
    model = fit_region(
        target,
        config,
        core_pixels=region.core_pixels,
        model=start,
        progress=progress,
        cancel=cancel,
        backend=backend,
        pixel_weights=None if weights is None else torch.from_numpy(weights).to(device),
    ).model
    return FittedRegion(model.config, encode_model(model), render_box(model, 0, backend))


def region_worker_count(requested: int | None, regions: list[Region], device: str = "cpu") -> int:
    """Worker processes that fit a slice's ``regions``: ``requested``, or one per core.

    Automatically (``requested`` None) only on the CPU (one GPU fits one region at a time), for a
    slice of at least :data:`PARALLEL_PIXELS`, and outside daemonic processes (a dask worker),
    which cannot start others.

    Examples
    --------
    >>> from napari_sgi.core.regions import plan_regions
    >>> large, small = plan_regions(2048, 2048), plan_regions(64, 64, 32, 32)  # 4 regions each
    >>> region_worker_count(1, large), region_worker_count(8, large), region_worker_count(2, small)
    (1, 4, 2)
    >>> region_worker_count(None, large, "cuda"), region_worker_count(None, small)
    (1, 1)
    >>> region_worker_count(None, large) == min(4, available_cores())
    True
    """
    if requested is not None:
        if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
            raise ValueError(f"region_workers must be a whole number >= 1, got {requested!r}")
        return min(requested, len(regions))
    pixels = sum((r.core[1] - r.core[0]) * (r.core[3] - r.core[2]) for r in regions)
    if (
        len(regions) < 2
        or pixels < PARALLEL_PIXELS
        or not str(device).startswith("cpu")
        or multiprocessing.current_process().daemon
    ):
        return 1
    return min(len(regions), available_cores())


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS tells it)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def fit_in_processes(
    image: np.ndarray,
    regions: list[Region],
    configs: list[FitConfig],
    value_range: ValueRange,
    *,
    workers: int,
    device: str = "cpu",
    backend: str = "auto",
    steps: int,
    progress: Callable[[int, int, float], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    start_models: list[SGIModel] | None = None,
    blend_width: int = 0,
) -> Iterator[FittedRegion]:
    """The slice's regions fitted by ``workers`` processes, yielded in the regions' order.

    Parameters
    ----------
    image
        The slice (``[H, W]`` or ``[H, W, C]``); each worker gets its region's box only.
    configs
        One configuration per region (:func:`napari_sgi.encode.targeting.region_configs`).
    steps
        Fitting steps of one region (pilots included): ``progress(step, total, psnr)`` counts the
        slice's steps up to ``steps * len(regions)``, never backwards.
    start_models
        One model per region to start from; sent pickled, so the caller's models stay unchanged.
    blend_width
        The slice's blend width: each region weighs its box by it (:func:`fit_box`).

    Close the generator (or let it finish) to stop the workers: it terminates any that still run.
    """
    context = multiprocessing.get_context("spawn")
    events, stop = context.Queue(), context.Event()
    threads = max(1, available_cores() // workers)
    pool = ProcessPoolExecutor(
        workers, mp_context=context, initializer=_start_worker, initargs=(events, stop, threads)
    )
    total = steps * len(regions)
    done = [0] * len(regions)  # steps done of each region, as last heard
    psnr, reported = math.nan, 0
    running: dict[Future, int] = {}
    fitted: dict[int, FittedRegion] = {}  # finished, waiting for an earlier region
    submitted = yielded = 0
    finished = False

    def submit(number: int) -> None:
        region = regions[number]
        by0, by1, bx0, bx1 = region.box
        pixels = np.ascontiguousarray(image[by0:by1, bx0:bx1])  # the box only, not the slice
        start = pickle.dumps(start_models[number]) if start_models else None
        blend = (image.shape[:2], blend_width)
        job = (number, pixels, region, start, configs[number], value_range, device, backend, blend)
        with _main_script_hidden():  # the pool starts its workers in submit
            running[pool.submit(_fit_job, *job)] = number

    try:
        while yielded < len(regions):
            while submitted < len(regions) and len(running) + len(fitted) < 2 * workers:
                submit(submitted)
                submitted += 1
            if yielded in fitted:
                yield fitted.pop(yielded)
                yielded += 1
                continue
            ready, _ = wait(running, timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
            psnr = _drain(events, done, psnr)
            for future in ready:
                number = running.pop(future)
                fitted[number] = future.result()  # a worker's error is raised here
                done[number] = steps
            if cancel is not None and cancel():
                raise FitCancelled(f"fit cancelled at step {sum(done)} of {total}")
            if progress is not None and sum(done) > reported:
                reported = sum(done)
                progress(reported, total, psnr)
        finished = True
    finally:
        _shut_down(pool, stop, events, terminate=not finished)


@contextlib.contextmanager
def _main_script_hidden() -> Iterator[None]:
    """Start processes without making them import the caller's ``__main__`` script.

    ``spawn`` re-imports the parent's main module (found from its ``__spec__`` or ``__file__``)
    in every child, which re-runs an unguarded script's top level: it loads the data again and
    then fails when it compresses, as a child may not start processes. The workers run only
    napari_sgi's functions, so they do not need it.
    """
    main = sys.modules.get("__main__")
    saved = {name: getattr(main, name) for name in ("__spec__", "__file__") if hasattr(main, name)}
    try:
        if main is not None:
            main.__spec__ = None
            if "__file__" in saved:
                del main.__file__
        yield
    finally:
        for name, value in saved.items():
            setattr(main, name, value)


def _drain(events: multiprocessing.Queue, done: list[int], psnr: float) -> float:
    """Take every progress report waiting in ``events`` into ``done``; the latest PSNR."""
    while True:
        try:
            number, step, psnr = events.get_nowait()
        except queue.Empty:
            return psnr
        done[number] = max(done[number], step)  # reports may overtake each other


def _shut_down(pool: ProcessPoolExecutor, stop, events, *, terminate: bool) -> None:
    """Stop the pool; with ``terminate``, kill the running fits rather than wait for them."""
    if terminate:
        stop.set()  # were a worker out of reach below, its fit would still stop at its next step
        if hasattr(pool, "terminate_workers"):  # Python 3.14
            pool.terminate_workers()
        else:
            for process in list((getattr(pool, "_processes", None) or {}).values()):
                process.terminate()
    pool.shutdown(wait=True, cancel_futures=True)  # joins the workers: none is left behind
    events.close()


def _start_worker(events: multiprocessing.Queue, stop, threads: int) -> None:
    """Set up a worker process: its share of the cores, and the progress and stop channels."""
    global _events, _stop
    import torch

    torch.set_num_threads(threads)
    _events, _stop = events, stop


def _fit_job(
    number: int,
    pixels: np.ndarray,
    region: Region,
    start: bytes | None,
    config: FitConfig,
    value_range: ValueRange,
    device: str,
    backend: str,
    blend: tuple[tuple[int, int], int],
) -> FittedRegion:
    """In a worker: fit region ``number``, reporting its steps over the queue."""
    last = -math.inf

    def report(event: FitProgress) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= REPORT_SECONDS or event.step == event.total:
            last = now
            _events.put((number, event.step, event.psnr))

    return fit_box(
        pixels,
        region,
        config,
        value_range,
        device=device,
        backend=backend,
        start=pickle.loads(start) if start is not None else None,
        progress=report,
        cancel=_stop.is_set,
        blend=blend,
    )
