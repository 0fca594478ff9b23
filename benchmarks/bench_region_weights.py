"""Regions that weigh their box by the blend, against regions that weigh every pixel alike.

Run:  python benchmarks/bench_region_weights.py measure [--image crop|mosaic] [--sizes 256 512]
          [--bpp 0.25] [--preset fast] [--threads 2]
      python benchmarks/bench_region_weights.py report [--no-record]

A slice larger than the region size is fitted region by region, each over its core plus a
32-pixel margin, and the decoder blends neighbours across a 32-pixel ramp: the outer half of a
margin is never shown, the ramp half. ``on`` fits each region with its box weighted by the blend
weight of each pixel (``parallel.BLEND_WEIGHTS``, the default), ``off`` with every pixel alike,
as before. Images: ``crop``, the 1024x1024 all-tissue corner of bench_mosaic's mosaic, cut into
regions of ``--sizes`` (smaller regions: more of each box is margin); ``mosaic``, the whole
2048x2048 mosaic at the default 1024-pixel regions. Regions fitted in this process (the switch
is a module flag), a size target each; PSNR and bytes of the file as the reader decodes it.
Rows are appended to benchmarks/results/region_weights.jsonl; ``report`` records
docs/benchmarks.md ("region-weights").
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _record import (  # noqa: E402
    append_row,
    git_revision,
    machine_description,
    read_rows,
    record_section,
)
from bench_rd import quality  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "region_weights.jsonl"


def measure(args) -> None:
    import torch
    from bench_mosaic import build

    from napari_sgi import compress
    from napari_sgi.encode import parallel
    from napari_sgi.reader import SGIFile

    torch.set_num_threads(args.threads)
    image = build()
    if args.image == "crop":
        image = image[:1024, :1024]
    sizes = args.sizes if args.image == "crop" else [1024]
    pixels = image.shape[0] * image.shape[1]
    for bpp in args.bpp:
        for size in sizes:
            for mode in args.modes:
                parallel.BLEND_WEIGHTS = mode == "on"
                with tempfile.TemporaryDirectory() as tmp:
                    path = Path(tmp) / "slice.sgi"
                    started = time.perf_counter()
                    compress(
                        image,
                        path,
                        preset=args.preset,
                        bpp=bpp,
                        region_size=size,
                        region_workers=1,
                        resume=False,
                    )
                    seconds = time.perf_counter() - started
                    nbytes = path.stat().st_size
                    psnr, ssim = quality(SGIFile(path).render_slice(0), image)
                row = {
                    "image": args.image,
                    "shape": list(image.shape),
                    "region_size": size,
                    "preset": args.preset,
                    "asked_bpp": bpp,
                    "weights": mode,
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
        "Command: `python benchmarks/bench_region_weights.py measure` (with `--image crop "
        "--sizes 256 512` and `--image mosaic`), then `python benchmarks/bench_region_weights.py "
        "report`.",
        "",
        f"Machine: {machine_description()}.",
        "",
        "Each region's fit weighs its box by the blend weight the decoder gives each pixel "
        "(`on`) or every pixel alike (`off`, before). Size target, regions fitted one after "
        "the other in one process; PSNR of the decoded file. Δ: `on` minus `off` at the same "
        "settings (sizes within a few per cent: about 0.1 dB per 3 % of bytes on these curves).",
        "",
        "Revisions: fe7ac20 weighs the fit's error only; 157f6f7 and later the seed layout too. "
        "`off` turns both off, so its rows are the same at either revision (fits are "
        "deterministic). The crop rows ran on one thread beside another job, the mosaic's on two "
        "threads alone: compare seconds within a pair only.",
        "",
        "| image | regions | preset | asked | weights | file bpp | PSNR dB | Δ dB | s | revision |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    off = {
        (r["image"], r["region_size"], r["preset"], r["asked_bpp"]): r
        for r in rows
        if r["weights"] == "off"
    }
    for r in rows:
        base = off.get((r["image"], r["region_size"], r["preset"], r["asked_bpp"]))
        delta = f"{r['psnr'] - base['psnr']:+.2f}" if base and r["weights"] == "on" else "–"
        shape = "x".join(str(v) for v in r["shape"])
        lines.append(
            f"| {r['image']} {shape} | {r['region_size']} | {r['preset']} | "
            f"{r['asked_bpp']:g} bpp | {r['weights']} | {r['bpp']:.4f} | {r['psnr']:.2f} | "
            f"{delta} | {r['seconds']:.0f} | {r['revision']} |"
        )
    text = "\n".join(lines)
    print(text)
    if not args.no_record:
        record_section("region-weights", text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("measure")
    run.add_argument("--image", choices=("crop", "mosaic"), default="crop")
    run.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    run.add_argument("--bpp", type=float, nargs="+", default=[0.25])
    run.add_argument("--preset", default="fast")
    run.add_argument("--modes", nargs="+", choices=("off", "on"), default=["off", "on"])
    run.add_argument("--threads", type=int, default=2)
    rep = sub.add_parser("report")
    rep.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    measure(args) if args.command == "measure" else report(args)


if __name__ == "__main__":
    main()
