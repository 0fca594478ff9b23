"""One row per rate-distortion lever: its BD-PSNR against the default's own curve, and times.

Run:  python benchmarks/bench_ablation.py run [--levers base rate0.5 ...] [--images ...]
          [--densities 0.005 0.01 0.02 0.04] [--iterations 12500] [--jobs 1]
      python benchmarks/bench_ablation.py report [--iterations 12500]

Every lever is the ``default`` preset (with the image's own K, levels and λ) plus the FitConfig
fields of :data:`LEVERS`, fitted at each density; every fit writes a real `.sgi` file, measured
as bench_rd measures (bytes on disk; PSNR of the decoded file against the original). A lever's
curve is compared with ``base`` (the default as it is) by BD-PSNR over the rates both cover, and
with JPEG 2000 and JPEG over 0.1-1 bpp. Fits are cached in benchmarks/results/ablation.jsonl
(image, lever, density and iterations), so adding a lever fits only that lever. With ``--jobs 2``
two fits run at once, one thread each (for screening: fit times then include the neighbour's
load, alike for every lever of the run). ``report`` prints the table and records it in
docs/benchmarks.md ("ablation").
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
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

RESULTS = Path(__file__).resolve().parent / "results" / "ablation.jsonl"
RD_CACHE = Path(__file__).resolve().parent / "results" / "rd.jsonl"
DENSITIES = (0.005, 0.01, 0.02, 0.04)
CLASSIC_RANGE = (0.1, 1.0)

# name -> (what it changes, FitConfig overrides on top of the image's default configuration[,
# module constants set in the fitting process, "module:NAME" -> value, for levers that are not a
# FitConfig field]). Every lever names its seed layout, so that its rows mean the same whatever
# the default is.
UNIFORM = {"seed_layout": "uniform"}
ADAPTIVE_ALL_STEPS = {"seed_layout": "adaptive", "settle": 0.0}
LEVERS: dict[str, tuple] = {
    "base": ("seeds on a uniform jittered grid; rate term in the last 20 % of the fit", UNIFORM),
    "rate0.5": (
        "rate term, entropy model, adaptive noise: last 50 %",
        {**UNIFORM, "rate_phase": 0.5},
    ),
    "rate0.8": (
        "rate term, entropy model, adaptive noise: last 80 %",
        {**UNIFORM, "rate_phase": 0.8},
    ),
    "adaptive": ("seeds placed from a coded map of local detail", {"seed_layout": "adaptive"}),
    "rate0.1": (
        "rate term, entropy model, adaptive noise: last 10 % (not 20 %): fewer costly steps",
        {"seed_layout": "adaptive", "rate_phase": 0.1},
    ),
    "refine0.15": (
        "15 % of the steps refine the rounded attributes (not 4 %)",
        {**UNIFORM, "refine": 0.15},
    ),
    "lr16": (
        "seed features and offsets at 16x the paper's rates (not 8x)",
        {**UNIFORM, "attribute_lr_scale": 16.0},
    ),
    "decay0.1": (
        "features, scalings, covariance MLP: rates decay to 1/10 (not constant)",
        {"seed_layout": "adaptive", "lr_decay": 0.1},
    ),
    "decay0.03": (
        "features, scalings, covariance MLP: rates decay to 1/30 (not constant)",
        {"seed_layout": "adaptive", "lr_decay": 0.03},
    ),
    "cells1": (
        "seed-map cells of about one seed (not two): 32-pixel cells at d=0.01 on 512x512",
        {"seed_layout": "adaptive"},
        {"napari_sgi.core.seed_map:SEEDS_PER_CELL": 1},
    ),
    "finest1": (
        "steps per level 1:2:1, coarsest to finest (not 1:2:2): fewer full-resolution steps",
        {"seed_layout": "adaptive"},
        {"napari_sgi.core.schedule:FINEST_WEIGHT": 1},
    ),
    "finest4": (
        "steps per level 1:2:4, coarsest to finest (not 1:2:2): more full-resolution steps",
        {"seed_layout": "adaptive"},
        {"napari_sgi.core.schedule:FINEST_WEIGHT": 4},
    ),
    "lam0.5": (
        "half the image's λ (1e-5 on one channel, 2e-5 on RGB)",
        {"seed_layout": "adaptive"},
        {"napari_sgi.core.presets:LAMBDA_SCALE": 0.5},
    ),
    "lam2": (
        "twice the image's λ (4e-5 on one channel, 8e-5 on RGB)",
        {"seed_layout": "adaptive"},
        {"napari_sgi.core.presets:LAMBDA_SCALE": 2.0},
    ),
    "cosine": (
        "learning rates decay on a cosine in log space (not evenly): high longer, low at the end",
        {"seed_layout": "adaptive"},
        {"napari_sgi.core.schedule:DECAY_SHAPE": "cosine"},
    ),
    "subset1": (
        "the rate term over every seed at every step (not a random 5 %, at least 64 seeds)",
        {"seed_layout": "adaptive", "rate_subset": 1.0},
    ),
    "k4": (
        "4 Gaussians a seed (not 6 on one channel, 10 on RGB): more seeds at the same density",
        {"seed_layout": "adaptive", "gaussians_per_seed": 4},
    ),
    "f8": (
        "8 features a seed (not 4): more for the MLPs to decode, more bytes a seed",
        {"seed_layout": "adaptive", "feature_dim": 8},
    ),
    "step0.4": (
        "adaptive steps start the rate phase at 0.4x their base step (not 1x), where 3000-step "
        "fits left them",
        {"seed_layout": "adaptive"},
        {"napari_sgi.core.entropy:INITIAL_STEP_FACTOR": 0.4},
    ),
    "levels5": (
        "5 pyramid levels (not 4): coarsest 32 pixels on 512x512, 16 on 256x256",
        {"seed_layout": "adaptive", "levels": 5},
    ),
    # Rows are cached and fitted by the code of their revision (recorded in each row). The rows
    # above ran every step on plain noise: they predate early stop (FitConfig.settle, ddede57)
    # and soft rounding (entropy.SOFT_ROUND, on since 2026-12-07) in the default; a lever above
    # fitted again would have both. The levers below pin settle=0 to compare with them;
    # `adaptive0` (fitted before soft rounding was on) is `adaptive` so pinned, fitted again.
    "adaptive0": ("`adaptive`, every step run (no early stop)", {**ADAPTIVE_ALL_STEPS}),
    "softround": (
        "the rate phase trains on soft-rounded values, Q·s(s(x/Q) + U), the temperature of s "
        "annealed 0.3 -> 0.1 (C3's), not on x + U·Q",
        {**ADAPTIVE_ALL_STEPS},
        {"napari_sgi.core.entropy:SOFT_ROUND": (0.3, 0.1)},
    ),
    "softround-cc": (
        "`softround` with Cool-chic 5's temperatures, 0.35 -> 0.08",
        {**ADAPTIVE_ALL_STEPS},
        {"napari_sgi.core.entropy:SOFT_ROUND": (0.35, 0.08)},
    ),
    "softround-warm": (
        "`softround` ending warmer: temperature 0.3 -> 0.2 (not 0.1)",
        {**ADAPTIVE_ALL_STEPS},
        {"napari_sgi.core.entropy:SOFT_ROUND": (0.3, 0.2)},
    ),
    "softround-rate0.4": (
        "`softround` over a rate phase of the last 40 % (not 20 %)",
        {**ADAPTIVE_ALL_STEPS, "rate_phase": 0.4},
        {"napari_sgi.core.entropy:SOFT_ROUND": (0.3, 0.1)},
    ),
    "softround-lam0.5": (
        "`softround` at half the image's λ",
        {**ADAPTIVE_ALL_STEPS},
        {
            "napari_sgi.core.entropy:SOFT_ROUND": (0.3, 0.1),
            "napari_sgi.core.presets:LAMBDA_SCALE": 0.5,
        },
    ),
    "softround-lam2": (
        "`softround` at twice the image's λ",
        {**ADAPTIVE_ALL_STEPS},
        {
            "napari_sgi.core.entropy:SOFT_ROUND": (0.3, 0.1),
            "napari_sgi.core.presets:LAMBDA_SCALE": 2.0,
        },
    ),
    "softround-all": (
        "`softround`, and before the rate phase soft rounding on the base steps at 0.3",
        {**ADAPTIVE_ALL_STEPS},
        {
            "napari_sgi.core.entropy:SOFT_ROUND": (0.3, 0.1),
            "napari_sgi.core.entropy:SOFT_ROUND_BASE": 0.3,
        },
    ),
}


def _settings(lever: str) -> dict:
    """A lever's FitConfig overrides, with its module constants (if any) under ``constants``."""
    _, overrides, *constants = LEVERS[lever]
    return {**overrides, "constants": constants[0]} if constants else dict(overrides)


def _set_constants(lever: str) -> None:
    import importlib

    for target, value in _settings(lever).get("constants", {}).items():
        module, name = target.split(":")
        setattr(importlib.import_module(module), name, value)


def load_image(name: str):
    """A sample image, or ``sparse``: a 1024x1024 uint16 field half empty, as a slide or a
    fluorescence mosaic has: the nuclei image top left, its mirror image bottom right, and
    elsewhere a dark background with the nuclei image's own background level and noise."""
    import numpy as np

    if name != "sparse":
        return load(name)
    nuclei = load("nuclei").astype(np.float64)
    dark = nuclei[nuclei < np.percentile(nuclei, 30)]
    rng = np.random.default_rng(0)
    field = rng.normal(np.median(dark), dark.std(), (1024, 1024))
    field[:512, :512] = nuclei
    field[512:, 512:] = nuclei[::-1, ::-1]
    return np.clip(np.rint(field), 0, 65535).astype(np.uint16)


IMAGE_NAMES = [*IMAGES, "sparse"]


def fit_point(name: str, lever: str, density: float, iterations: int, threads: int) -> dict:
    """Fit one point in this process: a real file, decoded and measured."""
    import torch

    torch.set_num_threads(threads)
    from bench_rd import quality

    from napari_sgi.core.presets import image_choices
    from napari_sgi.encode.pipeline import compress
    from napari_sgi.reader import SGIFile

    _set_constants(lever)
    image = load_image(name)
    channels = image.shape[2] if image.ndim == 3 else 1
    lmbda = image_choices(image.shape[0], image.shape[1], channels)["lmbda"]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "point.sgi"
        result = compress(
            image,
            path,
            preset="default",
            device="cpu",
            iterations=iterations,
            density=density,
            lmbda=lmbda,
            **LEVERS[lever][1],
        )
        started = time.perf_counter()
        sgi = SGIFile(path)
        decoded = sgi.render_slice(0)
        sgi.close()
        decode_seconds = time.perf_counter() - started
        size = path.stat().st_size
    psnr, ssim = quality(decoded, image)
    return {
        "image": name,
        "lever": lever,
        "settings": _settings(lever),
        "density": density,
        "iterations": iterations,
        "bytes": size,
        "bpp": 8 * size / (image.shape[0] * image.shape[1]),
        "psnr": psnr,
        "ssim": ssim,
        "fit_seconds": result.seconds,
        "decode_seconds": decode_seconds,
        "threads": threads,
        "revision": git_revision(),
    }


def _key(row: dict) -> tuple:
    settings = json.dumps(row["settings"], sort_keys=True)
    return row["image"], row["lever"], settings, float(row["density"]), row["iterations"]


def load_rows(path: Path = RESULTS) -> dict[tuple, dict]:
    return {_key(r): r for r in read_rows(path)}


def run(args) -> None:
    done = load_rows()
    todo = []
    for lever in args.levers:  # a lever at a time, so that a cut run leaves whole curves
        for name in args.images:
            for density in args.densities:
                key = (name, lever, json.dumps(_settings(lever), sort_keys=True), density)
                if key + (args.iterations,) not in done:
                    todo.append((name, lever, density))
    threads = 1 if args.jobs > 1 else 2
    print(f"{len(todo)} fits to run ({len(done)} cached)", flush=True)
    with ProcessPoolExecutor(args.jobs) as pool:
        futures = [
            pool.submit(fit_point, name, lever, density, args.iterations, threads)
            for name, lever, density in todo
        ]
        for future in futures:
            row = future.result()
            append_row(RESULTS, row)
            print(
                f"{row['image']:7s} {row['lever']:10s} d={row['density']:<6} "
                f"{row['bpp']:.3f} bpp {row['psnr']:.2f} dB {row['fit_seconds']:.0f} s",
                flush=True,
            )


def classic_curves(name: str) -> dict[str, list[dict]]:
    """JPEG / JPEG 2000 sweeps of an image, from bench_rd's cache or measured now."""
    from bench_rd import SWEEP_SETTINGS, baseline_sweep

    if RD_CACHE.exists():
        for line in RD_CACHE.read_text().splitlines():
            row = json.loads(line)
            if row.get("codec") == "baselines" and row["image"] == name:
                if row["settings"] == SWEEP_SETTINGS:
                    return row["sweeps"]
    return baseline_sweep(load_image(name))


def _gap(rows: list[dict], reference: list[dict], rate_range=None) -> str:
    result = bd_psnr(
        [r["bpp"] for r in rows],
        [r["psnr"] for r in rows],
        [r["bpp"] for r in reference],
        [r["psnr"] for r in reference],
        rate_range,
    )
    if result is None:
        return "–"
    gap, (low, high) = result
    return f"{gap:+.2f} ({low:.2f}-{high:.2f})"


def report(args) -> str:
    rows = [r for r in load_rows().values() if r["iterations"] == args.iterations]
    lines = [
        f"## Rate-distortion levers one at a time, {args.iterations} steps (issue: beat JPEG 2000)",
        "",
        f"Command: `python benchmarks/bench_ablation.py run --iterations {args.iterations} ...` "
        f"then `report --iterations {args.iterations}`; revision(s) "
        f"{', '.join(sorted({r['revision'] for r in rows}))}; {machine_description()}.",
        "",
        "BD-PSNR in dB (rate range in bpp): against `base` over the rates both curves cover; "
        "against JPEG 2000 (OpenJPEG) and JPEG (libjpeg) over 0.1-1 bpp cut to the lever's own "
        "curve. Δ fit / decode: median ratio of the lever's times to base's at the same density.",
        "",
        *(
            [
                "Fits ran two at a time, one thread each (`--jobs 2`), beside other work on "
                "this shared machine: the time ratios are rough, not timings.",
                "",
            ]
            if any(r.get("threads") == 1 for r in rows)
            else []
        ),
        "| image | lever | what | points (bpp) | vs base | vs JPEG 2000 | vs JPEG "
        "| Δ fit | Δ decode |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in IMAGE_NAMES:
        curves: dict[str, list[dict]] = {}
        for row in rows:
            if row["image"] == name:
                curves.setdefault(row["lever"], []).append(row)
        if "base" not in curves:
            continue
        classic = classic_curves(name)
        base = {r["density"]: r for r in curves["base"]}
        for lever, points in curves.items():
            points.sort(key=lambda r: r["bpp"])
            same = [(r, base[r["density"]]) for r in points if r["density"] in base]
            fit = statistics.median(r["fit_seconds"] / b["fit_seconds"] for r, b in same)
            dec = statistics.median(r["decode_seconds"] / b["decode_seconds"] for r, b in same)
            lines.append(
                f"| {name} | {lever} | {LEVERS.get(lever, ('?',))[0]} "
                f"| {', '.join(format(r['bpp'], '.2f') for r in points)} "
                f"| {_gap(points, curves['base']) if lever != 'base' else '0'} "
                f"| {_gap(points, classic['JPEG 2000'], CLASSIC_RANGE)} "
                f"| {_gap(points, classic['JPEG'], CLASSIC_RANGE)} "
                f"| x{fit:.2f} | x{dec:.2f} |"
            )
    markdown = "\n".join(lines)
    print(markdown)
    if not args.no_record:
        record_section(f"ablation-{args.iterations}", markdown)
    return markdown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    go = sub.add_parser("run")
    go.add_argument("--levers", nargs="+", default=list(LEVERS), choices=list(LEVERS))
    go.add_argument("--images", nargs="+", default=list(IMAGES), choices=IMAGE_NAMES)
    go.add_argument("--densities", nargs="+", type=float, default=list(DENSITIES))
    go.add_argument("--iterations", type=int, default=12500)
    go.add_argument("--jobs", type=int, default=1)
    show = sub.add_parser("report")
    show.add_argument("--iterations", type=int, default=12500)
    show.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    run(args) if args.command == "run" else report(args)


if __name__ == "__main__":
    main()
