"""Fit a job's missing slices: one after the other here (:func:`run_local`, which can warm-start
each slice from the one before), or as tasks on dask.distributed workers (:func:`run_distributed`).
Each finished slice goes to the job's :class:`~napari_sgi.encode.resume.ResumeStore` at once.
"""

from __future__ import annotations

import math
import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from napari_sgi.encode.slices import SliceResult, compress_slice
from napari_sgi.errors import FitCancelled

if TYPE_CHECKING:
    import numpy as np

    from napari_sgi.core.image import ValueRange
    from napari_sgi.core.presets import FitConfig
    from napari_sgi.encode.plan import WorkPlan
    from napari_sgi.encode.resume import ResumeStore
    from napari_sgi.inputs import ImageSource

#: A source whose pickle is larger holds its pixels in memory: its tasks get their slice instead.
_SMALL_TASK_BYTES = 1 << 20


@dataclass(frozen=True)
class Job:
    """What every slice of one compression shares.

    ``report(done, slice_index, psnr)`` is told the steps done over all slices
    (of ``work.total_steps``) after every step (local runs) or slice (distributed runs).
    ``warm_config`` fits every slice after the first, from the previous one (local runs only).
    """

    source: ImageSource
    keys: list[tuple[int, ...]]
    config: FitConfig
    warm_config: FitConfig | None
    value_range: ValueRange
    device: str
    backend: str
    region_size: int
    region_margin: int
    region_workers: int | None
    work: WorkPlan
    store: ResumeStore
    report: Callable[[int, int, float], None] | None
    is_cancelled: Callable[[], bool] | None


def run_local(job: Job, todo: list[int]) -> None:
    """Fit slices ``todo`` in this process, in order."""
    for index in todo:
        base = job.work.steps_before(index)

        def report(step: int, _total: int, psnr: float, index=index, base=base) -> None:
            if job.report is not None:
                job.report(base + step, index, psnr)

        start_models, config = None, job.config
        if job.warm_config is not None and index > 0:
            # From the previous slice as decoded from its part: the same start whether this run
            # fitted that slice or an earlier, interrupted run did.
            start_models = job.store.load(index - 1).decoded_models()
            config = job.warm_config
        result = compress_slice(
            job.source.read_slice(job.keys[index]),
            config,
            job.value_range,
            device=job.device,
            backend=job.backend,
            progress=report,
            cancel=job.is_cancelled,
            region_size=job.region_size,
            region_margin=job.region_margin,
            region_workers=job.region_workers,
            start_models=start_models,
        )
        job.store.save(index, result)


def slice_task(
    source: ImageSource | np.ndarray,
    key: tuple[int, ...] | None,
    config: FitConfig,
    value_range: ValueRange,
    device: str,
    backend: str,
    regions: tuple[int, int],
) -> SliceResult:
    """One slice on a dask worker.

    A file-backed source reads its own slice there, so no pixels travel through the scheduler; an
    in-memory array arrives as the slice itself (``key`` is None).
    """
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
        region_workers=1,  # the workers already share the cores, a slice each
    )


def run_distributed(job: Job, client, todo: list[int]) -> None:
    """Fit slices ``todo`` on the workers of ``client`` (a ``distributed.Client``), a task each."""
    from distributed import as_completed

    source, keys = job.source, job.keys
    n = len(keys)
    workers = max(1, len(client.scheduler_info().get("workers", {})))
    window = 2 * workers  # bounded in flight: memory does not grow with the number of slices
    pending = list(todo)
    futures = {}
    # A source holding its pixels in memory would travel whole with every task: send its slices.
    # Any other source goes to every worker once: a task that unpickled its own copy would open
    # the file again (~35 ms a slice for a TIFF; reading from an open one takes ~2 ms). (Pickled
    # here only to weigh it, as dask would send it; nothing is ever unpickled from a file.)
    in_memory = len(pickle.dumps(source, protocol=pickle.HIGHEST_PROTOCOL)) > _SMALL_TASK_BYTES
    shared = None if in_memory else client.scatter(source, broadcast=True, hash=False)

    def submit() -> None:
        while pending and len(futures) < window:
            index = pending.pop(0)
            task_source, task_key = shared, keys[index]
            if in_memory:
                task_source, task_key = source.read_slice(keys[index]), None
            future = client.submit(
                slice_task,
                task_source,
                task_key,
                job.config,
                job.value_range,
                job.device,
                job.backend,
                (job.region_size, job.region_margin),
                key=f"napari-sgi-slice-{index}-{id(job.store)}",
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
        job.store.save(index, future.result())
        finished += 1
        if job.report is not None:
            job.report(finished * job.work.steps_per_slice, index, math.nan)
        before = set(futures)
        submit()
        for new in set(futures) - before:
            completed.add(new)
