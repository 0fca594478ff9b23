"""CDF tables: the portable Phi, the table and snapping recipes of docs/format.md, the row cache
and the decoder's fast sorts."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import ndtr

from napari_sgi.codec import cdf


def test_phi_is_accurate():
    t = np.linspace(-40, 40, 400_001)
    assert np.abs(cdf.phi(t) - ndtr(t)).max() < 2e-7


def _reference_rows(offset, sigma, w):
    """The table recipe of docs/format.md, written the slow and obvious way."""
    lp = 2 * w + 4
    scale = float(2**16 - (lp - 1))
    t = (np.arange(2 * w + 2)[None, :] - (w + 0.5) - offset[:, None]) / sigma[:, None]
    a = np.floor(cdf.phi(np.clip(t, -10.0, 10.0)) * scale + 0.5).astype(np.int64)
    a = np.maximum.accumulate(a, axis=1)
    full = np.concatenate([np.zeros((len(a), 1), np.int64), a, np.full((len(a), 1), scale)], 1)
    return ((full.astype(np.int64) + np.arange(lp)) & 0xFFFF).astype(np.uint16).view(np.int16)


@pytest.mark.parametrize("w", [0, 3, 40, 4095])
def test_banded_table_equals_the_recipe(w):
    rng = np.random.default_rng(w)
    offset = rng.integers(-32, 32, 300) / 64.0
    sigma = np.ldexp(rng.integers(64, 128, 300).astype(float), rng.integers(-12, 6, 300))
    np.testing.assert_array_equal(cdf.cdf_rows(offset, sigma, w), _reference_rows(offset, sigma, w))


def _reference_snap(mean, scale, step, g, b):
    """Snapping and coding order of docs/format.md §4.2, element by element as written there:
    the permutation, and in coding order the centre c, offset f and sigma s'."""
    s = np.clip(scale / step, 2.0**-6, 2.0**30)
    m, e = np.frexp(s)
    mi = np.floor(np.ldexp(m, b) + 0.5)
    e = e + (mi == 2**b)
    mi = np.where(mi == 2**b, 2.0 ** (b - 1), mi)
    sigma = np.ldexp(mi, e - b)
    h = g - np.clip(e - 1, 0, g)
    k = np.floor(np.ldexp(mean / step, h) + 0.5).astype(np.int64)
    c = (k + np.where(h > 0, 1 << np.maximum(h - 1, 0), 0)) >> h
    f = np.ldexp((k - (c << h)).astype(np.float64), -h)
    perm = np.argsort((e + 64) * 2 ** (b + 1) + mi, kind="stable")
    return perm, c[perm], f[perm], sigma[perm]


@pytest.mark.parametrize("g, b", [(6, 7), (0, 2), (12, 12), (3, 5)])
def test_snapping_and_row_keys_follow_the_recipe(g, b):
    """prepare_block's runs of equal grids and its row keys give the recipe's numbers exactly."""
    rng = np.random.default_rng(g * 16 + b)
    n = 20_000
    step = np.where(rng.random(n) < 0.5, rng.uniform(0.01, 3.0, n), 2.0 ** -rng.integers(0, 8, n))
    scale = rng.lognormal(rng.uniform(-5, 8), 2.5, n) * step
    scale[rng.random(n) < 0.05] = 0.0
    scale[rng.random(n) < 0.02] = 1e12
    mean = rng.normal(0, 10.0 ** rng.uniform(-1, 5, n)) * step
    mean[rng.random(n) < 0.05] = rng.choice([0.5, -0.5, 1.5, -2.5], 1)[0] * step[0]
    perm, centre, key, octave = cdf.prepare_block(mean, scale, step, g, b)
    ref_perm, ref_c, ref_f, ref_sigma = _reference_snap(mean, scale, step, g, b)
    np.testing.assert_array_equal(perm, ref_perm)
    np.testing.assert_array_equal(centre, ref_c)
    offset, sigma = cdf.row_parameters(key, g, b)
    np.testing.assert_array_equal(offset, ref_f)
    np.testing.assert_array_equal(sigma, ref_sigma)
    assert np.all(np.diff(octave) >= 0)


def test_chunk_tables_from_cached_rows_equal_fresh_rows(monkeypatch):
    """A chunk table is its keys' rows, whether they are computed or copied from the cache."""
    monkeypatch.setattr(cdf, "_ROWS", {})
    rng = np.random.default_rng(11)
    n = 30_000
    step = rng.uniform(0.01, 3.0, n)
    mean, scale = rng.normal(0.0, 30.0, n) * step, rng.lognormal(0.0, 1.0, n) * step
    _, _, key, _ = cdf.prepare_block(mean, scale, step, 6, 7)
    for w in (3, 12):
        fresh = cdf.cdf_rows(*cdf.row_parameters(key[:9000], 6, 7), w)
        np.testing.assert_array_equal(cdf.chunk_table(key[:9000], w, 6, 7), fresh)
        again = cdf.cdf_rows(*cdf.row_parameters(key[4000:], 6, 7), w)
        np.testing.assert_array_equal(cdf.chunk_table(key[4000:], w, 6, 7), again)
    monkeypatch.setattr(cdf, "ROW_CACHE_BYTES", 0)  # a full cache still gives rows
    np.testing.assert_array_equal(
        cdf.chunk_table(key, 5, 6, 7), cdf.cdf_rows(*cdf.row_parameters(key, 6, 7), 5)
    )


def test_fast_table_helpers_match_numpy_sorts():
    """The decoder's radix order and dense row lookup are the numpy sorts they replace."""
    rng = np.random.default_rng(0)
    for spread in (1, 300, 70000, 2**40):  # radix/dense paths and their wide-range fallbacks
        keys = rng.integers(0, spread, 5000) + 16000
        assert np.array_equal(cdf.stable_argsort(keys), np.argsort(keys, kind="stable"))
        first, inverse = cdf.distinct_rows(keys)
        assert np.array_equal(keys[first][inverse], keys)
        assert len(first) == len(np.unique(keys))
