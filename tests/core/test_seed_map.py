"""Content-adaptive seed layouts: the map's coding, the counts, the positions, hostile maps."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sgi.core.seed_map import (
    LEVELS,
    MIN_MAP_SEEDS,
    cell_counts,
    format_seed_map,
    map_positions,
    parse_seed_map,
    seed_map_for_image,
)
from napari_sgi.core.seeds import SeedGrid
from napari_sgi.errors import SGIFormatError
from napari_sgi.file.header import check_model_config


def _detail_left(height=96, width=128) -> np.ndarray:
    """Noise on the left half, flat on the right: the detail a map should follow."""
    image = np.full((1, height, width), 0.3)
    image[0, :, : width // 2] += 0.5 * np.random.default_rng(1).random((height, width // 2))
    return image


@pytest.mark.parametrize("shape", [(3, 5), (4, 4), (1, 1)])
def test_map_round_trips_any_cell_count(shape):
    levels = np.random.default_rng(0).integers(0, LEVELS, shape)
    cell = 16
    text = format_seed_map(cell, levels)
    parsed_cell, parsed = parse_seed_map(text, shape[0] * cell - 3, shape[1] * cell, 100)
    assert parsed_cell == cell and np.array_equal(parsed, levels)


@pytest.mark.parametrize("count", [1, 7, 100, 999])
def test_counts_sum_to_the_seed_count_and_follow_the_levels(count):
    levels = np.array([[0, 4], [8, 15]])
    counts = cell_counts(64, 64, count, 32, levels)
    assert counts.sum() == count and (counts >= 0).all()
    assert list(counts) == sorted(counts)  # denser levels never get fewer seeds (equal cells)


def test_positions_are_exact_inside_the_image_and_denser_where_the_detail_is():
    image = _detail_left()
    text = seed_map_for_image(image, 200)
    grid = SeedGrid(96, 128, 200, rng_seed=3, seed_map=text)
    positions = grid.positions()
    assert positions.shape == (200, 2) and positions.dtype == np.float32
    assert np.array_equal(positions, grid.positions())  # regenerated bit for bit
    assert (positions[:, 0] >= 0).all() and (positions[:, 0] < 128).all()
    assert (positions[:, 1] >= 0).all() and (positions[:, 1] < 96).all()
    left = int((positions[:, 0] < 64).sum())
    assert left > 2 * (200 - left)  # the detailed half gets most seeds
    uniform = SeedGrid(96, 128, 200, rng_seed=3).positions()
    assert abs(int((uniform[:, 0] < 64).sum()) - 100) < 20


def test_positions_of_one_cell_follow_its_count():
    levels = np.array([[15, 0], [0, 0]])
    positions = map_positions(64, 64, 50, 0, format_seed_map(32, levels))
    counts = cell_counts(64, 64, 50, 32, levels)
    in_first = ((positions[:, 0] < 32) & (positions[:, 1] < 32)).sum()
    assert in_first == counts[0]


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "seed_map"),
        ("c32", "seed_map"),
        ("c33:AA==", "power of two"),
        ("c4:AA==", "power of two"),
        ("c32:AA", "base64"),
        ("c32:AAAA", "cells need"),  # 3 bytes; a 64x64 box at 32 px has 4 cells: 2 bytes
        ("c8:" + "A" * 12, "cells need"),
        ("c8:" + "A" * 43 + "=", "too many"),  # 64 cells of 8 px for 40 seeds
        (17, "seed_map"),
    ],
)
def test_a_bad_map_in_a_header_is_refused_cleanly(text, message):
    model = {
        "height": 64,
        "width": 64,
        "channels": 1,
        "feature_dim": 4,
        "gaussians_per_seed": 4,
        "seed_count": 40,
        "rng_seed": 0,
        "levels": 3,
        "grid_levels": 0,
        "grid_features": 4,
        "grid_log2_table": 13,
    }
    check_model_config({**model, "seed_map": format_seed_map(32, np.zeros((2, 2), int))})
    with pytest.raises(SGIFormatError, match=message):
        check_model_config({**model, "seed_map": text})


def test_an_adaptive_file_decodes_to_what_the_encoder_measured(tmp_path):
    import torch

    from napari_sgi.encode.pipeline import compress
    from napari_sgi.file.container import SGIReader
    from napari_sgi.reader import SGIFile

    image = (_detail_left(64, 96)[0] * 4000).astype(np.uint16)
    options = dict(preset="fast", iterations=60, seed_layout="adaptive", density=0.1)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = compress(image, tmp_path / "one.sgi", **options)
        torch.set_num_threads(2)
        compress(image, tmp_path / "two.sgi", **options)
    finally:
        torch.set_num_threads(threads)
    assert (tmp_path / "one.sgi").read_bytes() == (tmp_path / "two.sgi").read_bytes()
    header = SGIReader(one.path).header
    model = header["slices"][0]["regions"][0]["model"]
    assert model["seed_map"].startswith("c")
    sgi = SGIFile(one.path)
    decoded = sgi.render_slice(0)
    sgi.close()
    error = decoded.astype(float) - image
    psnr = 10 * np.log10(float(image.max() - image.min()) ** 2 / np.mean(error**2))
    assert psnr == pytest.approx(one.psnr, abs=1e-6)


def test_too_few_seeds_keep_the_uniform_layout():
    assert seed_map_for_image(_detail_left(), MIN_MAP_SEEDS - 1) == ""
    assert seed_map_for_image(_detail_left(), MIN_MAP_SEEDS).startswith("c")


def test_random_maps_decode_or_are_refused_cleanly():
    """Fuzz the map alone: any string either gives positions inside the box or SGIFormatError."""
    rng = np.random.default_rng(7)
    valid = format_seed_map(16, rng.integers(0, LEVELS, (4, 6)))
    alphabet = "c0123456789:+/=AZaz" + valid
    accepted = 0
    for case in range(300):
        if case % 3 == 0:  # a valid map with a few characters changed
            chars = list(valid)
            for i in rng.integers(0, len(chars), int(rng.integers(1, 4))):
                chars[i] = alphabet[int(rng.integers(len(alphabet)))]
            text = "".join(chars)
        else:
            length = int(rng.integers(0, 40))
            text = "".join(alphabet[int(i)] for i in rng.integers(0, len(alphabet), length))
        count = int(rng.integers(1, 400))
        try:
            check_model_config(
                {
                    "height": 64,
                    "width": 96,
                    "channels": 1,
                    "feature_dim": 4,
                    "gaussians_per_seed": 4,
                    "seed_count": count,
                    "rng_seed": 0,
                    "levels": 3,
                    "grid_levels": 0,
                    "grid_features": 4,
                    "grid_log2_table": 13,
                    "seed_map": text,
                }
            )
        except SGIFormatError:
            continue
        positions = map_positions(64, 96, count, 0, text)
        assert positions.shape == (count, 2)
        assert (positions >= 0).all() and (positions[:, 0] < 96).all()
        assert (positions[:, 1] < 64).all()
        accepted += 1
    assert 0 < accepted < 300  # both outcomes were exercised


def test_the_layout_follows_the_pixel_weights():
    image = np.random.default_rng(3).random((1, 128, 128))  # detail everywhere alike
    weights = np.ones((128, 128))
    weights[:, 64:] = 0.0  # a margin no blend shows
    count = 200
    cell, plain = parse_seed_map(seed_map_for_image(image, count), 128, 128, count)
    _, weighted = parse_seed_map(seed_map_for_image(image, count, weights), 128, 128, count)
    half = plain.shape[1] // 2
    assert plain[:, half:].mean() > plain.max() - 2  # without weights the right half has seeds
    assert np.all(weighted[:, half:] == 0) and np.all(weighted[:, :half] >= plain.max() - 2)
