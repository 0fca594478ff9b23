import numpy as np
import pytest

from napari_sgi.core.seeds import SeedGrid, initial_log_scaling, seed_count_for_density


def test_positions_regenerate_exactly_and_cover_the_image():
    grid = SeedGrid(height=100, width=300, count=500, rng_seed=7)
    first, second = grid.positions(), SeedGrid(100, 300, 500, 7).positions()
    np.testing.assert_array_equal(first, second)
    assert first.shape == (500, 2)
    assert first[:, 0].min() >= 0 and first[:, 0].max() < 300
    assert first[:, 1].min() >= 0 and first[:, 1].max() < 100
    assert len(np.unique(first, axis=0)) == 500
    # Spread over the whole image, not clumped: every quarter holds about a quarter of the seeds.
    quarter = np.histogram(first[:, 0], bins=4, range=(0, 300))[0]
    assert quarter.min() > 0.15 * 500


def test_another_rng_seed_gives_other_positions():
    a = SeedGrid(64, 64, 50, 0).positions()
    b = SeedGrid(64, 64, 50, 1).positions()
    assert not np.array_equal(a, b)


@pytest.mark.parametrize("count", [0, -3])
def test_bad_seed_count(count):
    with pytest.raises(ValueError, match="seed count"):
        SeedGrid(10, 10, count)


def test_density_and_initial_scale():
    assert seed_count_for_density(100, 100, 0.1, 10) == 100
    with pytest.raises(ValueError, match="density"):
        seed_count_for_density(100, 100, 0.0, 10)
    positions = SeedGrid(128, 128, 400).positions()
    log_scale = initial_log_scaling(positions, coarse_factor=4.0)
    # Clamped to [1e-4, 0.5] in coarse pixels, returned in full-resolution pixels.
    assert np.all(log_scale >= 1e-4 + np.log(4) - 1e-6)
    assert np.all(log_scale <= 0.5 + np.log(4) + 1e-6)
