"""Would a synthesis filter pay? A prototype measured before the file format carries one.

Run:  python benchmarks/probe_synthesis_filter.py [--images nuclei ihc zslice]
          [--densities 0.005 0.01 0.02] [--iterations 3000] [--jobs 2] [--no-record]

The rate-distortion issue's lever 4: a tiny convolutional filter after the Gaussian render
(``render + conv3x3(relu(conv3x3(render)))``, 8 hidden channels on one channel, 5 on RGB:
144 / 270 multiply-adds a pixel), trained with the fit at full resolution, to take out what a
sum of Gaussians leaves (blur, ringing of overlapping Gaussians). The file cannot hold it yet, so
this measures it as it would be stored: each fit (the ``default`` preset at the density, both
with and without the filter, in the same run) is coded by the real encoder
(``codec.model.encode_model``); its bytes are the coded sections plus the container's fixed
bytes (``encode.targeting.REGION_OVERHEAD_BYTES``, 240 when recorded), plus, with the filter,
its weights as int8 rows with a float32 scale and bias per output channel. PSNR is that of the
decoded model's render (exactly what a decoder renders), filtered with the int8 weights, in the
image's own dtype.
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bd import bd_psnr  # noqa: E402
from _images import load  # noqa: E402
from _record import git_revision, machine_description, record_section  # noqa: E402

HIDDEN = {1: 8, 3: 5}  # hidden channels by image channels: at most ~300 MAC a pixel
FILTER_RATES = (2e-3, 2e-4)  # Adam's rate at the start and the end of the fit


def _filter_module(channels: int):
    import torch
    from torch import nn

    class SynthesisFilter(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            hidden = HIDDEN.get(channels, 5)
            self.first = nn.Conv2d(channels, hidden, 3, padding=1, padding_mode="replicate")
            self.second = nn.Conv2d(hidden, channels, 3, padding=1, padding_mode="replicate")
            nn.init.zeros_(self.second.weight)  # starts as the identity
            nn.init.zeros_(self.second.bias)

        def forward(self, image: torch.Tensor) -> torch.Tensor:  # [C, H, W]
            return image + self.second(torch.relu(self.first(image[None])))[0]

        def stored_bytes(self) -> int:
            rows = self.first.out_channels + self.second.out_channels
            weights = self.first.weight.numel() + self.second.weight.numel()
            return weights + 8 * rows  # int8 weights; float32 scale and bias a row

        def round_to_stored(self) -> None:
            with torch.no_grad():
                for conv in (self.first, self.second):
                    w = conv.weight
                    scale = w.abs().amax(dim=(1, 2, 3), keepdim=True).clamp(min=1e-12) / 127
                    w.copy_(torch.round(w / scale) * scale)

    return SynthesisFilter()


def _install_filter() -> None:
    """Make every new model carry a filter applied to its full-resolution render."""
    import napari_sgi.core.fit as fit_module
    from napari_sgi.core import schedule

    schedule.LEARNING_RATES["synthesis"] = FILTER_RATES
    make_model, optimizer = fit_module.make_model, fit_module._optimizer

    def make_filtered(image_shape, config, image=None):
        model = make_model(image_shape, config, image)
        model.synthesis = _filter_module(image_shape[0])
        plain = model.render

        def render(level=0, attributes=None, backend="auto"):
            out = plain(level, attributes, backend=backend)
            return model.synthesis(out) if level == 0 else out

        model.render = render
        return model

    def optimizer_with_filter(model):
        adam, groups = optimizer(model)
        adam.add_param_group(
            {"params": list(model.synthesis.parameters()), "name": "synthesis", "lr": 0.0}
        )
        groups["synthesis"] = adam.param_groups[-1]
        return adam, groups

    fit_module.make_model = make_filtered
    fit_module._optimizer = optimizer_with_filter


def point(name: str, density: float, iterations: int, with_filter: bool) -> dict:
    """Fit, code and measure one point in this (fresh) process."""
    import time

    import torch

    torch.set_num_threads(1)
    from bench_rd import quality

    from napari_sgi.codec.model import encode_model
    from napari_sgi.core.image import ValueRange, from_tensor, to_tensor
    from napari_sgi.core.presets import configure
    from napari_sgi.encode.targeting import REGION_OVERHEAD_BYTES, fit_region

    if with_filter:
        _install_filter()
    image = load(name)
    channels = image.shape[2] if image.ndim == 3 else 1
    config = configure("default", image.shape[0], image.shape[1], channels)
    config = config.with_overrides(density=density, iterations=iterations)
    value_range = ValueRange.of(image)
    target = to_tensor(image, value_range)
    started = time.perf_counter()
    model = fit_region(target, config, core_pixels=image.shape[0] * image.shape[1]).model
    seconds = time.perf_counter() - started
    sections = encode_model(model)  # the model now holds exactly what a decoder holds
    size = sum(len(s) for s in sections.values()) + REGION_OVERHEAD_BYTES
    if with_filter:
        model.synthesis.round_to_stored()
        size += model.synthesis.stored_bytes()
    with torch.no_grad():
        decoded = from_tensor(model.render(0).clamp(0, 1), value_range, image.ndim)
    psnr, _ = quality(decoded, image)
    pixels = image.shape[0] * image.shape[1]
    return {
        "image": name,
        "density": density,
        "filter": with_filter,
        "bytes": size,
        "bpp": 8 * size / pixels,
        "psnr": psnr,
        "seconds": seconds,
        "iterations": iterations,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", nargs="+", default=["nuclei", "ihc", "zslice"])
    parser.add_argument("--densities", nargs="+", type=float, default=[0.005, 0.01, 0.02])
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    tasks = [
        (name, density, args.iterations, with_filter)
        for name in args.images
        for density in args.densities
        for with_filter in (False, True)
    ]
    rows = []
    with ProcessPoolExecutor(args.jobs, max_tasks_per_child=1) as pool:
        for row in pool.map(point, *zip(*tasks, strict=True)):
            rows.append(row)
            print(json.dumps(row), flush=True)
    lines = [
        "| image | density | plain bpp | plain dB | filter bpp | filter dB | filter s / plain s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    summary = []
    for name in args.images:
        plain = [r for r in rows if r["image"] == name and not r["filter"]]
        filtered = [r for r in rows if r["image"] == name and r["filter"]]
        for p, f in zip(plain, filtered, strict=True):
            lines.append(
                f"| {name} | {p['density']} | {p['bpp']:.3f} | {p['psnr']:.2f} | {f['bpp']:.3f} | "
                f"{f['psnr']:.2f} | x{f['seconds'] / p['seconds']:.2f} |"
            )
        gap = bd_psnr(
            [r["bpp"] for r in filtered],
            [r["psnr"] for r in filtered],
            [r["bpp"] for r in plain],
            [r["psnr"] for r in plain],
        )
        if gap is not None:
            summary.append(f"{name} {gap[0]:+.2f} dB ({gap[1][0]:.2f}-{gap[1][1]:.2f} bpp)")
    markdown = (
        "## A synthesis filter, prototyped (issue: beat JPEG 2000)\n\n"
        f"Machine: {machine_description()}; revision `{git_revision()}`.\n"
        f"Command: `python benchmarks/probe_synthesis_filter.py --images {' '.join(args.images)}"
        f" --densities {' '.join(map(str, args.densities))} --iterations {args.iterations}`\n\n"
        "Bytes: the coded sections + 240 + the filter's int8 weights, scales and biases; PSNR of\n"
        "the decoded model's render, filtered with the int8 weights, in the image's dtype.\n\n"
        + "\n".join(lines)
        + "\n\nBD-PSNR, filter against plain: "
        + "; ".join(summary)
    )
    print(markdown)
    if not args.no_record:
        record_section("synthesis-filter", markdown)


if __name__ == "__main__":
    main()
