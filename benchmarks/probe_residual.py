"""Would a residual layer pay? Gaussians first, then JPEG 2000 on what they leave.

Run:  python benchmarks/probe_residual.py measure [--images zslice nuclei ihc] [--preset fast]
      python benchmarks/probe_residual.py report      # records docs/benchmarks.md "residual-layer"

The rate-distortion issue's high-rate end: the Gaussians themselves fall short of JPEG 2000
(docs/method.md, "The high-rate end"), so "a texture or residual layer" is the lever left.
Before building one, this bounds what it could buy with the best residual coder at hand:
OpenJPEG itself (through imagecodecs). Each image is fitted at three densities (about 0.1,
0.25 and 0.5 bpp), its ``.sgi`` file decoded, and the residual (original minus decoded, in the
image's own integer units, shifted to uint16) coded by JPEG 2000 at a sweep of target PSNRs.
A two-layer file would be the ``.sgi`` bytes plus the residual's; its PSNR is that of the
decoded image plus the decoded residual. Against it: JPEG 2000 alone at the same total bytes
(interpolated on its own sweep, in log rate) and the napari-sgi curve alone.

If base + residual does not beat JPEG 2000 alone, no residual layer coded no better than
JPEG 2000 codes it will make the Gaussians beat JPEG 2000.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _images import IMAGES, load  # noqa: E402
from _record import (  # noqa: E402
    append_row,
    git_revision,
    machine_description,
    read_rows,
    record_section,
)
from bench_rd import at_rate, quality  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "residual.jsonl"

# Densities giving about 0.1, 0.25 and 0.5 bpp with the default preset (docs/benchmarks.md,
# "targets": the densities the size targets ended on).
DENSITIES = {
    "zslice": (0.0016, 0.0115, 0.0288),
    "nuclei": (0.0052, 0.0167, 0.0358),
    "ihc": (0.0051, 0.0172, 0.0383),
}
RESIDUAL_STEPS_DB = (1, 2, 3, 4, 6, 8, 10, 13)  # residual targets above the base's PSNR
UINT16_PEAK = 65535.0


def _residual_points(original: np.ndarray, decoded: np.ndarray, base_psnr: float):
    """(residual bytes, combined PSNR) for each residual target."""
    import imagecodecs

    residual = original.astype(np.int64) - decoded.astype(np.int64)
    shifted = np.clip(residual + 32768, 0, 65535).astype(np.uint16)
    low, high = float(original.min()), float(original.max())
    data_range = 255.0 if original.dtype == np.uint8 else high - low
    # JPEG 2000's target PSNR is relative to the uint16 peak: the base's error in those terms.
    base_mse = data_range**2 * 10 ** (-base_psnr / 10)
    base_level = 10 * math.log10(UINT16_PEAK**2 / base_mse)
    points = []
    for step in RESIDUAL_STEPS_DB:
        stream = imagecodecs.jpeg2k_encode(shifted, level=base_level + step)
        coded = imagecodecs.jpeg2k_decode(stream).astype(np.int64) - 32768
        combined = decoded.astype(np.int64) + coded.reshape(decoded.shape)
        info = np.iinfo(original.dtype)
        combined = np.clip(combined, info.min, info.max).astype(original.dtype)
        points.append((len(stream), quality(combined, original)[0]))
    return points


def measure(name: str, preset: str) -> None:
    """Fit ``name`` at its densities, code the residuals; one row per point, appended."""
    from napari_sgi.api import compress, open_sgi
    from napari_sgi.compare.codecs import parse_codecs
    from napari_sgi.compare.slices import rd_curve

    original = load(name)
    pixels = original.shape[0] * original.shape[1]
    (j2k,) = parse_codecs("j2k")
    alone = [{"bpp": r.bpp, "psnr": r.psnr} for r in rd_curve(j2k, original)]
    with tempfile.TemporaryDirectory() as folder:
        for density in DENSITIES[name]:
            path = Path(folder) / f"{name}_{density}.sgi"
            compress(original, path, preset=preset, density=density, resume=False)
            decoded = np.asarray(open_sgi(path).levels[0])
            base_bytes = path.stat().st_size
            base_psnr = quality(decoded, original)[0]
            for extra, psnr in [(0, base_psnr), *_residual_points(original, decoded, base_psnr)]:
                total = base_bytes + extra
                j2k_psnr = at_rate(alone, 8 * total / pixels)
                row = {
                    "image": name,
                    "preset": preset,
                    "revision": git_revision(),
                    "density": density,
                    "base bytes": base_bytes,
                    "residual bytes": extra,
                    "bpp": 8 * total / pixels,
                    "PSNR": psnr,
                    "JPEG 2000 alone": j2k_psnr,
                    "delta": None if j2k_psnr is None else psnr - j2k_psnr,
                }
                append_row(RESULTS, row)
                print(row, flush=True)


def _fmt(value, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def report(rows: list[dict]) -> str:
    """The rows as a table, with the napari-sgi curve alone at each total size."""
    lines = [
        f"Machine: {machine_description()}; revision `{rows[0]['revision']}`, "
        f"preset `{rows[0]['preset']}`.",
        "Command: `python benchmarks/probe_residual.py measure`, then "
        "`python benchmarks/probe_residual.py report`",
        "",
        "| image | density | .sgi bytes | residual bytes | bpp | PSNR (dB) | JPEG 2000 alone "
        "| Δ | napari-sgi alone |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        curve = [r for r in rows if r["image"] == row["image"] and r["residual bytes"] == 0]
        sgi_alone = at_rate(curve, row["bpp"], key="PSNR")
        lines.append(
            f"| {row['image']} | {row['density']} | {row['base bytes']:,} "
            f"| {row['residual bytes']:,} | {row['bpp']:.3f} | {row['PSNR']:.2f} "
            f"| {_fmt(row['JPEG 2000 alone'])} | {_fmt(row['delta'])} | {_fmt(sgi_alone)} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["measure", "report"])
    parser.add_argument("--images", nargs="+", default=list(IMAGES), choices=list(IMAGES))
    parser.add_argument("--preset", default="fast")
    args = parser.parse_args()
    if args.action == "measure":
        for name in args.images:
            measure(name, args.preset)
        return
    text = report(read_rows(RESULTS))
    print(text)
    record_section(
        "residual-layer", f"## A residual layer, bounded (issue: beat JPEG 2000)\n\n{text}"
    )


if __name__ == "__main__":
    main()
