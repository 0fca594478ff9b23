"""Three changes to what the Gaussians draw, each bounded by real files. A probe.

Run:  python benchmarks/probe_render_levers.py blend IMAGE --densities 0.006 0.02
          [--modes sum norm learn opacity] [--eps 0.1] [--preset fast]
      python benchmarks/probe_render_levers.py layout IMAGE --densities 0.006 0.02
          [--powers 0.5 1]
      python benchmarks/probe_render_levers.py filter IMAGE --densities 0.006 0.02

``blend``
    Normalised blending, ``sum(w c) / (sum(w) + eps)`` (Image-GS's rule: the ratio of two
    Gaussians is a logistic edge, sharper than a sum can draw), in encoder and decoder alike
    (this process): ``norm`` with a fixed ``eps``; ``learn`` with ``eps`` trained with the colour
    MLP; ``opacity`` with that and a linear head ``F -> K`` giving each Gaussian a weight
    ``exp(.)`` (so a small Gaussian can win over a large one). The denominator is one more
    channel of the same sum rasterizer. The trained ``eps`` and the head are not counted in the
    file's bytes (a few dozen bytes).
``layout``
    Seeds placed by a pilot fit's error as well as by the image's detail (Image-GS's error-guided
    placement): the adaptive layout's cell weights times ``(cell MSE / mean + 0.05)^power``,
    the error of a ``fast`` fit at the same density.
``filter``
    The least-squares 3x3 and 5x5 linear filters (a bias each, per channel) from a ``fast``
    fit's decoded image to the original: what a per-file linear post-filter could add at most,
    before its bytes.

``blend`` and ``layout`` print one JSON line per file (``compress`` at a fixed density, bytes
on disk, PSNR of the stored model); ``filter`` the PSNR gain of each filter. Records nothing:
docs/method.md ("Normalised blending, error-guided seeds, a linear post-filter") holds the
figures.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _images import load  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lever", choices=("blend", "layout", "filter"))
    parser.add_argument("image", choices=("nuclei", "ihc", "zslice"))
    parser.add_argument("--densities", type=float, nargs="+", default=[0.006, 0.02])
    parser.add_argument("--modes", nargs="+", default=["sum", "norm", "learn", "opacity"])
    parser.add_argument("--eps", type=float, default=0.1)
    parser.add_argument("--powers", type=float, nargs="+", default=[0.5, 1.0])
    parser.add_argument("--preset", default="fast")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    image = load(args.image)
    {"blend": probe_blend, "layout": probe_layout, "filter": probe_filter}[args.lever](image, args)


def _compress(image: np.ndarray, args, density: float, **row) -> None:
    from napari_sgi.encode.pipeline import compress

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        result = compress(
            image, Path(tmp) / "probe.sgi", preset=args.preset, density=density, resume=False
        )
    row.update(image=args.image, preset=args.preset, density=density, bytes=result.bytes)
    row.update(bpp=round(result.bpp, 4), psnr=round(result.psnr, 3))
    row.update(seconds=round(time.perf_counter() - started, 1))
    print(json.dumps(row), flush=True)


def probe_blend(image: np.ndarray, args) -> None:
    import torch

    from napari_sgi.core import fit as fit_module
    from napari_sgi.core import refine as refine_module
    from napari_sgi.core._decode_cpu import level_gaussians_cpu
    from napari_sgi.core._raster_cpu import rasterize_sum_cpu
    from napari_sgi.core.image import level_shape
    from napari_sgi.core.model import SGIModel
    from napari_sgi.core.rasterize import rasterize_sum

    mode = {"now": "sum"}
    plain = {"render": SGIModel.render, "training_render": SGIModel.training_render}
    make, optimizer, refined = SGIModel.__init__, fit_module._optimizer, refine_module._parameters

    def init(self, *a, **k):
        make(self, *a, **k)
        self.log_eps = torch.nn.Parameter(torch.tensor(math.log(args.eps)))
        self.opacity = torch.nn.Linear(self.config.feature_dim, 2 * self.config.gaussians_per_seed)
        torch.nn.init.zeros_(self.opacity.weight)
        torch.nn.init.zeros_(self.opacity.bias)

    def extra(model) -> list:
        learned = [model.log_eps] if mode["now"] in ("learn", "opacity", "mix") else []
        heads = list(model.opacity.parameters()) if mode["now"] in ("opacity", "mix") else []
        return learned + heads

    def with_weight(model, colors, attributes):  # [P, C] -> [P, C + 1 (+ C)]
        if mode["now"] not in ("opacity", "mix"):
            return torch.cat([colors, torch.ones_like(colors[:, :1])], 1)
        features = (attributes or model.attributes()).features
        k = model.config.gaussians_per_seed
        heads = model.opacity(features)  # [N, 2K]: log-weights, gates
        weight = torch.exp(heads[:, :k].clamp(-6, 6)).reshape(-1, 1)
        if mode["now"] == "opacity":
            return torch.cat([colors * weight, weight], 1)
        # mix: a gate sends each Gaussian to the normalised part or to the plain sum
        gate = torch.sigmoid(heads[:, k:]).reshape(-1, 1)
        return torch.cat([colors * weight * gate, weight * gate, colors * (1 - gate)], 1)

    def normalised(model, sums):  # [C + 1 (+ C), H, W] -> [C, H, W]
        eps = args.eps if mode["now"] == "norm" else torch.exp(model.log_eps)
        if mode["now"] == "mix":
            c = (sums.shape[0] - 1) // 2
            return sums[:c] / (sums[c : c + 1] + eps) + sums[c + 1 :]
        return sums[:-1] / (sums[-1:] + eps)

    def render(self, level=0, attributes=None, backend="auto"):
        if mode["now"] == "sum":
            return plain["render"](self, level, attributes, backend)
        height, width = level_shape(self.config.height, self.config.width, level)
        means, conics, colors = self.level_gaussians(level, attributes)
        colors = with_weight(self, colors, attributes)
        return normalised(self, rasterize_sum(means, conics, colors, height, width, backend))

    def training_render(self, level=0, attributes=None, backend="auto"):
        if mode["now"] == "sum":
            return plain["training_render"](self, level, attributes, backend)
        height, width = level_shape(self.config.height, self.config.width, level)
        means, conics, colors, bounds = level_gaussians_cpu(self, level, attributes)
        colors = with_weight(self, colors, attributes)
        return normalised(self, rasterize_sum_cpu(means, conics, colors, bounds, height, width))

    def optimizer_with_extra(model):
        adam, groups = optimizer(model)
        groups["mlp_color"]["params"].extend(extra(model))
        return adam, groups

    def refined_with_extra(model):
        groups = refined(model)
        groups["mlp_color"] = groups["mlp_color"] + extra(model)
        return groups

    SGIModel.__init__, SGIModel.render, SGIModel.training_render = init, render, training_render
    fit_module._optimizer, refine_module._parameters = optimizer_with_extra, refined_with_extra
    for density in args.densities:
        for name in args.modes:
            mode["now"] = name
            _compress(image, args, density, mode=name, eps=args.eps)


def _pilot_error(image: np.ndarray, density: float) -> np.ndarray:  # [H, W]
    from napari_sgi.api import fit_image

    decoded = fit_image(image, preset="fast", density=density).decoded.astype(np.float64)
    error = ((image.astype(np.float64) - decoded) / float(np.ptp(image))) ** 2
    return error.mean(-1) if error.ndim == 3 else error


def probe_layout(image: np.ndarray, args) -> None:
    from napari_sgi.core import fit as fit_module
    from napari_sgi.core import seed_map

    plain = seed_map.seed_map_for_image
    guide = {"error": None, "power": 0.0}

    def guided(pixels, count, pixel_weights=None):
        if guide["error"] is None or count < seed_map.MIN_MAP_SEEDS:
            return plain(pixels, count, pixel_weights)
        _, height, width = pixels.shape
        spacing = math.sqrt(height * width / count)
        cell = seed_map.map_cell(spacing)
        energy, _ = seed_map.cell_detail(np.asarray(pixels, np.float64).mean(0), spacing, cell)
        weight = seed_map.detail_weight(energy, seed_map.DETAIL_FLOOR * energy.mean())
        error = seed_map.cell_means(guide["error"], cell)
        weight = weight * (error / error.mean() + 0.05) ** guide["power"]
        relative = np.maximum(weight / weight.max(), 2.0**-seed_map.LEVELS)
        levels = np.clip(np.round(2 * np.log2(relative)) + seed_map.LEVELS - 1, 0, 15)
        return seed_map.format_seed_map(cell, levels.astype(np.int64))

    fit_module.seed_map_for_image = guided
    for density in args.densities:
        guide["error"] = None
        _compress(image, args, density, arm="detail")
        guide["error"] = _pilot_error(image, density)
        for power in args.powers:
            guide["power"] = power
            _compress(image, args, density, arm=f"error^{power:g}")


def probe_filter(image: np.ndarray, args) -> None:
    from napari_sgi.api import fit_image

    original = image.astype(np.float64)
    peak = 255.0 if image.dtype == np.uint8 else float(np.ptp(image))
    for density in args.densities:
        decoded = fit_image(image, preset="fast", density=density).decoded.astype(np.float64)
        row = {
            "image": args.image,
            "density": density,
            "psnr": round(_psnr(original, decoded, peak), 3),
        }
        for radius in (1, 2):
            filtered = _least_squares_filter(decoded, original, radius)
            gain = _psnr(original, filtered, peak) - row["psnr"]
            row[f"gain_{2 * radius + 1}x{2 * radius + 1}"] = round(gain, 3)
        print(json.dumps(row), flush=True)


def _least_squares_filter(decoded: np.ndarray, original: np.ndarray, radius: int) -> np.ndarray:
    """``decoded`` filtered by the (2r+1)^2 taps and bias that bring it closest to ``original``."""
    decoded3 = decoded.reshape(*decoded.shape[:2], -1)
    original3 = original.reshape(decoded3.shape)
    height, width, channels = decoded3.shape
    padded = np.pad(decoded3, ((radius, radius), (radius, radius), (0, 0)), mode="edge")
    out = np.empty_like(decoded3)
    side = 2 * radius + 1
    for c in range(channels):
        taps = [
            padded[i : i + height, j : j + width, c].ravel()
            for i in range(side)
            for j in range(side)
        ]
        basis = np.stack([*taps, np.ones(height * width)], 1)
        coefficients, *_ = np.linalg.lstsq(basis, original3[..., c].ravel(), rcond=None)
        out[..., c] = (basis @ coefficients).reshape(height, width)
    return out.reshape(decoded.shape)


def _psnr(a: np.ndarray, b: np.ndarray, peak: float) -> float:
    return 10 * math.log10(peak**2 / float(np.mean((a - b) ** 2)))


if __name__ == "__main__":
    main()
