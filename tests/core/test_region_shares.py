"""A large slice's Gaussians shared out over its regions by their detail."""

import numpy as np
import pytest

from napari_sgi.core.region_shares import region_shares
from napari_sgi.core.regions import plan_regions
from napari_sgi.core.seed_map import DETAIL_FLOOR

REGIONS = plan_regions(128, 128, size=64, margin=32)  # four regions, 64x64 cores


def _half_detail() -> np.ndarray:
    """Zero-mean noise in the top half only (no edge between the halves); the bottom is flat."""
    image = np.zeros((128, 128))
    image[:64] = np.random.default_rng(0).normal(0, 1, (64, 128))
    return image


def test_regions_with_detail_get_more_and_the_shares_sum_to_one():
    shares = region_shares(_half_detail(), REGIONS, spacing=8.0)
    assert shares.sum() == pytest.approx(1.0)
    assert shares[0] == pytest.approx(shares[1], rel=0.05)  # both top regions: the same noise
    assert shares[2] == pytest.approx(shares[3], rel=0.01)  # both flat
    assert shares[0] > 2 * shares[2] > 0  # flat regions keep a few Gaussians


def test_a_flat_region_keeps_the_floors_share():
    """Flat regions weigh sqrt(floor) a pixel, detailed ones sqrt(energy + floor): with half of
    the slice detailed, the ratio is sqrt(DETAIL_FLOOR / (2 + DETAIL_FLOOR)) whatever the
    detail's strength (the floor is a tenth of the slice's mean energy, half the top's)."""
    for gain in (1.0, 100.0):
        shares = region_shares(gain * _half_detail(), REGIONS, spacing=8.0)
        # Off the exact ratio by the blur across the halves' border, the same at any gain.
        assert shares[2] / shares[0] == pytest.approx(
            np.sqrt(DETAIL_FLOOR / (2 + DETAIL_FLOOR)), rel=0.02
        )


def test_even_detail_shares_by_area():
    image = np.random.default_rng(1).random((160, 128, 3))  # RGB, cores of 64x64 and 32x64
    regions = plan_regions(160, 128, size=64, margin=32)
    shares = region_shares(image, regions, spacing=6.0)
    cores = np.array([r.core_pixels for r in regions], float)
    np.testing.assert_allclose(shares, cores / cores.sum(), rtol=0.05)


def test_one_region_takes_everything():
    regions = plan_regions(64, 64, size=64, margin=32)
    assert region_shares(np.zeros((64, 64)), regions, spacing=8.0).tolist() == [1.0]
