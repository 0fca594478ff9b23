"""Entropy coder: round trips, determinism across processes, checksums, efficiency, bad streams."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from scipy.special import ndtr

from napari_sgi.codec import cdf as _coding_cdf
from napari_sgi.codec import streams as coding
from napari_sgi.codec.streams import (
    CodingError,
    CodingMismatchError,
    decode_bits,
    decode_gaussian,
    encode_bits,
    encode_gaussian,
)


def _draw(n, sigma_over_q, rng, mean_spread=30.0, outliers=0.0):
    """Symbols drawn from the model they are coded with (values in units of a random step)."""
    step = rng.uniform(0.01, 3.0, n)
    mean = rng.normal(0.0, mean_spread, n) * step
    scale = np.broadcast_to(np.asarray(sigma_over_q, dtype=float), (n,)) * step
    x = np.rint((mean + scale * rng.standard_normal(n)) / step).astype(np.int64)
    if outliers:
        hit = rng.random(n) < outliers
        x[hit] += rng.integers(-(10**9), 10**9, hit.sum())
    return x, mean, scale, step


def _ideal_bits(x, mean, scale, step):
    hi = ndtr(((x + 0.5) * step - mean) / scale)
    lo = ndtr(((x - 0.5) * step - mean) / scale)
    return float(-np.log2(np.maximum(hi - lo, 1e-300)).sum())


def test_phi_is_accurate():
    t = np.linspace(-40, 40, 400_001)
    assert np.abs(_coding_cdf.phi(t) - ndtr(t)).max() < 2e-7


@pytest.mark.parametrize("sigma", [0.01, 0.3, 1.0, 7.0, 150.0, 3000.0])
def test_round_trip_regimes(sigma):
    rng = np.random.default_rng(int(sigma * 100))
    x, mean, scale, step = _draw(20_000, sigma, rng)
    data = encode_gaussian(x, mean, scale, step)
    np.testing.assert_array_equal(decode_gaussian(data, mean, scale, step), x)


def test_round_trip_mixed_scales_outliers_and_degenerate_sigma():
    rng = np.random.default_rng(1)
    n = 30_000
    sigma = rng.lognormal(0.0, 2.0, n)
    sigma[rng.random(n) < 0.05] = 0.0  # degenerate: all the mass on one symbol
    x, mean, scale, step = _draw(n, sigma, rng, outliers=0.01)
    data = encode_gaussian(x, mean, scale, step)
    np.testing.assert_array_equal(decode_gaussian(data, mean, scale, step), x)


def test_large_and_extreme_symbols_are_codable():
    x = np.array([0, 1, -1, 10**15, -(10**15), 2**60, -(2**60), 12345], dtype=np.int64)
    mean = np.zeros(len(x))
    data = encode_gaussian(x, mean, 0.0, 1.0)
    np.testing.assert_array_equal(decode_gaussian(data, mean, 0.0, 1.0), x)
    with pytest.raises(ValueError):
        encode_gaussian([2**61], [0.0], 1.0, 1.0)


def test_edge_inputs():
    empty = encode_gaussian(np.zeros(0, np.int64), [], [], [])
    assert decode_gaussian(empty, [], [], []).shape == (0,)
    one = encode_gaussian(np.array([3], np.int32), [2.9], [1.0], 1.0)  # scalar step broadcasts
    assert decode_gaussian(one, [2.9], [1.0], 1.0).tolist() == [3]
    for bad in (
        dict(symbols=[1.5], mean=[0.0], scale=[1.0], step=[1.0]),
        dict(symbols=[1], mean=[np.nan], scale=[1.0], step=[1.0]),
        dict(symbols=[1], mean=[0.0], scale=[-1.0], step=[1.0]),
        dict(symbols=[1], mean=[0.0], scale=[1.0], step=[0.0]),
        dict(symbols=[1, 2], mean=[0.0], scale=[1.0], step=[1.0]),
    ):
        with pytest.raises(ValueError):
            encode_gaussian(**bad)


def test_chunks_respect_the_table_budget(monkeypatch):
    rng = np.random.default_rng(2)
    x, mean, scale, step = _draw(50_000, rng.lognormal(1.0, 1.5, 50_000), rng)
    budget = 1 << 20
    sizes = []
    real = coding.chunk_table

    def spy(*args):
        table = real(*args)
        sizes.append(table.nbytes)
        return table

    monkeypatch.setattr(coding, "chunk_table", spy)
    data = encode_gaussian(x, mean, scale, step, max_table_bytes=budget)
    assert len(sizes) > 5 and max(sizes) <= budget
    np.testing.assert_array_equal(decode_gaussian(data, mean, scale, step), x)


def test_small_sort_blocks_and_grids_round_trip():
    rng = np.random.default_rng(3)
    x, mean, scale, step = _draw(5000, rng.lognormal(0.0, 1.0, 5000), rng)
    for kwargs in (dict(sort_block_log2=10), dict(mean_bits=0, scale_bits=2), dict(mean_bits=12)):
        data = encode_gaussian(x, mean, scale, step, **kwargs)
        np.testing.assert_array_equal(decode_gaussian(data, mean, scale, step), x)


def test_size_close_to_ideal():
    rng = np.random.default_rng(4)
    n = 300_000
    x, mean, scale, step = _draw(n, rng.lognormal(0.0, 1.2, n), rng)
    data = encode_gaussian(x, mean, scale, step)
    ratio = 8 * len(data) / _ideal_bits(x, mean, scale, step)
    assert 0.99 < ratio < 1.02, ratio


def test_tiny_input_differences_keep_the_stream():
    rng = np.random.default_rng(5)
    x, mean, scale, step = _draw(50_000, 2.0, rng)
    a = encode_gaussian(x, mean, scale, step)
    b = encode_gaussian(x, np.nextafter(mean, np.inf), np.nextafter(scale, 0), step)
    assert a == b


def test_checksum_mismatch_raises():
    rng = np.random.default_rng(6)
    x, mean, scale, step = _draw(20_000, 1.0, rng)
    data = encode_gaussian(x, mean, scale, step)
    with pytest.raises(CodingMismatchError, match="checksum|escape"):
        decode_gaussian(data, mean + 0.37 * step, scale, step)
    with pytest.raises(CodingMismatchError):
        decode_gaussian(data, mean, scale * 3.0, step)
    with pytest.raises(ValueError):
        decode_gaussian(data, mean[:-1], scale[:-1], step[:-1])


def test_decoding_is_never_silently_wrong():
    """Parameters off by a little: either the right symbols or CodingMismatchError."""
    rng = np.random.default_rng(7)
    x, mean, scale, step = _draw(5000, 0.8, rng)
    data = encode_gaussian(x, mean, scale, step)
    for eps in (1e-4, 1e-3, 1e-2, 3e-2):
        try:
            out = decode_gaussian(data, mean + eps * step, scale, step)
        except CodingMismatchError:
            continue
        np.testing.assert_array_equal(out, x)


_CHILD = textwrap.dedent(
    """
    import sys, numpy as np, torch
    torch.set_num_threads(int(sys.argv[2]))
    from napari_sgi.codec.streams import decode_gaussian, encode_gaussian
    z = np.load(sys.argv[1])
    out = decode_gaussian(z["data"].tobytes(), z["mean"], z["scale"], z["step"])
    again = encode_gaussian(out, z["mean"], z["scale"], z["step"])
    np.save(sys.argv[1] + ".out.npy", out)
    sys.stdout.write("same-bytes" if again == z["data"].tobytes() else "other-bytes")
    """
)


def test_decode_in_another_process_with_other_threads(tmp_path):
    import torch

    torch.set_num_threads(2)
    rng = np.random.default_rng(8)
    n = 60_000
    x, mean, scale, step = _draw(n, rng.lognormal(0.0, 1.5, n), rng, outliers=0.001)
    mean, scale = mean.astype(np.float32), scale.astype(np.float32)  # as a torch model gives
    data = encode_gaussian(x, mean, scale, step)
    path = tmp_path / "stream.npz"
    np.savez(path, data=np.frombuffer(data, np.uint8), mean=mean, scale=scale, step=step)
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), "1"], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip().endswith("same-bytes"), result.stdout + result.stderr
    np.testing.assert_array_equal(np.load(str(path) + ".out.npy"), x)


@pytest.mark.parametrize("version", [1, 2])
def test_corrupt_streams_raise_coding_error(version):
    rng = np.random.default_rng(9)
    x, mean, scale, step = _draw(3000, 2.0, rng, outliers=0.01)
    data = encode_gaussian(x, mean, scale, step, version=version)
    with pytest.raises(CodingError, match="truncated|add up"):
        decode_gaussian(data[:-3], mean, scale, step)
    with pytest.raises(CodingError, match="not a Gaussian"):
        decode_gaussian(b"PNG" + data[3:], mean, scale, step)
    with pytest.raises(CodingError):
        decode_gaussian(b"", [], [], [])
    for trial in range(60):
        bad = np.frombuffer(data, np.uint8).copy()
        pos = rng.integers(0, len(bad), 1 + trial % 4)
        bad[pos] ^= rng.integers(1, 256, len(pos)).astype(np.uint8)
        try:
            out = decode_gaussian(bad.tobytes(), mean, scale, step)
        except CodingError:
            continue
        np.testing.assert_array_equal(out, x)  # a flip in an unused bit: still right


def test_both_stream_versions_decode_and_the_second_is_smaller():
    rng = np.random.default_rng(4)
    x, mean, scale, step = _draw(5000, 1.5, rng, outliers=0.001)
    old = encode_gaussian(x, mean, scale, step, version=1)
    new = encode_gaussian(x, mean, scale, step)
    assert old[:4] == b"SGIG" and new[:2] == b"G\x02"
    for data in (old, new):
        np.testing.assert_array_equal(decode_gaussian(data, mean, scale, step), x)
    # The same payload; the headers: 20 + 20 bytes per chunk (v1), about 6 + 11 (v2).
    assert len(old) - len(new) >= 20
    assert old.endswith(new[-100:])
    with pytest.raises(ValueError, match="version"):
        encode_gaussian(x, mean, scale, step, version=3)


@pytest.mark.parametrize(
    ("head", "message"),
    [
        (b"G\x03\x67\x14\x01\x01", "version 3"),  # unknown version
        (b"G\x02\x67\x14", "truncated"),  # no symbol count
        (b"G\x02\x67\x14\xff\xff", "truncated"),  # count cut inside its varint
        (b"G\x02\x67\x14\x81\x00\x01", "truncated"),  # non-minimal varint
        (b"G\x02\x67\x14\xff\xff\xff\xff\xff\xff\xff\xff\x7f\x00", "add up"),  # 2^63 symbols
        (b"G\x02\x67\x14\x05\x05" + bytes(20), "truncated"),  # 5 chunks, too few bytes
        (b"G\x02\xf7\x14\x01\x00", "grid"),  # mean grid bits 15
    ],
)
def test_malformed_compact_headers_raise_coding_error(head, message):
    with pytest.raises(CodingError, match=message):
        decode_gaussian(head, np.zeros(1), np.ones(1), np.ones(1))


@pytest.mark.parametrize("p", [0.0, 1.0, 0.5, 0.03, 0.9])
def test_bits_round_trip_and_size(p):
    rng = np.random.default_rng(10)
    n = 251_904
    bits = rng.random(n) < p
    data = encode_bits(bits)
    np.testing.assert_array_equal(decode_bits(data, n), bits.astype(np.uint8))
    q = bits.mean()
    ideal = 0.0 if q in (0.0, 1.0) else -n * (q * np.log2(q) + (1 - q) * np.log2(1 - q))
    assert 8 * len(data) <= ideal * 1.01 + 400


def test_bits_inputs_and_errors():
    assert decode_bits(encode_bits(np.array([], np.uint8))).shape == (0,)
    data = encode_bits([1, 0, 1, 1])
    assert decode_bits(data).tolist() == [1, 0, 1, 1]
    with pytest.raises(CodingMismatchError):
        decode_bits(data, 5)
    with pytest.raises(ValueError):
        encode_bits([0, 2])
    with pytest.raises(ValueError):
        encode_bits([-1, 1])
    with pytest.raises(CodingError):
        decode_bits(data[:-1])
    with pytest.raises(CodingError):
        decode_bits(b"SGIG" + data[4:])


def _reference_rows(offset, sigma, w):
    """The table recipe of docs/format.md, written the slow and obvious way."""
    lp = 2 * w + 4
    scale = float(2**16 - (lp - 1))
    t = (np.arange(2 * w + 2)[None, :] - (w + 0.5) - offset[:, None]) / sigma[:, None]
    a = np.floor(_coding_cdf.phi(np.clip(t, -10.0, 10.0)) * scale + 0.5).astype(np.int64)
    a = np.maximum.accumulate(a, axis=1)
    full = np.concatenate([np.zeros((len(a), 1), np.int64), a, np.full((len(a), 1), scale)], 1)
    return ((full.astype(np.int64) + np.arange(lp)) & 0xFFFF).astype(np.uint16).view(np.int16)


@pytest.mark.parametrize("w", [0, 3, 40, 4095])
def test_banded_table_equals_the_recipe(w):
    rng = np.random.default_rng(w)
    offset = rng.integers(-32, 32, 300) / 64.0
    sigma = np.ldexp(rng.integers(64, 128, 300).astype(float), rng.integers(-12, 6, 300))
    np.testing.assert_array_equal(
        _coding_cdf.cdf_rows(offset, sigma, w), _reference_rows(offset, sigma, w)
    )


def test_constant_bit_stream_claiming_huge_count_is_refused():
    data = bytearray(encode_bits(np.zeros(10, np.uint8)))
    data[8:16] = (2**60).to_bytes(8, "little")
    with pytest.raises(CodingError, match="pass n"):
        decode_bits(bytes(data))
    with pytest.raises(CodingMismatchError):
        decode_bits(bytes(data), 10)


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
    perm, centre, key, octave = _coding_cdf.prepare_block(mean, scale, step, g, b)
    ref_perm, ref_c, ref_f, ref_sigma = _reference_snap(mean, scale, step, g, b)
    np.testing.assert_array_equal(perm, ref_perm)
    np.testing.assert_array_equal(centre, ref_c)
    offset, sigma = _coding_cdf.row_parameters(key, g, b)
    np.testing.assert_array_equal(offset, ref_f)
    np.testing.assert_array_equal(sigma, ref_sigma)
    assert np.all(np.diff(octave) >= 0)


def test_chunk_tables_from_cached_rows_equal_fresh_rows(monkeypatch):
    """A chunk table is its keys' rows, whether they are computed or copied from the cache."""
    monkeypatch.setattr(_coding_cdf, "_ROWS", {})
    rng = np.random.default_rng(11)
    x, mean, scale, step = _draw(30_000, rng.lognormal(0.0, 1.0, 30_000), rng)
    _, _, key, _ = _coding_cdf.prepare_block(mean, scale, step, 6, 7)
    for w in (3, 12):
        fresh = _coding_cdf.cdf_rows(*_coding_cdf.row_parameters(key[:9000], 6, 7), w)
        np.testing.assert_array_equal(_coding_cdf.chunk_table(key[:9000], w, 6, 7), fresh)
        again = _coding_cdf.cdf_rows(*_coding_cdf.row_parameters(key[4000:], 6, 7), w)
        np.testing.assert_array_equal(_coding_cdf.chunk_table(key[4000:], w, 6, 7), again)
    monkeypatch.setattr(_coding_cdf, "ROW_CACHE_BYTES", 0)  # a full cache still gives rows
    np.testing.assert_array_equal(
        _coding_cdf.chunk_table(key, 5, 6, 7),
        _coding_cdf.cdf_rows(*_coding_cdf.row_parameters(key, 6, 7), 5),
    )
    data = encode_gaussian(x, mean, scale, step)
    monkeypatch.setattr(_coding_cdf, "_ROWS", {})
    np.testing.assert_array_equal(decode_gaussian(data, mean, scale, step), x)
