"""A {0, 1} array coded with one fixed Bernoulli probability stored in the stream (§9.1).

The hash grid's coder: ``encode_bits`` / ``decode_bits``. The stream is self-delimiting
``bytes`` (``docs/format.md``, "Symbol coding"): a 24-byte header (tag ``SGIB``, version 1, the
bit count and the probability count), a chunk table, then torchac's arithmetic-coded chunks of at
most 2**20 bits. Every chunk stores the CRC32 of its bits, so a corrupt stream raises
:class:`CodingMismatchError` instead of returning wrong bits. An all-0 or all-1 array is the
header alone.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

from napari_sgi.codec.cdf import TOTAL
from napari_sgi.codec.native_decoder import arithmetic_decode
from napari_sgi.codec.torchac_backend import load_torchac
from napari_sgi.errors import CodingError, CodingMismatchError

__all__ = ["decode_bits", "encode_bits"]

# Changing any of these changes the decoded result: bump the version.
TAG = b"SGIB"
VERSION = 1
CHUNK_BITS = 1 << 20  # bits per chunk
UNCHECKED_BITS_MAX = 1 << 31  # decode_bits without n refuses larger claimed counts

_HEAD = struct.Struct("<4sBBBBQII")  # tag, version, 3x reserved, n, count1, n_chunks
_CHUNK = struct.Struct("<III")  # n, ac_len, crc32


def encode_bits(bits) -> bytes:
    """Code a {0, 1} (or bool) array with a single Bernoulli probability stored in the stream.

    The probability of a 1 is stored as a 16-bit count ``c1 = round(n1 / n * 2**16)`` clamped to
    [1, 2**16 - 1]; an all-0 or all-1 array is stored without payload (c1 = 0 or 2**16).
    For the +-1 hash grid pass ``grid > 0``.

    Examples
    --------
    >>> b = np.array([0, 1, 1, 0, 0, 0, 0, 0], dtype=np.uint8)
    >>> decode_bits(encode_bits(b), 8).tolist()
    [0, 1, 1, 0, 0, 0, 0, 0]
    >>> len(encode_bits(np.zeros(1000, bool)))  # the header alone
    24
    """
    b = np.asarray(bits).reshape(-1)
    if b.dtype != np.bool_:
        if b.dtype.kind not in "iu" and b.size:
            raise ValueError(f"bits must be bool or integers in {{0, 1}}, got dtype {b.dtype}")
        if b.size and (b.min() < 0 or b.max() > 1):
            raise ValueError("bits must be 0 or 1 (for a +-1 grid pass grid > 0)")
    b = b.astype(np.uint8)
    n, n1 = len(b), int(b.sum())
    if n1 in (0, n):
        count1 = TOTAL if n and n1 == n else 0
        return _HEAD.pack(TAG, VERSION, 0, 0, 0, n, count1, 0)
    count1 = min(max((n1 * TOTAL + n // 2) // n, 1), TOTAL - 1)
    ac = load_torchac()
    import torch

    heads, payloads = [], []
    for start in range(0, n, CHUNK_BITS):
        chunk = b[start : start + CHUNK_BITS]
        table = _table(len(chunk), count1)
        code = ac.encode_int16_normalized_cdf(
            torch.from_numpy(table), torch.from_numpy(chunk.astype(np.int16))
        )
        heads.append(_CHUNK.pack(len(chunk), len(code), zlib.crc32(chunk.tobytes())))
        payloads.append(code)
    head = _HEAD.pack(TAG, VERSION, 0, 0, 0, n, count1, len(heads))
    return b"".join([head, *heads, *payloads])


def _table(n: int, count1: int) -> np.ndarray:
    """The int16 CDF table of ``n`` bits, 1 with probability ``count1 / 2**16``."""
    # torchac reads the table row-major per symbol, so it must be materialised (no stride 0).
    row = np.array([0, TOTAL - count1, 0], dtype=np.uint16).view(np.int16)
    return np.ascontiguousarray(np.broadcast_to(row, (n, 3)))


def decode_bits(data: bytes, n: int | None = None) -> np.ndarray:
    """Decode a stream of :func:`encode_bits` into a uint8 {0, 1} array.

    Parameters
    ----------
    data : bytes
    n : int, optional
        Expected number of bits; a stream holding another count raises
        :class:`CodingMismatchError`. Without it, streams claiming more than 2**31 bits are
        refused (they could be corrupt).

    Raises
    ------
    CodingMismatchError
        A chunk's checksum differs (corrupt stream), or the stream holds other than ``n`` bits.
    CodingError
        The stream is malformed.

    Examples
    --------
    >>> decode_bits(encode_bits([True, False, True])).tolist()
    [1, 0, 1]
    """
    data = bytes(data)
    if len(data) < _HEAD.size:
        raise CodingError("bit stream truncated: shorter than its header")
    tag, version, _, _, _, count, count1, n_chunks = _HEAD.unpack_from(data)
    if tag != TAG:
        raise CodingError(f"not a bit stream (tag {tag!r})")
    if version != VERSION:
        raise CodingError(f"bit stream version {version} is not supported (only {VERSION})")
    if n is not None and n != count:
        raise CodingMismatchError(f"bit stream holds {count} bits, {n} expected")
    if n is None and count > UNCHECKED_BITS_MAX:  # a constant stream's count sizes the output
        raise CodingError(f"bit stream claims {count} bits; pass n to decode more than 2**31")
    if count1 > TOTAL:
        raise CodingError("bit stream: probability count out of range")
    if count1 in (0, TOTAL):
        if n_chunks or len(data) != _HEAD.size:
            raise CodingError("bit stream: constant stream with a payload")
        return np.full(count, 1 if count1 else 0, dtype=np.uint8)
    table_end = _HEAD.size + n_chunks * _CHUNK.size
    if n_chunks != -(-count // CHUNK_BITS) or table_end > len(data):
        raise CodingError("bit stream truncated or chunk count wrong")
    chunks = [_CHUNK.unpack_from(data, _HEAD.size + i * _CHUNK.size) for i in range(n_chunks)]
    sizes = [min(CHUNK_BITS, count - i * CHUNK_BITS) for i in range(n_chunks)]
    if [c[0] for c in chunks] != sizes or table_end + sum(c[1] for c in chunks) != len(data):
        raise CodingError("bit stream: chunk sizes do not add up to the stream")
    out = np.empty(count, dtype=np.uint8)
    pos = table_end
    row = _table(1, count1)
    for i, (size, ac_len, crc) in enumerate(chunks):
        chunk = arithmetic_decode(row, None, size, data[pos : pos + ac_len]).astype(np.uint8)
        if zlib.crc32(chunk.tobytes()) != crc:
            raise CodingMismatchError(f"bit stream chunk {i}: checksum mismatch (corrupt stream)")
        out[i * CHUNK_BITS : i * CHUNK_BITS + size] = chunk
        pos += ac_len
    return out
