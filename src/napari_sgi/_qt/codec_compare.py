"""The widget's comparison with classic codecs: options, progress, the table, layers and plot.

After a compression, :meth:`CodecComparison.attach` codes the slice under the z/t slider with
JPEG 2000 and JPEG XL (JPEG and AVIF when ticked) at the largest size not above that slice's share
of the ``.sgi`` file, on a ``thread_worker`` (:mod:`napari_sgi._qt.codec_job`), and shows the
decoded slices as layers beside the original and the SGI layer, a table of bytes, bpp, PSNR and
SSIM with the best marked, and the slice's rate-distortion plot in a dock. Moving the slider
compares the slice it reaches (once: results are cached). Only complete results reach the GUI,
so a cancel leaves nothing half done; nothing is written unless the plot is saved.
"""

from __future__ import annotations

import math
from typing import Any

from magicgui.widgets import CheckBox, Container, Label, ProgressBar, PushButton
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QSizePolicy

from napari_sgi._qt.codec_job import (
    ComparisonJob,
    ComparisonSource,
    PlotReady,
    Progress,
    SliceReady,
)
from napari_sgi._qt.codec_layers import CodecLayers
from napari_sgi._qt.codec_table import CodecTable, table_rows
from napari_sgi._qt.compare import release_grid, reserve_grid
from napari_sgi._qt.rd_plot import DOCK_NAME, RDPlot
from napari_sgi.compare.codecs import CODECS, Codec
from napari_sgi.compare.slices import SliceComparison

SLIDER_DELAY_MS = 150  #: compare the slice the slider rests on, not each one it passes
START_DELAY_MS = 100  #: between a new file's decoded layer added and its comparison's start


class CodecComparison(Container):
    """The comparison panel of the SGI widget (see the module's docstring)."""

    def __init__(self, viewer: Any) -> None:
        self.viewer = viewer
        self.active = CheckBox(
            text="Compare with JPEG 2000 and JPEG XL at the same size", value=True
        )
        self.with_jpeg = CheckBox(text="JPEG", value=False)
        self.with_avif = CheckBox(text="AVIF", value=False)
        self.with_plot = CheckBox(text="Rate–distortion plot", value=True)
        extras = Container(
            widgets=[self.with_jpeg, self.with_avif, self.with_plot],
            layout="horizontal",
            labels=False,
        )
        self.status = Label(value="")
        self.progress_bar = ProgressBar(value=0, max=1, visible=False)
        self.compare_button = PushButton(text="Compare this slice", enabled=False)
        self.cancel_button = PushButton(text="Cancel comparison", enabled=False)
        buttons = Container(
            widgets=[self.compare_button, self.cancel_button], layout="horizontal", labels=False
        )
        super().__init__(
            widgets=[self.active, extras, buttons, self.progress_bar, self.status], labels=False
        )
        self.table = CodecTable()
        self.table.setVisible(False)
        self.native.layout().addWidget(self.table)
        # Progress text and bar change often: they must never resize the dock (napari would lay
        # out and redraw its whole canvas, tens of ms under a software renderer).
        status = self.status.native
        status.setWordWrap(True)
        status.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        policy = self.progress_bar.native.sizePolicy()
        policy.setRetainSizeWhenHidden(True)
        self.progress_bar.native.setSizePolicy(policy)
        self.source: ComparisonSource | None = None
        self.layers: CodecLayers | None = None
        self.cache: dict[int, SliceComparison] = {}  #: complete comparisons, by slice
        self.curves: dict[int, dict[str, list]] = {}  #: RD curves, by slice and codec
        self.plots: dict[int, bytes] = {}  #: the plot of each slice (PNG)
        self.plot: RDPlot | None = None
        self.job: ComparisonJob | None = None
        self.worker: Any = None
        self._wanted: int | None = None  # a slice to compare once the running job ends
        self._reserved: tuple[int, int] | None = None  # grid cells fixed for the next attach
        self._closed = False  # deleted with the viewer: late signals find no widget
        self._timer = QTimer(self.native)
        self._timer.setSingleShot(True)
        self._timer.setInterval(SLIDER_DELAY_MS)
        self._timer.timeout.connect(self._follow_slider)
        viewer.dims.events.current_step.connect(self._on_slider)
        self.native.destroyed.connect(self._on_destroyed)
        self.compare_button.changed.connect(lambda: self.request(self.current_index()))
        self.cancel_button.changed.connect(self.cancel)
        for box in (self.with_jpeg, self.with_avif, self.with_plot):
            box.changed.connect(self._options_changed)

    # ---------------------------------------------------------------------------------- set-up
    def codecs(self) -> list[Codec]:
        """The codecs ticked, in the order JPEG, JPEG 2000, JPEG XL, AVIF."""
        keys = {"j2k", "jxl"}
        keys |= {"jpeg"} if self.with_jpeg.value else set()
        keys |= {"avif"} if self.with_avif.value else set()
        return [codec for key, codec in CODECS.items() if key in keys]

    def reserve_grid(self, original: Any, decoded: int) -> None:
        """Before ``decoded`` layers of ``original`` are added to the grid: fix the grid's shape
        for them and for the classic layers the comparison will add, so that napari lays the
        grid out once, with them, rather than again for each classic layer (see
        :func:`napari_sgi._qt.compare.reserve_grid`). :meth:`attach` hands the cells on to the
        layers; they give the grid back its automatic shape once shown."""
        if self.layers is not None:
            self.layers.release()  # a reservation not used up (a comparison cut short)
        coming = decoded
        if self.active.value:
            same = self.layers is not None and self.layers.original is original
            have = self.layers.layers if same else {}
            shown = [
                c
                for c in self.codecs()
                if c.name in have and have[c.name] in self.viewer.layers and have[c.name].visible
            ]
            coming += len(self.codecs()) - len(shown)
        self._reserved = reserve_grid(self.viewer, coming)

    def release_grid(self) -> None:
        """Drop the reservation of :meth:`reserve_grid` (the decoded layer was not added)."""
        release_grid(self.viewer, self._reserved)
        self._reserved = None

    def attach(
        self, original: Any, decoded: list[Any], sgi: Any, result: Any, axes: str
    ) -> ComparisonJob | None:
        """Compare ``sgi``, just written from layer ``original`` with ``axes`` and shown as the
        ``decoded`` layers (the SGI layer, and its difference)."""
        self.cancel()
        previous = self.layers
        self.cache.clear()
        self.curves.clear()
        self.plots.clear()
        self.source = ComparisonSource(
            original.data[0] if original.multiscale else original.data,
            axes,
            sgi,
            str(result.path),
            int(result.bytes),
            list(getattr(result, "slice_psnr", None) or []),
            list(getattr(result, "slice_ssim", None) or []),
        )
        self.layers = CodecLayers(
            self.viewer,
            original,
            decoded,
            self.source.shape,
            self.source.lead_shape,
            original.rgb,
            parent=self.native,
            reserved=self._reserved,
        )
        self.layers.on_done = self._resume
        self._reserved = None
        if previous is not None:  # a new file: the old same-size layers are blanked, reused
            self.layers.take_over(previous)
        self.compare_button.enabled = True
        self.table.setVisible(False)
        if not self.active.value:
            self.layers.release()
            self.status.value = "Press Compare this slice to compare with JPEG 2000 and JPEG XL."
            return None
        job = self.request(self.current_index())
        if job is not None:
            # Not while napari draws the decoded layer, just added, for the first time.
            job.pause()
            QTimer.singleShot(START_DELAY_MS, job.resume)
        return job

    def current_index(self) -> int:
        """The slice (index in the file) under the viewer's sliders."""
        source, layers = self.source, self.layers
        if source is None or layers is None or not source.lead_shape:
            return 0
        layer = layers.anchor()
        try:
            point = layer.world_to_data(self.viewer.dims.point)[: len(source.lead_shape)]
        except (ValueError, IndexError, TypeError):
            return 0
        position = tuple(
            min(max(int(round(p)), 0), n - 1) for p, n in zip(point, source.lead_shape, strict=True)
        )
        return int(
            sum(p * int(math.prod(source.lead_shape[i + 1 :])) for i, p in enumerate(position))
        )

    # ------------------------------------------------------------------------------------ work
    @property
    def busy(self) -> bool:
        """Whether a comparison runs, or its layers are still being added."""
        return self.worker is not None or (self.layers is not None and self.layers.adding)

    def request(self, index: int) -> ComparisonJob | None:
        """Show slice ``index``'s comparison, computing (in the background) what is missing."""
        if self.source is None:
            return None
        self._show(index)
        done = self.cache.get(index)
        codecs = self.codecs()
        missing = [c for c in codecs if done is None or c.name not in done.results]
        plot_missing = self.with_plot.value and any(
            c.name not in self.curves.get(index, {}) for c in codecs
        )
        if not missing and not plot_missing:
            return None
        if self.worker is not None:
            self._wanted = index
            return None
        from napari.qt.threading import thread_worker

        self.job = job = ComparisonJob(
            self.source,
            index,
            codecs,
            plot=self.with_plot.value,
            done=done,
            curves=self.curves.get(index, {}),
        )
        worker = thread_worker(job.steps, ignore_errors=True)()  # _on_errored reports them
        job.abort_check = lambda: worker.abort_requested
        worker.yielded.connect(lambda event, job=job: self._on_event(job, event))
        worker.errored.connect(lambda error, job=job: self._on_errored(job, error))
        worker.finished.connect(lambda job=job: self._on_finished(job))
        self.worker = worker
        self.progress_bar.max, self.progress_bar.value = job.total, 0
        self.progress_bar.visible = True
        self.cancel_button.enabled = True
        worker.start()
        return job

    def cancel(self) -> None:
        """Stop the running comparison; what it had not finished is dropped."""
        self._wanted = None
        if self.job is not None and self.worker is not None:
            self.job.cancel()
            self.worker.quit()
            self.status.value = "Comparison cancelled."

    def _on_event(self, job: ComparisonJob, event: Any) -> None:
        if job.cancelled or self._closed:
            return  # queued before the cancel: a cancelled job shows nothing more
        if isinstance(event, Progress):
            self.progress_bar.max = event.total
            self.progress_bar.value = min(event.done, event.total)
            self.status.value = f"Comparing: {event.text} …"
        elif isinstance(event, SliceReady):
            self.cache[event.comparison.index] = event.comparison
            if self.layers is not None:
                self.layers.show(event.comparison)
                if self.layers.adding:
                    job.pause()  # until napari has added the layers (_resume)
            if event.comparison.index == self.current_index():
                self._show(event.comparison.index)
        elif isinstance(event, PlotReady):
            self.curves[event.index] = event.curves
            self.plots[event.index] = event.png
            if event.index == self.current_index():
                self._show_plot(event.index)

    def _resume(self) -> None:
        if self.job is not None:
            self.job.resume()

    def _on_errored(self, job: ComparisonJob, error: Exception) -> None:
        if job.cancelled or self._closed:
            return
        job.cancelled = True  # nothing more from it
        self.status.value = f"The comparison failed: {error}"
        from napari.utils.notifications import show_warning

        show_warning(f"SGI: the comparison with other codecs failed: {error}")

    def _on_finished(self, job: ComparisonJob) -> None:
        if job is not self.job or self._closed:
            return
        self.worker = None
        self.progress_bar.visible = False
        self.cancel_button.enabled = False
        if self.layers is not None and not self.layers.adding:
            self.layers.release()  # cancelled or failed before its layers came: cells not needed
        if not job.cancelled:
            self.status.value = self._budget_text(job.index)
        if job.cancelled and not job.stop.is_set():
            return  # failed: do not start the next one into the same failure
        wanted, self._wanted = self._wanted, None
        if wanted is not None:  # asked for while this one ran (a cancel clears it)
            self.request(wanted)

    def _on_slider(self, _event: Any = None) -> None:
        if self.source is not None and self.source.lead_shape:
            self._timer.start()  # restarted by every move: acts once the slider rests

    def _follow_slider(self) -> None:
        if self.source is None or self._closed:
            return
        index = self.current_index()
        if self.active.value:
            self.request(index)
        else:
            self._show(index)

    def _options_changed(self, *_: Any) -> None:
        if self.source is not None and self.active.value:
            self.request(self.current_index())

    def _on_plot_closed(self) -> None:
        # The user closed the plot's dock: no more plots until the box is ticked again.
        self.plot = None
        self.with_plot.value = False

    def _on_destroyed(self, *_: Any) -> None:
        self._closed, self._wanted = True, None
        if self.job is not None:
            self.job.cancel()
        if self.worker is not None:
            self.worker.quit()
        try:
            self.viewer.dims.events.current_step.disconnect(self._on_slider)
        except (TypeError, ValueError, RuntimeError):
            pass

    # ---------------------------------------------------------------------------------- showing
    def _budget_text(self, index: int) -> str:
        if self.source is None:
            return ""
        budget = self.source.budgets[index] if self.source._budgets else None
        if self.source.n_slices == 1:
            return f"Each codec at ≤ {budget:,} bytes, the size of the .sgi file" if budget else ""
        where = f"Slice {index} of {self.source.n_slices}"
        if budget is None:
            return where
        return f"{where}: each codec at ≤ {budget:,} bytes, the slice's share of the .sgi file"

    def _show(self, index: int) -> None:
        """The table of slice ``index`` (hidden when it has not been compared yet)."""
        comparison = self.cache.get(index)
        if comparison is None:
            self.table.setVisible(False)
            if self.worker is None:
                self.status.value = self._budget_text(index) if self.source._budgets else ""
            return
        self.table.setVisible(True)
        self.table.show_rows(table_rows(comparison, [c.name for c in self.codecs()]))
        if self.worker is None:
            self.status.value = self._budget_text(index)
        self._show_plot(index)

    def _show_plot(self, index: int) -> None:
        png = self.plots.get(index)
        if png is None or not self.with_plot.value:
            return
        if self.plot is None:
            self.plot = RDPlot()
            self.viewer.window.add_dock_widget(self.plot, name=DOCK_NAME, area="bottom")
            self.plot.closed.connect(self._on_plot_closed)
        caption = "Circles: each codec at the SGI slice's size. Star: the SGI slice."
        self.plot.show_png(png, caption)
