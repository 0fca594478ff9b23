"""Would starting a fit from the image instead of from a black render save steps? A probe.

Run:  python benchmarks/probe_init.py [--images nuclei ihc] [--steps 1500 3000]
          [--arms none mean geo lsq als] [--density 0.01] [--out results.jsonl]

Issue 20's first suggestion: a model starts with zero features, zero offsets and a colour MLP
whose last layer is ~0 (the first render is black). Here a fresh model (``make_model``, the
``default`` preset at ``--density``) is given one of these initialisations before the usual fit
(``encode.targeting.fit_region``); nothing else changes. All of them work on the coarsest pyramid
level, where the fit starts, and are deterministic (no random numbers besides the model's own).

``none``
    The model as ``make_model`` builds it (the product today).
``mean``
    Only the colour MLP's last bias, one colour per channel for all Gaussians, by least squares:
    the first render is the image's mean brightness, spread as the (still small, concentric)
    Gaussians allow.
``geo``
    Only the geometry: each seed's K offsets spread on a disc of 0.7 x its spacing (a sunflower
    pattern) and its size scalings 1.0 x its spacing (today they start concentric and at most
    1.65 coarsest-level pixels wide: seeds.initial_log_scaling); colours as built (black).
``lsq``
    ``geo``, then features from the image: the first F principal components of a 3x3 patch of
    the image, blurred to the seed spacing, sampled around each seed's anchor, each standardised;
    the colour MLP's first layer is set to the identity with a bias of 3, so that its ReLU passes
    them (with the random first layer as built, half of them were cut and the first render was
    worse). Then the colour MLP's last layer (weight and bias) by linear least squares, so that
    the render of the coarsest level matches the image: the render is linear in the colours and
    the colours linear in that layer, so the render is a sum of basis images, rasterised with
    one-hot "colours".
``als``
    ``lsq``, then 4 rounds of alternating least squares: every seed's features given the last
    layer (the colours are linear in them), then the last layer given the features.

Each fit is coded by the real encoder (``codec.model.encode_model``: bytes are the sum of its
sections), and the PSNR is that of the decoded model's render in the image's own dtype, as
``encode.fitting.fit_image`` measures it. The fit's own PSNR (of the training render at the level
being fitted, with training noise after the warm-up) is printed at a few early steps and at the
end of every level. Nothing is timed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _images import load  # noqa: E402

from napari_sgi.codec.model import encode_model  # noqa: E402
from napari_sgi.core.fit import make_model  # noqa: E402
from napari_sgi.core.image import ValueRange, build_pyramid, from_tensor, to_tensor  # noqa: E402
from napari_sgi.core.metrics import psnr  # noqa: E402
from napari_sgi.core.presets import configure  # noqa: E402
from napari_sgi.core.rasterize import rasterize_sum  # noqa: E402
from napari_sgi.encode.targeting import fit_region  # noqa: E402

ARMS = ("none", "mean", "geo", "lsq", "als")
TRACE_STEPS = (1, 10, 25, 50, 100, 200, 400)
RIDGE = 1e-6  # relative to the mean diagonal of the normal equations
HIDDEN_SHIFT = 3.0  # bias of the identity first layer (the features are standardised)
SIZE_FACTOR = 1.0  # geometry: size scalings, times the seed spacing
OFFSET_RADIUS = 0.7  # geometry: radius of the offsets' disc, times the seed spacing
GOLDEN_ANGLE = math.pi * (3 - math.sqrt(5))


# -- the basis of the render in the colour MLP's last layer -------------------------------------
def _geometry(model, level):
    """Means and conics of the model's Gaussians at ``level`` (colours ignored)."""
    with torch.no_grad():
        means, conics, _ = model.level_gaussians(level)
    return means.float(), conics.float()


def _hidden(model) -> torch.Tensor:  # [N, F]: the colour MLP's hidden layer, after its ReLU
    with torch.no_grad():
        return model.mlp_color[1](model.mlp_color[0](model.features))


def solve_last_layer(model, target: torch.Tensor, level: int, *, bias_only: bool = False) -> None:
    """Set the colour MLP's last layer to the least-squares fit of ``target`` (the image at
    ``level``) given the model's geometry and hidden layer.

    The colour of Gaussian k of seed n in channel c is ``W[kC+c] . h_n + b[kC+c]``, so the render
    of channel c is ``sum_k sum_j W[kC+c, j] B_kj + b[kC+c] B_k1`` with the basis images
    ``B_kj = sum_n h_nj G_nk`` (and ``B_k1 = sum_n G_nk``): one rasterisation with K*(F+1)
    one-hot channels, shared by all channels of the image.
    """
    k = model.config.gaussians_per_seed
    c = model.config.channels
    means, conics = _geometry(model, level)
    hidden = _hidden(model)  # [N, F]
    n, f = hidden.shape
    if bias_only:
        rows = torch.ones(n, 1)
    else:
        rows = torch.cat([hidden, torch.ones(n, 1)], 1)  # [N, F+1]
    d = rows.shape[1]
    colours = torch.zeros(n, k, k, d)  # Gaussian (n, k) feeds the columns (k, :)
    idx = torch.arange(k)
    colours[:, idx, idx, :] = rows[:, None, :]
    height, width = target.shape[1:]
    with torch.no_grad():
        basis = rasterize_sum(means, conics, colours.reshape(n * k, k * d), height, width)
    design = basis.reshape(k * d, -1).T.double()  # [P, K*(F+1)]
    y = target.reshape(c, -1).T.double()  # [P, C]
    gram = design.T @ design
    gram += RIDGE * gram.diagonal().mean() * torch.eye(len(gram), dtype=gram.dtype)
    x = torch.linalg.solve(gram, design.T @ y)  # [K*(F+1), C]
    x = x.reshape(k, d, c)  # (k, j, channel)
    layer = model.mlp_color[2]
    with torch.no_grad():
        out = x.permute(0, 2, 1).reshape(k * c, d).float()  # row k*C + channel
        layer.bias.copy_(out[:, -1])
        if not bias_only:
            layer.weight.copy_(out[:, :-1])


# -- the initialisations ------------------------------------------------------------------------
def _standardise(values: np.ndarray) -> np.ndarray:
    values = values - values.mean(0)
    return values / np.maximum(values.std(0), 1e-8)


def init_mean(model, pyramid) -> None:
    """One colour per channel for every Gaussian (the last layer's bias, the same for all K),
    by least squares: the first render has the image's mean brightness where the Gaussians
    reach. (A bias per k, solved freely, gave colours of +-50 on the K concentric, nearly
    collinear Gaussians of a new seed, and a fit that never recovered.)"""
    level = model.config.levels - 1
    target = pyramid[level]
    means, conics = _geometry(model, level)
    with torch.no_grad():
        coverage = rasterize_sum(means, conics, torch.ones(len(means), 1), *target.shape[1:])
        hidden_colour = model.mlp_color(model.features[:1]).reshape(-1, model.config.channels)
        a = coverage.reshape(-1).double()
        y = target.reshape(target.shape[0], -1).double()
        level_colour = (y @ a) / (a @ a)  # [C]
        layer = model.mlp_color[2]
        # the colours are (W h + b); h is the same for every seed (zero features): shift b so
        # that every Gaussian's colour is level_colour
        shift = level_colour.float()[None, :] - hidden_colour  # [K, C]
        layer.bias += shift.reshape(-1)


def _patch_features(model, image: torch.Tensor) -> np.ndarray:
    """[N, F]: PCA scores of a 3x3 patch (spacing s/2) of the image blurred to sigma s/2, s the
    seed's spacing (its initial scaling), around each anchor; standardised."""
    from scipy.ndimage import gaussian_filter, map_coordinates

    f = model.config.feature_dim
    anchors = model.anchors.numpy().astype(np.float64)  # (x, y) full-res pixels, centres at +0.5
    spacing = float(np.exp(model.log_scaling.detach().numpy()[:, 0]).mean())
    array = image.numpy().astype(np.float64)
    samples = []
    for channel in array:
        blurred = gaussian_filter(channel, spacing / 2, mode="nearest")
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                x = anchors[:, 0] - 0.5 + dx * spacing / 2
                y = anchors[:, 1] - 0.5 + dy * spacing / 2
                samples.append(map_coordinates(blurred, [y, x], order=1, mode="nearest"))
    patches = np.stack(samples, 1)  # [N, 9C]
    centred = patches - patches.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    vt *= np.sign(vt.sum(1, keepdims=True) + 1e-30)  # a deterministic sign per component
    return _standardise(centred @ vt[:f].T)


def init_geometry(model) -> None:
    """Gaussians that cover the image: each seed's K offsets on a sunflower disc of radius
    ``OFFSET_RADIUS`` times its spacing (RMS distance to its 3 nearest seeds, full-res pixels),
    and its size scalings (log_scaling[:, 2:4]) ``SIZE_FACTOR`` times that spacing. The offsets'
    unit (log_scaling[:, :2]) stays as built, so that their quantisation step in pixels does too.
    Without this, every seed starts with its K Gaussians concentric and at most 1.65 coarsest-level
    pixels wide (seeds.initial_log_scaling), leaving gaps between seeds that no colour can fill."""
    from scipy.spatial import cKDTree

    anchors = model.anchors.numpy().astype(np.float64)
    distances, _ = cKDTree(anchors).query(anchors, k=min(4, len(anchors)))
    spacing = np.sqrt(np.mean(distances[:, 1:] ** 2, 1)) if len(anchors) > 1 else np.ones(1)
    k = model.config.gaussians_per_seed
    radius = np.sqrt((np.arange(k) + 0.5) / k)
    angle = np.arange(k) * GOLDEN_ANGLE
    pattern = np.stack([radius * np.cos(angle), radius * np.sin(angle)], 1)  # [K, 2] unit disc
    with torch.no_grad():
        unit = torch.exp(model.log_scaling[:, :2]).double().numpy()  # [N, 2] pixels
        offsets = pattern[None] * OFFSET_RADIUS * spacing[:, None, None] / unit[:, None, :]
        model.offsets.copy_(torch.from_numpy(offsets).float())
        sizes = torch.from_numpy(np.log(SIZE_FACTOR * spacing)).float()
        model.log_scaling[:, 2:4] = sizes[:, None]


def _pass_through(model) -> None:
    """The colour MLP's first layer as the identity with a bias of HIDDEN_SHIFT: its ReLU passes
    standardised features, so that the colours are linear in them."""
    first = model.mlp_color[0]
    with torch.no_grad():
        first.weight.copy_(torch.eye(first.out_features, first.in_features))
        first.bias.fill_(HIDDEN_SHIFT)


def _set_features(model, features: np.ndarray) -> None:
    with torch.no_grad():
        model.features.copy_(torch.from_numpy(features).float())


def init_geo(model, pyramid) -> None:
    init_geometry(model)


def init_lsq(model, pyramid) -> None:
    init_geometry(model)
    _set_features(model, _patch_features(model, pyramid[0]))
    _pass_through(model)
    level = model.config.levels - 1
    solve_last_layer(model, pyramid[level], level)


def _all_gaussians_basis(model, level: int, height: int, width: int) -> torch.Tensor:
    """[P, N, K]: each Gaussian's image at ``level`` (one-hot colours)."""
    means, conics = _geometry(model, level)
    g = len(means)
    with torch.no_grad():
        basis = rasterize_sum(means, conics, torch.eye(g), height, width)  # [G, h, w]
    k = model.config.gaussians_per_seed
    return basis.reshape(g, -1).T.double().reshape(-1, g // k, k)


def init_als(model, pyramid, rounds: int = 4) -> None:
    """``lsq``, then alternate: the features of every seed by (ridge) least squares given the
    last layer (the colours are linear in them through the pass-through first layer), then the
    last layer given the features; features re-standardised each round (the last layer absorbs
    the scale)."""
    init_lsq(model, pyramid)
    level = model.config.levels - 1
    target = pyramid[level]
    c, (height, width) = target.shape[0], target.shape[1:]
    k, f = model.config.gaussians_per_seed, model.config.feature_dim
    y = target.reshape(c, -1).double()  # [C, P]
    for _ in range(rounds):
        basis = _all_gaussians_basis(model, level, height, width)  # [P, N, K]
        n = basis.shape[1]
        layer = model.mlp_color[2]
        weight = layer.weight.detach().double().reshape(k, c, f)
        bias = layer.bias.detach().double().reshape(k, c)
        # colour(n, k, c) = W[k, c] . (f_n + shift) + b[k, c]
        constant = torch.einsum("pnk,kc->cp", basis, bias + HIDDEN_SHIFT * weight.sum(-1))
        design = torch.einsum("pnk,kcj->cpnj", basis, weight).reshape(c * basis.shape[0], n * f)
        rhs = (y - constant).reshape(-1)
        gram = design.T @ design
        gram += RIDGE * gram.diagonal().mean() * torch.eye(n * f, dtype=gram.dtype)
        features = torch.linalg.solve(gram, design.T @ rhs).reshape(n, f).numpy()
        _set_features(model, _standardise(features))
        solve_last_layer(model, target, level)


INITS = {
    "none": lambda model, pyramid: None,
    "mean": init_mean,
    "geo": init_geo,
    "lsq": init_lsq,
    "als": init_als,
}


# -- one fit --------------------------------------------------------------------------------------
def level_psnr(model, pyramid, level: int) -> float:
    with torch.no_grad():
        return psnr(model.render(level).clamp(0, 1), pyramid[level])


@contextlib.contextmanager
def lr_warmup(steps: int):
    """Probe only: every learning rate ramps linearly from 1/steps to its value over the first
    ``steps`` steps (``Schedule.learning_rate`` patched for the duration); 0: the product's."""
    if steps <= 0:
        yield
        return
    from napari_sgi.core.schedule import Schedule

    original = Schedule.learning_rate

    def ramped(self, group, step, scale=1.0):
        return original(self, group, step, scale) * min(1.0, (step + 1) / steps)

    Schedule.learning_rate = ramped
    try:
        yield
    finally:
        Schedule.learning_rate = original


def run(name: str, steps: int, arm: str, density: float, warmup: int = 0) -> dict:
    image = load(name)
    value_range = ValueRange.of(image)
    target = to_tensor(image, value_range)
    channels, height, width = target.shape
    config = configure("default", height, width, channels, iterations=steps, density=density)
    model = make_model(tuple(target.shape), config, target)
    pyramid = build_pyramid(target, config.levels)
    coarsest = config.levels - 1
    INITS[arm](model, pyramid)
    start = {
        "coarsest": level_psnr(model, pyramid, coarsest),
        "full": level_psnr(model, pyramid, 0),
    }
    history = []
    with lr_warmup(warmup):
        fit_region(
            target,
            config,
            core_pixels=height * width,
            model=model,
            progress=lambda e: history.append((e.step, e.level, e.psnr)),
        )
    sections = encode_model(model)
    size = sum(len(v) for v in sections.values())
    with torch.no_grad():
        render = model.render(0).clamp(0, 1)
    decoded = from_tensor(render, value_range, image.ndim)
    quality = psnr(to_tensor(decoded, value_range), target)
    trace = {step: round(p, 2) for step, _, p in history if step in TRACE_STEPS}
    level_ends = {}
    for i, (step, level, _) in enumerate(history):
        nxt = history[i + 1][1] if i + 1 < len(history) else None
        if nxt != level:  # the last step at this level (the refinement is level 0 too)
            # the mean of the last 10 steps at the level: the training PSNR is noisy
            window = [q for s, lv, q in history[max(0, i - 9) : i + 1] if lv == level]
            level_ends[f"L{level}@{step}"] = round(
                -10 * math.log10(np.mean([10 ** (-q / 10) for q in window])), 2
            )
    return {
        "image": name,
        "steps": steps,
        "arm": arm + (f"+w{warmup}" if warmup else ""),
        "density": density,
        "seeds": model.config.seed_count,
        "bytes": size,
        "bpp": round(8 * size / (height * width), 4),
        "psnr": round(quality, 3),
        "init_psnr": {key: round(v, 2) for key, v in start.items()},
        "trace": trace,
        "level_ends": level_ends,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", nargs="+", default=["nuclei", "ihc"])
    parser.add_argument("--steps", nargs="+", type=int, default=[1500, 3000])
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    parser.add_argument("--density", type=float, default=0.01)
    parser.add_argument(
        "--warmup", type=int, default=0, help="probe only: ramp every learning rate over N steps"
    )
    parser.add_argument("--out", type=Path, help="append one JSON line per fit")
    args = parser.parse_args()
    rows = []
    for name in args.images:
        for steps in args.steps:
            for arm in args.arms:
                row = run(name, steps, arm, args.density, args.warmup)
                rows.append(row)
                print(json.dumps(row), flush=True)
                if args.out:
                    with args.out.open("a") as out:
                        out.write(json.dumps(row) + "\n")
    print(f"\n{'image':8} {'steps':>5} {'arm':5} {'bytes':>6} {'bpp':>7} {'PSNR':>7} {'dPSNR':>6}")
    base = {(r["image"], r["steps"]): r for r in rows if r["arm"].startswith("none")}
    for r in rows:
        ref = base.get((r["image"], r["steps"]))
        delta = f"{r['psnr'] - ref['psnr']:+.3f}" if ref else ""
        print(
            f"{r['image']:8} {r['steps']:5} {r['arm']:5} {r['bytes']:6} {r['bpp']:7.4f} "
            f"{r['psnr']:7.3f} {delta:>6}"
        )


if __name__ == "__main__":
    main()
