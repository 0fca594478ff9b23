"""The "SGI compression" dock widget: pick a layer and the rate–quality knobs, compress, compare.

Built from magicgui widgets: the settings in :mod:`napari_sgi._qt.settings`, the comparison with
classic codecs in :mod:`napari_sgi._qt.codec_compare`; this module runs the compression. It runs in
a ``thread_worker`` generator (see :mod:`napari_sgi._qt.job`); this module only touches the viewer
from Qt signals, which napari delivers on the GUI thread.
"""

from __future__ import annotations

import math
import threading
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

from magicgui.widgets import CheckBox, Container, FileEdit, Label, ProgressBar, PushButton, Table
from napari.layers import Image
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QTimer

from napari_sgi._qt.codec_compare import CodecComparison
from napari_sgi._qt.compare import DecodedLayers, show_side_by_side, viewer_grid
from napari_sgi._qt.job import (
    CompressJob,
    estimate_work,
    freeze_heap,
    refreeze_heap,
    thaw_heap,
    warm_up,
)
from napari_sgi._qt.settings import SettingsMixin

if TYPE_CHECKING:
    import napari

#: after a layer frozen with the heap is removed: collect it (napari has let go of it by then)
REFREEZE_DELAY_MS = 500


class SGIWidget(SettingsMixin, Container):
    """Compress an image layer into an ``.sgi`` file and show the decoded result beside it.

    Parameters
    ----------
    viewer
        The napari viewer (injected by napari when the widget is opened from the Plugins menu).
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self.viewer = viewer
        self.worker: Any = None
        self.job: CompressJob | None = None
        self.result: Any = None  #: the last CompressResult
        self.decoded_layers: list[Any] = []
        #: the decoded layers on their way into the viewer (see :class:`DecodedLayers`)
        self.adding: DecodedLayers | None = None
        self._source: Any = None  # the layer being compressed
        self._axes = ""  # the axes it was compressed with
        self._auto_output: str | None = None
        self._closed = False
        self.warm_up = threading.Thread(target=warm_up, name="napari-sgi-warm-up", daemon=True)
        self.warm_up.start()

        settings = self._build_settings()
        self.output = FileEdit(label="Output", mode="w", filter="*.sgi")
        self.estimate = Label(label="Work")
        self.run_button = PushButton(text="Compress")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress_bar = ProgressBar(label="Progress", value=0, max=1, visible=False)
        self.side_by_side = CheckBox(text="Show side by side (grid)", value=True)
        self.difference = CheckBox(text="Add difference layer", value=False)
        self.toggle_button = PushButton(text="Toggle side by side")
        self.result_label = Label(label="Result", value="—")
        self.slice_table = Table(label="PSNR per slice", visible=False)
        #: the comparison with JPEG 2000, JPEG XL (JPEG, AVIF) at the same size, after each run
        self.comparison = CodecComparison(viewer)
        buttons = Container(
            widgets=[self.run_button, self.cancel_button], layout="horizontal", labels=False
        )
        super().__init__(
            widgets=[
                *settings,
                self.output,
                self.estimate,
                buttons,
                self.progress_bar,
                self.side_by_side,
                self.difference,
                self.toggle_button,
                self.result_label,
                self.slice_table,
                self.comparison,
            ]
        )
        self._connect_settings()
        self.run_button.changed.connect(self.start)
        self.cancel_button.changed.connect(self.cancel)
        self.toggle_button.changed.connect(lambda: show_side_by_side(self.viewer))
        # Parented to the widget, so it dies with it and never calls back into a deleted widget.
        self._wait_timer = QTimer(self.native)
        self._wait_timer.setInterval(50)
        self._wait_timer.timeout.connect(self._on_finished)
        # Once the warm-up's imports are in: the heap frozen (see freeze_heap), so that the
        # collector's full collections no longer stall the GUI thread for 0.2-0.4 s.
        self._frozen_layers: weakref.WeakSet | None = None  # the layers frozen with it
        self._freeze_timer = QTimer(self.native)
        self._freeze_timer.setInterval(100)
        self._freeze_timer.timeout.connect(self._freeze_when_warm)
        self._freeze_timer.start()
        self._refreeze_timer = QTimer(self.native)
        self._refreeze_timer.setSingleShot(True)
        self._refreeze_timer.setInterval(REFREEZE_DELAY_MS)
        self._refreeze_timer.timeout.connect(self._refreeze)
        self.native.destroyed.connect(self._on_destroyed)
        self.native_parent_changed.connect(self._on_parent_changed)
        events = viewer.layers.events
        for event in (events.inserted, events.removed, events.moved):
            event.connect(self._refresh_layers)
        events.removed.connect(self._on_layer_removed)
        self.apply_preset("default")
        self._show_lmbda()
        self._refresh_layers()
        active = viewer.layers.selection.active
        if isinstance(active, Image):
            self.set_layer(active)

    # ------------------------------------------------------------------------------------ running
    @property
    def busy(self) -> bool:
        """Whether a compression (or its clean-up after a cancel) is still going on."""
        return (
            self.worker is not None
            or (self.job is not None and self.job.running)
            or self._wait_timer.isActive()
            or (self.adding is not None and self.adding.adding)
        )

    def start(self) -> Any:
        """Start compressing the chosen layer in a worker thread; returns the worker (or None)."""
        from napari.qt.threading import thread_worker

        from napari_sgi import api

        layer = self.image.value
        if self.busy:
            show_warning("An SGI compression is already running.")
            return None
        if layer is None:
            show_warning("Choose an image layer to compress.")
            return None
        compress = getattr(api, "compress", None)
        if compress is None:
            show_error("This napari-sgi has no napari_sgi.compress yet; update the package.")
            return None
        path = Path(str(self.output.value)).expanduser() if self.output.value else None
        if path is None or path.name in ("", "."):
            show_warning("Choose an output .sgi file.")
            return None
        if path.suffix.lower() != ".sgi":
            path = path.with_name(path.name + ".sgi")
        if not path.parent.is_dir():
            show_error(f"The output folder {path.parent} does not exist.")
            return None
        params = self.parameters()
        data = layer.data[0] if layer.multiscale else layer.data
        try:
            work = estimate_work(tuple(data.shape), params["axes"], params)
        except (ValueError, KeyError) as exc:
            show_error(f"Cannot compress {layer.name!r}: {exc}")
            return None

        self.job = job = CompressJob(
            compress,
            data,
            str(path),
            params,
            open_fn=getattr(api, "open_sgi", None),
            prefetch_index=self._current_stack_index(layer, params),
        )
        worker = thread_worker(
            job.steps, progress={"total": work.total_steps, "desc": f"SGI: {layer.name}"}
        )()
        job.abort_check = lambda: worker.abort_requested
        worker.yielded.connect(self._on_step)
        worker.returned.connect(self._on_returned)
        worker.errored.connect(self._on_errored)
        worker.finished.connect(self._on_finished)
        self.worker, self._source, self.result = worker, layer, None
        self._axes = params["axes"]
        self.comparison.cancel()  # the CPU is the compression's now
        self._set_running(True, work.total_steps)
        self.result_label.value = f"Compressing {layer.name!r} → {path.name} …"
        worker.start()
        return worker

    def _current_stack_index(self, layer: Any, params: dict[str, Any]) -> tuple[int, ...]:
        """The stack position of ``layer`` that the viewer shows now."""
        n_stack = len(params["axes"].rstrip("S")) - 2
        try:
            point = layer.world_to_data(self.viewer.dims.point)
            return tuple(int(round(p)) for p in point[:n_stack])
        except (ValueError, IndexError, TypeError):
            return (0,) * n_stack

    def cancel(self) -> None:
        """Ask the running compression to stop; it stops at its next step and writes no file.

        Once the file is written, while its layers are still being added, it stops adding them
        (the file stays).
        """
        if self.adding is not None and self.adding.adding:
            self._stop_adding()
            self.result_label.value += "\nNot shown: adding its layer was cancelled."
            self._set_running(self.busy)
            return
        if self.worker is not None:
            self.worker.quit()
        if self.job is not None:
            self.job.stop.set()
        self.result_label.value = "Cancelling …"

    def _on_parent_changed(self, parent: Any) -> None:
        # napari's dock close button takes the widget out of its dock (parent None) without
        # deleting it: a closed panel should not go on compressing and adding layers unseen.
        if parent is None and self.busy:
            show_info("SGI compression cancelled: its panel was closed.")
            self.cancel()
        if parent is None:
            self.comparison.cancel()
            self._thaw()  # nothing left to keep smooth; a closed panel may never be deleted
        elif not self._closed and not self._freeze_timer.isActive():
            self._freeze_timer.start()  # docked again: frozen again once warm

    def _freeze_when_warm(self) -> None:
        if self._closed or self.warm_up.is_alive():
            return
        self._freeze_timer.stop()
        if self._frozen_layers is None and self.native.parent() is not None:
            freeze_heap(self)
            self._frozen_layers = weakref.WeakSet(self.viewer.layers)

    def _thaw(self) -> None:
        if self._frozen_layers is not None:
            self._frozen_layers = None
            thaw_heap(self)  # the objects frozen with the heap can be collected again

    def _on_layer_removed(self, event: Any) -> None:
        # A layer that was there when the heap was frozen would never be freed: collect it (once
        # napari has let go of it) and freeze again.
        frozen = self._frozen_layers
        if not self._closed and frozen is not None and getattr(event, "value", None) in frozen:
            self._refreeze_timer.start()

    def _refreeze(self) -> None:
        if self._closed or self._frozen_layers is None:
            return
        refreeze_heap()
        self._frozen_layers = weakref.WeakSet(self.viewer.layers)

    def _on_destroyed(self, *_: Any) -> None:
        # Deleted with the viewer while compressing: stop the work; its signals find no widget.
        self._closed = True
        self._thaw()  # the viewer's objects, frozen with the heap, can be collected
        if self.worker is not None:
            self.worker.quit()
        if self.job is not None:
            self.job.stop.set()

    def _set_running(self, running: bool, total: int | None = None) -> None:
        """Buttons for a compression running (or not); ``total`` steps: a new progress bar."""
        self.run_button.enabled = not running
        self.cancel_button.enabled = running
        if running and total is not None:
            self.progress_bar.max = max(1, total)
            self.progress_bar.value = 0
            self.progress_bar.visible = True

    def _on_step(self, event: Any) -> None:
        if self._closed or self.result is not None:
            return
        total, done = int(getattr(event, "total", 0)), int(getattr(event, "done", 0))
        pbar = getattr(self.worker, "pbar", None)
        # The job yields a few times a second at most, so every yield updates everything at once
        # (Qt repaints the window once for all of it).
        if total:
            self.progress_bar.max = total
            self.progress_bar.value = min(done, total)
        psnr = getattr(event, "psnr", float("nan"))
        n_slices = int(getattr(event, "n_slices", 1) or 1)
        where = (
            f"slice {getattr(event, 'slice_index', 0) + 1}/{n_slices} · " if n_slices > 1 else ""
        )
        self.result_label.value = f"{where}step {done:,}/{total:,}" + (
            f" · PSNR {psnr:.2f} dB" if math.isfinite(psnr) else ""
        )
        if pbar is not None:
            pbar.set_description(f"SGI {where}{psnr:.1f} dB" if math.isfinite(psnr) else "SGI")
        # Last, because napari's progress bar may process pending events (our _on_returned
        # among them) while it updates; nothing here may overwrite what that handler shows.
        if pbar is not None and total:
            # napari added one per yield; yields are coalesced, so set the count of steps done.
            # The API's total is the truth; the estimate only opened the bar.
            if pbar.total != total:
                pbar.total = total
            if done > pbar.n:
                pbar.update(min(done, total) - pbar.n)

    def _on_returned(self, value: Any) -> None:
        if value is None or self._closed:
            return  # cancelled; _on_finished reports it
        result, sgi = value
        self.result = result
        # Step events still queued behind this one are dropped from now on (self.result is set):
        # the job has done every step, so the bar ends full whatever order Qt delivered them in.
        pbar = getattr(self.worker, "pbar", None)
        if pbar is not None and pbar.total and pbar.n < pbar.total:
            pbar.update(pbar.total - pbar.n)
        self.result_label.value = describe_result(result)
        slices = list(getattr(result, "slice_psnr", None) or [])
        self.slice_table.visible = len(slices) > 1
        if len(slices) > 1:
            # Text, not floats: the table would show floats with four decimals.
            self.slice_table.value = {
                "data": [[f"{float(p):.2f} dB"] for p in slices],
                "columns": ["PSNR"],
                "index": [str(i) for i in range(len(slices))],
            }
        if sgi is not None:
            self._add_decoded(sgi, result)
        show_info(
            f"SGI: wrote {Path(str(result.path)).name} "
            f"({_size(result.bytes)}, {result.compression_ratio:.1f}:1, "
            f"PSNR {result.psnr:.2f} dB)"
        )

    def _add_decoded(self, sgi: Any, result: Any) -> None:
        """Add the decoded layer (and its difference) after the source layer, in steps, then
        start the comparison; the canvas draws between the steps (see :class:`DecodedLayers`)."""
        if self.side_by_side.value or viewer_grid(self.viewer).enabled:
            # The grid laid out once for these layers and the comparison's to come.
            self.comparison.reserve_grid(self._source, 1 + int(self.difference.value))
        source, axes = self._source, self._axes
        try:
            adding = DecodedLayers(
                self.viewer,
                source,
                sgi,
                difference=self.difference.value,
                side_by_side=self.side_by_side.value,
                parent=self.native,
            )
        except Exception as exc:  # noqa: BLE001 - the file is fine; say why it is not shown
            self._not_shown(exc)
            return
        self.adding = adding

        def done(layers: list[Any]) -> None:
            self.adding, self.decoded_layers = None, layers
            self.comparison.attach(source, layers, sgi, result, axes)
            self._set_running(self.busy)

        def failed(exc: Exception) -> None:
            self.adding = None
            self._not_shown(exc)
            self._set_running(self.busy)

        adding.on_done, adding.on_failed = done, failed
        try:
            adding.start()
        except Exception as exc:  # noqa: BLE001 - added at once (napari internals missing)
            self._stop_adding()
            self._not_shown(exc)
        # Adding is work the user can cancel: the buttons say so whatever the worker's signals
        # set before it began (a CI run once found Cancel disabled here, not reproduced since).
        self._set_running(self.busy)

    def _not_shown(self, exc: Exception) -> None:
        self.comparison.release_grid()
        show_warning(f"Compressed, but the decoded layer could not be shown: {exc}")

    def _stop_adding(self) -> None:
        """Take out what the decoded layers' steps had put in; the grid's cells go back."""
        adding, self.adding = self.adding, None
        if adding is not None:
            adding.abort()
            self.comparison.release_grid()

    def _on_errored(self, exc: Exception) -> None:
        # napari's worker already turned the exception into an error notification.
        if not self._closed:
            self.result_label.value = f"Failed: {exc}"

    def _on_finished(self) -> None:
        self.worker = None
        if self._closed:
            return
        if self.job is not None and self.job.running:
            # After a cancel the compress thread removes its partial file at its next step; wait
            # for it (polling, so the GUI stays live) before saying that no file was written.
            self._wait_timer.start()
            return
        self._wait_timer.stop()
        cancelled = self.job is not None and self.job.was_cancelled
        self._set_running(self.busy)  # still running while the decoded layer is added
        self.progress_bar.visible = False
        if cancelled:
            self.result_label.value = "Cancelled: no file was written."
            show_info("SGI compression cancelled; no file was written.")


def describe_result(result: Any) -> str:
    """Size, ratio, bits per pixel, quality and time of a CompressResult, for the result label."""
    return (
        f"{_size(result.bytes)} · {result.compression_ratio:.1f}:1 · {result.bpp:.3f} bpp\n"
        f"PSNR {result.psnr:.2f} dB · SSIM {result.ssim:.4f} · {result.seconds:.1f} s"
        + (f" · {result.n_slices} slices" if getattr(result, "n_slices", 1) > 1 else "")
    )


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"
