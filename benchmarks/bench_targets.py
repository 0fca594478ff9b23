"""Targets and defaults on the real sample images: does the file land where the user asked?

Run:  python benchmarks/bench_targets.py measure IMAGE [--threads 1] [--kinds psnr]
          [--sizes 0.25]                                                   (one image)
      python benchmarks/bench_targets.py report [--no-record]          (table, docs/benchmarks.md)

For each image: ``compress`` with no options (the ``default`` preset) against JPEG and JPEG 2000
at the same bytes; size targets of 0.1, 0.25, 0.5 and 1 bpp (does the file land within ±5 %?);
three PSNR targets across the image's curve (is the decoded PSNR at or above, and within 0.3 dB?);
and, for one size and one PSNR target, a plain fit at the density the target ended on, to compare
times (the target's pilots and control should cost at most 1.5x that fit). Sizes are bytes on
disk; PSNR is measured on the file decoded by the reader, in its own dtype, relative to the data
range (bench_rd.quality). Each image's run writes benchmarks/results/targets_<image>.json, so
that images can run side by side, one process each.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bd import bd_psnr  # noqa: E402
from _images import IMAGES, load  # noqa: E402
from _record import git_revision, machine_description, record_section  # noqa: E402
from bench_rd import at_rate, baseline_sweep, quality  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
SIZE_TARGETS = (0.1, 0.25, 0.5, 1.0)
# The rate-distortion issue's top rate: 2 bpp on RGB (1 bpp on one channel, in SIZE_TARGETS).
EXTRA_SIZE_TARGETS = {"ihc": (2.0,)}
# Across each image's curve (docs/benchmarks.md, "rd": compact from ~0.1 to ~0.7 bpp).
PSNR_TARGETS = {
    "nuclei": (32.6, 33.0, 33.4),
    "ihc": (25.0, 27.0, 29.0),
    "zslice": (28.0, 30.0, 31.5),
}
TIMED = {"bpp": 0.25, "psnr": 1}  # which size target, and which PSNR target (index), to time


def _decoded(path: Path):
    from napari_sgi.reader import SGIFile

    return SGIFile(path).render_slice(0)


def _run(image, path: Path, **options) -> dict:
    from napari_sgi import compress

    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = compress(image, path, **options)
    seconds = time.perf_counter() - started
    psnr, ssim = quality(_decoded(path), image)
    from napari_sgi.file.container import SGIReader

    with SGIReader(path) as reader:
        regions = reader.header["slices"][0]["regions"]
    gaussians = sum(r["model"]["seed_count"] * r["model"]["gaussians_per_seed"] for r in regions)
    return {
        "options": {k: v for k, v in options.items() if k != "preset"},
        "bytes": path.stat().st_size,
        "bpp": 8 * path.stat().st_size / (image.shape[0] * image.shape[1]),
        "psnr": psnr,
        "ssim": ssim,
        "seconds": seconds,
        "density": gaussians / (image.shape[0] * image.shape[1]),
        "warnings": [str(w.message) for w in caught if "Target" in w.category.__name__],
        "reported_psnr": result.psnr,
    }


KINDS = ("default", "bpp", "psnr")


def _with_targets(rows: list[dict]):
    """``(target row, row)`` for each row: a plain fit belongs to the target row before it."""
    target = None
    for row in rows:
        if not row["kind"].startswith("plain"):
            target = row
        yield target, row


def _kept_rows(result: Path, kinds: tuple[str, ...], sizes: tuple[float, ...]) -> list[dict]:
    """The rows of an earlier run that are not measured again."""
    if not result.exists():
        return []
    earlier = json.loads(result.read_text())
    return [
        {**row, "revision": row.get("revision", earlier["revision"])}
        for target, row in _with_targets(earlier["rows"])
        if target["kind"] not in kinds
        or (target["kind"] == "bpp" and target["options"]["bpp"] not in sizes)
    ]


def size_targets(name: str) -> tuple[float, ...]:
    """The size targets (bpp) measured on image ``name``."""
    return SIZE_TARGETS + EXTRA_SIZE_TARGETS.get(name, ())


def measure(name: str, kinds: tuple[str, ...] = KINDS, sizes: tuple[float, ...] = ()) -> dict:
    """Measure ``kinds`` of runs on an image (``sizes``: the size targets, by default the
    image's); the other kinds' rows of an earlier run are kept (each row names the revision it
    was measured at)."""
    sizes = sizes or size_targets(name)
    image = load(name)
    sweeps = baseline_sweep(image)
    result = RESULTS / f"targets_{name}.json"
    revision = git_revision()
    out = {"image": name, "revision": revision, "rows": _kept_rows(result, kinds, sizes)}
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)

        def step(kind: str, **options) -> dict:
            row = {"kind": kind, **_run(image, folder / f"{len(out['rows'])}.sgi", **options)}
            for codec in ("JPEG", "JPEG 2000", "JPEG XL"):
                row[codec] = at_rate(sweeps[codec], row["bpp"])
            row["revision"] = revision
            out["rows"].append(row)
            print(json.dumps({"image": name, **row}), flush=True)
            result.write_text(json.dumps(out, indent=1))  # what is measured survives a stop
            return row

        if "default" in kinds:
            step("default")
        for bpp in sizes if "bpp" in kinds else ():
            row = step("bpp", bpp=bpp)
            if bpp == TIMED["bpp"]:
                step("plain fit at that density", density=round(row["density"], 6))
        for i, target in enumerate(PSNR_TARGETS[name] if "psnr" in kinds else ()):
            row = step("psnr", psnr=target)
            if i == TIMED["psnr"]:
                step("plain fit at that density", density=round(row["density"], 6))

    def place(item: tuple[int, tuple[dict, dict]]) -> tuple:  # kind, target, then as measured
        index, (target, _) = item
        asked = target["options"].get("bpp", target["options"].get("psnr", 0))
        return KINDS.index(target["kind"]), asked, index

    rows = sorted(enumerate(_with_targets(out["rows"])), key=place)
    out["rows"] = [row for _, (_, row) in rows]
    result.write_text(json.dumps(out, indent=1))
    return out


def summary() -> list[str]:
    """What the rows say about the issue's bars: sizes within 5 %, PSNR at or above and within
    0.3 dB, time at most 1.5x a plain fit, the default above JPEG."""
    sizes, qualities, times, defaults = [], [], [], []
    for name in IMAGES:
        path = RESULTS / f"targets_{name}.json"
        if not path.exists():
            continue
        rows = json.loads(path.read_text())["rows"]
        for before, row in zip([None, *rows], rows, strict=False):
            if row["kind"] == "bpp":
                sizes.append(100 * (row["bpp"] / row["options"]["bpp"] - 1))
            elif row["kind"] == "psnr":
                qualities.append(row["psnr"] - row["options"]["psnr"])
            elif row["kind"].startswith("plain"):
                times.append((before["kind"], before["seconds"] / row["seconds"]))
            elif row["kind"] == "default" and row["JPEG"] is not None:
                defaults.append(
                    f"{name} {row['psnr'] - row['JPEG']:+.2f} dB at {row['bpp']:.3f} bpp"
                )
    within = sum(abs(off) <= 5 for off in sizes)
    hit = sum(0 <= off <= 0.3 for off in qualities)
    return [
        f"Summary: size targets within ±5 %: {within} of {len(sizes)} "
        f"(off by {min(sizes, default=0):+.1f} to {max(sizes, default=0):+.1f} %); "
        f"PSNR targets at or above and within 0.3 dB: {hit} of {len(qualities)} "
        f"({min(qualities, default=0):+.2f} to {max(qualities, default=0):+.2f} dB); "
        "time against a plain fit at the density the target ended on: "
        + ", ".join(f"{kind} x{ratio:.2f}" for kind, ratio in times)
        + "; `compress` with no options against JPEG at the same size: "
        + ", ".join(defaults)
        + ".",
        "",
    ]


# The rate-distortion issue's range for BD-PSNR against each codec.
BD_RANGE = (0.1, 1.0)


def curve_against_codecs(name: str, rows: list[dict]) -> str:
    """BD-PSNR of the size targets' files (the default preset's curve) against each codec over
    ``BD_RANGE``, and how many of the files are above JPEG at their size."""
    files = sorted((row["bpp"], row["psnr"]) for row in rows if row["kind"] == "bpp")
    if len(files) < 2:
        return ""
    sweeps = baseline_sweep(load(name))
    rates, psnr = [b for b, _ in files], [p for _, p in files]
    gaps = []
    for codec, sweep in sweeps.items():
        result = bd_psnr(
            rates, psnr, [r["bpp"] for r in sweep], [r["psnr"] for r in sweep], BD_RANGE
        )
        if result is not None:
            gap, (low, high) = result
            gaps.append(f"{codec} {gap:+.2f} dB ({low:.2f}-{high:.2f} bpp)")
    above = [row["psnr"] > row["JPEG"] for row in rows if row["kind"] == "bpp" and row["JPEG"]]
    return (
        f"The size targets' files as a curve ({rates[0]:.2f}-{rates[-1]:.2f} bpp), BD-PSNR: "
        + ", ".join(gaps)
        + f"; above JPEG at {sum(above)} of the {len(above)} sizes JPEG reaches."
    )


def _fmt(value, digits=2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def report(record: bool) -> str:
    lines = [
        "Command: `python benchmarks/bench_targets.py measure IMAGE --threads 1` for each image "
        "(two at a time, one process each), then `python benchmarks/bench_targets.py report`.",
        "",
        f"Machine: {machine_description()}.",
        "",
    ]
    for name in IMAGES:
        path = RESULTS / f"targets_{name}.json"
        if not path.exists():
            continue
        data = json.loads(path.read_text())
        revisions = sorted({row.get("revision", data["revision"]) for row in data["rows"]})
        lines += [
            f"**{name}** ({IMAGES[name][1]}, revision {', '.join(revisions)})",
            "",
            "| run | asked | file bpp | off | PSNR dB | JPEG dB | JPEG 2000 dB | s | density |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        previous = None
        for row in data["rows"]:
            asked, off = "", ""
            if row["kind"] == "bpp":
                asked = f"{row['options']['bpp']:g} bpp"
                off = f"{100 * (row['bpp'] / row['options']['bpp'] - 1):+.1f} %"
            elif row["kind"] == "psnr":
                asked = f"{row['options']['psnr']:g} dB"
                off = f"{row['psnr'] - row['options']['psnr']:+.2f} dB"
            elif row["kind"].startswith("plain"):
                asked = f"(x{previous['seconds'] / row['seconds']:.2f} time)"
            lines.append(
                f"| {row['kind']} | {asked} | {row['bpp']:.4f} | {off} | {row['psnr']:.2f} | "
                f"{_fmt(row['JPEG'])} | {_fmt(row['JPEG 2000'])} | {row['seconds']:.0f} | "
                f"{row['density']:.4f} |"
            )
            if row["warnings"]:
                lines[-1] += " " + "; ".join(row["warnings"])
            previous = row
        lines += ["", curve_against_codecs(name, data["rows"]), ""]
    lines += summary()
    markdown = "\n".join(lines)
    if record:
        record_section("targets", markdown)
    return markdown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("measure")
    one.add_argument("image", choices=list(IMAGES))
    one.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's choice)")
    one.add_argument(
        "--kinds", nargs="+", default=list(KINDS), choices=KINDS, help="which runs to measure"
    )
    one.add_argument(
        "--sizes", nargs="+", type=float, default=[], help="which size targets (default: all)"
    )
    rep = sub.add_parser("report")
    rep.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    if args.command == "measure":
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        measure(args.image, tuple(args.kinds), tuple(args.sizes))
    else:
        print(report(not args.no_record))


if __name__ == "__main__":
    main()
