"""Stacks and large slices end to end: throughput on dask workers, memory against depth, a 4096x4096
slice fitted region by region (memory, time, seams), time to the first rendered chunk, warm start.

Run:  python benchmarks/bench_volume.py [--quick] [--only SECTION ...] [--json] [--no-record]
      [--large-file PATH] [--record-first-chunk]

Sections (all on real data from ``shared/data``):

``throughput``
    Slices per minute compressing a sub-stack of the nuclei z-stack in-process (as shipped:
    torch's default threads, OpenMP threads sleeping while they wait; one thread), and on a
    ``distributed.LocalCluster`` of 1 and 2 single-threaded worker processes, with the CPU time
    every process spent.
``warm``
    Consecutive slices with and without warm start at several step counts.
``memory``
    Peak RSS of compressing a sub-stack of depth D and the same sub-stack four times deeper (4D).
``large``
    A 4096x4096 uint16 mosaic of real crops compressed region by region: peak RSS, time, and PSNR
    in 8-pixel bands along the region borders against a control band through the middle of the
    regions and against the interior; the same decoded with the regions blended (as written) and
    cut at the core borders (the same models, as files before blending were decoded).
``first_chunk``
    Fresh processes that open the large file and render one 512x512 chunk of level 0, or the
    chunk of the coarsest level (also after a first dask compute elsewhere, which leaves out
    dask's one-off scheduler lookup: it imports ``distributed`` when that is installed).

Each measurement runs in its own process (``--child``), so that its peak resident memory
(``ru_maxrss``; for a cluster, the main process plus every worker and nanny) is its own, and
records the 1-minute load average just before it starts. Figures are printed (JSON lines with
``--json``) and, for a full run of every section, recorded in docs/benchmarks.md ("volume");
``--only first_chunk --large-file FILE --record-first-chunk`` re-records just that table, on a
file that ``--only large --large-file FILE`` wrote and kept.
``--quick`` is a smoke run on tiny crops that records nothing.

Every child imports napari_sgi before torch, as an application does, so that the package's
``OMP_WAIT_POLICY=PASSIVE`` default takes effect. On a machine shared with other sessions, Linux's
autogroup scheduler gives each session an equal share of the CPU however many threads it runs:
wall-clock speed-ups are bounded by that share, CPU seconds are not.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STARTED = time.perf_counter()

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _record import record_section  # noqa: E402
from _volume_report import (  # noqa: E402
    first_chunk_markdown,
    markdown,
    mean_psnr,
    record_first_chunk,
    run_name,
)

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
ZSTACK = DATA / "fluo_nuclei3d_zstack_napari_bio.tif"  # 60 x 256 x 256 uint16
NUCLEI = DATA / "fluo_nuclei2d_stardist_dsb2018.tif"  # 512 x 512 uint16 (values 0..235)
SECTIONS = ("throughput", "warm", "memory", "large", "first_chunk")

# Sizes are as small as still meaningful on 2 shared cores; the whole run takes about 25 minutes.
FULL = {
    "preset": "fast",
    "z0": 26,
    "slices": 8,
    "crop": None,  # sub-stack z 26..33: nuclei through the whole depth
    "throughput_iterations": 200,
    "workers": [1, 2],
    "throughput_repeats": 3,
    "memory_depth": 8,
    "memory_iterations": 4,  # 4 steps reach every level and the rate term
    "large_size": 4096,
    "region_size": 1024,
    "region_margin": 32,
    "large_iterations": 60,
    "chunk_repeats": 3,
    "warm_cold_iterations": [50, 100, 200],
    "warm_iterations": [25, 50, 100, 200],
}
QUICK = {
    "preset": "fast",
    "z0": 28,
    "slices": 2,
    "crop": 64,
    "throughput_iterations": 3,
    "workers": [1, 2],
    "throughput_repeats": 1,
    "memory_depth": 2,
    "memory_iterations": 2,
    "large_size": 512,
    "region_size": 256,
    "region_margin": 32,
    "large_iterations": 3,
    "chunk_repeats": 1,
    "warm_cold_iterations": [3, 6],
    "warm_iterations": [3, 6],
}
# distributed samples every worker's stacks every 10 ms (its dashboard's profile); a variant runs
# the workers without that sampler to show what it costs a fit
NO_PROFILER = {"DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED": "False"}
BAND = 8  # pixels: the seam band is 4 pixels on either side of a region border
INTERIOR = 64  # pixels: the interior is at least this far from every region border
MOSAIC_OFFSET = 200  # mosaic tile edges fall at 312 and 824 (mod 1024), away from region borders


# --------------------------------------------------------------------------- data


def load_substack(z0: int, depth: int, crop: int | None):
    import tifffile

    stack = tifffile.imread(ZSTACK)[z0 : z0 + depth]
    return stack[:, :crop, :crop] if crop else stack


def build_mosaic(size: int, seed: int = 0):
    """A ``size`` x ``size`` uint16 mosaic of 512x512 real tiles: the 2D nuclei image (scaled to the
    z-stack's contrast) or 2x2 blocks of z-stack slices, each under one of the 8 flips/rotations."""
    import numpy as np
    import tifffile

    rng = np.random.default_rng(seed)
    stack = tifffile.imread(ZSTACK)
    nuclei = tifffile.imread(NUCLEI).astype(np.float64)
    scale = np.percentile(stack, 99.9) / np.percentile(nuclei, 99.9)
    nuclei = np.clip(np.rint(nuclei * scale), 0, 65535).astype(np.uint16)

    def dihedral(tile):
        tile = np.rot90(tile, int(rng.integers(4)))
        return tile[:, ::-1] if rng.integers(2) else tile

    def tile():
        if rng.random() < 0.4:
            return dihedral(nuclei)
        quads = [dihedral(stack[int(rng.integers(8, 52))]) for _ in range(4)]
        return np.block([[quads[0], quads[1]], [quads[2], quads[3]]])

    n = math.ceil((size + MOSAIC_OFFSET) / 512)
    mosaic = np.block([[tile() for _ in range(n)] for _ in range(n)])
    out = mosaic[MOSAIC_OFFSET : MOSAIC_OFFSET + size, MOSAIC_OFFSET : MOSAIC_OFFSET + size]
    return np.ascontiguousarray(out)


def write_tiff(path: Path, array) -> Path:
    import tifffile

    tifffile.imwrite(path, array)
    return path


# --------------------------------------------------------------------------- child processes


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _package_first() -> None:
    """Import napari_sgi before torch, as an application does: the package sets OpenMP's wait
    policy, which OpenMP reads once, when torch loads it."""
    import napari_sgi  # noqa: F401


def _warm_up_slice() -> None:
    """On a cluster's worker: torch's threads as its fits use them, then :func:`_warm_up_local`."""
    _package_first()
    import torch

    torch.set_num_threads(max(1, int(os.environ.get("NAPARI_SGI_THREADS", "1"))))
    _warm_up_local()


def _warm_up_local() -> None:
    """Import and run every piece of a compression once (torch, the compiled rasterizer, torchac,
    the file writer), so that timed runs do not include one-off imports and compilations."""
    import numpy as np

    from napari_sgi import compress

    with tempfile.TemporaryDirectory() as folder:
        stack = np.arange(2 * 32 * 32, dtype=np.uint16).reshape(2, 32, 32)
        compress(stack, Path(folder) / "warm.sgi", preset="fast", iterations=2, device="cpu")


def _profiler_enabled() -> bool:
    import dask

    return bool(dask.config.get("distributed.worker.profile.enabled"))


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child_compress(args: dict) -> dict:
    """Compress a TIFF stack in-process (``workers`` 0) or on a LocalCluster; time the call, and
    the CPU time it took in every process."""
    _package_first()
    import torch

    from napari_sgi import compress

    workers = args["workers"]
    fit = {
        "preset": args["preset"],
        "iterations": args["iterations"],
        "device": "cpu",
        "axes": "ZYX",
        "resume": False,
    }
    out = {
        "workers": workers,
        "variant": args["variant"],
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "unset").lower(),
    }
    if workers == 0:
        if args.get("threads"):
            torch.set_num_threads(args["threads"])
        _warm_up_local()
        out["threads"] = torch.get_num_threads()
        out["load"] = _load()
        cpu, started = _cpu_s(), time.perf_counter()
        result = compress(
            args["input"], args["output"], warm_start=args.get("warm_start", False), **fit
        )
        out["seconds"] = time.perf_counter() - started
        out["cpu_s"] = out["busiest_cpu_s"] = _cpu_s() - cpu
        out["peak_rss_mib"] = _peak_mib()
    else:
        import logging

        from distributed import Client, LocalCluster

        started = time.perf_counter()
        with (
            LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.ERROR,
            ) as cluster,
            Client(cluster) as client,
        ):
            client.wait_for_workers(workers)
            client.run(_warm_up_slice)
            out["worker_profiler"] = sorted(set(client.run(_profiler_enabled).values()))
            out["cluster_start_s"] = time.perf_counter() - started
            out["threads"] = int(os.environ.get("NAPARI_SGI_THREADS", "1"))
            out["load"] = _load()
            worker_cpu = client.run(_cpu_s)
            cpu, started = _cpu_s(), time.perf_counter()
            result = compress(args["input"], args["output"], client=client, **fit)
            out["seconds"] = time.perf_counter() - started
            main_cpu = _cpu_s() - cpu
            spent = [v - worker_cpu[k] for k, v in client.run(_cpu_s).items()]
            out.update(
                main_cpu_s=main_cpu,
                worker_cpu_s=spent,
                cpu_s=main_cpu + sum(spent),
                busiest_cpu_s=max(spent),
            )
            tree = [_peak_mib()]
            tree += list(client.run(_peak_mib).values())
            tree += list(client.run(_peak_mib, nanny=True).values())
            out["peak_rss_mib"] = sum(tree)
            out["processes"] = len(tree)
    out.update(
        n_slices=result.n_slices,
        psnr=result.psnr,
        bytes=result.bytes,
        slice_psnr=result.slice_psnr,
        gaussians=result.gaussians,
    )
    return out


def child_memory(args: dict) -> dict:
    """Peak RSS of compressing one TIFF stack in-process, and the RSS before it started."""
    from napari_sgi import compress

    _warm_up_local()
    before = _peak_mib()
    load = _load()
    started = time.perf_counter()
    result = compress(
        args["input"],
        args["output"],
        preset=args["preset"],
        iterations=args["iterations"],
        device="cpu",
        axes="ZYX",
        resume=False,
    )
    return {
        "depth": result.n_slices,
        "load": load,
        "seconds": time.perf_counter() - started,
        "rss_before_mib": before,
        "peak_rss_mib": _peak_mib(),
        "psnr": result.psnr,
    }


def band_masks(size: int, region: int):
    """Boolean masks: pixels within BAND/2 of an inner region border; the same band through the
    middle of each region (control); pixels at least INTERIOR from every region border."""
    import numpy as np

    half = BAND // 2
    coords = np.arange(size)
    borders = np.arange(region, size, region)
    middles = np.arange(region // 2, size, region)

    def near(lines, reach):
        return (np.abs(coords[:, None] - lines[None, :]) < reach).any(axis=1)

    def band(lines):
        # pixel rows/cols [line - half, line + half)
        hit = (
            (coords[:, None] >= lines[None, :] - half) & (coords[:, None] < lines[None, :] + half)
        ).any(axis=1)
        return hit[:, None] | hit[None, :]

    edges = np.concatenate([[0], borders, [size]])
    far_1d = ~near(edges, INTERIOR)
    return band(borders), band(middles), far_1d[:, None] & far_1d[None, :]


def _psnr(decoded, original, mask, data_range: float) -> float:
    import numpy as np

    diff = decoded[mask].astype(np.float64) - original[mask].astype(np.float64)
    mse = float(np.mean(diff**2))
    return 10 * math.log10(data_range**2 / mse) if mse > 0 else math.inf


def _jump(image, lines) -> float:
    """Mean absolute difference between the two pixel rows (and columns) either side of lines."""
    import numpy as np

    image = image.astype(np.float64)
    rows = [np.abs(image[k] - image[k - 1]).mean() for k in lines]
    cols = [np.abs(image[:, k] - image[:, k - 1]).mean() for k in lines]
    return float(np.mean(rows + cols))


def child_large(args: dict) -> dict:
    """Compress the mosaic region by region; then decode level 0 and measure the seams."""
    from napari_sgi import compress
    from napari_sgi.core.regions import plan_regions
    from napari_sgi.reader import open_sgi

    size, region = args["size"], args["region_size"]
    image = build_mosaic(size)
    _warm_up_local()
    before = _peak_mib()
    load = _load()
    started = time.perf_counter()
    result = compress(
        image,
        args["output"],
        preset=args["preset"],
        iterations=args["iterations"],
        region_size=region,
        region_margin=args["region_margin"],
        device="cpu",
    )
    seconds = time.perf_counter() - started
    peak = _peak_mib()
    started = time.perf_counter()
    decoded = open_sgi(args["output"]).levels[0].compute()
    decode_s = time.perf_counter() - started
    cut = open_sgi(args["output"])
    for entry in cut.file.slices:  # the same models cut at the core borders
        entry.blend = 0
    out = {
        "size": size,
        "regions": len(plan_regions(size, size, region, args["region_margin"])),
        "load": load,
        "seconds": seconds,
        "rss_before_mib": before,
        "peak_rss_mib": peak,
        "decode_s": decode_s,
        "bytes": result.bytes,
        "encoder_psnr": result.psnr,
        "gaussians": result.gaussians,
        "blend": open_sgi(args["output"]).file.blend_width(0),
        "blended": seams(decoded, image, region),
        "cut": seams(cut.levels[0].compute(), image, region),
    }
    out["peak_rss_after_decode_mib"] = _peak_mib()
    return out


def seams(decoded, image, region: int) -> dict:
    """PSNR over the slice, in the border and control bands and the interior; jump ratios."""
    import numpy as np

    size = image.shape[0]
    data_range = float(image.max()) - float(image.min())
    border, control, interior = band_masks(size, region)
    borders = np.arange(region, size, region)
    middles = np.arange(region // 2, size, region)
    return {
        "psnr": _psnr(decoded, image, np.ones_like(border), data_range),
        "psnr_border_band": _psnr(decoded, image, border, data_range),
        "psnr_control_band": _psnr(decoded, image, control, data_range),
        "psnr_interior": _psnr(decoded, image, interior, data_range),
        # jump across a line in the decoded image over the same jump in the original
        "jump_ratio_border": _jump(decoded, borders) / _jump(image, borders),
        "jump_ratio_control": _jump(decoded, middles) / _jump(image, middles),
    }


def child_first_chunk(args: dict) -> dict:
    """Open a .sgi file in this fresh process and render one chunk of one level."""
    started = time.perf_counter()
    from napari_sgi.reader import CHUNK, open_sgi

    imported = time.perf_counter() - started
    if args.get("dask_warm"):  # dask's first compute looks for a distributed client
        import dask.array as da

        da.zeros(1).compute()
    load = _load()
    cpu, started = _cpu_s(), time.perf_counter()
    image = open_sgi(args["input"])
    opened = time.perf_counter() - started
    level = 0 if args["level"] == "level0" else len(image.levels) - 1
    array = image.levels[level]
    chunk = array[:CHUNK, :CHUNK].compute()
    total = time.perf_counter() - started
    from napari_sgi.reader import DECODE_THREADS

    return {
        "level": level,
        "shape": list(chunk.shape),
        "load": load,
        "cpu_s": _cpu_s() - cpu,
        "decode_threads": DECODE_THREADS,
        "import_s": imported,
        "open_s": opened,
        "first_chunk_s": total,
        "peak_rss_mib": _peak_mib(),
    }


CHILDREN = {
    "compress": child_compress,
    "memory": child_memory,
    "large": child_large,
    "first_chunk": child_first_chunk,
}


def run_child(name: str, args: dict, env: dict | None = None) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", name, json.dumps(args)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    if out.returncode != 0:
        sys.stderr.write(out.stderr[-4000:])
        raise RuntimeError(f"child {name} {args} failed with status {out.returncode}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- sections


def section_throughput(cfg: dict, work: Path, say) -> dict:
    """Every run ``throughput_repeats`` times, round robin so that a change of load touches all;
    each run's figures are those of its median-time repeat."""
    stack = load_substack(cfg["z0"], cfg["slices"], cfg["crop"])
    source = write_tiff(work / "substack.tif", stack)
    runs = [
        ({"workers": 0, "variant": "shipped"}, None),
        ({"workers": 0, "variant": "one_thread", "threads": 1}, None),
    ]
    runs += [({"workers": n, "variant": f"workers{n}"}, None) for n in cfg["workers"]]
    runs += [
        ({"workers": n, "variant": f"workers{n}-noprofile"}, NO_PROFILER) for n in cfg["workers"]
    ]
    repeats: list[list[dict]] = [[] for _ in runs]
    for repeat in range(cfg["throughput_repeats"]):
        for number, (extra, env) in enumerate(runs):
            row = run_child(
                "compress",
                {
                    "input": str(source),
                    "preset": cfg["preset"],
                    "output": str(work / f"tp{number}-{repeat}.sgi"),
                    "iterations": cfg["throughput_iterations"],
                    **extra,
                },
                env,
            )
            row["slices_per_min"] = 60 * row["n_slices"] / row["seconds"]
            repeats[number].append(row)
            say(
                "throughput",
                row,
                f"{run_name(row):45s} {row['n_slices']} slices in "
                f"{row['seconds']:6.1f} s = {row['slices_per_min']:5.2f} slices/min, CPU "
                f"{row['cpu_s']:.1f} s (busiest process {row['busiest_cpu_s']:.1f} s), PSNR "
                f"{mean_psnr(row):.2f} dB, peak RSS {row['peak_rss_mib']:.0f} MiB, "
                f"load {row['load']}",
            )
    rows = []
    # The same fit gives the same PSNR every time: a difference means the code changed under a
    # running benchmark (a shared checkout), and the table says so.
    mixed = len({round(mean_psnr(r), 6) for done in repeats for r in done}) > 1
    for done in repeats:
        row = dict(sorted(done, key=lambda r: r["seconds"])[(len(done) - 1) // 2])
        row.update(runs_s=[r["seconds"] for r in done], loads=[r["load"] for r in done])
        rows.append(row)
    ratios = {}
    for suffix in ("", "-noprofile"):
        by_workers = {
            r["workers"]: r
            for r in rows
            if r["workers"] and r["variant"] == f"workers{r['workers']}{suffix}"
        }
        if 1 not in by_workers or 2 not in by_workers:
            continue
        one, two = by_workers[1], by_workers[2]
        # in-process runs are compared with the default 1-worker run
        for row in [one, two] + ([r for r in rows if not r["workers"]] if not suffix else []):
            row["vs_one_worker"] = one["seconds"] / row["seconds"]
        # on a dedicated core per worker, a run takes about its busiest worker's CPU time
        ratios[suffix] = (
            one["seconds"] / two["seconds"],
            one["busiest_cpu_s"] / two["busiest_cpu_s"],
        )
        wall, cpu = ratios[suffix]
        say(
            "throughput",
            {
                "variant": suffix or "default",
                "speedup_2_vs_1": wall,
                "projected_speedup_2_vs_1": cpu,
            },
            f"2 workers vs 1{suffix and ', profiler off'} (medians): {wall:.2f}x wall clock; "
            f"{cpu:.2f}x from the busiest worker's CPU time (a dedicated core per worker)",
        )
    speedup, projected = ratios.get("", (None, None))
    return {
        "rows": rows,
        "speedup": speedup,
        "projected": projected,
        "ratios": ratios,
        "shape": list(stack.shape),
        "mixed": mixed,
    }


def section_warm(cfg: dict, work: Path, say, reuse: dict | None) -> dict:
    """Cold and warm runs of the same consecutive slices, in-process as shipped; the cold run at
    the throughput section's step count is reused from it when it ran."""
    stack = load_substack(cfg["z0"], cfg["slices"], cfg["crop"])
    source = write_tiff(work / "warm.tif", stack)
    rows = []
    for warm, counts in ((False, cfg["warm_cold_iterations"]), (True, cfg["warm_iterations"])):
        for iterations in counts:
            reused = not warm and reuse is not None and iterations == cfg["throughput_iterations"]
            if reused:
                row = dict(reuse)
            else:
                row = run_child(
                    "compress",
                    {
                        "input": str(source),
                        "workers": 0,
                        "output": str(work / f"warm{warm}{iterations}.sgi"),
                        "preset": cfg["preset"],
                        "iterations": iterations,
                        "warm_start": warm,
                        "variant": "shipped",
                    },
                )
            row.update(
                warm_start=warm, iterations=iterations, mean_psnr=mean_psnr(row), reused=reused
            )
            rows.append(row)
            say(
                "warm",
                row,
                f"{'warm' if warm else 'cold'} {iterations:4d} steps: "
                f"{row['seconds']:6.1f} s, mean PSNR {row['mean_psnr']:.2f} dB, "
                f"{row['bytes']} bytes (load {row['load']}{', reused' if reused else ''})",
            )
    matches = equal_quality(rows)
    for m in matches:
        say(
            "warm",
            m,
            f"cold {m['cold_iterations']} steps ({m['cold_psnr']:.2f} dB, "
            f"{m['cold_s']:.1f} s) = "
            + (
                f"warm at {'<=' if m['upper_bound'] else '~'}{m['warm_iterations']:.0f} steps, "
                f"{m['warm_s']:.1f} s: {m['saved_s']:.1f} s saved ({m['saved_fraction']:.0%})"
                if m["warm_iterations"] is not None
                else "not reached by the warm runs"
            ),
        )
    return {"rows": rows, "matches": matches}


def equal_quality(rows: list[dict]) -> list[dict]:
    """For each cold run, the warm step count (and time) at which the warm runs' mean PSNR reaches
    the cold PSNR, interpolated linearly in log(steps) between measured warm runs."""
    warm = sorted((r for r in rows if r["warm_start"]), key=lambda r: r["iterations"])
    out = []
    for cold in (r for r in rows if not r["warm_start"]):
        target, match = cold["mean_psnr"], None
        for a, b in zip([None, *warm], warm, strict=False):
            if b["mean_psnr"] < target:
                continue
            if a is None:  # the fewest warm steps already match: an upper bound
                match = (b["iterations"], b["seconds"])
            else:
                t = (target - a["mean_psnr"]) / (b["mean_psnr"] - a["mean_psnr"])
                log_a, log_b = math.log(a["iterations"]), math.log(b["iterations"])
                match = (
                    math.exp(log_a + t * (log_b - log_a)),
                    a["seconds"] + t * (b["seconds"] - a["seconds"]),
                )
            break
        entry = {
            "cold_iterations": cold["iterations"],
            "cold_psnr": target,
            "cold_s": cold["seconds"],
            "warm_iterations": None,
            "warm_s": None,
            "saved_s": None,
            "saved_fraction": None,
            "upper_bound": bool(match and match[0] == warm[0]["iterations"]),
        }
        if match is not None:
            entry.update(
                warm_iterations=match[0],
                warm_s=match[1],
                saved_s=cold["seconds"] - match[1],
                saved_fraction=1 - match[1] / cold["seconds"],
            )
        out.append(entry)
    return out


def section_memory(cfg: dict, work: Path, say) -> dict:
    import numpy as np

    sub = load_substack(cfg["z0"], cfg["memory_depth"], cfg["crop"])
    mirrored = np.concatenate([sub, sub[::-1]])  # continuous in z
    rows = []
    for name, stack in (
        ("D", sub),
        ("4D", np.tile(mirrored, (2, 1, 1))),
        ("16D", np.tile(mirrored, (8, 1, 1))),
    ):
        source = write_tiff(work / f"memory{name}.tif", stack)
        row = run_child(
            "memory",
            {
                "input": str(source),
                "output": str(work / f"mem{name}.sgi"),
                "preset": cfg["preset"],
                "iterations": cfg["memory_iterations"],
            },
        )
        rows.append(row)
        say(
            "memory",
            row,
            f"depth {row['depth']:3d}: peak RSS {row['peak_rss_mib']:.0f} MiB "
            f"(before compress {row['rss_before_mib']:.0f} MiB), {row['seconds']:.1f} s "
            f"(load {row['load']})",
        )
    growth = rows[1]["peak_rss_mib"] - rows[0]["peak_rss_mib"]
    growth16 = rows[2]["peak_rss_mib"] - rows[0]["peak_rss_mib"]
    say(
        "memory",
        {"growth_mib": growth, "growth_16_mib": growth16},
        f"growth from D to 4D: {growth:+.0f} MiB; to 16D: {growth16:+.0f} MiB",
    )
    return {
        "rows": rows,
        "growth": growth,
        "growth16": growth16,
        "slice_shape": list(sub.shape[1:]),
    }


def section_large(cfg: dict, path: Path, say) -> dict:
    row = run_child(
        "large",
        {
            "output": str(path),
            "size": cfg["large_size"],
            "region_size": cfg["region_size"],
            "region_margin": cfg["region_margin"],
            "preset": cfg["preset"],
            "iterations": cfg["large_iterations"],
        },
    )
    say(
        "large",
        row,
        f"{row['size']}x{row['size']} in {row['regions']} regions: "
        f"{row['seconds']:.0f} s, peak RSS {row['peak_rss_mib']:.0f} MiB (load {row['load']}); "
        f"encoder PSNR {row['encoder_psnr']:.2f} dB; decode {row['decode_s']:.1f} s",
    )
    for name in ("blended", "cut"):
        q = row[name]
        say(
            "large",
            q,
            f"  {name:8s} PSNR {q['psnr']:.2f} dB: border band "
            f"{q['psnr_border_band']:.2f}, control band {q['psnr_control_band']:.2f}, interior "
            f"{q['psnr_interior']:.2f}; jump ratio border {q['jump_ratio_border']:.3f} vs control "
            f"{q['jump_ratio_control']:.3f}",
        )
    return {"row": row, "path": str(path)}


def section_first_chunk(cfg: dict, path: str, say) -> list[dict]:
    rows = []
    for name, level, dask_warm in (
        ("level0", "level0", False),
        ("coarsest", "coarsest", False),
        ("coarsest, dask warmed", "coarsest", True),
    ):
        runs = [
            run_child("first_chunk", {"input": path, "level": level, "dask_warm": dask_warm})
            for _ in range(cfg["chunk_repeats"])
        ]
        row = {
            key: statistics.median(r[key] for r in runs)
            for key in ("first_chunk_s", "open_s", "import_s", "peak_rss_mib", "cpu_s")
        }
        row.update(
            name=name,
            level=runs[0]["level"],
            shape=runs[0]["shape"],
            decode_threads=runs[0]["decode_threads"],
            loads=[r["load"] for r in runs],
            runs=[r["first_chunk_s"] for r in runs],
        )
        rows.append(row)
        shape = "x".join(map(str, row["shape"]))
        say(
            "first_chunk",
            row,
            f"{name:8s} (level {row['level']}, chunk {shape}): open + "
            f"render {row['first_chunk_s']:.2f} s, CPU {row['cpu_s']:.2f} s (open "
            f"{row['open_s']:.3f} s; imports before "
            f"it {row['import_s']:.1f} s), median of {len(runs)} fresh processes "
            f"(loads {row['loads']})",
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny smoke run, records nothing")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, help="run only these sections")
    parser.add_argument("--json", action="store_true", help="print JSON lines")
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument(
        "--large-file",
        type=Path,
        help="where section large writes its file (kept "
        "after the run); first_chunk alone reads an existing one from there",
    )
    parser.add_argument(
        "--record-first-chunk",
        action="store_true",
        help="with --only first_chunk: replace only that table in the record",
    )
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(CHILDREN[args.child[0]](json.loads(args.child[1]))))
        return
    cfg = QUICK if args.quick else FULL
    sections = args.only or list(SECTIONS)
    if (
        "first_chunk" in sections
        and "large" not in sections
        and not (args.large_file and args.large_file.exists())
    ):
        parser.error("first_chunk needs the file that the section large writes (or --large-file)")

    if args.record_first_chunk and (sections != ["first_chunk"] or args.quick):
        parser.error("--record-first-chunk goes with --only first_chunk (and no --quick)")

    def say(section: str, row: dict, text: str) -> None:
        print(
            json.dumps({"section": section, **row}) if args.json else f"[{section}] {text}",
            flush=True,
        )

    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench_volume_") as folder:
        work = Path(folder)
        if "throughput" in sections:
            results["throughput"] = section_throughput(cfg, work, say)
        if "warm" in sections:
            reuse = next(
                (
                    r
                    for r in results.get("throughput", {}).get("rows", [])
                    if r["variant"] == "shipped"
                ),
                None,
            )
            results["warm"] = section_warm(cfg, work, say, reuse)
        if "memory" in sections:
            results["memory"] = section_memory(cfg, work, say)
        large_file = args.large_file or work / "large.sgi"
        if "large" in sections:
            results["large"] = section_large(cfg, large_file, say)
        if "first_chunk" in sections:
            results["first_chunk"] = section_first_chunk(cfg, str(large_file), say)
    minutes = (time.perf_counter() - STARTED) / 60
    print(f"total {minutes:.1f} min", flush=True)
    if args.record_first_chunk:
        command = "python benchmarks/bench_volume.py --only first_chunk --large-file FILE"
        record_first_chunk("\n".join(first_chunk_markdown(cfg, results["first_chunk"], command)))
        return
    if args.only:
        return
    text = markdown(
        cfg,
        results,
        "python benchmarks/bench_volume.py",
        minutes,
        zstack=ZSTACK.name,
        nuclei=NUCLEI.name,
        band=BAND,
        interior=INTERIOR,
    )
    if args.quick:
        print(text)  # checks the report; a smoke run records nothing
    elif not args.no_record:
        record_section("volume", text)


if __name__ == "__main__":
    main()
