"""A large image with background: a 2048x2048 mosaic of real crops with empty regions, against
JPEG, JPEG 2000 and JPEG XL at the same bytes, and with its Gaussians shared out over its regions
by detail or by area.

Run:  python benchmarks/bench_mosaic.py measure [--preset default] [--bpp 0.1 0.25]
          [--shares detail area] [--threads 1]
      python benchmarks/bench_mosaic.py report [--no-record]

The mosaic is bench_volume's (512x512 tiles of the nuclei image and of 2x2 z-slices, under random
flips and rotations) with 10 of its 16 tiles replaced by dark background, as a slide or a
fluorescence field has: the top-left region full, two regions with one tile each, and one region
empty. The background has the level and noise of the mosaic's own darkest pixels. Each file is
written by ``compress`` with a size target (regions fitted by worker processes, as shipped) and
measured decoded by the reader, in its own dtype (bench_rd.quality). ``--shares area`` sets
``targeting.REGION_SHARES = False``: every region the same bits a pixel, as before.
Rows are appended to benchmarks/results/mosaic.jsonl; ``report`` records docs/benchmarks.md
("mosaic").
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _record import git_revision, machine_description, record_section  # noqa: E402
from bench_rd import _fmt, at_rate, baseline_sweep, quality  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "mosaic.jsonl"
SIZE = 2048
TILE = 512
# Tiles of the 4x4 grid that keep their crop (row, column): a corner of tissue on a slide.
KEPT = {(0, 0), (0, 1), (1, 0), (1, 1), (0, 2), (2, 0)}


def build() -> np.ndarray:
    """The 2048x2048 uint16 mosaic with 10 of its 16 tiles empty."""
    from bench_volume import build_mosaic

    mosaic = build_mosaic(SIZE + 512)[:SIZE, :SIZE].astype(np.float64)
    dark = mosaic[mosaic < np.percentile(mosaic, 30)]
    rng = np.random.default_rng(0)
    background = rng.normal(np.median(dark), dark.std(), mosaic.shape)
    for row in range(SIZE // TILE):
        for col in range(SIZE // TILE):
            if (row, col) not in KEPT:
                window = np.s_[row * TILE : (row + 1) * TILE, col * TILE : (col + 1) * TILE]
                mosaic[window] = background[window]
    return np.clip(np.rint(mosaic), 0, 65535).astype(np.uint16)


def measure(args) -> None:
    import torch

    from napari_sgi import compress
    from napari_sgi.encode import targeting
    from napari_sgi.reader import SGIFile

    torch.set_num_threads(args.threads)
    image = build()
    pixels = image.shape[0] * image.shape[1]
    baselines = baseline_sweep(image)
    for bpp in args.bpp:
        for shares in args.shares:
            targeting.REGION_SHARES = shares == "detail"
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "mosaic.sgi"
                started = time.perf_counter()
                compress(image, path, preset=args.preset, bpp=bpp)
                seconds = time.perf_counter() - started
                size = path.stat().st_size
                psnr, ssim = quality(SGIFile(path).render_slice(0), image)
            rate = 8 * size / pixels
            row = {
                "preset": args.preset,
                "asked_bpp": bpp,
                "shares": shares,
                "bytes": size,
                "bpp": rate,
                "psnr": psnr,
                "ssim": ssim,
                "seconds": seconds,
                "revision": git_revision(),
                **{codec: at_rate(rows, rate) for codec, rows in baselines.items()},
            }
            print(json.dumps(row), flush=True)
            RESULTS.parent.mkdir(exist_ok=True)
            with RESULTS.open("a") as out:
                out.write(json.dumps(row) + "\n")


def report(args) -> None:
    rows = [json.loads(line) for line in RESULTS.read_text().splitlines() if line.strip()]
    lines = [
        "Command: `python benchmarks/bench_mosaic.py measure --threads 1`, then "
        "`python benchmarks/bench_mosaic.py report`.",
        "",
        f"Machine: {machine_description()}.",
        "",
        "A 2048x2048 uint16 mosaic of real crops, 10 of its 16 512x512 tiles empty (dark "
        "background with the mosaic's own noise): one region of four full, two with one tile, "
        "one empty. `compress` with a size target, regions fitted two at a time.",
        "",
        "| preset | asked | regions by | file bpp | PSNR dB | JPEG dB | JPEG 2000 dB | "
        "JPEG XL dB | s | revision |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['preset']} | {r['asked_bpp']:g} bpp | {r['shares']} | {r['bpp']:.4f} | "
            f"{r['psnr']:.2f} | {_fmt(r['JPEG'])} | {_fmt(r['JPEG 2000'])} | "
            f"{_fmt(r['JPEG XL'])} | {r['seconds']:.0f} | {r['revision']} |"
        )
    text = "\n".join(lines)
    print(text)
    if not args.no_record:
        record_section("mosaic", text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("measure")
    run.add_argument("--preset", default="default")
    run.add_argument("--bpp", type=float, nargs="+", default=[0.1, 0.25])
    run.add_argument("--shares", nargs="+", choices=("detail", "area"), default=["detail", "area"])
    run.add_argument("--threads", type=int, default=1)
    rep = sub.add_parser("report")
    rep.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    measure(args) if args.command == "measure" else report(args)


if __name__ == "__main__":
    main()
