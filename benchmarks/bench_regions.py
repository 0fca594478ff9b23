"""A large slice's regions fitted one after the other, and by worker processes at the same time.

Run:  flock /tmp/bench.lock python benchmarks/bench_regions.py [--size 2048] [--iterations 800]
      [--repeats 3] [--wait 300] [--workers 1 2] [--quick] [--no-record]

A ``size`` x ``size`` uint16 mosaic of real crops (:func:`bench_volume.build_mosaic`), regions of
1024 pixels (4 for 2048x2048), compressed by :func:`napari_sgi.compress` with preset ``fast`` into
a `.sgi` file, ``repeats`` times for every worker count, round robin (``compress``'s
``region_workers``; its default is one worker per core, so each run sets it). Until 2026-12-07 the
runs set it by wrapping ``compress_slice``, which the scheduler had since come to call with an
explicit ``region_workers`` (96bb683): from then on both rows ran with the default, two workers.
Each run is its own process, started after the one before ended and once the machine's other work
uses under 0.1 core (waiting at most ``wait`` seconds), and reports the wall time of the call (the
workers' start included), the CPU seconds of the process and its workers, their peak resident
memory (the largest process, and the sum of all of them, sampled every 0.2 s), the cores other
processes used meanwhile (a shared machine: such a run got less than all cores), the 1-minute load
average before it, and the SHA-256 of the file: the files must be identical.

Figures are printed and, unless ``--no-record`` or ``--quick``, recorded in docs/benchmarks.md
("regions"). ``--quick``: a 512x512 mosaic, regions of 256, 5 steps (a smoke run).
On a machine shared with other work, run it under the benchmarks' lock (``flock``, above).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _record import git_revision, machine_description, record_section  # noqa: E402

FULL = {"size": 2048, "region_size": 1024, "iterations": 800, "repeats": 3, "wait": 300}
QUICK = {"size": 512, "region_size": 256, "iterations": 5, "repeats": 1, "wait": 0}
REGION_MARGIN = 32
SAMPLE_SECONDS = 0.2


def child(args: dict) -> dict:
    """One compression in this process with ``args["workers"]`` region workers; its figures."""
    import numpy as np
    import psutil
    from bench_volume import build_mosaic

    import napari_sgi.encode.scheduling  # noqa: F401 - before torch: OpenMP's wait policy
    from napari_sgi import compress

    image = build_mosaic(args["size"])
    with tempfile.TemporaryDirectory() as folder:
        # One-off imports and compilations (torch, the rasterizer, torchac) out of the timer.
        warm = np.arange(48 * 48, dtype=np.uint16).reshape(48, 48)
        compress(warm, Path(folder) / "warm.sgi", preset="fast", iterations=2, device="cpu")
        peak = _PeakMemory(psutil.Process())
        load = os.getloadavg()[0]
        busy, cpu, started = machine_busy_seconds(), _cpu_seconds(), time.perf_counter()
        with peak:
            result = compress(
                image,
                Path(folder) / "large.sgi",
                preset="fast",
                iterations=args["iterations"],
                device="cpu",
                region_size=args["region_size"],
                region_margin=REGION_MARGIN,
                region_workers=args["workers"],
            )
        seconds, cpu = time.perf_counter() - started, _cpu_seconds() - cpu
        others = machine_busy_seconds() - busy - cpu  # what other processes took meanwhile
        digest = hashlib.sha256(result.path.read_bytes()).hexdigest()
    largest = max(
        resource.getrusage(who).ru_maxrss
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    largest /= 1024
    return {
        "workers": args["workers"],
        "seconds": seconds,
        "others_cores": max(0.0, others) / seconds,
        "cpu_s": cpu,
        "cpu_percent": 100 * cpu / seconds,
        "peak_rss_mib": largest,
        "peak_total_rss_mib": peak.peak / 2**20,
        "load": load,
        "bytes": result.bytes,
        "psnr": result.psnr,
        "gaussians": result.gaussians,
        "sha256": digest,
    }


def machine_busy_seconds() -> float:
    """CPU seconds all processes of the machine have used since it started (/proc/stat)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def wait_until_idle(most: float, threshold: float = 0.1) -> float:
    """Wait (at most ``most`` seconds) until the machine's other work uses under ``threshold``
    cores over 3 s; the seconds waited."""
    started = time.perf_counter()
    while time.perf_counter() - started < most:
        busy = machine_busy_seconds()
        time.sleep(3)
        if (machine_busy_seconds() - busy) / 3 < threshold:
            break
        time.sleep(10)
    return time.perf_counter() - started


def _cpu_seconds() -> float:
    """User and system seconds of this process and of its children that have ended (workers)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


class _PeakMemory:
    """Largest sum of resident memory of a process and its children, sampled on a thread."""

    def __init__(self, process) -> None:
        self.process, self.peak = process, 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._done.wait(SAMPLE_SECONDS):
            total = 0
            for process in [self.process, *self.process.children(recursive=True)]:
                try:
                    total += process.memory_info().rss
                except Exception:  # a worker ending between the listing and the reading
                    pass
            self.peak = max(self.peak, total)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()


def run_child(args: dict) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(args)], capture_output=True, text=True
    )
    if out.returncode != 0:
        sys.stderr.write(out.stderr[-4000:])
        raise RuntimeError(f"child {args} failed with status {out.returncode}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def markdown(cfg: dict, rows: list[dict], command: str) -> str:
    regions = (cfg["size"] // cfg["region_size"]) ** 2
    lines = [
        "## A large slice: regions in worker processes (issue: seconds, not minutes)",
        "",
        f"Machine: {machine_description()}; revision `{git_revision()}`.",
        f"Command: `{command}`",
        "",
        f"A {cfg['size']}x{cfg['size']} uint16 mosaic of real crops (as in 'volume'), "
        f"`region_size={cfg['region_size']}`: {regions} regions, compressed by `compress` with "
        f"preset `fast` and {cfg['iterations']} steps a region into one `.sgi` file, with the "
        "regions fitted one after the other in the process (1 worker, the path before) or by "
        "worker processes, two regions at a time (`compress_slice(region_workers=2)`, the default "
        f"on 2 cores); {cfg['repeats']} runs of each, round robin, each in a fresh process after "
        "the one before ended and the machine's other work fell under 0.1 core (waiting at most "
        f"{cfg['wait']} s). Time: the `compress` call (the workers' start included); CPU: user + "
        "system seconds of the process and its workers; peak RSS: the largest process, and the "
        "sum of the process and its workers (sampled every 0.2 s); others: the cores that other "
        "processes used on average during the run (the machine is shared: a run with others "
        "above 0 got less than the 2 cores); load: the 1-minute load average before the run.",
        "",
        "| run | workers | time (s) | CPU (s) | CPU % | peak RSS, largest (MiB) "
        "| peak RSS, all (MiB) | others (cores) | load | bytes | PSNR (dB) | SHA-256 of the file |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for number, row in enumerate(rows, 1):
        lines.append(
            f"| {number} | {row['workers']} | {row['seconds']:.1f} | {row['cpu_s']:.1f} "
            f"| {row['cpu_percent']:.0f} % | {row['peak_rss_mib']:.0f} "
            f"| {row['peak_total_rss_mib']:.0f} | {row['others_cores']:.2f} | {row['load']:.2f} "
            f"| {row['bytes']:,} | {row['psnr']:.2f} | `{row['sha256'][:16]}` |"
        )
    same = len({row["sha256"] for row in rows}) == 1
    lines += ["", "The files are " + ("byte for byte identical." if same else "**not** identical.")]
    lines += ["", analysis(rows, os.cpu_count() or 1), ""]
    for label, subset in (
        ("all runs", rows),
        (
            "runs where other processes used under 0.1 core",
            [r for r in rows if r["others_cores"] < 0.1],
        ),
    ):
        times = {}
        for row in subset:
            times.setdefault(row["workers"], []).append(row["seconds"])
        if len(times) < 2:
            lines.append(f"- Median time over {label}: not every worker count has one.")
            continue
        base = statistics.median(times[min(times)])
        lines.append(
            f"- Median time over {label}: "
            + ", ".join(
                f"{w} worker{'s' if w > 1 else ''} {statistics.median(t):.1f} s "
                f"({base / statistics.median(t):.2f}x, {len(t)} run{'s' if len(t) > 1 else ''})"
                for w, t in sorted(times.items())
            )
            + "."
        )
    return "\n".join(lines)


def analysis(rows: list[dict], cores: int) -> str:
    """What bounds the gain: how busy one worker kept the cores, against what the workers gained
    and the memory they took (over the runs that other processes left alone)."""
    clean = [row for row in rows if row["others_cores"] < 0.1]
    one = [row for row in clean if row["workers"] == 1]
    more = [row for row in clean if row["workers"] > 1]
    if not one or not more:
        return "No run of each kind had the machine to itself: no analysis."
    busy = statistics.median(row["cpu_percent"] for row in one) / 100
    gain = statistics.median(r["seconds"] for r in one) / statistics.median(
        r["seconds"] for r in more
    )
    memory = statistics.median(r["peak_total_rss_mib"] for r in more) - statistics.median(
        r["peak_total_rss_mib"] for r in one
    )
    return (
        f"One worker kept {busy:.2f} of the {cores} cores busy (the Python half of a step on one "
        "thread, the compiled rasterizer on all), so workers could gain at most "
        f"{cores / busy:.2f}x here; they gained {gain:.2f}x (medians of the runs the machine's "
        f"other work left alone), for {memory:.0f} MiB more memory (every worker holds torch "
        "and its region's fit). The bound is higher where a step's Python half weighs more: a "
        f"slice fitted at 128 % CPU could gain up to {cores / 1.28:.2f}x."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int)
    parser.add_argument("--iterations", type=int)
    parser.add_argument("--repeats", type=int)
    parser.add_argument("--wait", type=int, help="seconds to wait at most for an idle machine")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    cfg = dict(QUICK if args.quick else FULL)
    given = {
        "size": args.size,
        "iterations": args.iterations,
        "repeats": args.repeats,
        "wait": args.wait,
    }
    cfg.update({key: value for key, value in given.items() if value})
    rows = []
    for _ in range(cfg["repeats"]):  # round robin: a change of load touches every variant
        for workers in args.workers:
            wait_until_idle(cfg["wait"])
            row = run_child({**cfg, "workers": workers})
            print(json.dumps(row), flush=True)
            rows.append(row)
    command = "flock /tmp/bench.lock python benchmarks/bench_regions.py " + " ".join(sys.argv[1:])
    text = markdown(cfg, rows, command.strip())
    print(text)
    if not (args.quick or args.no_record):
        record_section("regions", text)


if __name__ == "__main__":
    main()
