"""Gaussian symbol streams: round trips, determinism across processes, checksums, efficiency,
bad streams."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from scipy.special import ndtr

from napari_sgi.codec import cdf
from napari_sgi.codec import gaussian_stream as stream
from napari_sgi.codec.gaussian_stream import decode_gaussian, encode_gaussian
from napari_sgi.errors import CodingError, CodingMismatchError


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
    real = stream.chunk_table

    def spy(*args):
        table = real(*args)
        sizes.append(table.nbytes)
        return table

    monkeypatch.setattr(stream, "chunk_table", spy)
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
    from napari_sgi.codec.gaussian_stream import decode_gaussian, encode_gaussian
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


def test_corrupt_streams_raise_coding_error():
    rng = np.random.default_rng(9)
    x, mean, scale, step = _draw(3000, 2.0, rng, outliers=0.01)
    data = encode_gaussian(x, mean, scale, step)
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


def test_streams_are_version_2_and_version_1_is_refused_clearly():
    rng = np.random.default_rng(4)
    x, mean, scale, step = _draw(500, 1.5, rng)
    data = encode_gaussian(x, mean, scale, step)
    assert data[:2] == b"G\x02"
    # A version-1 stream (pre-release): 20-byte header, then 20 bytes per chunk.
    old = b"SGIG\x01\x06\x07\x14" + len(x).to_bytes(8, "little") + bytes(4)
    with pytest.raises(CodingError, match="version 1 .* no longer read"):
        decode_gaussian(old, mean, scale, step)


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


def test_decoding_with_an_empty_row_cache(monkeypatch):
    """The decoder's tables do not depend on the rows the encoder left in the cache."""
    rng = np.random.default_rng(11)
    x, mean, scale, step = _draw(30_000, rng.lognormal(0.0, 1.0, 30_000), rng)
    data = encode_gaussian(x, mean, scale, step)
    monkeypatch.setattr(cdf, "_ROWS", {})
    np.testing.assert_array_equal(decode_gaussian(data, mean, scale, step), x)
