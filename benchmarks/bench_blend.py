"""The gated blend against the plain sum, at equal settings, on the three sample images.

Run:  python benchmarks/bench_blend.py measure IMAGE [--densities 0.005 0.015 0.04]
          [--blends sum gated] [--preset default] [--threads 1]       (one image a process)
      python benchmarks/bench_blend.py report [--no-record]          (docs/benchmarks.md)

``compress`` at fixed densities with ``blend="sum"`` (the paper's plain sum of Gaussians, every
file before) and ``blend="gated"`` (each Gaussian split by a learned gate between a normalised
blend and the sum, :class:`napari_sgi.core.model.BlendHead`), every other setting the preset's.
Bytes on disk; PSNR of the file as the reader decodes it, in its own dtype (bench_rd.quality).
``report`` gives each image's two curves and the BD-PSNR of ``gated`` against ``sum`` over the
rates both cover, the lever's row of the rate-distortion issue's ablation table (Δ fit time
from the same runs; decode time in "decode"). Rows are appended to
benchmarks/results/blend.jsonl.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bd import bd_psnr  # noqa: E402
from _images import IMAGES, load  # noqa: E402
from _record import (  # noqa: E402
    append_row,
    git_revision,
    machine_description,
    read_rows,
    record_section,
)
from bench_rd import quality  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "blend.jsonl"
# About 0.1-1 bpp with the default preset on each image (the size targets' densities,
# docs/benchmarks.md "targets").
DENSITIES = {
    "zslice": (0.003, 0.0115, 0.03, 0.065),
    "nuclei": (0.005, 0.017, 0.036),
    "ihc": (0.006, 0.018, 0.039),
}


def measure(args) -> None:
    import torch

    from napari_sgi import compress
    from napari_sgi.reader import SGIFile

    if args.threads:
        torch.set_num_threads(args.threads)
    image = load(args.image)
    pixels = image.shape[0] * image.shape[1]
    for density in args.densities or DENSITIES[args.image]:
        for blend in args.blends:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "image.sgi"
                started = time.perf_counter()
                compress(
                    image, path, preset=args.preset, density=density, blend=blend, resume=False
                )
                seconds = time.perf_counter() - started
                nbytes = path.stat().st_size
                psnr, ssim = quality(SGIFile(path).render_slice(0), image)
            row = {
                "image": args.image,
                "preset": args.preset,
                "density": density,
                "blend": blend,
                "bytes": nbytes,
                "bpp": 8 * nbytes / pixels,
                "psnr": psnr,
                "ssim": ssim,
                "seconds": seconds,
                "revision": git_revision(),
            }
            print(json.dumps(row), flush=True)
            append_row(RESULTS, row)


def report(args) -> None:
    rows = read_rows(RESULTS)
    lines = [
        "Command: `python benchmarks/bench_blend.py measure IMAGE --threads 1` for each image "
        "(two at a time, one process each), then `python benchmarks/bench_blend.py report`.",
        "",
        f"Machine: {machine_description()}.",
        "",
        "`compress` at fixed densities, the preset's settings, with the plain sum (`sum`, every "
        "file before) or the gated blend (`gated`); bytes on disk, PSNR of the decoded file. "
        "Δ dB: the arm minus the `sum` curve at the same size (linear in log rate between its "
        "points; – outside them). `gated, head at zero`: the first run of the gated blend, at "
        "dbdb7f6, whose blend head was in no optimiser group and stayed at zero, so every "
        "Gaussian went half to the normalised blend and half to the sum (no head to code: a "
        "fixed split); kept as the measurement of that arm. The `gated` rows force the head on "
        "every region; the encoder keeps it only where it is at most 4 % of a region's values "
        "(the z-slice's 0.1 bpp point draws the sum).",
        "",
        "| image | preset | density | blend | bytes | bpp | PSNR dB | Δ dB | s | revision |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    summary = []
    for image in IMAGES:
        for preset in sorted({r["preset"] for r in rows if r["image"] == image}):
            mine = [r for r in rows if r["image"] == image and r["preset"] == preset]
            plain = sorted((r for r in mine if r["blend"] == "sum"), key=lambda r: r["bpp"])
            for r in sorted(mine, key=lambda r: (r["density"], r["blend"])):
                delta = _gap_at(plain, r) if r["blend"] != "sum" else None
                shown = "–" if delta is None else f"{delta:+.2f}"
                lines.append(
                    f"| {image} | {preset} | {r['density']:g} | {r['blend']} | {r['bytes']:,} | "
                    f"{r['bpp']:.4f} | {r['psnr']:.2f} | {shown} | {r['seconds']:.0f} | "
                    f"{r['revision']} |"
                )
            for arm in sorted({r["blend"] for r in mine} - {"sum"}):
                summary.append(
                    _summary(image, preset, arm, [r for r in mine if r["blend"] == arm], plain)
                )
    text = "\n".join(lines + [""] + [line for line in summary if line])
    print(text)
    if not args.no_record:
        record_section("blend", text)


def _gap_at(curve: list[dict], row: dict) -> float | None:
    from bench_rd import at_rate

    reference = at_rate(curve, row["bpp"])
    return None if reference is None else row["psnr"] - reference


def _summary(image: str, preset: str, arm: str, gated: list[dict], plain: list[dict]) -> str:
    if len(gated) < 2 or len(plain) < 2:
        return ""
    result = bd_psnr(
        [r["bpp"] for r in gated],
        [r["psnr"] for r in gated],
        [r["bpp"] for r in plain],
        [r["psnr"] for r in plain],
    )
    densities = {r["density"] for r in gated}
    plain_seconds = sum(r["seconds"] for r in plain if r["density"] in densities)
    time_ratio = sum(r["seconds"] for r in gated) / plain_seconds
    if result is None:
        return f"- **{image}** ({preset}, `{arm}`): the curves share no rate range."
    gap, (low, high) = result
    return (
        f"- **{image}** ({preset}): BD-PSNR of `{arm}` against `sum` **{gap:+.2f} dB** over "
        f"{low:.3f}-{high:.3f} bpp; fit time x{time_ratio:.2f} (the same densities)."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("measure")
    run.add_argument("image", choices=list(IMAGES))
    run.add_argument("--densities", type=float, nargs="+")
    run.add_argument("--blends", nargs="+", choices=("sum", "gated"), default=["sum", "gated"])
    run.add_argument("--preset", default="default")
    run.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's choice)")
    rep = sub.add_parser("report")
    rep.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    measure(args) if args.command == "measure" else report(args)


if __name__ == "__main__":
    main()
