"""Time to quality: decoded-file PSNR at equal size against wall seconds, per fit length.

Run:  python benchmarks/bench_time_quality.py measure [--images nuclei ihc] [--density 0.01]
          [--iterations 750 1500 3000 6000 12500] [--label today] [--set KEY=VALUE ...]
          [--code CHECKOUT]
      python benchmarks/bench_time_quality.py report [--goal today ...] [--labels today ...]

Each fit is the ``default`` preset on the image (its own K, levels and λ) at one density, run by
``compress`` in a fresh process with torch's default threads; its seconds are the wall time of
that call, its size the file's bytes on disk, its PSNR that of the decoded file. Longer fits land
at slightly different sizes, so quality is compared *at equal size*: each point's PSNR minus the
PSNR of the same image's 12500-step curve (docs/benchmarks.md "ablation", the ``adaptive`` lever:
today's default) interpolated at the point's rate. The report gives, per series, the least time
whose fit comes within 0.05 dB of the 12500-step fit of ``today`` at equal size. Fits are cached
in benchmarks/results/time_quality.jsonl by (image, label, settings, density, iterations); the
report is recorded in docs/benchmarks.md ("time-quality"). Timings: one fit at a time (run it
under ``flock /tmp/bench.lock`` on a shared machine).

``--code`` fits with another checkout's package (its ``src`` first on the path, its compiled
kernels built in place: ``python setup.py build_ext --inplace`` there), so that an older revision
and today's are timed in the same run; the row records that checkout's revision. ``--goal`` names
the series whose 12500-step fit sets the quality the others must reach (several: one summary
each).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _images import IMAGES  # noqa: E402
from _record import (  # noqa: E402
    append_row,
    git_revision,
    machine_description,
    read_rows,
    record_section,
)
from bench_rd import parse_settings  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "time_quality.jsonl"
ABLATION = Path(__file__).resolve().parent / "results" / "ablation.jsonl"
REFERENCE_LEVER = "adaptive"  # today's default in the ablation table
TOLERANCE_DB = 0.05


def child(name: str, density: float, iterations: int, settings: dict) -> dict:
    """One timed fit in this (fresh) process."""
    import tempfile
    import time

    from _images import load
    from bench_rd import quality

    from napari_sgi.encode.pipeline import compress
    from napari_sgi.reader import SGIFile

    image = load(name)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fit.sgi"
        steps = []  # one report a step: fewer than ``iterations`` where an early stop skipped
        started = time.perf_counter()
        compress(
            image,
            path,
            preset="default",
            density=density,
            iterations=iterations,
            progress=steps.append,
            **settings,
        )
        seconds = time.perf_counter() - started
        sgi = SGIFile(path)
        decoded = sgi.render_slice(0)
        sgi.close()
        size = path.stat().st_size
    psnr, _ = quality(decoded, image)
    return {
        "bytes": size,
        "bpp": 8 * size / (image.shape[0] * image.shape[1]),
        "psnr": psnr,
        "seconds": seconds,
        "steps_run": len(steps),
    }


def _key(row: dict) -> tuple:
    return (
        row["image"],
        row["label"],
        json.dumps(row["settings"], sort_keys=True),
        float(row["density"]),
        row["iterations"],
    )


def load_rows() -> dict[tuple, dict]:
    return {_key(r): r for r in read_rows(RESULTS)}


def measure(args) -> None:
    settings = parse_settings(args.set)
    done = load_rows()
    for name in args.images:
        for iterations in args.iterations:
            row = {
                "image": name,
                "label": args.label,
                "settings": settings,
                "density": args.density,
                "iterations": iterations,
            }
            if _key(row) in done:
                continue
            code = (
                "import json, sys; sys.path.insert(0, 'benchmarks'); "
                "from bench_time_quality import child; "
                f"print(json.dumps(child({name!r}, {args.density!r}, {iterations!r}, "
                f"{settings!r})))"
            )
            env = dict(os.environ)
            revision = git_revision()
            if args.code:
                source = str(Path(args.code).resolve() / "src")
                env["PYTHONPATH"] = os.pathsep.join(filter(None, [source, env.get("PYTHONPATH")]))
                revision = git_revision(args.code)
            out = subprocess.run(
                [sys.executable, "-c", code],
                capture_output=True,
                text=True,
                check=True,
                cwd=Path(__file__).resolve().parent.parent,
                env=env,
            )
            row.update(json.loads(out.stdout.strip().splitlines()[-1]), revision=revision)
            append_row(RESULTS, row)
            print(
                f"{name:7s} {args.label:8s} {iterations:6d} steps {row['seconds']:6.1f} s "
                f"{row['bpp']:.3f} bpp {row['psnr']:.2f} dB, {row['steps_run']} steps run",
                flush=True,
            )


def reference_curve(name: str) -> tuple[list[float], list[float]]:
    """bpp and PSNR of today's 12500-step curve of ``name`` (bench_ablation's rows)."""
    rows = read_rows(ABLATION)
    points = sorted(
        (r["bpp"], r["psnr"])
        for r in rows
        if r["image"] == name and r["lever"] == REFERENCE_LEVER and r["iterations"] == 12500
    )
    return [p[0] for p in points], [p[1] for p in points]


def at_equal_size(row: dict, curve: tuple[list[float], list[float]]) -> float | None:
    """PSNR of ``row`` minus the reference curve's at its rate (linear in log bpp)."""
    import numpy as np

    rates, psnrs = curve
    if len(rates) < 2 or not rates[0] <= row["bpp"] <= rates[-1]:
        return None
    return row["psnr"] - float(np.interp(np.log(row["bpp"]), np.log(rates), psnrs))


def _reached(name: str, mine: list[dict], deltas: dict, goal_label: str) -> list[str]:
    """Per series, the least time whose fit reaches ``goal_label``'s 12500-step quality."""
    goal = [r for r in mine if r["label"] == goal_label and r["iterations"] == 12500]
    if not goal or deltas[id(goal[0])] is None:
        return []
    lines = []
    for label in sorted({r["label"] for r in mine} - {goal_label}):
        reached = [
            r
            for r in mine
            if r["label"] == label
            and deltas[id(r)] is not None
            and deltas[id(r)] >= deltas[id(goal[0])] - TOLERANCE_DB
        ]
        best = min(reached, key=lambda r: r["seconds"], default=None)
        text = (
            "never"
            if best is None
            else f"{best['seconds']:.0f} s ({best['iterations']} steps, "
            f"x{best['seconds'] / goal[0]['seconds']:.2f} of {goal_label}'s 12500-step fit)"
        )
        lines.append(f"- {name}, {label}: {goal_label}'s 12500-step quality in {text}")
    return lines


def report(args) -> str:
    rows = sorted(load_rows().values(), key=lambda r: (r["image"], r["label"], r["iterations"]))
    rows = [r for r in rows if not args.labels or r["label"] in args.labels]
    lines = [
        "## Time to quality at 512x512 (issue: seconds, not minutes)",
        "",
        f"`python benchmarks/bench_time_quality.py measure ...` then `report`; revision(s) "
        f"{', '.join(sorted({r['revision'] for r in rows}))}; {machine_description()}.",
        "",
        "Δ at equal size: the fit's PSNR minus that of the image's 12500-step curve of the "
        "default (ablation table, `adaptive`) at the fit's rate. Series, code: "
        + ", ".join(
            f"`{label}` {', '.join(sorted({r['revision'] for r in rows if r['label'] == label}))}"
            for label in sorted({r["label"] for r in rows})
        )
        + ".",
        "",
        "| image | series | density | steps | steps run | seconds | bpp | PSNR (dB) "
        "| Δ at equal size |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    summary = []
    for name in IMAGES:
        mine = [r for r in rows if r["image"] == name]
        if not mine:
            continue
        curve = reference_curve(name)
        deltas = {id(r): at_equal_size(r, curve) for r in mine}
        for r in mine:
            delta = deltas[id(r)]
            lines.append(
                f"| {name} | {r['label']} | {r['density']} | {r['iterations']} "
                f"| {r.get('steps_run', '–')} | {r['seconds']:.1f} | {r['bpp']:.3f} "
                f"| {r['psnr']:.2f} "
                f"| {'–' if delta is None else f'{delta:+.2f}'} |"
            )
        for goal_label in args.goal:
            summary += _reached(name, mine, deltas, goal_label)
    markdown = "\n".join(lines + ["", *summary])
    print(markdown)
    if not args.no_record:
        record_section("time-quality", markdown)
    return markdown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    go = sub.add_parser("measure")
    go.add_argument("--images", nargs="+", default=["nuclei", "ihc"], choices=list(IMAGES))
    go.add_argument("--density", type=float, default=0.01)
    go.add_argument("--iterations", nargs="+", type=int, default=[750, 1500, 3000, 6000, 12500])
    go.add_argument("--label", default="today")
    go.add_argument("--set", nargs="*", default=[], help="FitConfig fields, e.g. levels=3")
    go.add_argument("--code", help="a checkout whose package to fit with (an older revision)")
    show = sub.add_parser("report")
    show.add_argument(
        "--goal", nargs="+", default=["today"], help="the series whose 12500 steps set the bar"
    )
    show.add_argument("--labels", nargs="+", help="the series to show (default: all)")
    show.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    measure(args) if args.command == "measure" else report(args)


if __name__ == "__main__":
    main()
