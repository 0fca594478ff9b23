"""The Markdown that bench_volume.py records in docs/benchmarks.md (section "volume").

The measuring is in bench_volume.py; this module only turns its figures (the ``results`` of its
sections, and its configuration ``cfg``) into the section's text: :func:`markdown` for a full
run, :func:`first_chunk_markdown` and :func:`record_first_chunk` for the first-chunk table alone.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

from _record import BENCHMARKS_MD, git_revision, machine_description


def mean_psnr(row: dict) -> float:
    values = [p for p in row["slice_psnr"] if p is not None and math.isfinite(p)]
    return statistics.fmean(values)


def run_name(row: dict) -> str:
    if row["workers"]:
        name = f"{row['workers']} worker{'s' if row['workers'] > 1 else ''}"
        return name + (", profiler off" if row["variant"].endswith("noprofile") else "")
    threads = f"{row['threads']} thread{'s' if row['threads'] > 1 else ''}"
    return f"in-process, {threads}" + (" (as shipped)" if row["variant"] == "shipped" else "")


def autogroup_enabled() -> bool:
    try:
        return Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1"
    except OSError:
        return False


def markdown(
    cfg: dict,
    results: dict,
    command: str,
    minutes: float,
    *,
    zstack: str,
    nuclei: str,
    band: int,
    interior: int,
) -> str:
    """The whole section: machine and data, then a table (and its reading) per measurement.

    ``zstack`` and ``nuclei`` name the data files; ``band`` and ``interior`` are the seam
    geometry (pixels) that the section large measured with.
    """
    lines = _preamble(cfg, command, minutes, zstack, nuclei)
    lines += _throughput(cfg, results["throughput"])
    lines += _warm(cfg, results["warm"])
    lines += _memory(cfg, results["memory"])
    lines += _large(cfg, results["large"], band, interior)
    lines += first_chunk_markdown(cfg, results["first_chunk"])
    return "\n".join(lines)


def _preamble(cfg: dict, command: str, minutes: float, zstack: str, nuclei: str) -> list[str]:
    lines = [
        "## Stacks and large slices (issue: volume)",
        "",
        f"Machine: {machine_description()}, shared with other sessions (the load column is the "
        f"1-minute load average just before each measurement). Revision `{git_revision()}`. "
        f"Command: `{command}` ({minutes:.0f} min in all).",
        "",
        f"Data: the z-stack `{zstack}` (60x256x256 uint16) and `{nuclei}` (512x512). "
        f"Preset `{cfg['preset']}` with short fits (step counts given) to keep the whole run under "
        "about 25 minutes; every measurement is its own process, which imports napari_sgi before "
        "torch (so its `OMP_WAIT_POLICY=PASSIVE` default applies) and warms up what a fit uses "
        "before the timer. Peak RSS is `ru_maxrss`.",
        "",
    ]
    if autogroup_enabled():
        lines += [
            "This kernel schedules by autogroup (`/proc/sys/kernel/sched_autogroup_enabled` = 1): "
            "each session gets an equal share of the 2 cores however many threads it runs, so with "
            "other sessions busy a second worker cannot get a second core, and OpenMP threads that "
            "spin while they wait burn the session's share. Wall-clock speed-ups here are bounded "
            "by that; CPU seconds are not.",
            "",
        ]
    return lines


def _throughput(cfg: dict, tp: dict) -> list[str]:
    lines = [
        f"### Throughput: {tp['shape'][0]} slices {tp['shape'][1]}x{tp['shape'][2]} "
        f"(z {cfg['z0']}..{cfg['z0'] + cfg['slices'] - 1}), {cfg['throughput_iterations']} steps",
        "",
        "In-process: `compress(tiff, ...)` as shipped (torch's default threads, OpenMP threads "
        "sleep while they wait) and with one thread. Workers: `LocalCluster(n_workers=N, "
        "threads_per_worker=1, processes=True)`, one torch thread each (`NAPARI_SGI_THREADS`; the "
        "fit gives the compiled kernel as many threads as torch), "
        "started and warmed up before the timer. CPU: user + system seconds of the call in every "
        "process (busiest: the worker, or the process, that spent most). Peak RSS of a cluster "
        f"run sums the main process, the workers and the nannies. Each run "
        f"{cfg['throughput_repeats']} times, round robin; figures of the median-time repeat.",
        "",
        "| run | loads | times (s) | median (s) | slices/min | vs 1 worker | CPU (s) | "
        "CPU per slice (s) | busiest (s) | mean PSNR (dB) | peak RSS (MiB) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in tp["rows"]:
        speed = f"{r['vs_one_worker']:.2f}x" if "vs_one_worker" in r else "-"
        lines.append(
            f"| {run_name(r)} | {', '.join(f'{x:.1f}' for x in r['loads'])} | "
            f"{', '.join(f'{x:.1f}' for x in r['runs_s'])} | {r['seconds']:.1f} | "
            f"{r['slices_per_min']:.2f} | {speed} | {r['cpu_s']:.1f} | "
            f"{r['cpu_s'] / r['n_slices']:.2f} | "
            f"{r['busiest_cpu_s']:.1f} | {mean_psnr(r):.2f} | {r['peak_rss_mib']:.0f} |"
        )
    if tp["mixed"]:
        lines += [
            "",
            "**Warning**: the repeats' PSNRs differ, so the code changed while this ran "
            "(another commit in the shared checkout); rows may compare different code.",
        ]
    if tp["speedup"]:
        lines += [
            "",
            f"Target: at least 1.7x with 2 workers on 2 cores. Measured "
            f"**{tp['speedup']:.2f}x** wall clock (medians) on the shared machine; "
            f"**{tp['projected']:.2f}x** projected for a dedicated core per worker (1 "
            "worker's CPU seconds over the busiest of 2 workers').",
        ]
    if "-noprofile" in tp["ratios"]:
        wall, cpu = tp["ratios"]["-noprofile"]
        lines += [
            "",
            "Profiler off: the workers run without distributed's statistical profiler "
            "(`distributed.worker.profile.enabled: false`, here through "
            "`DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED=False`), which otherwise samples "
            f"every worker's stacks every 10 ms: {wall:.2f}x wall clock, {cpu:.2f}x from "
            "CPU seconds.",
        ]
    lines.append("")
    return lines


def _warm(cfg: dict, warm: dict) -> list[str]:
    lines = [
        f"### Warm start: {cfg['slices']} consecutive slices (z {cfg['z0']}..)",
        "",
        "Cold: every slice fitted from scratch over the pyramid. Warm: each slice after the first "
        "starts from the previous slice's decoded model, full resolution only, for 40% of the "
        "steps. In-process, as shipped"
        + (
            f"; the cold run at {cfg['throughput_iterations']} steps is the throughput section's."
            if any(w["reused"] for w in warm["rows"])
            else "."
        ),
        "",
        "| start | steps | load | time (s) | mean PSNR (dB) | bytes |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for w in warm["rows"]:
        lines.append(
            f"| {'warm' if w['warm_start'] else 'cold'} | {w['iterations']} | "
            f"{w['load']:.2f} | {w['seconds']:.1f} | {w['mean_psnr']:.2f} | "
            f"{w['bytes']:,} |"
        )
    lines += [
        "",
        "Equal quality (warm steps and time interpolated in log(steps) between warm "
        "runs; <= where the fewest warm steps measured already match):",
        "",
        "| cold steps | cold PSNR (dB) | cold time (s) | warm steps for that PSNR | "
        "warm time (s) | time saved |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for m in warm["matches"]:
        if m["warm_iterations"] is None:
            lines.append(
                f"| {m['cold_iterations']} | {m['cold_psnr']:.2f} | {m['cold_s']:.1f} | "
                "not reached | - | - |"
            )
        else:
            bound = "<= " if m["upper_bound"] else "~"
            lines.append(
                f"| {m['cold_iterations']} | {m['cold_psnr']:.2f} | {m['cold_s']:.1f} | "
                f"{bound}{m['warm_iterations']:.0f} | {m['warm_s']:.1f} | "
                f"{m['saved_fraction']:.0%} |"
            )
    lines.append("")
    return lines


def _memory(cfg: dict, mem: dict) -> list[str]:
    lines = [
        f"### Peak memory against depth: slices {mem['slice_shape'][0]}x"
        f"{mem['slice_shape'][1]}, {cfg['memory_iterations']} steps",
        "",
        f"In-process compression of a TIFF of depth D = {cfg['memory_depth']} (z "
        f"{cfg['z0']}..), of the same slices four times over (4D, mirrored in z) and, to "
        "show a trend, sixteen times over (16D); identical settings. 'Before' is the RSS "
        "after imports and warm-up.",
        "",
        "| depth | load | time (s) | RSS before (MiB) | peak RSS (MiB) |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in mem["rows"]:
        lines.append(
            f"| {r['depth']} | {r['load']:.2f} | {r['seconds']:.1f} | "
            f"{r['rss_before_mib']:.0f} | {r['peak_rss_mib']:.0f} |"
        )
    lines += [
        "",
        f"Target: no growth with depth; measured {mem['growth']:+.0f} MiB from D to 4D "
        f"({mem['growth16']:+.0f} MiB from D to 16D).",
        "",
    ]
    return lines


def _large(cfg: dict, large: dict, band: int, interior: int) -> list[str]:
    r = large["row"]
    lines = [
        f"### A {r['size']}x{r['size']} slice, region by region",
        "",
        "A uint16 mosaic of 512x512 real tiles (the 2D nuclei image scaled to the stack's "
        "contrast, or 2x2 z-slices; random flips and rotations; tile edges away from region "
        f"borders), `region_size={cfg['region_size']}`, `region_margin={cfg['region_margin']}`: "
        f"{r['regions']} regions, {cfg['large_iterations']} steps each, {r['gaussians']:,} "
        f"Gaussians, {r['bytes']:,} bytes; in-process, as shipped. Seams, on the "
        f"decoded image (`open_sgi(...).levels[0].compute()`, {r['decode_s']:.1f} s): PSNR in an "
        f"{band}-pixel band along every inner region border (rows and columns at multiples of "
        f"{cfg['region_size']}), in the same band through the middle of every region (control: "
        f"same geometry, no border), and at least {interior} pixels from any border. Jump ratio: "
        "mean |difference| between the two pixel lines either side of a line, decoded over "
        "original (a seam shows as a ratio above the control's). Blended: the file as written, "
        f"regions blended with {r['blend']}-pixel linear ramps across the core borders (the "
        "pixels the encoder measured). Cut: the same models, each kept to its core (how files "
        "were decoded before blending).",
        "",
        "| decode | load | time (s) | peak RSS (MiB) | PSNR all | border band | control band | "
        "interior | jump ratio border | jump ratio control |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in ("blended", "cut"):
        q = r[name]
        lines.append(
            f"| {name} | {r['load']:.2f} | {r['seconds']:.0f} | {r['peak_rss_mib']:.0f} | "
            f"{q['psnr']:.2f} | {q['psnr_border_band']:.2f} | {q['psnr_control_band']:.2f} | "
            f"{q['psnr_interior']:.2f} | {q['jump_ratio_border']:.3f} | "
            f"{q['jump_ratio_control']:.3f} |"
        )
    q, c = r["blended"], r["cut"]
    lines += [
        "",
        f"Blended: border band {q['psnr_border_band'] - q['psnr_control_band']:+.2f} dB "
        "against the control band, jump across borders "
        f"{q['jump_ratio_border'] / q['jump_ratio_control']:.1f}x the control's. Cut: "
        f"{c['psnr_border_band'] - c['psnr_control_band']:+.2f} dB, "
        f"{c['jump_ratio_border'] / c['jump_ratio_control']:.1f}x.",
        "",
        f"Target: peak RSS under 4 GiB; measured {r['peak_rss_mib'] / 1024:.2f} GiB.",
        "",
    ]
    return lines


FIRST_CHUNK_HEADING = "### Time to the first rendered chunk of that file"


def first_chunk_markdown(cfg: dict, chunk: list[dict], command: str | None = None) -> list[str]:
    """The first-chunk table; with ``command``, as re-measured on its own (its revision and
    command, which differ from the rest of the section's)."""
    lines = [FIRST_CHUNK_HEADING, ""]
    if command:
        lines += [
            f"Re-measured on its own at revision `{git_revision()}`: `{command}`, on a file "
            "written by the section above's settings (the same slice, Gaussians and bytes).",
            "",
        ]
    lines += [
        "A fresh process imports `napari_sgi.reader`, then times `open_sgi(path)` and "
        "`levels[k][:512, :512].compute()` (nothing cached in the process; the file in the OS "
        f"page cache). Median of {cfg['chunk_repeats']} processes. The coarsest chunk needs "
        "every region of the slice: the reader decodes them on up to "
        f"{chunk[0].get('decode_threads', 'a few')} threads (CPU: the process's user + system "
        "seconds; CPU close to the time means the threads got one core between them). 'dask "
        "warmed': a first `dask.array` compute ran before the timer (dask's first compute "
        "imports `distributed` to look for a client: "
        f"{chunk[1]['first_chunk_s'] - chunk[2]['first_chunk_s']:.2f} s between the medians "
        "here).",
        "",
        "| chunk | loads | import (s) | open (s) | open + first chunk (s) | CPU (s) | runs (s) |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for c in chunk:
        lines.append(
            f"| {c['name']} (level {c['level']}, {'x'.join(map(str, c['shape']))}) | "
            f"{', '.join(f'{x:.2f}' for x in c['loads'])} | "
            f"{c['import_s']:.1f} | {c['open_s']:.3f} | {c['first_chunk_s']:.2f} | "
            f"{c['cpu_s']:.2f} | {', '.join(f'{x:.2f}' for x in c['runs'])} |"
        )
    lines += [
        "",
        "Target: under 1 s; measured "
        + ", ".join(f"{c['first_chunk_s']:.2f} s ({c['name']})" for c in chunk)
        + ".",
    ]
    return lines


def record_first_chunk(text: str) -> None:
    """Replace only the first-chunk part of the recorded volume section with ``text``."""
    doc = BENCHMARKS_MD.read_text()
    start = doc.index("<!-- volume:start -->")
    heading = doc.index(FIRST_CHUNK_HEADING, start)
    end = doc.index("<!-- volume:end -->", heading)
    BENCHMARKS_MD.write_text(doc[:heading] + text.rstrip() + "\n" + doc[end:])
