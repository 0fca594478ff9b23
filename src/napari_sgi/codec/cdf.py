"""Integer CDF tables of the discretised-Gaussian coder, bit-reproducible on any machine.

Everything here runs in float64 numpy with IEEE-754 basic operations only (``+ - * /``, ``floor``,
``frexp``, ``ldexp``, comparisons): our own ``exp`` and ``erfc`` instead of libm/SIMD ones, whose
last bits differ between builds and CPUs. Every intermediate stays a normal float (no subnormal,
so flush-to-zero modes cannot change a result). The exact recipe is in ``docs/format.md``.
"""

from __future__ import annotations

import math

import numpy as np

PRECISION = 16  # torchac's CDF precision: counts out of 2**16
TOTAL = 1 << PRECISION
SIGMA_MIN = 2.0**-6  # sigma/Q floor: below it the centre symbol already holds all the mass
SIGMA_MAX = 2.0**30  # sigma/Q cap: keeps every float of the table construction in normal range
MEAN_MAX = 2.0**40  # |mu/Q| bound, so that centres and residuals fit int64 exactly
T_CLIP = 10.0  # Phi is evaluated at clip(t, -10, 10): Phi(-10) * 2**16 < 1e-18, no count changes

# Portable Phi: IEEE basic operations only, in a fixed order (docs/format.md spells it out).
_LN2_HI = 6.93147180369123816490e-01  # fdlibm split of ln 2: k * _LN2_HI is exact for |k| < 2**20
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.44269504088896338700e00
_EXP_COEFFS = tuple(1.0 / math.factorial(n) for n in range(14))  # Taylor, |r| <= ln2/2: 2e-16
# Numerical Recipes erfc: erfc(z) = u exp(-z^2 + P(u)), u = 1/(1 + z/2), relative error < 1.2e-7.
_ERFC_COEFFS = (
    -1.26551223,
    1.00002368,
    0.37409196,
    0.09678418,
    -0.18628806,
    0.27886807,
    -1.13520398,
    1.48851587,
    -0.82215223,
    0.17087277,
)
_INV_SQRT2 = 0.70710678118654752440
# Rows computed so far, per (W, mean_bits, scale_bits): sorted row keys and their rows. A row is a
# pure function of its key, and the regions and groups of a file share most of theirs (a 16-region
# slice: 245k rows over its chunks, 42k distinct), so later chunks mostly copy rows.
_ROWS: dict[tuple[int, int, int], tuple[np.ndarray, np.ndarray]] = {}
ROW_CACHE_BYTES = 32 << 20  # all cached rows together stay under this


def exp_portable(y: np.ndarray) -> np.ndarray:
    """exp(y) for y in [-700, 1]: Cody-Waite reduction, degree-13 Taylor, exact ldexp."""
    y = np.clip(y, -700.0, 1.0)  # the clip keeps every result a normal float (FTZ-proof)
    k = np.floor(y * _INV_LN2 + 0.5)
    r = (y - k * _LN2_HI) - k * _LN2_LO
    p = np.full_like(r, _EXP_COEFFS[-1])
    for c in _EXP_COEFFS[-2::-1]:
        p = p * r + c
    return np.ldexp(p, k.astype(np.int32))


def phi(t: np.ndarray) -> np.ndarray:
    """Standard normal CDF, absolute error < 1.2e-7, bit-reproducible across platforms."""
    z = np.abs(t) * _INV_SQRT2
    u = 1.0 / (1.0 + 0.5 * z)
    poly = np.full_like(u, _ERFC_COEFFS[-1])
    for c in _ERFC_COEFFS[-2::-1]:
        poly = poly * u + c
    half_erfc = 0.5 * (u * exp_portable(poly - z * z))
    return np.where(t < 0, half_erfc, 1.0 - half_erfc)


def sigma_key(scale: np.ndarray, step: np.ndarray, scale_bits: int) -> np.ndarray:
    """The sigma key ``((e + 64) << (scale_bits + 1)) | m`` of sigma' = m * 2**(e - scale_bits).

    sigma' = sigma/Q rounded to ``scale_bits`` significant bits.
    Ordered like sigma' (exponent in [-5, 31] by the clip, mantissa m normalised to
    ``scale_bits`` bits), and sigma' is rebuilt from it exactly (:func:`row_parameters`).
    """
    s = scale / step
    np.clip(s, SIGMA_MIN, SIGMA_MAX, out=s)
    mant, expo = np.frexp(s)  # s = mant * 2**expo, mant in [0.5, 1): exact
    mant *= float(1 << scale_bits)  # exact (a power of two), as ldexp(mant, scale_bits)
    mant += 0.5
    mi = np.floor(mant, out=mant).astype(np.int64)
    # Rounded up to the next power of two: halve the mantissa and carry into the exponent.
    carry = mi >> scale_bits  # 1 exactly where mi == 1 << scale_bits
    mi >>= carry
    key = expo.astype(np.int64)
    key += carry
    key += 64
    key <<= scale_bits + 1
    key |= mi
    return key


def snap_mean(
    mean: np.ndarray, step: np.ndarray, skey: np.ndarray, mean_bits: int, scale_bits: int
) -> tuple[np.ndarray, np.ndarray]:
    """Centre c = floor(mu' + 1/2) and row key of every element; ``skey`` sorted ascending.

    mu' = mu/Q rounded to multiples of h = 2**-mean_bits * max(1, 2**floor(log2 sigma')): once
    sigma' >= 1 the grid grows with sigma (same relative error), which keeps the number of
    distinct table rows per sigma' small. The row key ``(skey << (mean_bits + 1)) | (j + 2**g)``,
    with the offset f = mu' - c = j 2**-g (g = mean_bits), gives the row's offset and sigma'
    (:func:`row_parameters`): equal row keys give equal CDF rows.

    Sorted sigma keys make the grid exponent constant over a few runs of elements: each run is
    snapped with scalar shifts, in the same float operations as one elementwise pass would make
    (``floor(m * 2**bits + 1/2)``; a power-of-two product is exact, as ``ldexp`` is).
    """
    m = mean / step
    if len(m) and max(m.max(), -m.min()) > MEAN_MAX:
        raise ValueError(f"|mean/step| must be <= 2**40, got {np.abs(m).max():.3g}")
    centre = np.empty(len(m), dtype=np.int64)
    key = np.left_shift(skey, mean_bits + 1)
    # shift = clip(floor(log2 sigma'), 0, mean_bits) = clip(e - 1, 0, mean_bits) for exponent e:
    # run s holds the elements with e < s + 2 (and e >= s + 1 for s > 0).
    bounds = ((np.arange(mean_bits) + 2 + 64) << (scale_bits + 1)).astype(np.int64)
    cuts = [0, *np.searchsorted(skey, bounds).tolist(), len(m)]
    for shift in range(mean_bits + 1):
        a, b = cuts[shift], cuts[shift + 1]
        if a == b:
            continue
        bits = mean_bits - shift  # the grid is 2**-bits
        x = m[a:b]
        x *= 2.0**bits
        x += 0.5
        k = np.floor(x, out=x).astype(np.int64)
        half = (1 << bits) >> 1
        k += half
        np.right_shift(k, bits, out=centre[a:b])
        k &= (1 << bits) - 1  # (k + half) mod 2**bits - half = k - (centre << bits)
        k += (1 << mean_bits) - half  # ... shifted to [0, 2**(mean_bits + 1)) for the key
        if shift:
            k -= 1 << mean_bits
            k <<= shift
            k += 1 << mean_bits
        key[a:b] |= k
    return centre, key


def row_parameters(key: np.ndarray, mean_bits: int, scale_bits: int):
    """Offset f = mu' - c (in [-1/2, 1/2)) and sigma' of table rows, from their row keys."""
    frac = (key & ((1 << (mean_bits + 1)) - 1)) - (1 << mean_bits)
    offset = np.ldexp(frac.astype(np.float64), -mean_bits)
    skey = key >> (mean_bits + 1)
    mi = skey & ((1 << (scale_bits + 1)) - 1)
    expo = (skey >> (scale_bits + 1)) - 64
    sigma = np.ldexp(mi.astype(np.float64), (expo - scale_bits).astype(np.int32))
    return offset, sigma


def prepare_block(mean, scale, step, mean_bits: int, scale_bits: int):
    """Snap a sort block and order it by sigma' (stable): chunks then hold similar sigmas, so
    their windows, tables and distinct rows stay small. The decoder rebuilds the same order.

    Returns the permutation, and in that order the centres, the row keys and the sigma
    exponents (``e + 64``). The order only needs the sigma keys: the rest is snapped after sorting
    (fewer gathers)."""
    skey = sigma_key(scale, step, scale_bits)
    perm = stable_argsort(skey)
    skey = skey[perm]
    centre, key = snap_mean(mean[perm], step[perm], skey, mean_bits, scale_bits)
    return perm, centre, key, skey >> (scale_bits + 1)


def stable_argsort(keys: np.ndarray) -> np.ndarray:
    """``np.argsort(keys, kind="stable")`` of int64 keys, by radix sort where their range allows.

    A stable order is unique, so this is the same permutation; sigma keys of a block usually
    span a few thousand values, and numpy radix-sorts 16-bit integers in linear time (the
    comparison sort of int64 was a fifth of a decode).

    Examples
    --------
    >>> stable_argsort(np.array([70000, 5, 70000, 4])).tolist()
    [3, 1, 0, 2]
    """
    if len(keys):
        low = int(keys.min())
        if int(keys.max()) - low < 1 << 16:
            return np.argsort((keys - low).astype(np.uint16), kind="stable")
    return np.argsort(keys, kind="stable")


def distinct_rows(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One index per distinct value of ``key`` and, per element, the number of its value.

    ``key[first][inverse] == key``. Row keys determine their (offset, sigma) exactly, so any
    element can stand for its value; a dense lookup over the key range replaces the sort of
    ``np.unique`` when that range is small (it is: a chunk spans few sigmas).
    """
    low = int(key.min())
    span = int(key.max()) - low + 1
    if span > 4 * len(key) + (1 << 16):
        _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        return first, inverse.reshape(-1)
    dense = key - low
    number = np.zeros(span, dtype=np.int64)
    number[dense] = 1
    values = np.flatnonzero(number)
    number[values] = np.arange(len(values))
    inverse = number[dense]
    first = np.empty(len(values), dtype=np.int64)
    first[inverse] = np.arange(len(key))
    return first, inverse


def cdf_rows(offset: np.ndarray, sigma: np.ndarray, w: int) -> np.ndarray:
    """Integer CDF rows [U, 2W+4] (int16 bit patterns of uint16) for offsets f and sigmas.

    Alphabet: 0 = escape below, 1 + W + r for |r| <= W, 2W + 2 = escape above. Row entry i is
    C_i = A_i + i with A_i = floor(F_i * (2**16 - (Lp - 1)) + 1/2), made non-decreasing along the
    row (running maximum), F_i = Phi(clip(t, -10, 10)) at the lower edge of symbol i,
    t = (i - W - 3/2 - f) / sigma, and A_0 = 0, A_{Lp-1} = 2**16 - (Lp - 1): every symbol gets at
    least one count. The clip lets us evaluate Phi only where |t| < 10 (the band) and fill the
    rest with the clip values: the same numbers, far less work when sigma << W.
    """
    lp = 2 * w + 4
    n_edges = 2 * w + 2  # edge k (row entry k + 1) lies at r = k - W - 1/2, k = 0 .. 2W+1
    scale = float(TOTAL - (lp - 1))
    c_lo, c_hi = np.floor(phi(np.array([-T_CLIP, T_CLIP])) * scale + 0.5).astype(np.int64)
    out = np.empty((len(offset), lp), dtype=np.int16)
    ramp = np.arange(lp, dtype=np.int64)
    expo = np.frexp(sigma)[1]
    block = max(1, (1 << 21) // lp)  # rows per pass: bounds the float64/int64 temporaries
    for e in np.unique(expo):
        # sigma < 2**e: edges with |r - f| > T * 2**e + 1 have |t| > T, i.e. the clip values.
        half = int(math.ceil(T_CLIP * 2.0**e)) + 2
        k0, k1 = max(0, w - half), min(n_edges, w + half + 2)
        edges = np.arange(k0, k1, dtype=np.float64) - (w + 0.5)
        group = np.flatnonzero(expo == e)
        for b in range(0, len(group), block):
            rows = group[b : b + block]
            t = (edges[None, :] - offset[rows, None]) / sigma[rows, None]
            band = np.floor(phi(np.clip(t, -T_CLIP, T_CLIP)) * scale + 0.5).astype(np.int64)
            band[:, 0] = np.maximum(band[:, 0], c_lo)
            np.maximum.accumulate(band, axis=1, out=band)  # guard against a non-monotone ulp
            acc = np.empty((len(rows), lp), dtype=np.int64)
            acc[:, 0] = 0
            acc[:, 1 : 1 + k0] = c_lo
            acc[:, 1 + k0 : 1 + k1] = band
            acc[:, 1 + k1 : -1] = np.maximum(c_hi, band[:, -1:]) if k1 > k0 else c_hi
            acc[:, -1] = int(scale)
            acc += ramp
            # C_{Lp-1} = 2**16 wraps to 0: torchac never reads it (the top symbol ends at 2**16).
            out[rows] = (acc & 0xFFFF).astype(np.uint16).view(np.int16)
    return out


def cached_rows(keys: np.ndarray, w: int, mean_bits: int, scale_bits: int) -> np.ndarray:
    """The CDF rows of distinct row keys ``keys``, each computed once per process.

    Thread-safe without a lock: the cache entry is replaced whole, and two threads that add rows
    at the same time can at worst lose one another's additions.
    """
    ident = (w, mean_bits, scale_bits)
    known, rows = _ROWS.get(ident, (keys[:0], None))
    if len(known):
        at = np.minimum(np.searchsorted(known, keys), len(known) - 1)
        hit = known[at] == keys
    else:
        at, hit = None, np.zeros(len(keys), dtype=bool)
    out = np.empty((len(keys), 2 * w + 4), dtype=np.int16)
    if hit.any():
        out[hit] = rows[at[hit]]
    miss = np.flatnonzero(~hit)
    if not len(miss):
        return out
    new = out[miss] = cdf_rows(*row_parameters(keys[miss], mean_bits, scale_bits), w)
    held = sum(r.nbytes for _, r in _ROWS.values())
    if held + new.nbytes <= ROW_CACHE_BYTES:
        merged = np.concatenate([known, keys[miss]])
        order = np.argsort(merged, kind="stable")
        table = new if rows is None else np.concatenate([rows, new])
        _ROWS[ident] = (merged[order], table[order])
    return out


def chunk_rows(
    key: np.ndarray, w: int, mean_bits: int, scale_bits: int
) -> tuple[np.ndarray, np.ndarray]:
    """The distinct CDF rows [R, 2W+4] of the row keys ``key`` (each looked up or computed once)
    and, for every key, the index of its row [n]: what the compiled decoder reads."""
    first, inverse = distinct_rows(key)
    return cached_rows(key[first], w, mean_bits, scale_bits), inverse


def chunk_table(key: np.ndarray, w: int, mean_bits: int, scale_bits: int) -> np.ndarray:
    """[n, 2W+4] table of the row keys ``key``: :func:`chunk_rows` copied out row by row
    (:func:`expand_rows`), the layout torchac's coder takes."""
    return expand_rows(*chunk_rows(key, w, mean_bits, scale_bits))


def expand_rows(rows: np.ndarray, inverse: np.ndarray) -> np.ndarray:
    """``rows[inverse]`` of a contiguous int16 table, copied as whole rows of raw bytes (several
    times faster than gathering int16)."""
    whole = np.dtype((np.void, rows.shape[1] * rows.itemsize))
    return rows.view(whole).ravel().take(inverse).view(np.int16).reshape(len(inverse), -1)
