"""Bit streams (the hash grid's coder): round trips, size, bad inputs and streams."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sgi.codec.bit_stream import decode_bits, encode_bits
from napari_sgi.errors import CodingError, CodingMismatchError


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
    with pytest.raises(CodingError, match="not a bit stream"):
        decode_bits(b"SGIG" + data[4:])
    with pytest.raises(CodingError, match="version 2"):
        decode_bits(data[:4] + b"\x02" + data[5:])


def test_constant_bit_stream_claiming_huge_count_is_refused():
    data = bytearray(encode_bits(np.zeros(10, np.uint8)))
    data[8:16] = (2**60).to_bytes(8, "little")
    with pytest.raises(CodingError, match="pass n"):
        decode_bits(bytes(data))
    with pytest.raises(CodingMismatchError):
        decode_bits(bytes(data), 10)


def test_a_flipped_payload_byte_is_caught_by_the_checksum():
    bits = np.random.default_rng(0).random(5000) < 0.3
    data = bytearray(encode_bits(bits))
    data[-10] ^= 0xFF
    with pytest.raises(CodingMismatchError, match="checksum"):
        decode_bits(bytes(data), len(bits))
