"""How much could a better entropy model save? Bounds from the stored attributes of real fits.

Run:  python benchmarks/bench_attribute_context.py [--images nuclei ihc zslice]
          [--densities 0.01 0.04] [--iterations 3000] [--no-record]

Offsets are about two thirds of a file. Before building a spatial context or a richer
distribution into the coder (the rate-distortion issue's lever 3), this measures what they could
buy on fitted models (the ``default`` preset at each density, ``fit_image``):

- **model**: the bits the entropy model assigns to the rounded attributes (what the coder spends,
  within 0.1-0.5 %);
- **i.i.d. bound**: the empirical entropy of each dimension's integer symbols, a lower bound for
  *any* distribution that codes each dimension's values alike (no context), before the cost of
  sending that distribution;
- **within seed** and **neighbours**: bits per value a linear-Gaussian prediction would save,
  ``0.5 log2(variance / residual variance)``, predicting each value from what the decoder has
  before it (the seed's earlier offsets, its scalings and features; or the mean of the same value
  at the 4 nearest seeds, all taken as known: optimistic for a causal order). Fitted on half the
  seeds and measured on the other half, and the other way round, so that the estimate is not
  flattered by fitting the noise. At the steps these files use (residuals several steps wide)
  the Gaussian approximation of the bits is close.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _images import load  # noqa: E402
from _record import git_revision, machine_description, record_section  # noqa: E402


def iid_bound_bits(symbols: np.ndarray) -> float:  # [N, D] integers
    """Sum over dimensions of ``N * H(symbols[:, d])``, the empirical entropy in bits."""
    total = 0.0
    for column in symbols.T:
        _, counts = np.unique(column, return_counts=True)
        total -= float((counts * np.log2(counts / counts.sum())).sum())
    return total


def held_out_saving(target: np.ndarray, inputs: np.ndarray) -> float:  # [N], [N, P]
    """Bits per value saved by a linear prediction of ``target`` from ``inputs``, two-fold."""
    n = len(target)
    halves = [np.arange(n) % 2 == 0, np.arange(n) % 2 == 1]
    design = np.concatenate([inputs, np.ones((n, 1))], 1)
    residual = np.empty(n)
    for fit_on, test_on in (halves, halves[::-1]):
        coef, *_ = np.linalg.lstsq(design[fit_on], target[fit_on], rcond=None)
        residual[test_on] = target[test_on] - design[test_on] @ coef
    plain = target - np.where(halves[0], target[halves[1]].mean(), target[halves[0]].mean())
    return 0.5 * math.log2(np.mean(plain**2) / np.mean(residual**2))


def measure(name: str, density: float, iterations: int) -> dict:
    import torch

    from napari_sgi.core.entropy import discretized_gaussian_bits
    from napari_sgi.encode.fitting import fit_image

    result = fit_image(load(name), density=density, iterations=iterations)
    model = result.model
    row = {"image": name, "density": density, "groups": {}}
    with torch.no_grad():
        models = model.entropy_models(0)
        groups = {k: v.double() for k, v in model.attributes().as_groups().items()}
        for group, values in groups.items():
            dist = models[group]
            symbols = torch.round(values / dist.step).to(torch.int64).numpy()
            bits = discretized_gaussian_bits(values, dist.mean, dist.scale, dist.step)
            row["groups"][group] = {
                "values": values.numel(),
                "model_bits": float(bits.sum()),
                "iid_bits": iid_bound_bits(symbols),
            }
        anchors = model.anchors.double()
        neighbours = torch.cdist(anchors, anchors).topk(5, largest=False).indices[:, 1:].numpy()
    offsets = groups["offsets"].numpy()  # [N, 2K], in units of the seed's scaling
    known = np.concatenate([groups["log_scaling"].numpy(), groups["features"].numpy()], 1)
    within = [
        held_out_saving(offsets[:, j], np.concatenate([offsets[:, :j], known], 1))
        for j in range(offsets.shape[1])
    ]
    spatial = [
        held_out_saving(offsets[:, j], offsets[neighbours, j].mean(1, keepdims=True))
        for j in range(offsets.shape[1])
    ]
    offset_bits = row["groups"]["offsets"]["model_bits"]
    row.update(
        seeds=int(offsets.shape[0]),
        offset_bits_per_value=offset_bits / offsets.size,
        within_seed=float(np.mean(within)),
        neighbours=float(np.mean(spatial)),
    )
    return row


def _model_and_bound(group: dict) -> str:
    return f"{group['model_bits'] / 8:.0f} / {group['iid_bits'] / 8:.0f}"


def table(rows: list[dict]) -> str:
    lines = [
        "| image | density | seeds | offsets: model bytes | i.i.d. bound | bits/value | "
        "within seed (bits/value) | neighbours (bits/value) | features: model / bound | "
        "scalings: model / bound |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        g = row["groups"]
        off = g["offsets"]
        lines.append(
            f"| {row['image']} | {row['density']} | {row['seeds']} | {off['model_bits'] / 8:.0f} | "
            f"{off['iid_bits'] / 8:.0f} ({off['iid_bits'] / off['model_bits'] - 1:+.1%}) | "
            f"{row['offset_bits_per_value']:.2f} | {row['within_seed']:+.3f} | "
            f"{row['neighbours']:+.3f} | {_model_and_bound(g['features'])} | "
            f"{_model_and_bound(g['log_scaling'])} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", nargs="+", default=["nuclei", "ihc", "zslice"])
    parser.add_argument("--densities", nargs="+", type=float, default=[0.01, 0.04])
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    rows = []
    for name in args.images:
        for density in args.densities:
            rows.append(measure(name, density, args.iterations))
            print(table(rows[-1:]).splitlines()[-1], flush=True)
    markdown = (
        "## What a richer entropy model could save on the offsets (issue: beat JPEG 2000)\n\n"
        f"Machine: {machine_description()}; revision `{git_revision()}`.\n"
        f"Command: `python benchmarks/bench_attribute_context.py --images {' '.join(args.images)}"
        f" --densities {' '.join(map(str, args.densities))} --iterations {args.iterations}`\n\n"
        "Bytes: the entropy model's ideal bits of the rounded attributes / 8 (model) and the\n"
        "empirical i.i.d. entropy of each dimension's symbols (bound). Within seed / neighbours:\n"
        "held-out bits per offset value a linear prediction from the seed's earlier offsets,\n"
        "scalings and features / from the 4 nearest seeds' same offset would save.\n\n"
        + table(rows)
    )
    print(markdown)
    if not args.no_record:
        record_section("attribute-context", markdown)


if __name__ == "__main__":
    main()
