"""The sum rasterizer: the compiled CPU kernel against the PyTorch reference, and the reference."""

from __future__ import annotations

import math

import pytest
import torch

from napari_sgi.core import rasterize
from napari_sgi.core._raster_torch import rasterize_sum_torch
from napari_sgi.core.raster_rules import ALPHA_MAX, SIGMA_CUT, gaussian_pixel_bounds
from napari_sgi.core.rasterize import cpu_kernel_available, rasterize_sum

needs_kernel = pytest.mark.skipif(not cpu_kernel_available(), reason="compiled kernel not built")


def random_scene(
    count: int, height: int, width: int, channels: int, seed: int = 0, dtype=torch.float32
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # [P, 2], [P, 3], [P, C]
    """Anisotropic, rotated Gaussians (scales 0.6-3 px), some straddling the image border."""
    gen = torch.Generator().manual_seed(seed)
    margin = 8.0
    size = torch.tensor([width + 2 * margin, height + 2 * margin], dtype=torch.float64)
    means = torch.rand(count, 2, generator=gen, dtype=torch.float64) * size - margin
    scales = 0.6 + 2.4 * torch.rand(count, 2, generator=gen, dtype=torch.float64)
    theta = math.pi * torch.rand(count, generator=gen, dtype=torch.float64)
    cos, sin = theta.cos(), theta.sin()
    s1, s2 = scales[:, 0] ** 2, scales[:, 1] ** 2
    cov_xx, cov_xy, cov_yy = (
        cos**2 * s1 + sin**2 * s2,
        cos * sin * (s1 - s2),
        sin**2 * s1 + cos**2 * s2,
    )
    det = cov_xx * cov_yy - cov_xy**2
    conics = torch.stack([cov_yy / det, -cov_xy / det, cov_xx / det], -1)
    colors = torch.rand(count, channels, generator=gen, dtype=torch.float64) - 0.2
    return means.to(dtype), conics.to(dtype), colors.to(dtype)


def render_with_grads(fn, means, conics, colors, height, width, seed: int = 1):
    """Image and gradients of a random weighting of fn(means, conics, colors, bounds, H, W)."""
    leaves = [t.detach().clone().requires_grad_() for t in (means, conics, colors)]
    bounds = gaussian_pixel_bounds(means, conics, height, width)
    image = fn(*leaves, bounds, height, width)
    weights = torch.randn(
        image.shape, generator=torch.Generator().manual_seed(seed), dtype=image.dtype
    )
    (image * weights).sum().backward()
    return [image.detach()] + [leaf.grad for leaf in leaves]


def assert_close_scaled(actual: torch.Tensor, expected: torch.Tensor, rtol: float = 1e-5) -> None:
    scale = float(expected.abs().max()) if expected.numel() else 1.0
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=rtol * max(scale, 1e-6))


def cpu_backend(means, conics, colors, bounds, height, width):
    from napari_sgi.core._raster_cpu import rasterize_sum_cpu

    return rasterize_sum_cpu(means, conics, colors, bounds, height, width)


def test_bounds_docstring_example():
    means = torch.tensor([[20.0, 5.0]])
    conics = torch.tensor([[1.0, 0.0, 1.0]])
    assert gaussian_pixel_bounds(means, conics, 64, 64).tolist() == [[16, 0, 32, 16]]


def test_reference_gradcheck_float64():
    """The reference is smooth where no pixel sits on the sigma cut or the alpha clamp."""
    means, conics, colors = random_scene(4, 19, 21, 2, seed=3, dtype=torch.float64)
    means[0] = torch.tensor(
        [9.51, 9.515], dtype=torch.float64
    )  # alpha clamped at its central pixel
    bounds = gaussian_pixel_bounds(means, conics, 19, 21)
    gaussian, px, py = _box_pairs(bounds)
    dx, dy = means[gaussian, 0] - (px + 0.5), means[gaussian, 1] - (py + 0.5)
    a, b, c = conics[gaussian].unbind(-1)
    sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
    assert float((sigma - SIGMA_CUT).abs().min()) > 1e-3
    assert float((torch.exp(-sigma) - ALPHA_MAX).abs().min()) > 1e-4
    assert (torch.exp(-sigma) > ALPHA_MAX).any() and (sigma > SIGMA_CUT).any()
    inputs = [t.clone().requires_grad_() for t in (means, conics, colors)]
    assert torch.autograd.gradcheck(
        lambda m, k, col: rasterize_sum_torch(m, k, col, bounds, 19, 21),
        inputs,
        eps=1e-6,
        atol=1e-6,
    )


def _box_pairs(bounds):  # [P, 4] -> gaussian, px, py: every pair of every box
    pairs = [
        (g, x, y)
        for g, (x0, y0, x1, y1) in enumerate(bounds.tolist())
        for y in range(y0, y1)
        for x in range(x0, x1)
    ]
    gaussian, px, py = (torch.tensor(column) for column in zip(*pairs, strict=True))
    return gaussian, px.double(), py.double()


@needs_kernel
@pytest.mark.parametrize(
    ("height", "width", "channels", "count"),
    [(37, 53, 3, 300), (16, 16, 1, 60), (70, 45, 5, 500), (1, 33, 3, 20), (128, 96, 3, 1500)],
)
def test_cpu_matches_reference(height, width, channels, count):
    scene = random_scene(count, height, width, channels, seed=height + width)
    expected = render_with_grads(rasterize_sum_torch, *scene, height, width)
    actual = render_with_grads(cpu_backend, *scene, height, width)
    for name, got, want in zip(
        ["image", "means", "conics", "colors"], actual, expected, strict=True
    ):
        assert got.shape == want.shape, name
        assert_close_scaled(got, want)


def use_isa(isa: str, monkeypatch) -> None:
    """Force the kernel's instruction set for this test, or skip where the CPU lacks it."""
    from napari_sgi.core._raster_cpu import ISA_ENV, available_isas

    if isa not in available_isas():
        pytest.skip(f"this CPU cannot run {isa}")
    monkeypatch.setenv(ISA_ENV, isa)


@needs_kernel
@pytest.mark.parametrize("isa", ["baseline", "avx2", "avx512"])
def test_every_instruction_set_matches_reference(isa, monkeypatch):
    from napari_sgi.core._raster_cpu import kernel_isa

    use_isa(isa, monkeypatch)
    assert kernel_isa() == isa
    scene = random_scene(400, 45, 67, 3, seed=7)
    expected = render_with_grads(rasterize_sum_torch, *scene, 45, 67)
    actual = render_with_grads(cpu_backend, *scene, 45, 67)
    for got, want in zip(actual, expected, strict=True):
        assert_close_scaled(got, want)


@needs_kernel
def test_unknown_instruction_set_is_refused(monkeypatch):
    from napari_sgi.core._raster_cpu import ISA_ENV, kernel_isa

    monkeypatch.setenv(ISA_ENV, "sse9")
    with pytest.raises(ValueError, match="sse9"):
        kernel_isa()


def elongated_scene(
    count: int, height: int, width: int, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # [P, 2], [P, 3], [P, 3]
    """Rotated Gaussians of anisotropy 20:1 (long sigma 4-12 px) centred near tile corners."""
    gen = torch.Generator().manual_seed(seed)
    tiles = torch.tensor([width // 16 + 1, height // 16 + 1], dtype=torch.float64)
    corners = 16.0 * (torch.rand(count, 2, generator=gen, dtype=torch.float64) * tiles).floor()
    means = corners + 6.0 * torch.rand(count, 2, generator=gen, dtype=torch.float64) - 3.0
    long_scale = 4.0 + 8.0 * torch.rand(count, generator=gen, dtype=torch.float64)
    s1, s2 = long_scale**2, (long_scale / 20.0) ** 2
    theta = math.pi * torch.rand(count, generator=gen, dtype=torch.float64)
    cos, sin = theta.cos(), theta.sin()
    cov_xx, cov_xy, cov_yy = (
        cos**2 * s1 + sin**2 * s2,
        cos * sin * (s1 - s2),
        sin**2 * s1 + cos**2 * s2,
    )
    det = cov_xx * cov_yy - cov_xy**2
    conics = torch.stack([cov_yy / det, -cov_xy / det, cov_xx / det], -1)
    colors = 0.1 + torch.rand(count, 3, generator=gen, dtype=torch.float64)
    return means.float(), conics.float(), colors.float()


@needs_kernel
@pytest.mark.parametrize("isa", ["baseline", "avx2", "avx512"])
def test_skipping_keeps_the_pairs_of_elongated_gaussians(isa, monkeypatch):
    """Evaluating only near each ellipse takes the pairs that evaluating whole boxes takes."""
    from napari_sgi.core._raster_cpu import NO_SKIP_ENV, evaluated_pairs

    use_isa(isa, monkeypatch)
    height, width = 75, 90
    scene = elongated_scene(150, height, width, seed=17)
    bounds = gaussian_pixel_bounds(scene[0], scene[1], height, width)
    box_pairs = int(((bounds[:, 2] - bounds[:, 0]) * (bounds[:, 3] - bounds[:, 1])).sum())
    monkeypatch.setenv(NO_SKIP_ENV, "1")
    whole_boxes = render_with_grads(cpu_backend, *scene, height, width)
    evaluated_whole = evaluated_pairs(*scene, bounds, height, width)
    assert evaluated_whole >= box_pairs  # whole 16-lane rows, past the image's right edge too
    monkeypatch.delenv(NO_SKIP_ENV)
    skipped = render_with_grads(cpu_backend, *scene, height, width)
    assert evaluated_pairs(*scene, bounds, height, width) < 0.5 * evaluated_whole  # skipping is on
    expected = render_with_grads(rasterize_sum_torch, *scene, height, width)
    # Positive colours: a pair taken by one run and not the other would change the image.
    assert torch.equal(skipped[0], whole_boxes[0])
    for name, got, full, want in zip(
        ["image", "means", "conics", "colors"], skipped, whole_boxes, expected, strict=True
    ):
        assert torch.equal(got, full), name  # skipped pixels would have added exact zeros
        assert_close_scaled(got, want)


@needs_kernel
def test_pairs_on_the_cut_and_the_clamp_are_taken_alike():
    """sigma == SIGMA_CUT exactly (kept) at one pixel and sigma == 0 (alpha clamped) at another."""
    a = 2.0 * SIGMA_CUT  # sigma = A / 2 one pixel away along x
    means = torch.tensor([[10.5, 7.5], [3.5, 20.5]])
    conics = torch.tensor([[a, 0.0, a], [a, 0.0, a]])
    colors = torch.tensor([[1.0, 2.0], [0.5, -1.0]])
    expected = render_with_grads(rasterize_sum_torch, means, conics, colors, 24, 24)
    actual = render_with_grads(cpu_backend, means, conics, colors, 24, 24)
    assert float(actual[0][0, 7, 11]) > 0.0  # the pixel exactly on the cut contributes
    for got, want in zip(actual, expected, strict=True):
        assert_close_scaled(got, want)


@pytest.mark.parametrize("backend", ["torch", pytest.param("cpu", marks=needs_kernel)])
def test_empty_input_gives_zeros_and_empty_gradients(backend):
    leaves = [torch.zeros(0, n, requires_grad=True) for n in (2, 3, 4)]
    image = rasterize_sum(*leaves, 20, 18, backend=backend)
    assert image.shape == (4, 20, 18)
    assert not image.any()
    image.sum().backward()
    assert [tuple(leaf.grad.shape) for leaf in leaves] == [(0, 2), (0, 3), (0, 4)]


@pytest.mark.parametrize("backend", ["torch", pytest.param("cpu", marks=needs_kernel)])
def test_degenerate_conics_are_skipped(backend):
    means, conics, colors = random_scene(6, 32, 32, 3, seed=5)
    bad = torch.tensor(
        [
            [1.0, 2.0, 1.0],
            [0.0, 0.0, 0.0],
            [-1.0, 0.0, -1.0],
            [math.nan, 0.0, 1.0],
            [math.inf, 0.0, 1.0],
        ]
    )
    all_conics = torch.cat([conics, bad])
    all_means = torch.cat([means, torch.full((5, 2), 16.0)])
    all_colors = torch.cat([colors, torch.ones(5, 3)])
    leaves = [t.clone().requires_grad_() for t in (all_means, all_conics, all_colors)]
    image = rasterize_sum(*leaves, 32, 32, backend=backend)
    torch.testing.assert_close(image, rasterize_sum(means, conics, colors, 32, 32, backend=backend))
    image.sum().backward()
    for leaf in leaves:
        assert torch.isfinite(leaf.grad).all()
        assert not leaf.grad[6:].any()


def test_bad_shapes_raise():
    means, conics, colors = random_scene(5, 16, 16, 3)
    with pytest.raises(ValueError, match="means"):
        rasterize_sum(means[:, :1], conics, colors, 16, 16)
    with pytest.raises(ValueError, match="conics"):
        rasterize_sum(means, conics[:4], colors, 16, 16)
    with pytest.raises(ValueError, match="colors"):
        rasterize_sum(means, conics, colors[:, :0], 16, 16)
    with pytest.raises(ValueError, match="size"):
        rasterize_sum(means, conics, colors, 0, 16)
    with pytest.raises(ValueError, match="backend"):
        rasterize_sum(means, conics, colors, 16, 16, backend="gpu")


@needs_kernel
def test_cpu_backend_refuses_float64():
    scene = random_scene(5, 16, 16, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match="float32"):
        rasterize_sum(*scene, 16, 16, backend="cpu")


@needs_kernel
def test_non_contiguous_inputs_and_partial_requires_grad():
    means, conics, colors = random_scene(200, 40, 50, 3, seed=11)
    expected = render_with_grads(rasterize_sum_torch, means, conics, colors, 40, 50)
    # Strided views of the same values; only conics and colors ask for gradients.
    means_t = means.T.contiguous().T
    colors_wide = torch.stack([colors, -colors], -1).flatten(1)[:, ::2]
    conics_leaf = conics.clone().requires_grad_()
    colors_leaf = colors_wide.detach().requires_grad_()
    assert not means_t.is_contiguous() and not colors_leaf.is_contiguous()
    bounds = gaussian_pixel_bounds(means, conics, 40, 50)
    image = cpu_backend(means_t, conics_leaf, colors_leaf, bounds, 40, 50)
    weights = torch.randn(image.shape, generator=torch.Generator().manual_seed(1))
    (image * weights).sum().backward()
    assert_close_scaled(image.detach(), expected[0])
    assert_close_scaled(conics_leaf.grad, expected[2])
    assert_close_scaled(colors_leaf.grad, expected[3])


@needs_kernel
def test_cpu_backend_is_deterministic_across_runs_and_threads():
    scene = random_scene(2000, 96, 80, 3, seed=13)
    threads = torch.get_num_threads()
    try:
        runs = [render_with_grads(cpu_backend, *scene, 96, 80) for _ in range(2)]
        torch.set_num_threads(1)
        runs.append(render_with_grads(cpu_backend, *scene, 96, 80))
    finally:
        torch.set_num_threads(threads)
    for run in runs[1:]:
        for got, want in zip(run, runs[0], strict=True):
            assert torch.equal(got, want)


@needs_kernel
def test_auto_dispatch_picks_the_cpu_kernel():
    from napari_sgi.core._raster_cpu import rasterize_sum_cpu

    scene = random_scene(50, 20, 30, 3)
    assert rasterize._choose_backend("auto", scene[2]) == "cpu"
    assert rasterize._choose_backend("auto", scene[2].double()) == "torch"
    bounds = gaussian_pixel_bounds(scene[0], scene[1], 20, 30)
    assert torch.equal(rasterize_sum(*scene, 20, 30), rasterize_sum_cpu(*scene, bounds, 20, 30))
