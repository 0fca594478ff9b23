"""Could the slices of a stack share one colour and covariance MLP? A probe.

Run:  python benchmarks/probe_shared_mlps.py [--slice 30] [--donors 20 29]
          [--densities 0.004 0.0115]

Each slice of a stack stores its own MLP weights, about 200 bytes on one channel: a quarter of a
0.1 bpp file of a 256x256 slice. Here slice ``--slice`` of the z-stack is fitted (``fast``, at a
fixed density, on one thread) with its own MLPs, and again with the MLPs of a fitted donor slice
frozen (learning rate 0 in the fit and out of the refinement): the features, scalings and
offsets must then make do with another slice's decoder. Prints, per fit, the weights' and the
attributes' bytes (the codec's sections) and the PSNR of the stored model, normalised by the
stack's range. A file sharing the donor's MLPs would store the attributes and the context's
prior (~40 bytes) only. Records nothing: docs/method.md holds the figures.
"""

from __future__ import annotations

import argparse
import json
import math

DATA = "fluo_nuclei3d_zstack_napari_bio.tif"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slice", type=int, default=30)
    parser.add_argument("--donors", type=int, nargs="+", default=[20, 29])
    parser.add_argument("--densities", type=float, nargs="+", default=[0.004, 0.0115])
    args = parser.parse_args()

    import sys
    from pathlib import Path

    import numpy as np
    import tifffile
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _images import DATA as data

    from napari_sgi.codec.model import encode_model
    from napari_sgi.core import fit as fit_module
    from napari_sgi.core import refine as refine_module
    from napari_sgi.core import schedule as schedule_module
    from napari_sgi.core.presets import configure

    torch.set_num_threads(1)
    stack = tifffile.imread(data / DATA)
    low, high = float(stack.min()), float(stack.max())
    frozen = {"on": False}
    learning_rate = schedule_module.Schedule.learning_rate
    refined = refine_module._parameters

    def rate(self, name, step, scale=1.0):
        if frozen["on"] and name in ("mlp_color", "mlp_cov"):
            return 0.0
        return learning_rate(self, name, step, scale)

    def parameters(model):
        groups = refined(model)
        if frozen["on"]:
            del groups["mlp_color"], groups["mlp_cov"]
        return groups

    schedule_module.Schedule.learning_rate = rate
    refine_module._parameters = parameters

    def run(z, density, donor=None):
        image = torch.from_numpy((stack[z].astype(np.float32) - low) / (high - low))[None]
        config = configure("fast", *image.shape[1:], 1, density=density)
        model = fit_module.make_model(tuple(image.shape), config, image)
        if donor is not None:
            model.mlp_color.load_state_dict(donor.mlp_color.state_dict())
            model.mlp_cov.load_state_dict(donor.mlp_cov.state_dict())
        frozen["on"] = donor is not None
        try:
            model = fit_module.fit(image, config, model=model).model
        finally:
            frozen["on"] = False
        sections = encode_model(model)
        with torch.no_grad():
            mse = float(((model.render(0).clamp(0, 1) - image) ** 2).mean())
        attributes = sum(len(v) for k, v in sections.items() if k != "weights")
        return model, len(sections["weights"]), attributes, 10 * math.log10(1 / mse)

    for density in args.densities:
        donors = {z: run(z, density)[0] for z in args.donors}
        for donor in [None, *args.donors]:
            _, weights, attributes, psnr = run(args.slice, density, donors.get(donor))
            row = {"density": density, "slice": args.slice, "mlps_of": donor}
            row.update(weights=weights, attributes=attributes, psnr=round(psnr, 3))
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
