"""The compiled arithmetic decoder against torchac's: the same symbols for every stream and table,
valid or corrupt, and files decoded alike either way."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
import torch

from napari_sgi.codec.bit_stream import decode_bits, encode_bits
from napari_sgi.codec.cdf import cdf_rows
from napari_sgi.codec.gaussian_stream import decode_gaussian, encode_gaussian
from napari_sgi.codec.native_decoder import (
    TORCHAC_DECODE_ENV,
    arithmetic_decode,
    native_library,
    uses_native_decoder,
)
from napari_sgi.codec.torchac_backend import load_torchac
from napari_sgi.errors import CodingError

needs_native = pytest.mark.skipif(native_library() is None, reason="compiled decoder not built")


def _torchac(table: np.ndarray, code: bytes) -> np.ndarray:
    return load_torchac().decode_int16_normalized_cdf(torch.from_numpy(table), code).numpy()


def _random_rows(rng, n_rows: int, lp: int, monotone: bool = True) -> np.ndarray:
    """int16 CDF rows [n_rows, lp]: strictly increasing counts from 0 (torchac's layout), or any
    16-bit patterns at all (``monotone=False``: what a corrupt table could hold)."""
    if not monotone:
        return rng.integers(-(1 << 15), 1 << 15, (n_rows, lp)).astype(np.int16)
    rows = np.zeros((n_rows, lp), dtype=np.int64)
    for row in rows:
        row[1 : lp - 1] = np.sort(rng.choice((1 << 16) - 1, lp - 2, replace=False) + 1)
    return rows.astype(np.uint16).view(np.int16)


def _encode(rows: np.ndarray, index: np.ndarray, rng) -> tuple[bytes, np.ndarray]:
    """A valid stream of symbols drawn uniformly, each coded with its row."""
    table = rows[index]
    symbols = rng.integers(0, rows.shape[1] - 1, len(index)).astype(np.int16)
    code = load_torchac().encode_int16_normalized_cdf(
        torch.from_numpy(table), torch.from_numpy(symbols)
    )
    return code, symbols


@needs_native
@pytest.mark.parametrize("lp", [2, 3, 5, 17, 260])
def test_valid_streams_decode_like_torchac(lp):
    rng = np.random.default_rng(lp)
    rows = _random_rows(rng, 7, lp)
    index = rng.integers(0, len(rows), 5000)
    code, symbols = _encode(rows, index, rng)
    native = arithmetic_decode(rows, index, len(index), code)
    np.testing.assert_array_equal(native, symbols)
    np.testing.assert_array_equal(native, _torchac(rows[index], code))
    one = arithmetic_decode(rows[:1], None, len(index), code)  # row 0 for every symbol
    np.testing.assert_array_equal(one, _torchac(np.repeat(rows[:1], len(index), 0), code))


@needs_native
@pytest.mark.parametrize("monotone", [True, False])
def test_corrupt_streams_and_tables_decode_like_torchac(monotone):
    """Random bytes, truncated and empty streams, and (monotone=False) tables that no encoder
    writes: whatever torchac makes of them, so does the compiled decoder."""
    rng = np.random.default_rng(7 + monotone)
    for trial in range(60):
        lp = int(rng.choice([2, 3, 4, 9, 40, 300]))
        rows = _random_rows(rng, 3, lp, monotone)
        n = int(rng.integers(1, 3000))
        index = rng.integers(0, len(rows), n)
        code = rng.integers(0, 256, int(rng.integers(0, 2 * n))).astype(np.uint8).tobytes()
        if trial % 5 == 0:
            code = b""
        np.testing.assert_array_equal(
            arithmetic_decode(rows, index, n, code), _torchac(rows[index], code), err_msg=f"{trial}"
        )


@needs_native
def test_bad_sizes_and_row_indices_raise():
    rows = np.zeros((2, 3), dtype=np.int16)
    with pytest.raises(CodingError):
        arithmetic_decode(rows, np.array([0, 2]), 2, b"\x00")
    with pytest.raises(CodingError):
        arithmetic_decode(rows, np.array([-1]), 1, b"\x00")
    with pytest.raises(CodingError):
        arithmetic_decode(np.zeros((1, 1), dtype=np.int16), None, 1, b"\x00")


@needs_native
def test_gaussian_and_bit_streams_decode_alike_with_either_decoder(monkeypatch):
    rng = np.random.default_rng(3)
    n = 50_000
    step = rng.uniform(0.05, 2.0, n)
    mean = rng.normal(0, 20, n) * step
    scale = rng.lognormal(0.0, 1.5, n) * step
    x = np.rint((mean + scale * rng.standard_normal(n)) / step).astype(np.int64)
    x[rng.random(n) < 0.01] += 10**6  # escapes
    data = encode_gaussian(x, mean, scale, step)
    bits = (rng.random(300_000) < 0.3).astype(np.uint8)
    bit_data = encode_bits(bits)
    assert uses_native_decoder()
    native = decode_gaussian(data, mean, scale, step), decode_bits(bit_data, len(bits))
    monkeypatch.setenv(TORCHAC_DECODE_ENV, "1")
    assert not uses_native_decoder()
    reference = decode_gaussian(data, mean, scale, step), decode_bits(bit_data, len(bits))
    for a, b, expected in zip(native, reference, (x, bits), strict=True):
        np.testing.assert_array_equal(a, expected)
        np.testing.assert_array_equal(b, expected)


@needs_native
def test_banded_rows_and_threads():
    """The coder's own CDF rows, decoded on several threads at once (no GIL held, no shared
    state)."""
    rng = np.random.default_rng(11)
    w = 12
    rows = cdf_rows(rng.uniform(-0.5, 0.5, 50), rng.lognormal(0.0, 1.0, 50), w)
    jobs = []
    for _ in range(6):
        index = rng.integers(0, len(rows), 40_000)
        code, symbols = _encode(rows, index, rng)
        jobs.append((index, code, symbols))
    results = [None] * len(jobs)

    def run(i):
        index, code, _ = jobs[i]
        results[i] = arithmetic_decode(rows, index, len(index), code)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for (_, _, symbols), got in zip(jobs, results, strict=True):
        np.testing.assert_array_equal(got, symbols)


_READER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from napari_sgi.codec.bit_stream import decode_bits
    from napari_sgi.codec.gaussian_stream import decode_gaussian
    z = np.load(sys.argv[1])
    x = decode_gaussian(z["data"].tobytes(), z["mean"], z["scale"], z["step"])
    bits = decode_bits(z["bits"].tobytes(), len(z["expected_bits"]))
    assert np.array_equal(x, z["x"]) and np.array_equal(bits, z["expected_bits"])
    print(sorted(m for m in ("torchac", "torch.utils.cpp_extension") if m in sys.modules))
    """
)


@needs_native
def test_decoding_needs_no_torchac(tmp_path, monkeypatch):
    """With the compiled decoder, a fresh process decodes both stream kinds without torchac."""
    monkeypatch.delenv(TORCHAC_DECODE_ENV, raising=False)
    rng = np.random.default_rng(5)
    step = rng.uniform(0.1, 2.0, 3000)
    mean, scale = rng.normal(0, 5, 3000) * step, rng.lognormal(0, 1, 3000) * step
    x = np.rint((mean + scale * rng.standard_normal(3000)) / step).astype(np.int64)
    bits = (rng.random(4000) < 0.2).astype(np.uint8)
    path = tmp_path / "streams.npz"
    np.savez(
        path,
        data=np.frombuffer(encode_gaussian(x, mean, scale, step), np.uint8),
        bits=np.frombuffer(encode_bits(bits), np.uint8),
        **dict(mean=mean, scale=scale, step=step, x=x, expected_bits=bits),
    )
    out = subprocess.run(
        [sys.executable, "-c", _READER, str(path)], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
