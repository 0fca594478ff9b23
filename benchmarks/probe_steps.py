"""Are the attributes' quantisation steps where the rate-distortion curve wants them? A probe.

Run:  python benchmarks/probe_steps.py IMAGE --densities 0.006 0.009
          [--arms 1:1:1 1:1:2 ...] [--lambdas 1 16 64] [--preset fast]

Two questions, each answered by real files (``compress`` at a fixed density, bytes on disk,
PSNR of the decoded file):

``--arms F:L:O``
    Every group's base step (features, log-scalings, offsets; ``entropy.base_steps``) times
    these factors, in encoder and decoder alike (this process), the fit trained with them. Read
    against the density's own curve (the ``1:1:1`` rows at several densities): an arm whose
    bytes move it along that curve is neither better nor worse.
``--lambdas S``
    The preset's λ times ``S``, base steps as they are: how far λ moves the file.

Prints one JSON line per file. Records nothing: docs/method.md ("Quantisation steps") holds the
figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _images import load  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image", choices=("nuclei", "ihc", "zslice"))
    parser.add_argument("--densities", type=float, nargs="+", default=[0.006, 0.009])
    parser.add_argument("--arms", nargs="*", default=["1:1:1", "1:1:2", "1:2:1", "2:1:1"])
    parser.add_argument("--lambdas", type=float, nargs="*", default=[])
    parser.add_argument("--preset", default="fast")
    args = parser.parse_args()

    import napari_sgi.core.entropy as entropy
    import napari_sgi.core.fit as fit_module
    from napari_sgi.encode.pipeline import compress

    image = load(args.image)
    base_steps = entropy.base_steps

    def scaled(factors):
        def steps(level: int) -> dict[str, float]:
            steps = base_steps(level)
            pairs = zip(entropy.GROUPS, factors, strict=True)
            return {group: steps[group] * factor for group, factor in pairs}

        return steps

    def run(density, factors=(1.0, 1.0, 1.0), lmbda_scale=None, **row):
        entropy.base_steps = fit_module.base_steps = scaled(factors)
        options = {}
        if lmbda_scale is not None:
            from napari_sgi.core.presets import configure

            channels = image.shape[2] if image.ndim == 3 else 1
            preset_lambda = configure(args.preset, *image.shape[:2], channels).lmbda
            options["lmbda"] = preset_lambda * lmbda_scale
        with tempfile.TemporaryDirectory() as tmp:
            result = compress(
                image,
                Path(tmp) / "probe.sgi",
                preset=args.preset,
                density=density,
                resume=False,
                **options,
            )
        row.update(image=args.image, preset=args.preset, density=density, bytes=result.bytes)
        row.update(bpp=round(result.bpp, 4), psnr=round(result.psnr, 3))
        print(json.dumps(row), flush=True)

    for density in args.densities:
        for arm in args.arms:
            factors = tuple(float(f) for f in arm.split(":"))
            run(density, factors, arm=arm)
        for scale in args.lambdas:
            run(density, lmbda_scale=scale, lmbda=f"x{scale:g}")
    entropy.base_steps = fit_module.base_steps = base_steps


if __name__ == "__main__":
    main()
