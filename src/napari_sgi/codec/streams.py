"""Entropy coding of quantised values with torchac: discretised-Gaussian symbols and binary grids.

Two stream kinds, both self-delimiting ``bytes`` (layout in ``docs/format.md``, "Symbol coding"):

``encode_gaussian`` / ``decode_gaussian``
    Integer symbols ``x`` (the quantised value is ``x * step``), each coded with the discretised
    Gaussian of its own mean ``mu``, std ``sigma`` and step ``Q`` (sgi-method §7.3). The decoder
    must be given the same ``mu``, ``sigma`` and ``Q``; it rebuilds the integer CDF tables.
``encode_bits`` / ``decode_bits``
    A {0, 1} array coded with one fixed Bernoulli probability stored in the stream (§9.1).

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

import contextlib
import ctypes
import functools
import importlib.util
import math
import os
import struct
import sys
import tempfile
import threading
import zlib
from collections.abc import Iterator

import numpy as np

from napari_sgi.codec.cdf import TOTAL, chunk_rows, chunk_table, expand_rows, prepare_block
from napari_sgi.codec.varint import decode_uvarint, encode_uvarint
from napari_sgi.errors import CodingError, CodingMismatchError

__all__ = [
    "CodingError",
    "CodingMismatchError",
    "decode_bits",
    "decode_gaussian",
    "encode_bits",
    "encode_gaussian",
]

# ---------------------------------------------------------------------------------------------
# Stream constants (version 1). Changing any of them changes the decoded result: bump the version.
GAUSSIAN_TAG = b"SGIG"  # Gaussian streams of version 1
GAUSSIAN_TAG_V2 = b"G"  # version 2: the same coding, a compact header (varints)
BITS_TAG = b"SGIB"
CODER_VERSION = 1  # of the bit streams
GAUSSIAN_VERSION = 2  # what encode_gaussian writes; decode_gaussian reads 1 and 2
SYMBOL_MAX = 2**60  # |x| bound
W_MAX = 4095  # window half-width cap: table <= 8194 entries, min-count overhead <= 0.19 bit/sym
CHUNK_MAX = 1 << 18  # symbols per chunk at most (Gaussian streams)
SPLIT_MIN = 1 << 11  # the encoder splits chunks at sigma octaves only above this size
BITS_CHUNK = 1 << 20  # bits per chunk (binary streams)
UNCHECKED_BITS_MAX = 1 << 31  # decode_bits without n refuses larger claimed counts
DEFAULT_TABLE_BYTES = 64 << 20  # encoder's int16 CDF table budget per chunk
DECODE_TABLE_BYTES = 256 << 20  # the decoder refuses a chunk whose table would exceed this

_GHEAD = struct.Struct("<4sBBBBQI")  # tag, version, mean_bits, scale_bits, sort_log2, n, chunks
_GCHUNK = struct.Struct("<IHBBIII")  # n, W, esc_width, reserved, ac_len, esc_len, crc32
_NO_CHUNK = (0, 0, 0, 0, 0, 0)
_BHEAD = struct.Struct("<4sBBBBQII")  # tag, version, 3x reserved, n, count1, n_chunks
_BCHUNK = struct.Struct("<III")  # n, ac_len, crc32


# ---------------------------------------------------------------------------------------------
# torchac, loaded lazily: the first import compiles its C++ backend (~25 s) and prints build logs.
_torchac = None
_torchac_lock = threading.Lock()


def _extensions_dir() -> str:
    """A torch-extensions build folder of this Python environment's own.

    torchac builds its coder into ``~/.cache/torch_extensions`` by default, a folder that every
    environment shares; two environments then rebuild it in turn (about a minute each time).
    """
    import hashlib
    import sys

    tag = hashlib.sha1(sys.prefix.encode()).hexdigest()[:12]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "napari-sgi", "torch_extensions", tag)


def _backend():
    """Import torchac once, keeping ninja's build log out of the user's terminal unless it fails."""
    global _torchac
    if _torchac is None:
        with _torchac_lock:
            if _torchac is None:
                os.environ.setdefault("TORCH_EXTENSIONS_DIR", _extensions_dir())
                with _quiet_fds() as log:
                    try:
                        import torchac
                    except Exception as exc:  # noqa: BLE001 - re-raised with the build log
                        raise ImportError(
                            f"torchac failed to load (it needs g++ and ninja): {exc}\n{log()}"
                        ) from exc
                _torchac = torchac
    return _torchac


def _flush_std() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


@contextlib.contextmanager
def _quiet_fds() -> Iterator:
    """Send fds 1 and 2 to a temp file (the build runs in a subprocess that writes to them)."""
    with tempfile.TemporaryFile(mode="w+b") as sink:
        saved = []
        _flush_std()  # what was printed before goes where it was going
        try:
            for fd in (1, 2):
                saved.append((fd, os.dup(fd)))
                os.dup2(sink.fileno(), fd)
        except OSError:  # no real fds (embedded interpreter): just let the log through
            pass

        def log() -> str:
            sink.seek(0)
            return sink.read().decode(errors="replace")[-4000:]

        try:
            yield log
        finally:
            _flush_std()  # what the import printed goes to the sink
            for fd, copy in saved:
                os.dup2(copy, fd)
                os.close(copy)


# ---------------------------------------------------------------------------------------------
# Decoding: the compiled decoder when it is built, else torchac (the same symbols either way)
TORCHAC_DECODE_ENV = "NAPARI_SGI_TORCHAC_DECODE"  # set (not "0"): decode with torchac


@functools.cache
def _native_library() -> ctypes.CDLL | None:
    """The compiled decoder (``_kernels/arith_decoder.c``, built by ``pip install``), or None."""
    spec = importlib.util.find_spec("napari_sgi.codec._arith_decoder")
    if spec is None or not spec.origin:
        return None
    try:
        lib = ctypes.CDLL(spec.origin)
    except OSError:
        return None
    pointer, i64 = ctypes.c_void_p, ctypes.c_int64
    lib.sgi_ac_decode.argtypes = [pointer, i64, ctypes.c_int32, pointer, i64, pointer, i64, pointer]
    lib.sgi_ac_decode.restype = ctypes.c_int
    return lib


def native_decoder() -> bool:
    """Whether streams are decoded by the compiled decoder (else by torchac).

    It is torchac's arithmetic, operation for operation, called through ctypes: it runs without
    the GIL (decode threads overlap; torchac's coder holds it) and needs no torchac import
    (``torch.utils.cpp_extension``, 0.1 s in a fresh process). ``$NAPARI_SGI_TORCHAC_DECODE``
    (read at every call) set to anything but ``0`` asks for torchac.
    """
    if os.environ.get(TORCHAC_DECODE_ENV, "").strip() not in ("", "0"):
        return False
    return _native_library() is not None


def _ac_decode(rows: np.ndarray, row_index: np.ndarray | None, n: int, code: bytes) -> np.ndarray:
    """``n`` symbols of a torchac stream, symbol i coded with CDF row ``rows[row_index[i]]``.

    ``rows`` holds int16 CDF rows [R, Lp] (torchac's layout); ``row_index`` (None: row 0 for
    every symbol) picks each symbol's row. Returns int16 symbols.
    """
    rows = np.ascontiguousarray(rows, dtype=np.int16)
    if not native_decoder():
        table = expand_rows(rows, np.zeros(n, np.int64) if row_index is None else row_index)
        import torch

        return _backend().decode_int16_normalized_cdf(torch.from_numpy(table), code).numpy()
    out = np.empty(n, dtype=np.int16)
    index = None if row_index is None else np.ascontiguousarray(row_index, dtype=np.int32)
    buffer = np.frombuffer(code, dtype=np.uint8)
    status = _native_library().sgi_ac_decode(
        rows.ctypes.data,
        len(rows),
        rows.shape[1],
        None if index is None else index.ctypes.data,
        n,
        buffer.ctypes.data if len(buffer) else None,
        len(buffer),
        out.ctypes.data,
    )
    if status:
        raise CodingError(f"arithmetic decoder: sizes or row indices out of range ({status})")
    return out


# Argument checks, window choice, escapes


def _as_float_array(name: str, a, n: int) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.broadcast_to(arr, (n,))
    arr = arr.reshape(-1)
    if arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} elements, symbols have {n}")
    return arr


def _check_params(mean: np.ndarray, scale: np.ndarray, step: np.ndarray) -> None:
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(scale))):
        raise ValueError("mean and scale must be finite")
    if not (np.all(np.isfinite(step)) and np.all(step > 0)):
        raise ValueError("step must be finite and > 0")
    if np.any(scale < 0):
        raise ValueError("scale must be >= 0")


def _bit_length(v: np.ndarray) -> np.ndarray:
    """Bit length of non-negative int64 values, vectorised (0 for 0)."""
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
    """Big-endian bit packing of non-negative int64 values, ``width`` bits each."""
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


# ---------------------------------------------------------------------------------------------
# Gaussian streams


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
    version: int = GAUSSIAN_VERSION,
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
    version : int
        Stream layout: 2 (compact header, the default) or 1 (what napari-sgi wrote before).

    Returns
    -------
    bytes
        A self-delimiting stream (``docs/format.md``).

    Examples
    --------
    >>> x = np.array([0, 3, -2, 40])
    >>> data = encode_gaussian(x, mean=[0.0, 2.5, -1.0, 0.0], scale=1.0, step=1.0)
    >>> decode_gaussian(data, [0.0, 2.5, -1.0, 0.0], 1.0, 1.0).tolist()
    [0, 3, -2, 40]
    """
    if not _grid_ok(mean_bits, scale_bits, sort_block_log2):
        raise ValueError(
            "mean_bits must be in 0..12, scale_bits in 2..12 and sort_block_log2 in 10..24"
        )
    if not 64 <= max_table_bytes <= DECODE_TABLE_BYTES:
        raise ValueError(f"max_table_bytes must be in [64, {DECODE_TABLE_BYTES}]")
    if version not in (1, 2):
        raise ValueError(f"Gaussian stream version must be 1 or 2, got {version}")
    x = np.asarray(symbols)
    if x.dtype.kind not in "iub" and x.size:
        raise ValueError(f"symbols must be integers, got dtype {x.dtype}")
    x = x.reshape(-1).astype(np.int64)
    n = len(x)
    if n and np.abs(x).max() > SYMBOL_MAX:
        raise ValueError("|symbols| must be <= 2**60")
    mean, scale, step = (
        _as_float_array(k, v, n) for k, v in (("mean", mean), ("scale", scale), ("step", step))
    )
    _check_params(mean, scale, step)
    ac = _backend()
    import torch

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
    pack = _pack_gaussian_v2 if version == 2 else _pack_gaussian_v1
    return pack((mean_bits, scale_bits, sort_block_log2, n), heads) + b"".join(payloads)


def _pack_gaussian_v1(params: tuple[int, int, int, int], chunks: list[tuple]) -> bytes:
    mean_bits, scale_bits, sort_block_log2, n = params
    head = _GHEAD.pack(GAUSSIAN_TAG, 1, mean_bits, scale_bits, sort_block_log2, n, len(chunks))
    return head + b"".join(
        _GCHUNK.pack(count, w, width, 0, ac_len, esc_len, crc)
        for count, w, width, ac_len, esc_len, crc in chunks
    )


def _pack_gaussian_v2(params: tuple[int, int, int, int], chunks: list[tuple]) -> bytes:
    mean_bits, scale_bits, sort_block_log2, n = params
    parts = [
        GAUSSIAN_TAG_V2,
        bytes([2, mean_bits << 4 | scale_bits, sort_block_log2]),
        encode_uvarint(n),
        encode_uvarint(len(chunks)),
    ]
    for count, w, width, ac_len, esc_len, crc in chunks:
        parts += [encode_uvarint(count), encode_uvarint(w), bytes([width])]
        parts += [encode_uvarint(ac_len), encode_uvarint(esc_len), crc.to_bytes(4, "little")]
    return b"".join(parts)


def _unpack_gaussian_head(data: bytes) -> tuple[tuple[int, int, int, int], list[tuple], int]:
    """``((mean_bits, scale_bits, sort_log2, n), chunks, payload start)`` of a stream, any version.

    Each chunk is ``(count, W, escape width, arithmetic-coded bytes, escape bytes, crc32)``.
    """
    if data[:4] == GAUSSIAN_TAG:
        if len(data) < _GHEAD.size:
            raise CodingError("Gaussian stream truncated: shorter than its header")
        _, version, mean_bits, scale_bits, sort_log2, n, n_chunks = _GHEAD.unpack_from(data)
        if version != 1:
            raise CodingError(f"Gaussian stream version {version} is not supported (1 or 2)")
        end = _GHEAD.size + n_chunks * _GCHUNK.size
        if end > len(data) or n_chunks > n:
            raise CodingError("Gaussian stream truncated: chunk table past the end")
        chunks = [
            _GCHUNK.unpack_from(data, _GHEAD.size + i * _GCHUNK.size) for i in range(n_chunks)
        ]
        chunks = [(c[0], c[1], c[2], c[4], c[5], c[6]) for c in chunks]
        return (mean_bits, scale_bits, sort_log2, n), chunks, end
    if data[:1] != GAUSSIAN_TAG_V2 or len(data) < 4:
        raise CodingError(f"not a Gaussian symbol stream (tag {data[:4]!r})")
    if data[1] != 2:
        raise CodingError(f"Gaussian stream version {data[1]} is not supported (1 or 2)")
    mean_bits, scale_bits, sort_log2 = data[2] >> 4, data[2] & 15, data[3]
    try:  # every way of running off the end raises ValueError (the varints' own included)
        n, pos = decode_uvarint(data, 4)
        n_chunks, pos = decode_uvarint(data, pos)
        if n_chunks > n or n_chunks * 9 > len(data) - pos:  # 9: the smallest chunk entry
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
        The stream is malformed.

    Examples
    --------
    >>> data = encode_gaussian([1, 2], mean=[1.0, 2.0], scale=[0.5, 0.5], step=[1.0, 1.0])
    >>> decode_gaussian(data, [1.0, 2.0], [0.5, 0.5], [1.0, 1.0]).tolist()
    [1, 2]
    """
    data = bytes(data)
    (mean_bits, scale_bits, sort_block_log2, n), chunks, table_end = _unpack_gaussian_head(data)
    if not _grid_ok(mean_bits, scale_bits, sort_block_log2):
        raise CodingError("Gaussian stream: snapping grid or sort block out of range")
    if sum(c[0] for c in chunks) != n or table_end + sum(c[3] + c[4] for c in chunks) != len(data):
        raise CodingError("Gaussian stream: chunk sizes do not add up to the stream")
    mean, scale, step = (
        _as_float_array(k, v, n) for k, v in (("mean", mean), ("scale", scale), ("step", step))
    )
    _check_params(mean, scale, step)
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
            idx = _ac_decode(rows, inverse, count, data[pos : pos + ac_len]).astype(np.int64)
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


# ---------------------------------------------------------------------------------------------
# Binary streams


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
        return _BHEAD.pack(BITS_TAG, CODER_VERSION, 0, 0, 0, n, count1, 0)
    count1 = min(max((n1 * TOTAL + n // 2) // n, 1), TOTAL - 1)
    ac = _backend()
    import torch

    heads, payloads = [], []
    for start in range(0, n, BITS_CHUNK):
        chunk = b[start : start + BITS_CHUNK]
        table = _bits_table(len(chunk), count1)
        code = ac.encode_int16_normalized_cdf(
            torch.from_numpy(table), torch.from_numpy(chunk.astype(np.int16))
        )
        heads.append(_BCHUNK.pack(len(chunk), len(code), zlib.crc32(chunk.tobytes())))
        payloads.append(code)
    head = _BHEAD.pack(BITS_TAG, CODER_VERSION, 0, 0, 0, n, count1, len(heads))
    return b"".join([head, *heads, *payloads])


def _bits_table(n: int, count1: int) -> np.ndarray:
    # torchac reads the table row-major per symbol, so it must be materialised (no stride 0).
    row = np.array([0, TOTAL - count1, 0], dtype=np.uint16).view(np.int16)
    return np.ascontiguousarray(np.broadcast_to(row, (n, 3)))


def decode_bits(data: bytes, n: int | None = None) -> np.ndarray:
    """Decode a stream of :func:`encode_bits` into a uint8 {0, 1} array.

    Parameters
    ----------
    data : bytes
    n : int, optional
        Expected number of bits; a stream holding another count raises :class:`CodingError`.
        Without it, streams claiming more than 2**31 bits are refused (they could be corrupt).

    Examples
    --------
    >>> decode_bits(encode_bits([True, False, True])).tolist()
    [1, 0, 1]
    """
    data = bytes(data)
    if len(data) < _BHEAD.size:
        raise CodingError("bit stream truncated: shorter than its header")
    tag, version, _, _, _, count, count1, n_chunks = _BHEAD.unpack_from(data)
    if tag != BITS_TAG:
        raise CodingError(f"not a bit stream (tag {tag!r})")
    if version != CODER_VERSION:
        raise CodingError(f"bit stream version {version} is not supported (only 1)")
    if n is not None and n != count:
        raise CodingMismatchError(f"bit stream holds {count} bits, {n} expected")
    if n is None and count > UNCHECKED_BITS_MAX:  # a constant stream's count sizes the output
        raise CodingError(f"bit stream claims {count} bits; pass n to decode more than 2**31")
    if count1 > TOTAL:
        raise CodingError("bit stream: probability count out of range")
    if count1 in (0, TOTAL):
        if n_chunks or len(data) != _BHEAD.size:
            raise CodingError("bit stream: constant stream with a payload")
        return np.full(count, 1 if count1 else 0, dtype=np.uint8)
    table_end = _BHEAD.size + n_chunks * _BCHUNK.size
    if n_chunks != -(-count // BITS_CHUNK) or table_end > len(data):
        raise CodingError("bit stream truncated or chunk count wrong")
    chunks = [_BCHUNK.unpack_from(data, _BHEAD.size + i * _BCHUNK.size) for i in range(n_chunks)]
    sizes = [min(BITS_CHUNK, count - i * BITS_CHUNK) for i in range(n_chunks)]
    if [c[0] for c in chunks] != sizes or table_end + sum(c[1] for c in chunks) != len(data):
        raise CodingError("bit stream: chunk sizes do not add up to the stream")
    out = np.empty(count, dtype=np.uint8)
    pos = table_end
    row = _bits_table(1, count1)
    for i, (size, ac_len, crc) in enumerate(chunks):
        chunk = _ac_decode(row, None, size, data[pos : pos + ac_len]).astype(np.uint8)
        if zlib.crc32(chunk.tobytes()) != crc:
            raise CodingMismatchError(f"bit stream chunk {i}: checksum mismatch (corrupt stream)")
        out[i * BITS_CHUNK : i * BITS_CHUNK + size] = chunk
        pos += ac_len
    return out
