"""Fit the real sample images with each preset: PSNR, SSIM, time and peak memory.

Run:  python benchmarks/bench_fit.py [--presets fast default paper] [--images ihc nuclei zslice]
          [--cache benchmarks/results/fit.jsonl]
Each fit runs in its own process so that its peak resident memory is its own. Results are
printed (one JSON object per line with --json) and recorded in docs/benchmarks.md ("fit").
With --cache, every fit is appended to a JSON-lines file with its revision and the preset's full
configuration, and a fit already there (same image, preset and configuration) is not run again:
changing a preset re-runs only that preset.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _images import IMAGES, load  # noqa: E402
from _record import git_revision, machine_description, record_section  # noqa: E402


def preset_config(preset: str) -> dict:
    from napari_sgi.core.presets import get_preset

    return get_preset(preset).to_dict()


def load_cache(path: Path | None) -> dict[tuple, dict]:
    if path is None or not path.exists():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {cache_key(r["image"], r["preset"], r["config"]): r for r in rows}


def cache_key(image: str, preset: str, config: dict) -> tuple:
    return image, preset, json.dumps(config, sort_keys=True)


def run_one(image_name: str, preset: str) -> dict:
    from napari_sgi.api import fit_image

    image = load(image_name)
    load_before = os.getloadavg()[0]
    cpu_started = time.process_time()
    result = fit_image(image, preset=preset, device="cpu")
    cpu_seconds = time.process_time() - cpu_started
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "image": image_name,
        "preset": preset,
        "shape": list(image.shape),
        "dtype": str(image.dtype),
        "psnr": round(result.psnr, 3),
        "ssim": round(result.ssim, 4),
        "seconds": round(result.seconds, 1),
        "peak_rss_mib": round(peak_mib),
        "gaussians": result.gaussians,
        "iterations": result.iterations,
        "cpu_s": round(cpu_seconds, 1),
        "load_before": round(load_before, 2),
        "config": preset_config(preset),
        "revision": git_revision(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--presets", nargs="+", default=["fast", "default", "paper"])
    parser.add_argument("--images", nargs="+", default=list(IMAGES))
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)  # child process mode
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument("--cache", type=Path, help="JSON-lines file of measured fits")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(*args.one)))
        return
    cache = load_cache(args.cache)
    rows = []
    for image in args.images:
        for preset in args.presets:
            cached = cache.get(cache_key(image, preset, preset_config(preset)))
            if cached is not None:
                rows.append(cached)
                print(f"{image:7s} {preset:8s} from the cache (revision {cached['revision']})")
                continue
            out = subprocess.run(
                [sys.executable, __file__, "--one", image, preset],
                capture_output=True,
                text=True,
                check=True,
            )
            row = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append(row)
            if args.cache is not None:
                args.cache.parent.mkdir(parents=True, exist_ok=True)
                with args.cache.open("a") as f:
                    f.write(json.dumps(row) + "\n")
            print(
                json.dumps(row)
                if args.json
                else f"{image:7s} {preset:8s} PSNR {row['psnr']:6.2f} dB  SSIM {row['ssim']:.4f}  "
                f"{row['seconds']:7.1f} s ({row['cpu_s']:.0f} s CPU, "
                f"load {row['load_before']:.1f})  "
                f"{row['peak_rss_mib']:5d} MiB  "
                f"{row['gaussians']} Gaussians",
                flush=True,
            )
            if not args.no_record:
                record(rows, args, done=False)
    if not args.no_record:
        record(rows, args, done=True)


def target_lines(rows: list[dict]) -> list[str]:
    """The engine issue's target: `default` in <= 3 minutes and within 0.5 dB of `paper`."""
    by = {(r["image"], r["preset"]): r for r in rows}
    lines = []
    for image in dict.fromkeys(r["image"] for r in rows):
        default, paper = by.get((image, "default")), by.get((image, "paper"))
        if default is None or paper is None:
            continue
        gap = paper["psnr"] - default["psnr"]
        lines.append(
            f"- {IMAGES[image][1]}: `default` {default['psnr']:.2f} dB in "
            f"{default['seconds']:.0f} s, `paper` {paper['psnr']:.2f} dB: gap {gap:.2f} dB "
            f"({'within' if gap <= 0.5 else 'NOT within'} 0.5 dB; "
            f"{'<=' if default['seconds'] <= 180 else 'OVER'} 3 minutes)"
        )
    return [
        "Target: `default` fits a 512x512 image in <= 3 minutes and lands within 0.5 dB of `paper`."
        if lines
        else "",
        *lines,
    ]


def record(rows: list[dict], args: argparse.Namespace, done: bool) -> None:
    lines = [
        "## Fitting the sample images (issue: engine)",
        "",
        f"Machine: {machine_description()}; recorded at revision {git_revision()}; each row's "
        "fit ran at the revision in its last column.",
        f"Command: `python benchmarks/bench_fit.py --presets {' '.join(args.presets)} "
        f"--images {' '.join(args.images)}" + (f" --cache {args.cache}`" if args.cache else "`"),
        "",
        "PSNR/SSIM of the decoded image (quantised model, original dtype) against the original, "
        "relative to the data range; wall time and CPU time of the whole fit; peak RSS of the "
        "fitting process; the 1-minute load average when the fit started (2 cores: above 2 means "
        "other work shared the machine and the wall time is inflated).",
        "",
        "| image | preset | steps | Gaussians | PSNR (dB) | SSIM | wall (s) | CPU (s) "
        "| peak RSS (MiB) | load | revision |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {IMAGES[r['image']][1]} | {r['preset']} | {r['iterations']} | "
            f"{r['gaussians']} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['seconds']:.1f} | "
            f"{r['cpu_s']:.1f} | {r['peak_rss_mib']} | {r['load_before']:.1f} | "
            f"{r.get('revision', '?')} |"
        )
    lines += ["", *target_lines(rows)]
    if not done:
        lines.append("")
        lines.append("*(run in progress: rows are recorded as they finish)*")
    record_section("fit", "\n".join(lines))


if __name__ == "__main__":
    main()
