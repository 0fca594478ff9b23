"""The settings half of the SGI widget: the layer, the preset and the rate–quality knobs.

:class:`SettingsMixin` builds the setting widgets, keeps them consistent (presets, λ's log slider,
targets) and turns them into the keyword arguments of :func:`napari_sgi.compress`
(:meth:`SettingsMixin.parameters`); :class:`napari_sgi._qt.widget.SGIWidget` runs them.
"""

from __future__ import annotations

import math
from typing import Any

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FloatSlider,
    FloatSpinBox,
    Label,
    Slider,
    SpinBox,
)
from napari.layers import Image

from napari_sgi._napari import default_output_path, layer_compress_kwargs
from napari_sgi._qt.job import estimate_work
from napari_sgi.core.presets import PRESETS, configure

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


class SettingsMixin:
    """Setting widgets and their logic; mixed into the widget (a magicgui ``Container``)."""

    viewer: Any
    output: Any
    estimate: Label
    _auto_output: str | None

    def _build_settings(self) -> list[Any]:
        """Create the setting widgets; returns them in the order the widget shows them."""
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
        return [
            self.image,
            self.preset,
            self.log_lmbda,
            self.k,
            self.target,
            self.target_value,
            self.device,
            self.show_advanced,
            self.advanced,
        ]

    def _connect_settings(self) -> None:
        for widget in (self.log_lmbda, self.k, self.density, self.iterations, self.levels):
            widget.changed.connect(self._update_estimate)
        self.target.changed.connect(self._on_target_changed)
        self.target_value.changed.connect(self._update_estimate)
        self.log_lmbda.changed.connect(self._show_lmbda)
        self.image.changed.connect(self._on_layer_changed)
        self.preset.changed.connect(self.apply_preset)
        self.show_advanced.changed.connect(lambda on: setattr(self.advanced, "visible", on))

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


def _round3(value: float) -> float:
    """Three significant digits: what the label shows is what compress gets."""
    return float(f"{value:.3g}")
