"""A z-stack under size targets, against JPEG 2000, JPEG XL and JPEG at each slice's share.

Run:  python benchmarks/bench_stack.py measure [--bpp 0.1 0.25 0.5] [--preset fast]
          [--overhead file region] [--threads 1]
      python benchmarks/bench_stack.py report [--no-record]

Eight consecutive slices (z 26-33) of the 60x256x256 uint16 z-stack, written as a ZYX TIFF and
compressed as a user would (``compress`` with a size target). Each slice is then compared as
``napari-sgi compare`` does it: every classic codec at the largest size not above that slice's
share of the file (``napari_sgi.compare.report.compare_files``), PSNR of each decoded slice in
its own dtype; the table gives the mean over the slices and the bytes of all of them.
``--overhead region`` charges every region the file's own header bytes as well (the rule
before: ``targeting.FILE_OVERHEAD_BYTES`` 0, ``REGION_OVERHEAD_BYTES`` 215); ``file`` is
today's. Rows are appended to benchmarks/results/stack.jsonl; ``report`` records
docs/benchmarks.md ("stack").
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _images import DATA  # noqa: E402
from _record import (  # noqa: E402
    append_row,
    git_revision,
    machine_description,
    read_rows,
    record_section,
)

RESULTS = Path(__file__).resolve().parent / "results" / "stack.jsonl"
STACK = "fluo_nuclei3d_zstack_napari_bio.tif"
SLICES = slice(26, 34)
CODECS = ("j2k", "jxl", "jpeg")


def measure(args) -> None:
    import tifffile
    import torch

    from napari_sgi import compress
    from napari_sgi.compare.codecs import parse_codecs
    from napari_sgi.compare.report import compare_files
    from napari_sgi.encode import targeting

    torch.set_num_threads(args.threads)
    stack = tifffile.imread(DATA / STACK)[SLICES]
    pixels = stack.size
    rules = {"file": (targeting.FILE_OVERHEAD_BYTES, targeting.REGION_OVERHEAD_BYTES)}
    rules["region"] = (0, sum(rules["file"]))
    with tempfile.TemporaryDirectory() as tmp:
        original = Path(tmp) / "stack.tif"
        tifffile.imwrite(original, stack, metadata={"axes": "ZYX"})
        for bpp in args.bpp:
            for overhead in args.overhead:
                targeting.FILE_OVERHEAD_BYTES, targeting.REGION_OVERHEAD_BYTES = rules[overhead]
                path = Path(tmp) / "stack.sgi"
                started = time.perf_counter()
                compress(original, path, preset=args.preset, bpp=bpp, resume=False)
                seconds = time.perf_counter() - started
                report = compare_files(original, path, parse_codecs(",".join(CODECS))).to_dict()
                row = {
                    "preset": args.preset,
                    "asked_bpp": bpp,
                    "overhead": overhead,
                    "bytes": report["file_bytes"],
                    "bpp": 8 * report["file_bytes"] / pixels,
                    "seconds": seconds,
                    "revision": git_revision(),
                    **{
                        key: {"psnr": codec["mean_psnr"], "bytes": codec["bytes"]}
                        for key, codec in report["codecs"].items()
                    },
                }
                print(json.dumps(row), flush=True)
                append_row(RESULTS, row)
    targeting.FILE_OVERHEAD_BYTES, targeting.REGION_OVERHEAD_BYTES = rules["file"]


def report(args) -> None:
    rows = read_rows(RESULTS)
    lines = [
        "Command: `python benchmarks/bench_stack.py measure --overhead file region`, then "
        "`python benchmarks/bench_stack.py report`.",
        "",
        f"Machine: {machine_description()}.",
        "",
        "Eight slices (z 26-33) of the 256x256 uint16 z-stack, one file with a size target. "
        "PSNR: mean over the slices of each decoded slice; the classic codecs at the largest "
        "size not above each slice's share of the file (`napari-sgi compare`), bytes of all "
        "eight. `overhead`: `file` pays the file's own header bytes once (today), `region` "
        "charged them to every slice (before).",
        "",
        "| preset | asked | overhead | file bpp | SGI dB | JPEG 2000 dB (bytes) | "
        "JPEG XL dB (bytes) | JPEG dB (bytes) | s | revision |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def cell(codec: dict) -> str:
        return f"{codec['psnr']:.2f} ({codec['bytes']:,})" if codec["psnr"] is not None else "–"

    for r in rows:
        lines.append(
            f"| {r['preset']} | {r['asked_bpp']:g} bpp | {r['overhead']} | {r['bpp']:.4f} | "
            f"{r['sgi']['psnr']:.2f} | {cell(r['j2k'])} | {cell(r['jxl'])} | {cell(r['jpeg'])} | "
            f"{r['seconds']:.0f} | {r['revision']} |"
        )
    text = "\n".join(lines)
    print(text)
    if not args.no_record:
        record_section("stack", text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("measure")
    run.add_argument("--preset", default="fast")
    run.add_argument("--bpp", type=float, nargs="+", default=[0.1, 0.25, 0.5])
    run.add_argument("--overhead", nargs="+", choices=("file", "region"), default=["file"])
    run.add_argument("--threads", type=int, default=1)
    rep = sub.add_parser("report")
    rep.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    measure(args) if args.command == "measure" else report(args)


if __name__ == "__main__":
    main()
