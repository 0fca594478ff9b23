"""Where a fit's time goes: the rasterizer's forward and backward against everything else.

Run:  python benchmarks/profile_fit.py [--images nuclei ihc] [--iterations 3000] [--no-record]
      python benchmarks/profile_fit.py --phases [--images nuclei ihc] [--iterations 3000]

Each image is fitted by ``compress`` with the ``default`` preset (its own K, levels and λ) at the
given number of steps, in a fresh process under :mod:`cProfile`, with torch's default threads.
The report gives the wall time of the ``compress`` call (the profiler adds a little), the time
inside the compiled rasterizer's forward and backward (``_raster_cpu._RasterizeSumCpu``: the
kernel, which releases the GIL and runs on every core), their share of the fit, the steps' mean
cost, and the largest other entries. Recorded in docs/benchmarks.md ("profile").

``--phases`` times the steps instead, without a profiler: the wall time between two progress
reports, by pyramid level and phase (``none``, ``fixed`` noise, ``adaptive`` noise with the rate
term, ``refine``), after a small warm-up fit in the same process (so that imports and the
kernel's first load are not counted). The median step of the coarsest level, whose render is a
few thousand pixels, is what a step costs whatever the image size: the per-step work on the
Gaussians (MLPs, bounds, optimiser, autograd) and the kernels' fixed costs. Recorded in
docs/benchmarks.md ("profile-phases").
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _images import IMAGES  # noqa: E402
from _record import git_revision, machine_description, record_section  # noqa: E402

RASTER_FILE = "_raster_cpu.py"
OTHERS_SHOWN = 6


def child(name: str, iterations: int) -> dict:
    """Profile one fit in this (fresh) process."""
    import cProfile
    import pstats
    import tempfile
    import time

    from _images import load

    from napari_sgi.encode.pipeline import compress

    image = load(name)
    profiler = cProfile.Profile()
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        profiler.enable()
        compress(image, Path(folder) / "fit.sgi", preset="default", iterations=iterations)
        profiler.disable()
        seconds = time.perf_counter() - started
    stats = pstats.Stats(profiler).stats  # (file, line, function) -> (cc, nc, tottime, cumtime, ..)
    raster = {"forward": 0.0, "backward": 0.0}
    others = []
    for (file, _, function), (_, calls, own, _, _) in stats.items():
        if file.endswith(RASTER_FILE) and function in raster:
            raster[function] += own
        else:
            others.append((own, f"{Path(file).name}:{function}", calls))
    others.sort(reverse=True)
    return {
        "image": name,
        "iterations": iterations,
        "seconds": seconds,
        "raster_forward": raster["forward"],
        "raster_backward": raster["backward"],
        "others": [
            {"where": where, "seconds": own, "calls": calls}
            for own, where, calls in others[:OTHERS_SHOWN]
        ],
    }


def child_phases(name: str, iterations: int) -> dict:
    """Time the steps of one fit in this (fresh) process, by level and phase."""
    import time

    from _images import load

    from napari_sgi.encode.fitting import fit_image

    image = load(name)
    fit_image(image[:64, :64], iterations=20)  # imports, the kernel's first load
    stamps = []
    started = time.perf_counter()
    fit_image(
        image,
        iterations=iterations,
        progress=lambda event: stamps.append((time.perf_counter(), event.level, event.phase)),
    )
    seconds = time.perf_counter() - started
    steps: dict[str, list[float]] = {}
    previous = started
    for stamp, level, phase in stamps:
        steps.setdefault(f"{level} {phase}", []).append(stamp - previous)
        previous = stamp
    return {
        "image": name,
        "iterations": iterations,
        "seconds": seconds,
        "phases": {
            key: {"steps": len(v), "seconds": sum(v), "median_ms": 1000 * sorted(v)[len(v) // 2]}
            for key, v in steps.items()
        },
    }


def _preamble(rows: list[dict], options: str = "") -> list[str]:
    """The machine, the revision and the command of a report."""
    return [
        f"Machine: {machine_description()}; revision `{git_revision()}`.",
        f"Command: `python benchmarks/profile_fit.py {options}"
        f"--images {' '.join(r['image'] for r in rows)} --iterations {rows[0]['iterations']}`",
        "",
    ]


def _publish(title: str, lines: list[str], section: str, record: bool) -> None:
    text = "\n".join([f"## {title} (issue: seconds, not minutes)", "", *lines])
    print(text)
    if record:
        record_section(section, text)


def report_phases(rows: list[dict], record: bool) -> None:
    lines = [
        *_preamble(rows, "--phases "),
        "| image | level | phase | steps | median step (ms) | seconds | share of the fit |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        order = sorted(r["phases"].items(), key=lambda kv: (-int(kv[0].split()[0]), kv[0]))
        for key, p in order:
            level, phase = key.split()
            lines.append(
                f"| {r['image']} | {level} | {phase} | {p['steps']} | {p['median_ms']:.2f} "
                f"| {p['seconds']:.2f} | {100 * p['seconds'] / r['seconds']:.0f} % |"
            )
    _publish("A fit's steps by level and phase", lines, "profile-phases", record)


def report(rows: list[dict], record: bool) -> None:
    lines = [
        *_preamble(rows),
        "| image | steps | fit (s) | per step (ms) | raster forward (s) | raster backward (s) "
        "| raster share | largest other entries (own time) |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        raster = r["raster_forward"] + r["raster_backward"]
        others = ", ".join(f"`{o['where']}` {o['seconds']:.1f} s" for o in r["others"][:4])
        lines.append(
            f"| {r['image']} | {r['iterations']} | {r['seconds']:.1f} "
            f"| {1000 * r['seconds'] / r['iterations']:.1f} | {r['raster_forward']:.1f} "
            f"| {r['raster_backward']:.1f} | {100 * raster / r['seconds']:.0f} % | {others} |"
        )
    _publish("Where a fit's time goes", lines, "profile", record)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", nargs="+", default=["nuclei", "ihc"], choices=list(IMAGES))
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument("--phases", action="store_true", help="time steps by level and phase")
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)  # child process mode
    args = parser.parse_args()
    if args.one:
        measure = child_phases if args.phases else child
        print(json.dumps(measure(args.one[0], int(args.one[1]))))
        return
    rows = []
    for name in args.images:
        out = subprocess.run(
            [sys.executable, __file__, "--one", name, str(args.iterations)]
            + (["--phases"] if args.phases else []),
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    (report_phases if args.phases else report)(rows, not args.no_record)


if __name__ == "__main__":
    main()
