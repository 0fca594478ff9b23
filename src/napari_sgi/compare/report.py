"""An ``.sgi`` file against the classic codecs, slice by slice, from files: ``napari-sgi compare``.

Only decoding the ``.sgi`` slices needs the reader (and torch); the rest is this package's.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from napari_sgi.compare.codecs import Codec
from napari_sgi.compare.slices import SGI, SliceComparison, compare_slice, slice_budgets


@dataclass
class FileComparison:
    """Every slice of one file compared; ``codecs`` in the order asked."""

    original: str
    sgi: str
    file_bytes: int
    codecs: list[Codec]
    slices: list[SliceComparison] = field(default_factory=list)

    def to_dict(self) -> dict:
        """One JSON object: per codec (``sgi`` first), per slice bytes, bpp, PSNR and SSIM."""
        keys = ["sgi"] + [c.key for c in self.codecs]
        per_codec = {
            key: [
                {"slice": s.index, **_row(s, key)} for s in self.slices if _row(s, key) is not None
            ]
            for key in keys
        }
        return {
            "original": self.original,
            "sgi": self.sgi,
            "file_bytes": self.file_bytes,
            "n_slices": len(self.slices),
            "budget_bytes": [s.budget for s in self.slices],
            "codecs": {
                key: {
                    "name": SGI if key == "sgi" else _name(self.codecs, key),
                    "slices": rows,
                    "mean_psnr": _mean([r["psnr"] for r in rows]),
                    "mean_ssim": _mean([r["ssim"] for r in rows]),
                    "bytes": sum(r["bytes"] for r in rows),
                }
                for key, rows in per_codec.items()
            },
            "mapping": self.slices[0].mappings if self.slices else {},
        }


def _row(comparison: SliceComparison, key: str) -> dict | None:
    for result in comparison.results.values():
        if result.key == key:
            out = result.to_dict()
            for name in ("key", "codec"):
                out.pop(name)
            return out
    return None


def _name(codecs: Sequence[Codec], key: str) -> str:
    return next(c.name for c in codecs if c.key == key)


def _mean(values: list) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else None


def compare_files(
    original: str | os.PathLike,
    sgi: str | os.PathLike,
    codecs: Sequence[Codec],
    *,
    axes: str | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> FileComparison:
    """Compare each slice of ``sgi`` with the same slice of ``original`` coded by ``codecs``.

    ``original`` is read through :func:`napari_sgi.inputs.open_input` (as ``compress`` reads it),
    so its slices come in the file's order; shapes must match. ``progress(slice, n_slices,
    codec)`` is called before each codec of each slice.
    """
    from napari_sgi.inputs import open_input
    from napari_sgi.reader import SGIFile

    budgets = slice_budgets(sgi)
    file = SGIFile(sgi)
    try:
        with open_input(original, axes=axes) as source:
            if source.n_slices != file.n_slices or tuple(source.slice_shape) != tuple(
                file.slice_shape
            ):
                raise ValueError(
                    f"{os.fspath(original)} has {source.n_slices} slice(s) of {source.slice_shape}"
                    f" but {os.fspath(sgi)} has {file.n_slices} of {tuple(file.slice_shape)}: "
                    "compare a file with the image it was compressed from"
                )
            out = FileComparison(
                os.fspath(original), os.fspath(sgi), os.path.getsize(sgi), list(codecs)
            )
            for index, key in enumerate(source.slice_keys()):

                def report(name: str, index: int = index) -> None:
                    if progress is not None:
                        progress(index, file.n_slices, name)

                out.slices.append(
                    compare_slice(
                        source.read_slice(key),
                        budgets[index],
                        codecs,
                        sgi_decoded=file.render_slice(index),
                        index=index,
                        value_range=file.value_range,
                        progress=report,
                    )
                )
    finally:
        file.close()
    return out


def format_table(comparison: FileComparison) -> str:
    """The comparison as text: one table per slice, the best PSNR and SSIM marked with ``*``."""
    lines = [
        f"{comparison.sgi} ({comparison.file_bytes:,} bytes) against {comparison.original}: "
        "each codec at the largest size <= the slice's share of the .sgi file"
    ]
    for s in comparison.slices:
        if len(comparison.slices) > 1:
            lines.append(f"slice {s.index}: budget {s.budget:,} bytes")
        lines.append(f"  {'codec':<10} {'bytes':>10} {'bpp':>8} {'PSNR':>10} {'SSIM':>9}  setting")
        best_psnr, best_ssim = s.best("psnr"), s.best("ssim")
        for r in s.results.values():
            psnr = f"{r.psnr:.2f}" + ("*" if r.codec == best_psnr else " ")
            ssim = f"{r.ssim:.4f}" + ("*" if r.codec == best_ssim else " ")
            note = r.setting + ("" if r.fits else " (smallest file, above the budget)")
            lines.append(
                f"  {r.codec:<10} {r.bytes:>10,d} {r.bpp:>8.4f} {psnr:>10} {ssim:>9}  {note}"
            )
    lines.append("* best in its column; PSNR in dB")
    return "\n".join(lines)
