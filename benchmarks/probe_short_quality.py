"""Quality targets in short fits: where does ``compress(..., preset="fast", psnr=T)`` land?

Run:  python benchmarks/probe_short_quality.py [IMAGE:TARGET ...] [--threads 1]

One file a target (default: IHC 27 dB, the z-slice 30 dB, nuclei 33 dB, each in the middle of
its image's curve), measured decoded by the reader in its own dtype (bench_rd.quality). Prints a
JSON line a file; the figures are recorded by hand in docs/method.md ("Defaults and targets").
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _images import load  # noqa: E402
from bench_rd import quality  # noqa: E402

TARGETS = ("ihc:27", "zslice:30", "nuclei:33")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", default=list(TARGETS))
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    import torch

    from napari_sgi import compress
    from napari_sgi.reader import SGIFile

    torch.set_num_threads(args.threads)
    for item in args.targets:
        name, target = item.split(":")
        image = load(name)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "f.sgi"
            started = time.perf_counter()
            compress(image, path, preset=args.preset, psnr=float(target))
            seconds = time.perf_counter() - started
            psnr, _ = quality(SGIFile(path).render_slice(0), image)
            bpp = 8 * path.stat().st_size / (image.shape[0] * image.shape[1])
        row = {"image": name, "target": float(target), "psnr": round(psnr, 3)}
        print(json.dumps({**row, "bpp": round(bpp, 4), "s": round(seconds, 1)}), flush=True)


if __name__ == "__main__":
    main()
