"""The rate-distortion plot of one slice: the classic codecs' curves and the SGI point(s).

Drawn with matplotlib's Agg canvas into PNG bytes, without pyplot, so that it can be drawn on
any thread (the widget draws it on its worker and only shows the picture on the GUI thread).
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence

from napari_sgi.compare.slices import SGI, CodecResult, SliceComparison

COLOURS = {"JPEG": "#7f7f7f", "JPEG 2000": "#1f77b4", "JPEG XL": "#2ca02c", "AVIF": "#9467bd"}
SGI_COLOUR = "#d62728"


def rd_png(
    curves: Mapping[str, Sequence[CodecResult]],
    comparison: SliceComparison | None = None,
    other_sgi: Sequence[CodecResult] = (),
    *,
    title: str = "",
    size: tuple[float, float] = (7.0, 3.0),
    dpi: int = 100,
) -> bytes:
    """PNG of PSNR against bits per pixel (log scale): one curve per codec, its same-size point
    ringed, the SGI point of the slice as a star and those of other slices as dots."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, dpi=dpi, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for name, points in curves.items():
        points = [p for p in points if math.isfinite(p.psnr)]
        colour = COLOURS.get(name)
        axes.plot(
            [p.bpp for p in points], [p.psnr for p in points], "o-", ms=3, lw=1.2,
            color=colour, label=name,
        )  # fmt: skip
        same = comparison.results.get(name) if comparison is not None else None
        if same is not None and same.fits and math.isfinite(same.psnr):
            axes.plot(same.bpp, same.psnr, "o", ms=9, mfc="none", mew=1.5, color=colour)
    others = [p for p in other_sgi if math.isfinite(p.psnr)]
    if others:
        axes.plot(
            [p.bpp for p in others], [p.psnr for p in others], ".", ms=5, color=SGI_COLOUR,
            alpha=0.35, label="SGI, other slices",
        )  # fmt: skip
    sgi = comparison.results.get(SGI) if comparison is not None else None
    if sgi is not None and math.isfinite(sgi.psnr):
        axes.plot(sgi.bpp, sgi.psnr, "*", ms=14, color=SGI_COLOUR, label="SGI (this file)")
    axes.set_xscale("log")
    if sgi is not None and sgi.bpp > 0:
        _zoom(axes, curves, sgi, others)
    axes.set_xlabel("bits per pixel")
    axes.set_ylabel("PSNR (dB)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize="small", loc="lower right")
    if title:
        axes.set_title(title, fontsize="medium")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def _zoom(axes, curves, sgi: CodecResult, others: Sequence[CodecResult]) -> None:
    """Show bits per pixel from 1/6 to 6 times the SGI point's, and the PSNRs found there."""
    low, high = sgi.bpp / 6, sgi.bpp * 6
    seen = [p.psnr for pts in curves.values() for p in pts if low <= p.bpp <= high]
    seen += [p.psnr for p in others if low <= p.bpp <= high] + [sgi.psnr]
    seen = [p for p in seen if math.isfinite(p)]
    axes.set_xlim(low, high)
    if not seen:
        return
    span = max(seen) - min(seen) or 1.0
    axes.set_ylim(min(seen) - 0.08 * span, max(seen) + 0.08 * span)
