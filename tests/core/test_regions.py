import numpy as np
import pytest

from napari_sgi.core.image import level_shape
from napari_sgi.core.regions import axis_weights, blend, box_weights, plan_regions, regions_in

SHAPE = (200, 150)  # 4 x 3 regions of 64 (the last row and column shorter)


def _weights(regions, level, width):
    """Every region's weight at every pixel of ``level``: [n_regions, h, w]."""
    height, wide = level_shape(*SHAPE, level)
    ys = (np.arange(height) + 0.5) * 2**level
    xs = (np.arange(wide) + 0.5) * 2**level
    return np.stack(
        [
            axis_weights(ys, r.core[0], r.core[1], SHAPE[0], width)[:, None]
            * axis_weights(xs, r.core[2], r.core[3], SHAPE[1], width)[None, :]
            for r in regions
        ]
    )


@pytest.mark.parametrize("width", [0, 16, 32])
@pytest.mark.parametrize("level", [0, 1, 2])
def test_weights_are_a_partition_of_unity_inside_the_boxes(level, width):
    regions = plan_regions(*SHAPE, size=64, margin=32)
    weights = _weights(regions, level, width)
    assert np.all(weights.sum(axis=0) == 1.0)  # exactly: power-of-two widths
    factor = 2**level
    for region, weight in zip(regions, weights, strict=True):
        inside = np.zeros_like(weight, bool)
        top, left = region.box[0] // factor, region.box[2] // factor
        rows, cols = level_shape(*region.box_shape, level)  # the pixels its render has
        inside[top : top + rows, left : left + cols] = True
        assert not np.any(weight[~inside]), "a region is blended outside its fitted box"
        core = np.zeros_like(inside)
        y0, y1, x0, x1 = (v // factor for v in region.core)
        core[y0:y1, x0:x1] = True
        assert np.all(weight[core] > 0)  # every core pixel keeps some of its own model


def _random_renders(regions, level, channels=2, seed=0):
    rng = np.random.default_rng(seed)
    return [
        rng.random((*level_shape(*r.box_shape, level), channels)).astype(np.float32)
        for r in regions
    ]


@pytest.mark.parametrize("level", [0, 1, 2])
def test_any_window_reads_the_same_pixels(level):
    """Chunks, whole slices and the encoder's per-core measurement must agree to the bit."""
    regions = plan_regions(*SHAPE, size=64, margin=32)
    renders = _random_renders(regions, level)
    height, width = level_shape(*SHAPE, level)
    whole = blend(regions, renders.__getitem__, level, (0, height, 0, width), SHAPE, 32)
    rng = np.random.default_rng(level)
    for _ in range(20):
        y0, x0 = int(rng.integers(0, height - 1)), int(rng.integers(0, width - 1))
        y1, x1 = int(rng.integers(y0 + 1, height + 1)), int(rng.integers(x0 + 1, width + 1))
        used = []
        part = blend(
            regions,
            lambda n, used=used: used.append(n) or renders[n],
            level,
            (y0, y1, x0, x1),
            SHAPE,
            32,
        )
        assert np.array_equal(part, whole[y0:y1, x0:x1])
        assert sorted(used) == regions_in(regions, level, (y0, y1, x0, x1), SHAPE, 32)


def test_width_zero_is_the_hard_cut_and_a_ramp_blends_linearly():
    regions = plan_regions(64, 128, size=64, margin=32)  # two regions side by side
    renders = [np.full((*r.box_shape, 1), float(n), np.float32) for n, r in enumerate(regions)]
    cut = blend(regions, renders.__getitem__, 0, (0, 64, 0, 128), (64, 128), 0)[0, :, 0]
    assert np.array_equal(cut, (np.arange(128) >= 64).astype(float))
    ramp = blend(regions, renders.__getitem__, 0, (0, 64, 0, 128), (64, 128), 32)[0, :, 0]
    assert np.all(ramp[:48] == 0) and np.all(ramp[80:] == 1)
    assert np.allclose(np.diff(ramp[48:80]), 1 / 32)  # 32 equal steps across the border


def test_a_box_is_weighed_as_the_blend_shows_it():
    regions = plan_regions(*SHAPE, size=64, margin=32)
    shown = _weights(regions, 0, 32)
    for region, weight in zip(regions, shown, strict=True):
        y0, y1, x0, x1 = region.box
        assert np.array_equal(box_weights(region, SHAPE, 32), weight[y0:y1, x0:x1])
        outside = np.ones(SHAPE, bool)
        outside[y0:y1, x0:x1] = False
        assert not np.any(weight[outside])  # the box holds every pixel the blend shows of it


def test_a_slice_of_one_region_is_not_weighed():
    (region,) = plan_regions(64, 64)
    assert box_weights(region, (64, 64), 32) is None
