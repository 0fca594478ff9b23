"""Make the screenshots of docs/napari.md from a real napari viewer, and measure the slider table.

Run under a display; Xvfb is enough::

    xvfb-run -a python scripts/screenshots.py            # screenshots + slider table (minutes)
    xvfb-run -a python scripts/screenshots.py --quick    # fewer steps, for trying the script

Writes docs/images/*.png and the section ``sliders`` of docs/napari.md. Without ``xvfb-run`` and
without a display it starts a virtual one through pyvirtualdisplay, when that is installed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "docs" / "images"
GUIDE = ROOT / "docs" / "napari.md"
WINDOW = (1500, 950)
WIDE_WINDOW = (1900, 1150)  # the codec comparison: a 2x2 grid, the widget and the plot
_NAMES = {"lmbda": "λ", "gaussians_per_seed": "K", "density": "seed density"}


def _process(seconds: float = 0.5) -> None:
    from qtpy.QtWidgets import QApplication

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QApplication.processEvents()
        time.sleep(0.01)


def _save(viewer, name: str) -> Path:
    from PIL import Image

    _process(1.0)
    shot = viewer.screenshot(canvas_only=False, flash=False)
    path = IMAGES / name
    Image.fromarray(shot).save(path)
    grey = shot[..., :3].mean(axis=-1)
    print(f"{path.relative_to(ROOT)}: {shot.shape[1]}x{shot.shape[0]}, pixel std {grey.std():.1f}")
    if grey.std() < 5:
        raise RuntimeError(f"{name} looks blank (pixel std {grey.std():.1f})")
    return path


def _compress_in_widget(widget, layer, output: Path, iterations: int, **settings) -> None:
    widget.set_layer(layer)
    widget.preset.value = "fast"
    widget.iterations.value = iterations
    for name, value in settings.items():
        getattr(widget, name).value = value
    widget.output.value = output
    if widget.start() is None:
        raise RuntimeError("the widget did not start")
    while widget.busy:
        _process(0.05)
    if widget.result is None:
        raise RuntimeError(f"compression failed: {widget.result_label.value}")
    print(f"  {layer.name}: {widget.result_label.value.replace(chr(10), ' / ')}")


def _compare_in_widget(widget) -> None:
    """Press *Compare this slice* and wait for the classic codecs, the table and the plot."""
    comparison = widget.comparison
    comparison.active.value = True
    comparison.with_plot.value = True
    comparison.compare_button.clicked()
    while comparison.busy:
        _process(0.05)
    if not comparison.cache or comparison.plot is None:
        raise RuntimeError(f"comparison failed: {comparison.status.value}")
    for name, row in comparison.table.rows.items():
        print(f"  {name}: {' · '.join(row)}")


def _scroll_to(native) -> None:
    """Scroll the dock that holds ``native`` so that it is in view."""
    from qtpy.QtWidgets import QScrollArea

    parent = native.parentWidget()
    while parent is not None and not isinstance(parent, QScrollArea):
        parent = parent.parentWidget()
    if parent is not None:
        _process(0.3)
        parent.ensureWidgetVisible(native, 0, 0)


def _share_height(viewer, shares: dict[str, float]) -> None:
    """Give the docks whose names start with the keys these shares of the window's height."""
    from qtpy.QtCore import Qt

    _process(0.3)
    docks = viewer.window._wrapped_dock_widgets
    chosen = [
        (d, share)
        for prefix, share in shares.items()
        for n, d in docks.items()
        if n.startswith(prefix)
    ]
    height = viewer.window._qt_window.height()
    viewer.window._qt_window.resizeDocks(
        [d for d, _ in chosen],
        [int(share * height) for _, share in chosen],
        Qt.Orientation.Vertical,
    )


def _close_dock(viewer, name: str) -> None:
    for dock_name, dock in list(viewer.window._wrapped_dock_widgets.items()):
        if dock_name.startswith(name):
            viewer.window.remove_dock_widget(dock)


def screenshots(iterations: int, tmp: Path) -> None:
    import napari
    import tifffile

    from napari_sgi._napari import WIDGET_NAME, sample_fluorescence
    from napari_sgi._qt.rd_plot import DOCK_NAME as RD_DOCK

    data_dir = ROOT / "src" / "napari_sgi" / "data"
    viewer = napari.Viewer(show=True, title="napari-sgi")
    viewer.window._qt_window.resize(*WINDOW)
    ((nuclei, meta, _),) = sample_fluorescence()
    viewer.add_image(nuclei, **meta)
    _, widget = viewer.window.add_plugin_dock_widget("napari-sgi", WIDGET_NAME)
    widget.set_layer(viewer.layers[0])
    widget.show_advanced.value = True
    _save(viewer, "widget.png")

    # Side by side: a 256x256 crop, original | decoded | difference, linked cameras.
    viewer.layers.clear()
    crop = viewer.add_image(
        nuclei[128:384, 128:384], name="nuclei", contrast_limits=meta["contrast_limits"]
    )
    widget.show_advanced.value = False
    widget.difference.value = True
    widget.comparison.active.value = False  # the classic codecs come next, in codecs.png
    _compress_in_widget(widget, crop, tmp / "nuclei.sgi", iterations)
    viewer.reset_view()
    _save(viewer, "compare.png")

    # The same file against JPEG 2000 and JPEG XL at the same size: grid, table and RD plot.
    viewer.layers.remove(viewer.layers["nuclei [SGI − original]"])
    _compare_in_widget(widget)
    viewer.window._qt_window.resize(*WIDE_WINDOW)
    _share_height(viewer, {RD_DOCK: 0.3})
    _scroll_to(widget.comparison.table)
    viewer.reset_view()
    _save(viewer, "codecs.png")
    viewer.window._qt_window.resize(*WINDOW)
    _close_dock(viewer, RD_DOCK)

    # A z-stack: per-slice PSNR, then the file read back through File > Open's reader.
    viewer.canvas.grid.enabled = False  # first: removing layers from napari's grid can crash
    viewer.layers.clear()
    stack = tifffile.imread(data_dir / "nuclei_zstack.tif")[4:10]
    layer = viewer.add_image(
        stack,
        name="nuclei z-stack",
        colormap="green",
        scale=(0.29, 0.26, 0.26),
        units=("micrometer",) * 3,
    )
    widget.difference.value = False
    widget.comparison.active.value = False
    _compress_in_widget(widget, layer, tmp / "zstack.sgi", max(20, iterations // 4))
    viewer.dims.set_current_step(0, 3)
    viewer.reset_view()
    _save(viewer, "stack.png")
    widget.comparison.active.value = True

    viewer.canvas.grid.enabled = False  # first: removing layers from napari's grid can crash
    viewer.layers.clear()
    viewer.open(str(tmp / "zstack.sgi"), plugin="napari-sgi")
    overlays = getattr(getattr(viewer, "canvas", None), "overlays", None)
    scale_bar = overlays.scale_bar if overlays is not None else viewer.scale_bar
    scale_bar.visible = True
    scale_bar.position = "top_right"  # the bottom right is under the notification
    viewer.dims.set_current_step(0, 3)
    viewer.reset_view()
    _save(viewer, "read_back.png")
    viewer.close()


def slider_table(iterations: int, tmp: Path) -> str:
    """Size and quality of one 256x256 crop as λ and K change (everything else: preset fast)."""
    import tifffile

    from napari_sgi import compress

    image = tifffile.imread(ROOT / "src/napari_sgi/data/nuclei2d.tif")[128:384, 128:384]
    rows = []
    settings = [
        {},
        {"lmbda": 1e-4},
        {"lmbda": 1e-2},
        {"gaussians_per_seed": 4},
        {"gaussians_per_seed": 16},
        {"density": 0.03},
        {"density": 0.15},
    ]
    for change in settings:
        start = time.perf_counter()
        result = compress(image, tmp / "table.sgi", preset="fast", iterations=iterations, **change)
        seconds = time.perf_counter() - start
        label = (
            ", ".join(f"{_NAMES[k]} = {v:g}" for k, v in change.items()) or "preset `fast` as is"
        )
        rows.append(
            f"| {label} | {result.bytes / 1024:.1f} KiB | {result.bpp:.2f} | "
            f"{result.compression_ratio:.1f}:1 | {result.psnr:.2f} dB | {result.ssim:.3f} "
            f"| {seconds:.0f} s |"
        )
        print("  " + rows[-1])
    from benchmarks._record import git_revision, machine_description

    return "\n".join(
        [
            f"Measured by `xvfb-run -a python scripts/screenshots.py` at {git_revision()} on "
            f"{machine_description()}: the 256×256 uint16 crop of the fluorescence sample, preset "
            f"`fast` with {iterations} steps, one setting changed per row.",
            "",
            "| setting | file | bits/pixel | ratio | PSNR | SSIM | time |",
            "|---|---|---|---|---|---|---|",
            *rows,
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few steps, no slider table")
    parser.add_argument("--iterations", type=int, default=800)
    parser.add_argument("--no-table", action="store_true", help="screenshots only")
    args = parser.parse_args(argv)
    iterations = 40 if args.quick else args.iterations
    display = None
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        try:
            from pyvirtualdisplay import Display
        except ImportError:
            sys.exit("no display: run under `xvfb-run -a` (or install pyvirtualdisplay)")
        display = Display(visible=False, size=(1920, 1200)).start()
    sys.path.insert(0, str(ROOT))
    IMAGES.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            screenshots(iterations, Path(tmp))
            if not (args.quick or args.no_table):
                from benchmarks._record import record_section

                record_section("sliders", slider_table(iterations, Path(tmp)), path=GUIDE)
                print(f"slider table written to {GUIDE.relative_to(ROOT)}")
    finally:
        if display is not None:
            display.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
