"""The comparison with classic codecs of one ``.sgi`` slice, shaped for napari's ``thread_worker``.

No Qt in here. :meth:`ComparisonJob.steps` is the worker's generator: it reads the original slice,
decodes the SGI slice, codes the slice with each codec at the slice's share of the file
(:mod:`napari_sgi.compare`) and, when asked, the codecs' rate-distortion curves and their plot,
yielding a :class:`Progress` between codecs and a :class:`SliceReady` / :class:`PlotReady` with
each complete result. Nothing is kept here: the GUI stores what it receives, so a job cancelled
midway leaves nothing behind.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from napari_sgi.compare.codecs import Codec
from napari_sgi.compare.slices import (
    SGI,
    CodecResult,
    SliceComparison,
    bits_per_pixel,
    code_at_budget,
    rd_curve,
    sgi_result,
    slice_budgets,
)
from napari_sgi.errors import ComparisonCancelled

PAUSE_LIMIT_S = 10.0  #: the longest a job waits to be resumed (should the GUI never resume it)


@dataclass(frozen=True)
class Progress:
    done: int
    total: int
    text: str


@dataclass(frozen=True)
class SliceReady:
    comparison: SliceComparison


@dataclass(frozen=True)
class PlotReady:
    index: int
    png: bytes
    curves: dict[str, list[CodecResult]]


class ComparisonSource:
    """What a comparison reads: the original's slices (in the file's order), the ``.sgi``'s
    decoded slices, each slice's byte budget and the value range of the figures.

    Parameters
    ----------
    data, axes
        The layer's data and the axes ``compress`` was given (its slices are read the same way).
    sgi
        The opened file (:func:`napari_sgi.open_sgi`, or anything with ``levels`` and ``rgb``).
    path, nbytes
        The file and its size; budgets come from its sections, or are equal shares of ``nbytes``
        when it cannot be read as a container.
    slice_psnr, slice_ssim
        The encoder's figures of every slice (the plot's SGI points of the other slices).
    """

    def __init__(
        self,
        data: Any,
        axes: str,
        sgi: Any,
        path: str,
        nbytes: int,
        slice_psnr: Sequence[float] = (),
        slice_ssim: Sequence[float] = (),
    ) -> None:
        self.data, self.axes, self.sgi, self.path, self.nbytes = data, axes, sgi, path, nbytes
        self.shape = tuple(int(n) for n in sgi.levels[0].shape)
        self.lead_shape = self.shape[: sum(a not in "YXS" for a in axes)]
        self.n_slices = int(np.prod(self.lead_shape, dtype=np.int64))
        self.slice_psnr, self.slice_ssim = list(slice_psnr), list(slice_ssim)
        self.value_range = getattr(getattr(sgi, "file", None), "value_range", None)
        self._budgets: list[int] | None = None
        self._source: Any = None
        self._lock = threading.Lock()

    @property
    def budgets(self) -> list[int]:
        """Bytes of each slice's share of the file (read once, on the worker)."""
        with self._lock:
            if self._budgets is None:
                try:
                    budgets = slice_budgets(self.path)
                    if len(budgets) != self.n_slices:
                        raise ValueError("slice count")
                except (OSError, ValueError):
                    share, extra = divmod(int(self.nbytes), self.n_slices)
                    budgets = [share + (i < extra) for i in range(self.n_slices)]
                self._budgets = budgets
            return self._budgets

    def original(self, index: int) -> np.ndarray:
        from napari_sgi.inputs import open_input

        with self._lock:
            if self._source is None:
                self._source = open_input(self.data, axes=self.axes)
            source = self._source
        return np.asarray(source.read_slice(source.slice_keys()[index]))

    def decoded(self, index: int) -> np.ndarray:
        file = getattr(self.sgi, "file", None)
        if file is not None and hasattr(file, "render_slice"):
            return np.asarray(file.render_slice(index))
        position = np.unravel_index(index, self.lead_shape) if self.lead_shape else ()
        return np.asarray(self.sgi.levels[0][tuple(int(p) for p in position)])

    def sgi_points(self) -> list[CodecResult]:
        """The encoder's PSNR/SSIM of every slice at its budget (for the plot)."""
        pixels = self.shape[len(self.lead_shape) : len(self.lead_shape) + 2]
        points = []
        for index, (budget, p) in enumerate(zip(self.budgets, self.slice_psnr, strict=False)):
            s = self.slice_ssim[index] if index < len(self.slice_ssim) else float("nan")
            p = float("nan") if p is None else float(p)
            points.append(CodecResult("sgi", SGI, budget, bits_per_pixel(budget, pixels), p, s))
        return points


class ComparisonJob:
    """Compare slice ``index`` of ``source`` with ``codecs``; with ``plot``, draw its RD plot."""

    def __init__(
        self,
        source: ComparisonSource,
        index: int,
        codecs: Sequence[Codec],
        plot: bool = True,
        done: SliceComparison | None = None,
        curves: dict[str, list[CodecResult]] | None = None,
    ) -> None:
        self.source, self.index, self.codecs, self.plot = source, index, list(codecs), plot
        #: what is known already: only the codecs missing from it are coded, and drawn
        self.done, self.known_curves = done, dict(curves or {})
        self.todo = [c for c in self.codecs if done is None or c.name not in done.results]
        self.curve_todo = [c for c in self.codecs if c.name not in self.known_curves]
        self.stop = threading.Event()
        self.abort_check: Callable[[], bool] = lambda: False
        self.cancelled = False  #: set by the GUI: whatever this job still yields is dropped
        self.running = threading.Event()  #: cleared by :meth:`pause`, set by :meth:`resume`
        self.running.set()

    def cancel(self) -> None:
        self.cancelled = True
        self.stop.set()

    def pause(self) -> None:
        """Hold the job at its next check (between two encodes) until :meth:`resume`.

        The GUI pauses it while napari adds the layers of a result it yielded: napari's work is
        Python on the GUI thread, and a job going on meanwhile (the rate-distortion curves)
        would compete with it for the GIL and the CPU, stretching each of napari's steps.
        """
        self.running.clear()

    def resume(self) -> None:
        self.running.set()

    def _stopped(self) -> bool:
        deadline = time.monotonic() + PAUSE_LIMIT_S
        while not self.running.wait(0.05):
            if self.stop.is_set() or self.abort_check() or time.monotonic() > deadline:
                break
        return self.stop.is_set() or self.abort_check()

    @property
    def total(self) -> int:
        return 1 + len(self.todo) + (len(self.curve_todo) + 1 if self.plot else 0)

    def steps(self) -> Generator[Progress | SliceReady | PlotReady, None, bool]:
        """Yield progress and results; returns True when done, False when cancelled."""
        try:
            yield from self._steps()
        except ComparisonCancelled:
            return False
        return True

    def _steps(self) -> Generator[Progress | SliceReady | PlotReady, None, None]:
        source, index, total = self.source, self.index, self.total
        where = f"slice {index + 1}/{source.n_slices}: " if source.n_slices > 1 else ""
        yield Progress(0, total, f"{where}reading the slice")
        self._check()  # a job started paused waits here
        budget = source.budgets[index]
        original = source.original(index)
        if self.done is None:
            comparison = SliceComparison(index, budget, tuple(original.shape))
            comparison.results[SGI] = sgi_result(
                source.decoded(index), original, budget, source.value_range
            )
        else:  # a copy: the GUI's own stays as it is until this one arrives whole
            done = self.done
            comparison = SliceComparison(
                index, budget, done.shape, dict(done.results), dict(done.decoded),
                dict(done.mappings),
            )  # fmt: skip
        for done_steps, codec in enumerate(self.todo, start=1):
            self._check()
            yield Progress(done_steps, total, f"{where}{codec.name} at {budget:,} bytes")
            result, decoded, mapping = code_at_budget(
                codec, original, budget, source.value_range, self._stopped
            )
            comparison.results[codec.name] = result
            comparison.decoded[codec.name] = decoded
            comparison.mappings[codec.name] = mapping
        self._check()
        yield SliceReady(comparison)
        if not self.plot:
            return
        curves = dict(self.known_curves)
        for done_steps, codec in enumerate(self.curve_todo, start=len(self.todo) + 1):
            yield Progress(done_steps, total, f"{where}{codec.name} rate-distortion curve")
            curves[codec.name] = rd_curve(codec, original, source.value_range, self._stopped)
        yield Progress(total - 1, total, f"{where}drawing the plot")
        from napari_sgi.compare.plot import rd_png

        shown = {c.name: curves[c.name] for c in self.codecs}
        others = [p for i, p in enumerate(source.sgi_points()) if i != index]
        title = f"slice {index}" if source.n_slices > 1 else ""
        png = rd_png(shown, comparison, others, title=title)
        self._check()
        yield PlotReady(index, png, curves)

    def _check(self) -> None:
        if self._stopped():
            raise ComparisonCancelled("cancelled")
