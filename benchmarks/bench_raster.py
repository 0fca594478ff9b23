"""Forward + backward throughput of the sum rasterizer backends, recorded in docs/benchmarks.md.

Backends: the compiled CPU kernel once per instruction set this CPU runs, the PyTorch reference
(``_raster_torch``) and a naive PyTorch pair list written here (enumerate every pair, gather,
``index_add_``, autograd), the baseline of the speed-up. A *pair* is a (Gaussian, pixel) pair inside
the Gaussian's pixel box from ``gaussian_pixel_bounds``: the pairs every backend evaluates, whether
or not the pixel passes the sigma cut. Times are medians over the timed runs.

Usage: ``python benchmarks/bench_raster.py [--json] [--repeats N] [--no-record]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable

import torch
from _record import git_revision, machine_description, record_section

from napari_sgi.core._raster_torch import rasterize_sum_torch
from napari_sgi.core.raster_rules import ALPHA_MAX, SIGMA_CUT, gaussian_pixel_bounds
from napari_sgi.core.rasterize import cpu_kernel_available

CASES = ((512, 512, 25_000), (1024, 1024, 100_000))  # height, width, Gaussians
CHANNELS = 3
NAIVE_GAUSSIANS_PER_CHUNK = 4096  # bounds the naive version's temporaries to a few hundred MB
SLOW_BUDGET_S = 20.0  # timed seconds after which the PyTorch versions stop repeating


def make_scene(
    height: int, width: int, count: int, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # [P, 2], [P, 3], [P, 3]
    """Gaussians spread over the image: scales 0.8-2.8 px, random rotations, 3 channels."""
    gen = torch.Generator().manual_seed(seed)
    means = torch.rand(count, 2, generator=gen) * torch.tensor([float(width), float(height)])
    scales = 0.8 + 2.0 * torch.rand(count, 2, generator=gen)
    theta = math.pi * torch.rand(count, generator=gen)
    cos, sin = theta.cos(), theta.sin()
    s1, s2 = scales[:, 0] ** 2, scales[:, 1] ** 2
    cov_xx, cov_xy, cov_yy = (
        cos**2 * s1 + sin**2 * s2,
        cos * sin * (s1 - s2),
        sin**2 * s1 + cos**2 * s2,
    )
    det = cov_xx * cov_yy - cov_xy**2
    conics = torch.stack([cov_yy / det, -cov_xy / det, cov_xx / det], -1)
    return means, conics, torch.rand(count, CHANNELS, generator=gen)


def naive_rasterize(
    means: torch.Tensor,  # [P, 2]
    conics: torch.Tensor,  # [P, 3]
    colors: torch.Tensor,  # [P, C]
    bounds: torch.Tensor,  # [P, 4] int (x0, y0, x1, y1)
    height: int,
    width: int,
) -> torch.Tensor:  # [C, H, W]
    """The straightforward PyTorch version: list the pairs, gather, evaluate, ``index_add_``."""
    image = colors.new_zeros(height * width, colors.shape[1])
    box_w = (bounds[:, 2] - bounds[:, 0]).long()
    box_h = (bounds[:, 3] - bounds[:, 1]).long()
    for start in range(0, len(means), NAIVE_GAUSSIANS_PER_CHUNK):
        chunk = torch.arange(start, min(start + NAIVE_GAUSSIANS_PER_CHUNK, len(means)))
        counts = box_w[chunk] * box_h[chunk]
        g = torch.repeat_interleave(chunk, counts)
        offset = torch.arange(len(g)) - torch.repeat_interleave(
            torch.cumsum(counts, 0) - counts, counts
        )
        px = bounds[g, 0].long() + offset % box_w[g]
        py = bounds[g, 1].long() + offset // box_w[g]
        dx = means[g, 0] - (px + 0.5)
        dy = means[g, 1] - (py + 0.5)
        a, b, c = conics[g].unbind(-1)
        sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
        alpha = torch.clamp(torch.exp(-sigma), max=ALPHA_MAX)
        alpha = torch.where((sigma >= 0) & (sigma <= SIGMA_CUT), alpha, torch.zeros_like(alpha))
        image.index_add_(0, py * width + px, colors[g] * alpha[:, None])
    return image.T.reshape(colors.shape[1], height, width)


def time_backend(
    render: Callable[..., torch.Tensor],
    scene: tuple[torch.Tensor, torch.Tensor, torch.Tensor],  # [P, 2], [P, 3], [P, 3]
    bounds: torch.Tensor,  # [P, 4] int32
    height: int,
    width: int,
    repeats: int,
    warm_up: bool,
    budget_s: float = math.inf,
) -> tuple[float, float, int]:
    """Median forward and backward seconds and the number of timed runs.

    Stops early, after at least one timed run, once ``budget_s`` seconds went into timed runs: the
    PyTorch versions take tens of seconds per run at the larger size.
    """
    grad_image = torch.randn(CHANNELS, height, width, generator=torch.Generator().manual_seed(1))
    forward_s: list[float] = []
    backward_s: list[float] = []
    for run in range(repeats + warm_up):
        leaves = [t.clone().requires_grad_() for t in scene]
        start = time.perf_counter()
        image = render(*leaves, bounds, height, width)
        middle = time.perf_counter()
        image.backward(grad_image)
        end = time.perf_counter()
        del image, leaves
        if warm_up and run == 0:
            continue
        forward_s.append(middle - start)
        backward_s.append(end - middle)
        if sum(forward_s) + sum(backward_s) > budget_s:
            break
    return statistics.median(forward_s), statistics.median(backward_s), len(forward_s)


def backends() -> list[tuple[str, Callable[..., torch.Tensor], str | None]]:
    """(name, render function, instruction set to force) for every backend measured."""
    found: list[tuple[str, Callable[..., torch.Tensor], str | None]] = []
    if cpu_kernel_available():
        from napari_sgi.core._raster_cpu import available_isas, rasterize_sum_cpu

        found += [(f"cpu-{isa}", rasterize_sum_cpu, isa) for isa in reversed(available_isas())]
    return found + [("torch", rasterize_sum_torch, None), ("naive", naive_rasterize, None)]


def run(repeats: int, emit: Callable[[dict], None]) -> list[dict]:
    from napari_sgi.core._raster_cpu import ISA_ENV

    rows = []
    saved_isa = os.environ.get(ISA_ENV)
    try:
        for height, width, count in CASES:
            scene = make_scene(height, width, count)
            bounds = gaussian_pixel_bounds(scene[0], scene[1], height, width)
            pairs = int(((bounds[:, 2] - bounds[:, 0]) * (bounds[:, 3] - bounds[:, 1])).sum())
            for name, render, isa in backends():
                if isa is not None:
                    os.environ[ISA_ENV] = isa
                compiled = isa is not None
                forward_s, backward_s, runs = time_backend(
                    render, scene, bounds, height, width, repeats if compiled else 3,
                    warm_up=compiled, budget_s=math.inf if compiled else SLOW_BUDGET_S,
                )  # fmt: skip
                row = {
                    "backend": name,
                    "height": height,
                    "width": width,
                    "gaussians": count,
                    "channels": CHANNELS,
                    "pairs": pairs,
                    "forward_s": forward_s,
                    "backward_s": backward_s,
                    "pairs_per_s": pairs / (forward_s + backward_s),
                    "threads": torch.get_num_threads(),
                    "repeats": runs,
                }
                rows.append(row)
                emit(row)
    finally:
        if saved_isa is None:
            os.environ.pop(ISA_ENV, None)
        else:
            os.environ[ISA_ENV] = saved_isa
    return rows


def markdown(rows: list[dict], command: str) -> str:
    naive = {
        (r["height"], r["gaussians"]): r["pairs_per_s"] for r in rows if r["backend"] == "naive"
    }
    lines = [
        "## Rasterizer (sum), forward + backward",
        "",
        f"Machine: {machine_description()}, {rows[0]['threads']} threads. "
        f"Revision `{git_revision()}`. Command: `{command}`.",
        "",
        "A pair is a (Gaussian, pixel) pair inside the Gaussian's pixel box "
        "(`gaussian_pixel_bounds`): the pairs every backend evaluates. 3 channels, "
        "scales 0.8-2.8 px, random rotations. Times are medians of the timed runs (compiled "
        "kernel: all repeats after a warm-up; PyTorch versions: up to 3, fewer past 20 s). "
        "The speed-up is against the naive PyTorch pair list of the same run.",
        "",
        "| backend | image | Gaussians | pairs (M) | forward (ms) | backward (ms) | M pairs/s "
        "| vs naive |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        speedup = r["pairs_per_s"] / naive[(r["height"], r["gaussians"])]
        lines.append(
            f"| {r['backend']} | {r['height']}x{r['width']} | {r['gaussians']:,} "
            f"| {r['pairs'] / 1e6:.1f} | {r['forward_s'] * 1e3:.1f} | {r['backward_s'] * 1e3:.1f} "
            f"| {r['pairs_per_s'] / 1e6:.1f} | {speedup:.1f}x |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per compiled backend")
    parser.add_argument("--no-record", action="store_true", help="do not write docs/benchmarks.md")
    args = parser.parse_args(argv)

    def emit(row: dict) -> None:
        if args.json:
            print(json.dumps(row), flush=True)
        else:
            print(
                f"{row['backend']:>13} {row['height']:>5}x{row['width']:<5} {row['gaussians']:>7} "
                f"{row['pairs'] / 1e6:7.1f} M pairs  fwd {row['forward_s'] * 1e3:8.1f} ms  "
                f"bwd {row['backward_s'] * 1e3:8.1f} ms  {row['pairs_per_s'] / 1e6:7.1f} M pairs/s",
                flush=True,
            )

    rows = run(args.repeats, emit)
    if not args.no_record:
        arguments = sys.argv[1:] if argv is None else argv
        command = " ".join(["python benchmarks/bench_raster.py", *arguments])
        record_section("raster", markdown(rows, command))


if __name__ == "__main__":
    main()
