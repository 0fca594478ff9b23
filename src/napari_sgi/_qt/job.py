"""One compression run, shaped for napari's ``thread_worker``; no Qt in here.

``compress`` reports progress through a callback on whatever thread runs it, but a
``thread_worker`` generator can only hand values to the GUI by *yielding* them. So the job runs
``compress`` on a thread of its own and its generator, :meth:`CompressJob.steps`, relays the
callback's events from a queue, one yield per fitting step. The GUI thread never waits on either.
"""

from __future__ import annotations

import gc
import math
import os
import queue
import threading
import time
from collections.abc import Callable, Generator
from typing import Any

from napari_sgi.encode.plan import WorkPlan, plan_from_params
from napari_sgi.errors import FitCancelled

_DONE = object()
#: Least seconds between two progress yields. Each yield repaints the progress bars; where
#: OpenGL is software-rendered (VMs, remote desktops, Xvfb) one repaint of the napari window costs
#: ~20 ms of CPU, so 5 a second keeps the GUI's share small and the bar still moving smoothly.
YIELD_INTERVAL = 0.2
#: How much nicer (lower priority) the compress thread is than the GUI (Linux only).
NICENESS = 5


def estimate_work(shape: tuple[int, ...], axes: str, params: dict[str, Any]) -> WorkPlan:
    """Slices, regions, steps and Gaussians for data of ``shape`` with ``axes`` and compress
    ``params``: the plan that :func:`napari_sgi.compress` itself follows
    (:func:`napari_sgi.encode.plan.plan_work`).

    Examples
    --------
    >>> e = estimate_work((16, 128, 128), "ZYX", {"preset": "fast", "iterations": 100})
    >>> e.slices, e.total_steps
    (16, 1600)
    >>> estimate_work((2048, 2048), "YX", {"preset": "fast", "iterations": 100}).total_steps
    400
    """
    slice_shape = tuple(shape[axes.index(a)] for a in "YXS" if a in axes)
    slices = math.prod(n for n, a in zip(shape, axes, strict=True) if a not in "YXS")
    return plan_from_params(slice_shape, slices, params)


class CompressJob:
    """Runs ``compress_fn(data, path, progress=..., cancel=..., **params)`` off the GUI thread.

    Parameters
    ----------
    compress_fn
        :func:`napari_sgi.compress` (or a stand-in with its signature).
    data, path, params
        What to compress, where to, and the keyword arguments of ``compress``.
    open_fn
        Opens the written file (:func:`napari_sgi.open_sgi`); called on the worker thread so that
        reading the header never blocks the GUI.
    prefetch_index
        Stack position (indices of the axes before Y, X) that napari will show first: its coarsest
        level is decoded on the worker thread, so that the reader's caches hold it when the GUI
        thread draws the decoded layer.
    """

    def __init__(
        self,
        compress_fn: Callable[..., Any],
        data: Any,
        path: str,
        params: dict[str, Any],
        open_fn: Callable[[str], Any] | None = None,
        prefetch_index: tuple[int, ...] | None = None,
    ) -> None:
        self.compress_fn, self.data, self.path, self.params = compress_fn, data, path, params
        self.open_fn, self.prefetch_index = open_fn, prefetch_index
        self.stop = threading.Event()
        #: Set once the compress thread has ended (and, on cancel, removed its partial file).
        self.finished = threading.Event()
        self.abort_check: Callable[[], bool] = lambda: False
        self._events: queue.SimpleQueue = queue.SimpleQueue()
        self._outcome: dict[str, Any] = {}
        self._thread: threading.Thread | None = None

    def cancelled(self) -> bool:
        """The cancel check handed to ``compress``: our stop flag or the worker's ``quit()``."""
        return self.stop.is_set() or self.abort_check()

    def _run(self) -> None:
        _lower_priority()
        try:
            self._outcome["result"] = self.compress_fn(
                self.data,
                self.path,
                progress=self._events.put,
                cancel=self.cancelled,
                **self.params,
            )
        except BaseException as exc:  # noqa: BLE001 - re-raised on the worker thread
            self._outcome["error"] = exc
        finally:
            self.finished.set()
            self._events.put(_DONE)

    @property
    def was_cancelled(self) -> bool:
        """Whether the compress thread ended by cancellation (and so wrote no file)."""
        error = self._outcome.get("error")
        return isinstance(error, FitCancelled)

    @property
    def running(self) -> bool:
        """Whether the compress thread is still at work (e.g. cleaning up after a cancel)."""
        return self._thread is not None and not self.finished.is_set()

    def steps(
        self, min_interval: float = YIELD_INTERVAL
    ) -> Generator[Any, None, tuple[Any, Any] | None]:
        """Yield the latest progress event after each step, at most every ``min_interval`` s.

        Returns ``(result, opened file)``, or ``None`` when cancelled. Slow steps (large images on
        a CPU) are yielded one by one; fast ones (a GPU does hundreds a second) are coalesced,
        because every yield is a signal the GUI thread must handle (a backlog of them froze it for
        0.4 s in ``benchmarks/bench_gui_stall.py``) and a repaint of the window. Each event
        carries ``done``, the steps done so far, so the receiver can advance a bar by the right
        amount.
        """
        self._thread = threading.Thread(target=self._run, name="napari-sgi-compress", daemon=True)
        self._thread.start()
        pending, last_yield = None, float("-inf")
        while True:
            due = last_yield + min_interval
            wait = None if pending is None else max(0.0, due - time.monotonic())
            try:
                event = self._events.get(timeout=wait)
            except queue.Empty:
                event = None  # time to hand over the event kept back
            if event is _DONE:
                break
            if event is not None:
                pending = event
                if time.monotonic() - last_yield < min_interval:
                    continue
            yield pending
            pending, last_yield = None, time.monotonic()
        if pending is not None:
            yield pending  # the last step, so that the bar ends full
        if self.was_cancelled:
            return None  # a cancel is no error: the widget says so, no traceback needed
        if "error" in self._outcome:
            raise self._outcome["error"]
        result = self._outcome["result"]
        opened = self.open_fn(str(result.path)) if self.open_fn is not None else None
        if opened is not None and self.prefetch_index is not None:
            prefetch(opened, self.prefetch_index)
        return result, opened


def _lower_priority(niceness: int = NICENESS) -> None:
    """Make the calling thread (and the torch threads it starts) yield the CPU to the GUI.

    Linux nice values are per thread; a background job that competes with the GUI thread for a
    few cores should lose. Elsewhere, or if not permitted, nothing changes.
    """
    if not niceness or not hasattr(os, "setpriority") or not hasattr(threading, "get_native_id"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + niceness)
    except OSError:
        pass


def prefetch(sgi: Any, index: tuple[int, ...]) -> None:
    """Decode the plane at stack position ``index`` of the coarsest level (fills reader caches)."""
    import numpy as np

    try:
        coarsest = sgi.levels[-1]
        index = tuple(min(max(0, i), n - 1) for i, n in zip(index, coarsest.shape, strict=False))
        np.asarray(coarsest[index])
    except Exception:  # noqa: BLE001 - only a speed-up; the GUI reads (and reports) it anyway
        pass


def warm_up() -> None:
    """Import torch, the SGI pipeline and what the comparison with classic codecs uses: run on a
    background thread when the widget opens.

    Importing torch holds the GIL in C for a few hundred ms at a time; done here, that happens
    once while the user sets the sliders, not during the first compression.
    """
    try:
        import dask.array as da
        import torch  # noqa: F401

        import napari_sgi.api  # noqa: F401
        import napari_sgi.codec.bit_stream  # noqa: F401
        import napari_sgi.codec.gaussian_stream  # noqa: F401
        import napari_sgi.codec.model  # noqa: F401
        import napari_sgi.core.fit  # noqa: F401 - and what compress imports when it runs:
        import napari_sgi.core.metrics  # noqa: F401
        import napari_sgi.core.rate_control  # noqa: F401
        import napari_sgi.core.refine  # noqa: F401
        import napari_sgi.core.seed_map  # noqa: F401 - scipy
        import napari_sgi.encode.pipeline  # noqa: F401
        import napari_sgi.reader  # noqa: F401
        from napari_sgi.codec.torchac_backend import load_torchac
        from napari_sgi.core.rasterize import cpu_kernel_available

        cpu_kernel_available()
        load_torchac()  # torchac's coder: its extension loaded (setuptools behind it)
        # dask's first compute looks for a distributed client: imports distributed, ~100 modules
        # (a stall of 0.1 s at the start of the first compression, measured, if left to it)
        da.compute(da.zeros(2).sum())
        # The comparison with classic codecs: the codecs and the plot's matplotlib (loading
        # their extension modules holds the GIL too).
        import imagecodecs
        import matplotlib.backends.backend_agg  # noqa: F401
        import matplotlib.figure  # noqa: F401

        for name in ("jpeg8_encode", "jpeg2k_encode", "jpegxl_encode", "avif_encode"):
            getattr(imagecodecs, name, None)  # imagecodecs loads each codec's module on first use
    except Exception:  # noqa: BLE001 - a failed warm-up only costs the first run some time
        pass


#: the owners (widgets) that froze the heap: it is thawed when the last of them closes
_FROZEN_BY: set[int] = set()


def freeze_heap(owner: object) -> None:
    """Take every object alive now (after :func:`warm_up`: mostly torch, napari, Qt, the
    pipeline, half a million of them) out of the collector's full collections (``gc.freeze``).

    A full collection walks every tracked object while holding the GIL: 0.2-0.4 s on a small
    CPU once torch is imported, on whatever thread allocates, so a stall of the GUI thread
    whenever it comes (measured in ``benchmarks/bench_gui_stall.py``). Frozen, those objects are
    skipped; a full collection then takes a few ms. They are not collected either: whatever of
    them is dropped later (a layer the user removes) stays in memory until :func:`thaw_heap` or
    :func:`refreeze_heap`. GUI thread only, with :func:`thaw_heap` when ``owner`` closes.
    """
    gc.freeze()
    _FROZEN_BY.add(id(owner))


def thaw_heap(owner: object) -> None:
    """``owner`` closes: once no owner is left, frozen objects are collected again."""
    _FROZEN_BY.discard(id(owner))
    if not _FROZEN_BY:
        gc.unfreeze()


def refreeze_heap() -> None:
    """Collect what was dropped among the frozen objects (one full collection, 0.2-0.4 s), then
    freeze the heap again."""
    if _FROZEN_BY:
        gc.unfreeze()
        gc.collect()
        gc.freeze()
