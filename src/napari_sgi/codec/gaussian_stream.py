"""Integer symbols coded with per-element discretised Gaussians (``encode_gaussian``).

Each symbol ``x`` (the quantised value is ``x * step``) is coded with the discretised Gaussian of
its own mean ``mu``, std ``sigma`` and step ``Q`` (sgi-method §7.3), by torchac's arithmetic
coder. The decoder must be given the same ``mu``, ``sigma`` and ``Q``; it rebuilds the integer CDF
tables. The stream is self-delimiting ``bytes``, version 2 of ``docs/format.md`` ("Symbol
coding"): ``b"G"``, the version, the grids, then varint counts and a chunk table, then the
payload. Only version 2 is read and written.

Determinism. The integer CDF tables are a pure function of the snapped inputs, computed in float64
on the CPU with IEEE-754 basic operations only (:mod:`napari_sgi.codec.cdf`: our own ``exp`` and
``erfc``, no libm, SIMD transcendental or torch), so they are bit-identical on any machine, thread
count or numpy build. ``sigma/Q`` is snapped to ``scale_bits`` significant bits and ``mu/Q`` to
multiples of ``2**-mean_bits`` (times ``2**floor(log2 sigma')`` once ``sigma' >= 1``), so that
tiny float differences of the caller's inputs rarely change a table; every chunk stores a CRC32 of
its symbols, so a table that did change raises :class:`CodingMismatchError` instead of returning
wrong symbols. The snapping costs < 0.5 % of the ideal size.

Tables. A symbol is coded relative to its snapped mean, ``r = x - round(mu/Q)``, over a window
``|r| <= W`` chosen per chunk (so the table width follows ``sigma``, not the spread of the means),
plus two escape symbols for ``r < -W`` and ``r > W`` whose excess is bit-packed after the chunk:
any ``|x| <= 2**60`` is codable. Every symbol of every table keeps at least one count of 2**16.
Within blocks of ``2**sort_block_log2`` symbols the coding order is sorted by ``sigma'`` (the
decoder knows ``sigma'`` and rebuilds the order), so chunks hold similar sigmas and small windows.
Chunks hold at most ``max_table_bytes // (2 * (2W + 4))`` symbols, bounding the int16 table.
"""

from __future__ import annotations

import math
import zlib

import numpy as np

from napari_sgi.codec.cdf import TOTAL, chunk_rows, chunk_table, prepare_block
from napari_sgi.codec.native_decoder import arithmetic_decode
from napari_sgi.codec.torchac_backend import load_torchac
from napari_sgi.codec.varint import decode_uvarint, encode_uvarint
from napari_sgi.errors import CodingError, CodingMismatchError

__all__ = ["decode_gaussian", "encode_gaussian"]

# Changing any of these changes the decoded result: bump the version.
TAG = b"G"
VERSION = 2
OLD_TAG = b"SGIG"  # version 1, written before the first release: refused with a clear message
SYMBOL_MAX = 2**60  # |x| bound
W_MAX = 4095  # window half-width cap: table <= 8194 entries, min-count overhead <= 0.19 bit/sym
CHUNK_MAX = 1 << 18  # symbols per chunk at most
SPLIT_MIN = 1 << 11  # the encoder splits chunks at sigma octaves only above this size
DEFAULT_TABLE_BYTES = 64 << 20  # encoder's int16 CDF table budget per chunk
DECODE_TABLE_BYTES = 256 << 20  # the decoder refuses a chunk whose table would exceed this
_CHUNK_ENTRY_MIN = 9  # bytes of the smallest chunk-table entry (5 one-byte varints, u8, u32)
_NO_CHUNK = (0, 0, 0, 0, 0, 0)


# Argument checks, window choice, escapes


def _as_float_array(name: str, a, n: int) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.broadcast_to(arr, (n,))
    arr = arr.reshape(-1)
    if arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} elements, symbols have {n}")
    return arr


def _distributions(mean, scale, step, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``mean``, ``scale`` and ``step`` as checked float64 arrays of ``n`` elements."""
    mean, scale, step = (
        _as_float_array(k, v, n) for k, v in (("mean", mean), ("scale", scale), ("step", step))
    )
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(scale))):
        raise ValueError("mean and scale must be finite")
    if not (np.all(np.isfinite(step)) and np.all(step > 0)):
        raise ValueError("step must be finite and > 0")
    if np.any(scale < 0):
        raise ValueError("scale must be >= 0")
    return mean, scale, step


def _bit_length(v: np.ndarray) -> np.ndarray:
    """Bit length of non-negative int64 values, vectorised (0 for 0).

    >>> _bit_length(np.array([0, 1, 5, 2**40])).tolist()
    [0, 1, 3, 41]
    """
    v = v.astype(np.uint64)
    n = np.zeros(v.shape, dtype=np.int64)
    for shift in (32, 16, 8, 4, 2, 1):
        big = (v >> np.uint64(shift)) != 0
        n += shift * big
        v = np.where(big, v >> np.uint64(shift), v)
    return n + (v != 0)


def _choose_window(mag: np.ndarray) -> int:
    """Window half-width W for residual magnitudes ``mag``: min of estimated overhead + escapes.

    Widening W costs every symbol -log2(1 - (2W+3)/2**16) bits (the min counts); an escaped
    symbol costs its bit-packed excess instead. Model costs are ignored (similar either way).
    """
    amax = int(mag.max())
    if amax <= 8:
        return amax
    cands = {0, 1, 2, 3, 4, 6, 8}
    w = 12
    while w < min(amax, W_MAX):
        cands.update((w, w * 4 // 3))
        w *= 2
    cands.add(min(amax, W_MAX))
    srt = np.sort(mag)
    best, best_cost = 0, math.inf
    for w in sorted(c for c in cands if c <= min(amax, W_MAX)):
        n_esc = len(srt) - int(np.searchsorted(srt, w, side="right"))
        width = (amax - w - 1).bit_length() if n_esc else 0
        overhead = -len(srt) * math.log2(1.0 - (2 * w + 3) / TOTAL)
        cost = overhead + n_esc * width
        if cost < best_cost:
            best, best_cost = w, cost
    return best


def _pack_uint(values: np.ndarray, width: int) -> bytes:
    """Big-endian bit packing of non-negative int64 values, ``width`` bits each.

    >>> _pack_uint(np.array([1, 2, 3]), 3)
    b')\\x80'
    >>> _unpack_uint(b')\\x80', 3, 3).tolist()
    [1, 2, 3]
    """
    if width == 0 or len(values) == 0:
        return b""
    shifts = np.arange(width - 1, -1, -1, dtype=np.uint64)
    bits = ((values.astype(np.uint64)[:, None] >> shifts) & np.uint64(1)).astype(np.uint8)
    return np.packbits(bits.reshape(-1)).tobytes()


def _unpack_uint(data: bytes, count: int, width: int) -> np.ndarray:
    if width == 0 or count == 0:
        return np.zeros(count, dtype=np.int64)
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8), count=count * width)
    bits = bits.reshape(count, width)
    acc = np.zeros(count, dtype=np.uint64)
    for j in range(width):  # column by column: memory stays O(count), not O(count * width)
        acc = (acc << np.uint64(1)) | bits[:, j]
    return acc.astype(np.int64)


def _grid_ok(mean_bits: int, scale_bits: int, sort_block_log2: int) -> bool:
    return 0 <= mean_bits <= 12 and 2 <= scale_bits <= 12 and 10 <= sort_block_log2 <= 24


def _crc(symbols: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(symbols, dtype="<i8").tobytes())


# Streams


def encode_gaussian(
    symbols,
    mean,
    scale,
    step,
    *,
    max_table_bytes: int = DEFAULT_TABLE_BYTES,
    mean_bits: int = 6,
    scale_bits: int = 7,
    sort_block_log2: int = 20,
) -> bytes:
    """Code integer symbols with per-element discretised Gaussians.

    P(x) = Phi(((x + 1/2) Q - mu) / sigma) - Phi(((x - 1/2) Q - mu) / sigma), after snapping
    ``sigma/Q`` to ``scale_bits`` significant bits (floored at 2**-6) and ``mu/Q`` to multiples
    of ``2**-mean_bits`` (relative to sigma once sigma >= Q). Any int64 symbol with
    ``|x| <= 2**60`` is codable (escapes). Memory stays O(chunk), not O(N), apart from the output.

    Parameters
    ----------
    symbols : array_like of int, shape [N]
        The integers x; the quantised value is ``x * step``.
    mean, scale, step : array_like of float, shape [N] or scalar
        mu, sigma (>= 0) and Q (> 0) per element, in value units. The decoder needs the same.
    max_table_bytes : int
        Budget of the int16 CDF table of one chunk (<= 256 MiB, the decoder's limit).
    mean_bits, scale_bits : int
        Snapping grids, stored in the stream (0..12 and 2..12).
    sort_block_log2 : int
        Symbols are reordered by sigma within blocks of this many (log2, 10..24), stored.

    Returns
    -------
    bytes
        A self-delimiting stream of version 2 (``docs/format.md``).

    Examples
    --------
    >>> x = np.array([0, 3, -2, 40])
    >>> data = encode_gaussian(x, mean=[0.0, 2.5, -1.0, 0.0], scale=1.0, step=1.0)
    >>> data[:2]
    b'G\\x02'
    >>> decode_gaussian(data, [0.0, 2.5, -1.0, 0.0], 1.0, 1.0).tolist()
    [0, 3, -2, 40]
    """
    if not _grid_ok(mean_bits, scale_bits, sort_block_log2):
        raise ValueError(
            "mean_bits must be in 0..12, scale_bits in 2..12 and sort_block_log2 in 10..24"
        )
    if not 64 <= max_table_bytes <= DECODE_TABLE_BYTES:
        raise ValueError(f"max_table_bytes must be in [64, {DECODE_TABLE_BYTES}]")
    x = np.asarray(symbols)
    if x.dtype.kind not in "iub" and x.size:
        raise ValueError(f"symbols must be integers, got dtype {x.dtype}")
    x = x.reshape(-1).astype(np.int64)
    n = len(x)
    if n and np.abs(x).max() > SYMBOL_MAX:
        raise ValueError("|symbols| must be <= 2**60")
    mean, scale, step = _distributions(mean, scale, step, n)
    import torch

    ac = load_torchac()
    heads, payloads = [], []
    block = 1 << sort_block_log2
    for bstart in range(0, n, block):
        bend = min(n, bstart + block)
        perm, centre, key, octave = prepare_block(
            mean[bstart:bend], scale[bstart:bend], step[bstart:bend], mean_bits, scale_bits
        )
        xs = x[bstart:bend][perm]
        resid_all = xs - centre
        start = 0
        while start < len(xs):
            end = min(len(xs), start + CHUNK_MAX)
            # Chunks span sigmas within a factor 4 (unless that makes them tiny): the window,
            # the table and its distinct rows follow the chunk's largest sigma.
            cut = int(np.searchsorted(octave, octave[start] + 2, side="left"))
            end = min(end, max(cut, start + SPLIT_MIN))
            w = _choose_window(np.abs(resid_all[start:end]))
            # The window stays valid for a shorter chunk: escapes cover whatever it misses.
            end = min(end, start + max(1, max_table_bytes // (2 * (2 * w + 4))))
            sl = slice(start, end)
            table = chunk_table(key[sl], w, mean_bits, scale_bits)
            resid = resid_all[sl]
            idx = np.clip(resid, -w - 1, w + 1) + (w + 1)
            esc = (idx == 0) | (idx == 2 * w + 2)
            excess = np.abs(resid[esc]) - (w + 1)
            width = int(_bit_length(excess).max()) if len(excess) else 0
            code = ac.encode_int16_normalized_cdf(
                torch.from_numpy(table), torch.from_numpy(idx.astype(np.int16))
            )
            esc_bytes = _pack_uint(excess, width)
            heads.append((end - start, w, width, len(code), len(esc_bytes), _crc(xs[sl])))
            payloads += [code, esc_bytes]
            start = end
    return _pack_head((mean_bits, scale_bits, sort_block_log2, n), heads) + b"".join(payloads)


def _pack_head(params: tuple[int, int, int, int], chunks: list[tuple]) -> bytes:
    """The stream header and chunk table; each chunk ``(count, W, width, ac, esc, crc32)``."""
    mean_bits, scale_bits, sort_block_log2, n = params
    parts = [
        TAG,
        bytes([VERSION, mean_bits << 4 | scale_bits, sort_block_log2]),
        encode_uvarint(n),
        encode_uvarint(len(chunks)),
    ]
    for count, w, width, ac_len, esc_len, crc in chunks:
        parts += [encode_uvarint(count), encode_uvarint(w), bytes([width])]
        parts += [encode_uvarint(ac_len), encode_uvarint(esc_len), crc.to_bytes(4, "little")]
    return b"".join(parts)


def _unpack_head(data: bytes) -> tuple[tuple[int, int, int, int], list[tuple], int]:
    """``((mean_bits, scale_bits, sort_log2, n), chunks, payload start)`` of a stream.

    Each chunk is ``(count, W, escape width, arithmetic-coded bytes, escape bytes, crc32)``.
    """
    if data[:4] == OLD_TAG:
        raise CodingError(
            "Gaussian stream version 1 (tag 'SGIG', written before napari-sgi's first release) "
            "is no longer read; only version 2"
        )
    if data[:1] != TAG or len(data) < 4:
        raise CodingError(f"not a Gaussian symbol stream (tag {data[:4]!r})")
    if data[1] != VERSION:
        raise CodingError(f"Gaussian stream version {data[1]} is not supported (only {VERSION})")
    mean_bits, scale_bits, sort_log2 = data[2] >> 4, data[2] & 15, data[3]
    try:  # every way of running off the end raises ValueError (the varints' own included)
        n, pos = decode_uvarint(data, 4)
        n_chunks, pos = decode_uvarint(data, pos)
        if n_chunks > n or n_chunks * _CHUNK_ENTRY_MIN > len(data) - pos:
            raise ValueError("more chunks than the stream holds")
        chunks = []
        for _ in range(n_chunks):
            count, pos = decode_uvarint(data, pos)
            w, pos = decode_uvarint(data, pos)
            width = data[pos]  # IndexError past the end
            ac_len, pos = decode_uvarint(data, pos + 1)
            esc_len, pos = decode_uvarint(data, pos)
            if pos + 4 > len(data):
                raise ValueError("checksum past the end")
            crc = int.from_bytes(data[pos : pos + 4], "little")
            chunks.append((count, w, width, ac_len, esc_len, crc))
            pos += 4
    except (ValueError, IndexError):
        raise CodingError("Gaussian stream truncated: chunk table past the end") from None
    return (mean_bits, scale_bits, sort_log2, n), chunks, pos


def decode_gaussian(data: bytes, mean, scale, step) -> np.ndarray:
    """Decode a stream of :func:`encode_gaussian` given the same ``mean``, ``scale``, ``step``.

    Returns
    -------
    numpy.ndarray of int64, shape [N]

    Raises
    ------
    CodingMismatchError
        A chunk's symbols do not match the encoder's checksum (different parameters or corrupt).
    CodingError
        The stream is malformed, or of version 1.

    Examples
    --------
    >>> data = encode_gaussian([1, 2], mean=[1.0, 2.0], scale=[0.5, 0.5], step=[1.0, 1.0])
    >>> decode_gaussian(data, [1.0, 2.0], [0.5, 0.5], [1.0, 1.0]).tolist()
    [1, 2]
    """
    data = bytes(data)
    (mean_bits, scale_bits, sort_block_log2, n), chunks, table_end = _unpack_head(data)
    if not _grid_ok(mean_bits, scale_bits, sort_block_log2):
        raise CodingError("Gaussian stream: snapping grid or sort block out of range")
    if sum(c[0] for c in chunks) != n or table_end + sum(c[3] + c[4] for c in chunks) != len(data):
        raise CodingError("Gaussian stream: chunk sizes do not add up to the stream")
    mean, scale, step = _distributions(mean, scale, step, n)
    out = np.empty(n, dtype=np.int64)
    block = 1 << sort_block_log2
    pos, chunk_iter = table_end, iter(enumerate(chunks))
    for bstart in range(0, n, block):
        bend = min(n, bstart + block)
        perm, centre, key, _ = prepare_block(
            mean[bstart:bend], scale[bstart:bend], step[bstart:bend], mean_bits, scale_bits
        )
        decoded = np.empty(bend - bstart, dtype=np.int64)
        start = 0
        while start < len(decoded):
            i, (count, w, width, ac_len, esc_len, crc) = next(chunk_iter, (-1, _NO_CHUNK))
            end = start + count
            if (
                i < 0
                or count == 0
                or end > len(decoded)
                or w > W_MAX
                or width > 63
                or count * (2 * w + 4) * 2 > DECODE_TABLE_BYTES
            ):
                raise CodingError(f"Gaussian stream: chunk {i} header out of range")
            sl = slice(start, end)
            rows, inverse = chunk_rows(key[sl], w, mean_bits, scale_bits)
            idx = arithmetic_decode(rows, inverse, count, data[pos : pos + ac_len])
            idx = idx.astype(np.int64)
            pos += ac_len
            resid = idx - (w + 1)
            esc = (idx == 0) | (idx == 2 * w + 2)
            n_esc = int(esc.sum())
            if esc_len != (n_esc * width + 7) // 8:
                raise CodingMismatchError(
                    f"chunk {i}: decoded {n_esc} escapes that do not fit the stored escape "
                    "payload; the decoder's mean/scale/step differ from the encoder's "
                    "(or the stream is corrupt)"
                )
            excess = _unpack_uint(data[pos : pos + esc_len], n_esc, width)
            pos += esc_len
            resid[esc] = np.sign(resid[esc]) * (excess + w + 1)
            decoded[sl] = centre[sl] + resid
            if _crc(decoded[sl]) != crc:
                raise CodingMismatchError(
                    f"chunk {i}: checksum mismatch; the decoder's mean/scale/step differ "
                    "from the encoder's (or the stream is corrupt)"
                )
            start = end
        out[bstart + perm] = decoded
    return out
