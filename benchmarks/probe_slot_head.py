"""Probe: the gated blend's slot head against the plain sum and a fixed split, fixed densities.

Run:  python benchmarks/probe_slot_head.py IMAGE ARM DENSITY [DENSITY ...]
      ARM: sum | slot (blend="slot_gated") | fixed (the slot head frozen at zero: every
      Gaussian half normalised, half summed)

``compress`` with the ``default`` preset at each density, one thread; prints and appends one
JSON row a file (bytes on disk, PSNR of the decoded file) to benchmarks/results/slot_head.jsonl.
Written for the slot head of commit 6fe881c, measured there and not kept (docs/method.md,
"A gated blend").
"""

import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch  # noqa: E402
from _images import load  # noqa: E402
from bench_rd import quality  # noqa: E402

import napari_sgi.core.model as model_module  # noqa: E402
from napari_sgi import compress  # noqa: E402
from napari_sgi.reader import SGIFile  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "slot_head.jsonl"


def main() -> None:
    torch.set_num_threads(1)
    image_name, arm = sys.argv[1], sys.argv[2]
    densities = [float(d) for d in sys.argv[3:]]
    blend = {"sum": "sum", "slot": "slot_gated", "fixed": "slot_gated"}[arm]
    if arm == "fixed":
        original = model_module.BlendHead.__init__

        def frozen(self, f, k, per_seed=True):
            original(self, f, k, per_seed)
            self.slots.requires_grad_(False)

        model_module.BlendHead.__init__ = frozen
    image = load(image_name)
    pixels = image.shape[0] * image.shape[1]
    for density in densities:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "image.sgi"
            started = time.perf_counter()
            compress(image, path, preset="default", density=density, blend=blend, resume=False)
            seconds = time.perf_counter() - started
            nbytes = path.stat().st_size
            psnr, _ = quality(SGIFile(path).render_slice(0), image)
        row = {
            "image": image_name,
            "arm": arm,
            "density": density,
            "bytes": nbytes,
            "bpp": 8 * nbytes / pixels,
            "psnr": psnr,
            "seconds": seconds,
        }
        print(json.dumps(row), flush=True)
        with open(RESULTS, "a") as out:
            out.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
