"""A local dask.distributed cluster set up the way napari-sgi's slices run best on it.

One single-threaded worker process per core (a slice is one task; torch inside a worker uses
``NAPARI_SGI_THREADS`` threads, default 1) and distributed's statistical profiler off: it samples
every worker's stacks every 10 ms, which cost the 2-worker run on 2 cores 13 % of its speed
(1.68x instead of 1.93x over one worker, docs/benchmarks.md, "volume").

Examples
--------
>>> from napari_sgi.encode.cluster import local_client
>>> with local_client(2) as client:  # doctest: +SKIP
...     compress("stack.ome.zarr", "stack.sgi", client=client)
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


@contextlib.contextmanager
def local_client(n_workers: int | None = None, **cluster_options) -> Iterator:
    """A ``distributed.Client`` of a new ``LocalCluster`` of single-threaded worker processes.

    Parameters
    ----------
    n_workers
        Worker processes (default: the CPU count).
    **cluster_options
        More ``LocalCluster`` arguments (``memory_limit``, ``dashboard_address``, ...).

    The cluster shuts down when the ``with`` block ends.
    """
    import dask
    from distributed import Client, LocalCluster

    if n_workers is None:
        n_workers = os.cpu_count() or 1
    if n_workers < 1:
        raise ValueError(f"n_workers must be at least 1, got {n_workers}")
    options = {"threads_per_worker": 1, "processes": True, "dashboard_address": None}
    # Worker processes start with the dask configuration of the process that starts them.
    with dask.config.set({"distributed.worker.profile.enabled": False}):
        cluster = LocalCluster(n_workers=n_workers, **{**options, **cluster_options})
    with cluster, Client(cluster) as client:
        yield client
