"""Would entropy-coded MLP weights pay? Measured on real fits before the file format changes.

Run:  python benchmarks/probe_weight_coding.py [--images zslice nuclei ihc]
          [--densities 0.01 0.04] [--iterations 3000] [--no-record]

The rate-distortion issue's lever 4 ("cheaper network weights"). Today's weights section
(``codec.weights``, ``SGW9``) stores every matrix as int8 rows with a float16 scale a row and
every bias, and the prior of a model without context, as float16: 346 bytes on one channel
(K=6) and 666 bytes on RGB (K=10) with the default F=4, a few percent of a small file. Each fit
(the ``default`` preset) is coded by the real encoder (``codec.model.encode_model``), and its
colour and covariance MLPs stored three ways:

- ``SGW9``: the file's layout as it is (``codec.weights.store_weights``);
- ``pow2``: every tensor on its own power-of-two step, at most its largest magnitude / 127 (so
  at least int8's precision), the integers entropy-coded with one zero-mean discretised Gaussian a
  tensor (ideal bits, ``core.entropy.discretized_gaussian_bits``, plus 3 bytes a tensor for the
  step and the spread and 20 bytes for the stream's head);
- ``pow2+rd``: the same, each tensor's step chosen (one after the other) to minimise
  MSE + λ × bits / stored values, the fit's own trade-off.

The prior stays float16 in all three. Bytes: the coded attribute sections + weights + the
container's fixed bytes (``encode.targeting.REGION_OVERHEAD_BYTES``, 240 when recorded); PSNR:
the render of the rounded model against the image, in [0, 1].
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _images import load  # noqa: E402
from _record import git_revision, machine_description, record_section  # noqa: E402

STREAM_HEAD_BYTES = 20
TENSOR_HEAD_BITS = 24  # an int8 step exponent and a float16 spread


def _psnr(model, target) -> float:
    import torch

    with torch.no_grad():
        render = model.render(0).clamp(0, 1)
    return 10 * math.log10(1 / float(((render - target) ** 2).mean()))


def _image_mlp_parameters(model) -> list:
    return [p for module in (model.mlp_color, model.mlp_cov) for p in module.parameters()]


def _tensor_bits(symbols) -> float:
    """Ideal bits of integer ``symbols`` under a zero-mean discretised Gaussian of their RMS."""
    import numpy as np
    import torch

    from napari_sgi.core.entropy import discretized_gaussian_bits

    spread = max(float(np.float16(max(float(np.sqrt(np.mean(symbols**2))), 0.3))), 0.3)
    values = torch.from_numpy(symbols.astype(np.float64).ravel())[None]
    bits = discretized_gaussian_bits(
        values, torch.zeros_like(values), torch.full_like(values, spread), torch.ones(1, 1)
    )
    return float(bits.sum()) + TENSOR_HEAD_BITS


def _pow2_weights(model, target, lmbda: float, stored_values: int, choose: bool):
    """Round the image MLPs in place to per-tensor power-of-two steps; their bits."""
    import numpy as np
    import torch

    total = 0.0
    for parameter in _image_mlp_parameters(model):
        weights = parameter.detach().double().numpy().copy()
        peak = float(np.abs(weights).max())
        finest = math.floor(math.log2(peak / 127)) if peak > 0 else -8
        candidates = range(finest, finest + 6) if choose else [finest]
        best = None
        for exponent in candidates:
            symbols = np.rint(weights / 2.0**exponent)
            with torch.no_grad():
                parameter.copy_(torch.from_numpy(symbols * 2.0**exponent))
            bits = _tensor_bits(symbols)
            cost = (
                10 ** (-_psnr(model, target) / 10) if choose else 0
            ) + lmbda * bits / stored_values
            if best is None or cost < best[0]:
                best = (cost, exponent, bits)
        symbols = np.rint(weights / 2.0 ** best[1])
        with torch.no_grad():
            parameter.copy_(torch.from_numpy(symbols * 2.0 ** best[1]))
        total += best[2]
    return total


def measure(image_name: str, density: float, iterations: int) -> list[dict]:
    import torch

    from napari_sgi import fit_image
    from napari_sgi.codec.model import encode_model
    from napari_sgi.core.entropy import GROUPS
    from napari_sgi.core.image import ValueRange, to_tensor
    from napari_sgi.encode.targeting import REGION_OVERHEAD_BYTES

    image = load(image_name)
    target = to_tensor(image, ValueRange.of(image))
    result = fit_image(image, preset="default", iterations=iterations, density=density)
    model = result.model
    # As a file holds it: attributes, prior and weights (SGW9) rounded, the sections coded.
    encoded = copy.deepcopy(model)
    sections = encode_model(encoded)
    attribute_bytes = sum(len(sections[group]) for group in GROUPS)
    stored_values = sum(v.numel() for v in model.attributes().as_groups().values())
    prior_bytes = 2 * model.context.prior.numel()
    rows = []
    for layout in ("SGW9", "pow2", "pow2+rd"):
        trial = encoded
        weight_bytes = len(sections["weights"])
        if layout != "SGW9":
            # The file's attributes and prior, the image MLPs as fitted, then rounded this way.
            trial = copy.deepcopy(encoded)
            with torch.no_grad():
                for mine, fitted in zip(
                    _image_mlp_parameters(trial), _image_mlp_parameters(model), strict=True
                ):
                    mine.copy_(fitted)
            bits = _pow2_weights(
                trial, target, result.config.lmbda, stored_values, layout == "pow2+rd"
            )
            weight_bytes = 4 + math.ceil(bits / 8) + STREAM_HEAD_BYTES + prior_bytes
        total = attribute_bytes + weight_bytes + REGION_OVERHEAD_BYTES
        rows.append(
            {
                "image": image_name,
                "density": density,
                "layout": layout,
                "weights": weight_bytes,
                "bytes": round(total),
                "bpp": 8 * total / (image.shape[0] * image.shape[1]),
                "psnr": _psnr(trial, target),
            }
        )
        print(rows[-1], flush=True)
    return rows


def report(rows: list[dict], command: str) -> str:
    lines = [
        "## Entropy-coded MLP weights, probed (issue: beat JPEG 2000)",
        "",
        f"Machine: {machine_description()}; revision `{git_revision()}`.",
        f"Command: `{command}`",
        "",
        "| image | density | layout | weight bytes | file bytes | bpp | PSNR (dB) | bytes vs SGW9 "
        "| ΔPSNR |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    base = {(r["image"], r["density"]): r for r in rows if r["layout"] == "SGW9"}
    for r in rows:
        b = base[(r["image"], r["density"])]
        lines.append(
            f"| {r['image']} | {r['density']} | {r['layout']} | {r['weights']} | {r['bytes']:,} "
            f"| {r['bpp']:.3f} | {r['psnr']:.3f} | {100 * (r['bytes'] / b['bytes'] - 1):+.1f} % "
            f"| {r['psnr'] - b['psnr']:+.3f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", nargs="+", default=["zslice", "nuclei", "ihc"])
    parser.add_argument("--densities", nargs="+", type=float, default=[0.01, 0.04])
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    rows = [
        row
        for name in args.images
        for density in args.densities
        for row in measure(name, density, args.iterations)
    ]
    command = "python benchmarks/probe_weight_coding.py " + " ".join(sys.argv[1:])
    markdown = report(rows, command.strip())
    print(markdown)
    if not args.no_record:
        record_section("weight-coding", markdown)


if __name__ == "__main__":
    main()
