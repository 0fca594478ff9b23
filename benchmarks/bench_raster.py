"""Forward + backward throughput of the sum rasterizer backends, recorded in docs/benchmarks.md.

Backends: the compiled CPU kernel once per instruction set this CPU runs, the best one once more
with its skipping off (``-noskip``: every pixel of every box evaluated, as before the skipping), the
PyTorch reference (``_raster_torch``) and a naive PyTorch pair list written here (enumerate every
pair, gather, ``index_add_``, autograd), the baseline of the speed-up. A *pair* is a (Gaussian,
pixel) pair inside the Gaussian's pixel box from ``gaussian_pixel_bounds``, whether or not the pixel
passes the sigma cut; ``evaluated_pairs`` counts those a backend actually evaluates (the compiled
kernel skips pixels away from each Gaussian's ellipse, in whole 16-pixel tile rows). Times are
medians over the timed runs.

Scenes: ``random`` Gaussians (see :func:`make_scene`) at two sizes, and ``fitted``: the Gaussians of
a 150-step fit of the 512x512 IHC sample image (``napari_sgi.core.fit.fit``, computed at every run,
cached nowhere), whose sizes and shapes are those the rasterizer meets while fitting.

Usage: ``python benchmarks/bench_raster.py [--json] [--repeats N] [--scenes random fitted]
[--no-record]``.
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
from pathlib import Path

import torch
from _record import git_revision, machine_description, record_section

from napari_sgi.core._raster_torch import rasterize_sum_torch
from napari_sgi.core.raster_rules import ALPHA_MAX, SIGMA_CUT, gaussian_pixel_bounds
from napari_sgi.core.rasterize import cpu_kernel_available

CASES = ((512, 512, 25_000), (1024, 1024, 100_000))  # random scenes: height, width, Gaussians
FITTED_IMAGE = Path(__file__).resolve().parents[2] / "shared" / "data" / "ihc_skimage_colon.png"
FITTED_ITERATIONS = 150
SCENES = ("random", "fitted")
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


def fitted_scene(iterations: int = FITTED_ITERATIONS) -> tuple[int, int, tuple]:
    """Height, width and the full-resolution means [P, 2], conics [P, 3] and colours [P, 3] of a
    short fit of the IHC sample image (RGB, 512x512)."""
    import numpy as np
    from PIL import Image

    from napari_sgi.core.fit import FitConfig, fit

    with Image.open(FITTED_IMAGE) as file:
        array = np.array(file.convert("RGB"))
    image = torch.from_numpy(array).permute(2, 0, 1).float() / 255.0
    model = fit(image, FitConfig(iterations=iterations)).model
    with torch.no_grad():
        scene = tuple(t.detach().float().contiguous() for t in model.level_gaussians(0))
    return image.shape[1], image.shape[2], scene


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


def backends() -> list[tuple[str, Callable[..., torch.Tensor], str | None, bool]]:
    """(name, render function, instruction set to force, skipping) for every backend measured."""
    found: list[tuple[str, Callable[..., torch.Tensor], str | None, bool]] = []
    if cpu_kernel_available():
        from napari_sgi.core._raster_cpu import available_isas, rasterize_sum_cpu

        isas = list(reversed(available_isas()))
        found += [(f"cpu-{isa}", rasterize_sum_cpu, isa, True) for isa in isas]
        found.append((f"cpu-{isas[0]}-noskip", rasterize_sum_cpu, isas[0], False))
    return found + [
        ("torch", rasterize_sum_torch, None, False),
        ("naive", naive_rasterize, None, False),
    ]


def scenes(names: list[str]):
    """(scene name, height, width, (means, conics, colors)) for each scene asked for."""
    for name in names:
        if name == "random":
            for height, width, count in CASES:
                yield name, height, width, make_scene(height, width, count)
        elif name == "fitted":
            yield (name, *fitted_scene())
        else:
            raise ValueError(f"unknown scene {name!r}; choose among {SCENES}")


def run(repeats: int, emit: Callable[[dict], None], scene_names: list[str] = SCENES) -> list[dict]:
    from napari_sgi.core._raster_cpu import ISA_ENV, NO_SKIP_ENV

    rows = []
    saved = {key: os.environ.get(key) for key in (ISA_ENV, NO_SKIP_ENV)}
    try:
        for scene_name, height, width, scene in scenes(list(scene_names)):
            bounds = gaussian_pixel_bounds(scene[0], scene[1], height, width)
            pairs = int(((bounds[:, 2] - bounds[:, 0]) * (bounds[:, 3] - bounds[:, 1])).sum())
            for name, render, isa, skip in backends():
                compiled = isa is not None
                evaluated = pairs
                if compiled:
                    from napari_sgi.core._raster_cpu import evaluated_pairs

                    os.environ[ISA_ENV] = isa
                    os.environ[NO_SKIP_ENV] = "0" if skip else "1"
                    evaluated = evaluated_pairs(*scene, bounds, height, width)
                forward_s, backward_s, runs = time_backend(
                    render, scene, bounds, height, width, repeats if compiled else 3,
                    warm_up=compiled, budget_s=math.inf if compiled else SLOW_BUDGET_S,
                )  # fmt: skip
                row = {
                    "backend": name,
                    "scene": scene_name,
                    "height": height,
                    "width": width,
                    "gaussians": int(scene[0].shape[0]),
                    "channels": CHANNELS,
                    "pairs": pairs,
                    "evaluated_pairs": evaluated,
                    "forward_s": forward_s,
                    "backward_s": backward_s,
                    "pairs_per_s": pairs / (forward_s + backward_s),
                    "threads": torch.get_num_threads(),
                    "repeats": runs,
                }
                rows.append(row)
                emit(row)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return rows


def markdown(rows: list[dict], command: str) -> str:
    def case(r: dict) -> tuple:
        return r["scene"], r["height"], r["gaussians"]

    naive = {case(r): r for r in rows if r["backend"] == "naive"}
    by_backend = {(*case(r), r["backend"]): r for r in rows}
    lines = [
        "## Rasterizer (sum), forward + backward",
        "",
        f"Machine: {machine_description()}, {rows[0]['threads']} threads. "
        f"Revision `{git_revision()}`. Command: `{command}`.",
        "",
        "A pair is a (Gaussian, pixel) pair inside the Gaussian's pixel box "
        "(`gaussian_pixel_bounds`), whether or not it passes the sigma cut; *evaluated* counts "
        "those a backend computes: all of them for the PyTorch versions and for the compiled "
        "kernel with its skipping off (`-noskip`, the kernel as it was before), whole 16-pixel "
        "tile rows near each Gaussian's ellipse for the compiled kernel (same pairs taken, same "
        "image). M pairs/s is box pairs per second of forward + backward. 3 channels. Scenes: "
        "*random*, scales 0.8-2.8 px and random rotations; *fitted*, the Gaussians of a "
        f"{FITTED_ITERATIONS}-step fit (`FitConfig(iterations={FITTED_ITERATIONS})`) of the "
        "512x512 IHC sample image. Times are medians of the timed runs (compiled kernel: all "
        "repeats after a warm-up; PyTorch versions: up to 3, fewer past 20 s). The speed-ups are "
        "against the naive PyTorch pair list and against the same instruction set without "
        "skipping, of the same run.",
        "",
        "| backend | scene | image | Gaussians | pairs (M) | evaluated (M) | forward (ms) "
        "| backward (ms) | M pairs/s | vs naive | vs noskip |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        base = naive.get(case(r))
        speedup = f"{r['pairs_per_s'] / base['pairs_per_s']:.1f}x" if base else "-"
        whole = by_backend.get((*case(r), f"{r['backend']}-noskip"))
        vs_noskip = f"{r['pairs_per_s'] / whole['pairs_per_s']:.2f}x" if whole else "-"
        lines.append(
            f"| {r['backend']} | {r['scene']} | {r['height']}x{r['width']} | {r['gaussians']:,} "
            f"| {r['pairs'] / 1e6:.1f} | {r['evaluated_pairs'] / 1e6:.1f} "
            f"| {r['forward_s'] * 1e3:.1f} | {r['backward_s'] * 1e3:.1f} "
            f"| {r['pairs_per_s'] / 1e6:.1f} | {speedup} | {vs_noskip} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per compiled backend")
    parser.add_argument("--scenes", nargs="+", choices=SCENES, default=list(SCENES))
    parser.add_argument("--no-record", action="store_true", help="do not write docs/benchmarks.md")
    args = parser.parse_args(argv)

    def emit(row: dict) -> None:
        if args.json:
            print(json.dumps(row), flush=True)
        else:
            print(
                f"{row['backend']:>19} {row['scene']:>6} {row['height']:>5}x{row['width']:<5} "
                f"{row['gaussians']:>7} {row['pairs'] / 1e6:7.1f} M pairs "
                f"({row['evaluated_pairs'] / 1e6:6.1f} M evaluated)  "
                f"fwd {row['forward_s'] * 1e3:8.1f} ms  bwd {row['backward_s'] * 1e3:8.1f} ms  "
                f"{row['pairs_per_s'] / 1e6:7.1f} M pairs/s",
                flush=True,
            )

    rows = run(args.repeats, emit, args.scenes)
    if not args.no_record:
        arguments = sys.argv[1:] if argv is None else argv
        command = " ".join(["python benchmarks/bench_raster.py", *arguments])
        record_section("raster", markdown(rows, command))


if __name__ == "__main__":
    main()
