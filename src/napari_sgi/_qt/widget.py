"""The "SGI compression" dock widget: pick a layer and the rate–quality knobs, compress, compare.

Built from magicgui widgets. The compression runs in a ``thread_worker`` generator (see
:mod:`napari_sgi._qt.job`); this module only touches the viewer from Qt signals, which napari
delivers on the GUI thread.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSlider,
    FloatSpinBox,
    Label,
    ProgressBar,
    PushButton,
    Slider,
    SpinBox,
    Table,
)
from napari.layers import Image
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QTimer

from napari_sgi._napari import default_output_path, layer_compress_kwargs
from napari_sgi._qt.compare import add_decoded_layer, show_side_by_side
from napari_sgi._qt.job import CompressJob, estimate_work, warm_up
from napari_sgi.core.presets import PRESETS, configure

if TYPE_CHECKING:
    import napari

NO_TARGET = "none (density, λ, K)"
# Target choice: (lowest, highest, starting value) of its value box.
TARGETS: dict[str, tuple[float, float, float]] = {
    NO_TARGET: (0.01, 100.0, 0.0),
    "size (bits per pixel)": (0.01, 64.0, 0.5),
    "size (compression ratio)": (1.01, 10_000.0, 20.0),
    "quality (PSNR, dB)": (1.0, 100.0, 40.0),
}
TARGET_OPTIONS = {  # the compress() keyword of each target
    "size (bits per pixel)": "bpp",
    "size (compression ratio)": "ratio",
    "quality (PSNR, dB)": "psnr",
}
_LOG_LAMBDA_RANGE = (-5.0, -1.0)  # λ from 1e-5 (large, faithful) to 0.1 (small, coarse)


class SGIWidget(Container):
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
        self._source: Any = None  # the layer being compressed
        self._auto_output: str | None = None
        self._closed = False
        self.warm_up = threading.Thread(target=warm_up, name="napari-sgi-warm-up", daemon=True)
        self.warm_up.start()

        tip = "Rate–distortion trade-off: larger λ → smaller file, lower quality (log scale)."
        self.image = ComboBox(label="Image layer", choices=self._image_layers, nullable=True)
        self.preset = ComboBox(
            label="Preset",
            choices=list(PRESETS),
            value="default",
            tooltip="Starting values for all settings below.",
        )
        # A linear slider over log10 λ: its read-out is meaningful and can be typed into, which
        # magicgui's LogSlider (it shows its internal position) does not offer.
        self.log_lmbda = FloatSlider(
            label="λ",
            min=_LOG_LAMBDA_RANGE[0],
            max=_LOG_LAMBDA_RANGE[1],
            step=0.05,
            value=-3.0,
            tooltip=tip,
        )
        self.k = Slider(
            label="K (Gaussians/seed)",
            min=1,
            max=16,
            value=10,
            tooltip="Gaussians generated from each seed's features; at a fixed "
            "density, a larger K means fewer seeds.",
        )
        self.target = ComboBox(
            label="Target",
            choices=list(TARGETS),
            value=NO_TARGET,
            tooltip="Fit to a file size or a quality instead of a density: short pilot fits "
            "choose the density, and λ is steered during the fit.",
        )
        self.target_value = FloatSpinBox(
            label="Target value", min=0.01, max=100.0, step=0.05, value=0.5, visible=False
        )
        self.device = ComboBox(label="Device", choices=["auto", "cpu", "cuda"], value="auto")
        self.show_advanced = CheckBox(text="Advanced settings", value=False)
        self.density = FloatSpinBox(
            label="Seed density",
            min=0.001,
            max=1.0,
            step=0.005,
            value=0.07,
            tooltip="Gaussians per pixel (seeds × K / pixels).",
        )
        self.iterations = SpinBox(
            label="Iterations",
            min=10,
            max=100_000,
            step=100,
            value=4000,
            tooltip="Optimisation steps per slice: more → better, slower.",
        )
        self.levels = SpinBox(
            label="Pyramid levels",
            min=1,
            max=8,
            value=3,
            tooltip="Coarse-to-fine fitting: starts at 1/2^(L-1) resolution.",
        )
        self.advanced = Container(
            widgets=[self.density, self.iterations, self.levels], visible=False
        )
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
        buttons = Container(
            widgets=[self.run_button, self.cancel_button], layout="horizontal", labels=False
        )
        super().__init__(
            widgets=[
                self.image,
                self.preset,
                self.log_lmbda,
                self.k,
                self.target,
                self.target_value,
                self.device,
                self.show_advanced,
                self.advanced,
                self.output,
                self.estimate,
                buttons,
                self.progress_bar,
                self.side_by_side,
                self.difference,
                self.toggle_button,
                self.result_label,
                self.slice_table,
            ]
        )
        for widget in (self.log_lmbda, self.k, self.density, self.iterations, self.levels):
            widget.changed.connect(self._update_estimate)
        self.target.changed.connect(self._on_target_changed)
        self.target_value.changed.connect(self._update_estimate)
        self.log_lmbda.changed.connect(self._show_lmbda)
        self.image.changed.connect(self._on_layer_changed)
        self.preset.changed.connect(self.apply_preset)
        self.show_advanced.changed.connect(lambda on: setattr(self.advanced, "visible", on))
        self.run_button.changed.connect(self.start)
        self.cancel_button.changed.connect(self.cancel)
        self.toggle_button.changed.connect(lambda: show_side_by_side(self.viewer))
        # Parented to the widget, so it dies with it and never calls back into a deleted widget.
        self._wait_timer = QTimer(self.native)
        self._wait_timer.setInterval(50)
        self._wait_timer.timeout.connect(self._on_finished)
        self.native.destroyed.connect(self._on_destroyed)
        self.native_parent_changed.connect(self._on_parent_changed)
        events = viewer.layers.events
        for event in (events.inserted, events.removed, events.moved):
            event.connect(self._refresh_layers)
        self.apply_preset("default")
        self._show_lmbda()
        self._refresh_layers()
        active = viewer.layers.selection.active
        if isinstance(active, Image):
            self.set_layer(active)

    # ---------------------------------------------------------------------------------- settings
    def _image_layers(self, _widget: Any = None) -> list[tuple[str, Any]]:
        return [(layer.name, layer) for layer in self.viewer.layers if isinstance(layer, Image)]

    def _refresh_layers(self, _event: Any = None) -> None:
        self.image.reset_choices()

    def set_layer(self, layer: Any) -> None:
        """Choose the image layer to compress."""
        self._refresh_layers()
        self.image.value = layer

    def apply_preset(self, name: str) -> None:
        """Set every slider to the preset's value for the chosen layer (``default`` and ``fast``
        choose K, the levels and λ from the image), then each can be changed on its own."""
        config = PRESETS[name]
        geometry = self._layer_geometry()
        if geometry is not None:
            config = configure(name, *geometry)
        self.iterations.value = config.iterations
        self.k.value = config.gaussians_per_seed
        self.density.value = config.density
        self.levels.value = config.levels
        self.lmbda = config.lmbda
        self._update_estimate()

    @property
    def lmbda(self) -> float:
        """λ, the rate–distortion weight (the slider holds log10 λ); three significant digits."""
        return _round3(10.0**self.log_lmbda.value)

    @lmbda.setter
    def lmbda(self, value: float) -> None:
        low, high = _LOG_LAMBDA_RANGE
        self.log_lmbda.value = min(max(math.log10(value), low), high) if value > 0 else low

    def _show_lmbda(self, *_: Any) -> None:
        # The read-out shows log10 λ; the label shows λ itself.
        self.log_lmbda.label = f"λ = {self.lmbda:g}  (log₁₀)"

    def _layer_geometry(self) -> tuple[int, int, int] | None:
        """Height, width and channels of the chosen layer's slices, or None."""
        layer = self.image.value
        if layer is None:
            return None
        data = layer.data[0] if layer.multiscale else layer.data
        if layer.rgb:
            return int(data.shape[-3]), int(data.shape[-2]), int(data.shape[-1])
        return int(data.shape[-2]), int(data.shape[-1]), 1

    def _on_target_changed(self, choice: str) -> None:
        low, high, start = TARGETS[choice]
        self.target_value.visible = choice != NO_TARGET
        self.target_value.min, self.target_value.max = low, high
        if choice != NO_TARGET:
            self.target_value.value = start
        self.density.enabled = choice == NO_TARGET  # a target chooses the density
        self._update_estimate()

    def parameters(self) -> dict[str, Any]:
        """The keyword arguments the widget passes to :func:`napari_sgi.compress` for its layer."""
        params: dict[str, Any] = {
            "preset": self.preset.value,
            "lmbda": self.lmbda,
            "gaussians_per_seed": int(self.k.value),
            "iterations": int(self.iterations.value),
            "levels": int(self.levels.value),
            "density": float(self.density.value),
            "device": self.device.value,
        }
        target = TARGET_OPTIONS.get(self.target.value)
        if target is not None:
            params[target] = float(self.target_value.value)
            del params["density"]
        layer = self.image.value
        if layer is not None:
            params.update(layer_compress_kwargs(layer))
        return params

    def _on_layer_changed(self, layer: Any) -> None:
        if layer is not None:
            self.apply_preset(self.preset.value)  # the image's own choices
            current = str(self.output.value) if self.output.value else ""
            # Follow the layer only while the user has not typed a path of their own.
            if not current or current in (".", self._auto_output):
                self._auto_output = str(default_output_path(layer))
                self.output.value = self._auto_output
        self._update_estimate()

    def _update_estimate(self, *_: Any) -> None:
        layer = self.image.value
        if layer is None:
            self.estimate.value = "Choose an image layer."
            return
        try:
            params = self.parameters()
            data = layer.data[0] if layer.multiscale else layer.data
            work = estimate_work(tuple(data.shape), params["axes"], params)
            self.estimate.value = work.describe()
        except (ValueError, KeyError) as exc:
            self.estimate.value = f"Cannot compress this layer: {exc}"

    # ------------------------------------------------------------------------------------ running
    @property
    def busy(self) -> bool:
        """Whether a compression (or its clean-up after a cancel) is still going on."""
        return (
            self.worker is not None
            or (self.job is not None and self.job.running)
            or self._wait_timer.isActive()
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
        """Ask the running compression to stop; it stops at its next step and writes no file."""
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

    def _on_destroyed(self, *_: Any) -> None:
        # Deleted with the viewer while compressing: stop the work; its signals find no widget.
        self._closed = True
        if self.worker is not None:
            self.worker.quit()
        if self.job is not None:
            self.job.stop.set()

    def _set_running(self, running: bool, total: int = 1) -> None:
        self.run_button.enabled = not running
        self.cancel_button.enabled = running
        if running:
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
            try:
                self.decoded_layers = add_decoded_layer(
                    self.viewer,
                    self._source,
                    sgi,
                    difference=self.difference.value,
                    side_by_side=self.side_by_side.value,
                )
            except Exception as exc:  # noqa: BLE001 - the file is fine; say why it is not shown
                show_warning(f"Compressed, but the decoded layer could not be shown: {exc}")
        show_info(
            f"SGI: wrote {Path(str(result.path)).name} "
            f"({_size(result.bytes)}, {result.compression_ratio:.1f}:1, "
            f"PSNR {result.psnr:.2f} dB)"
        )

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
        self._set_running(False)
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


def _round3(value: float) -> float:
    """Three significant digits: what the label shows is what compress gets."""
    return float(f"{value:.3g}")


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"
