/* Arithmetic decoder of torchac's streams (napari_sgi.codec.native_decoder), without torchac.
 *
 * Plain C ABI, loaded with ctypes, which releases the GIL during the call: decode threads then
 * run side by side (torchac's pybind11 function holds the GIL), and decoding needs neither torchac
 * nor torch.utils.cpp_extension imported.
 *
 * The arithmetic is torchac 0.9.3's decoder (backend/torchac_backend.cpp: 32-bit range, 16-bit
 * CDF counts, input read bit by bit, zeros past the end of the stream), operation for operation,
 * so every stream, valid or corrupt, decodes to the same symbols as with torchac. One difference
 * in the interface: the CDF of symbol i is row ``row_index[i]`` of a table of distinct rows
 * (``row_index == NULL``: row 0 for every symbol), not row i of an [N, Lp] table.
 */

#include <Python.h>

#include <stdint.h>
#include <stdlib.h>

#if defined(_WIN32)
#define SGI_EXPORT __declspec(dllexport)
#else
#define SGI_EXPORT __attribute__((visibility("default")))
#endif

typedef uint16_t cdf_t;

typedef struct {
    const uint8_t *data;
    int64_t size;
    int64_t at;
    uint8_t cache;
    uint8_t cached_bits;
} BitReader;

/* torchac's InCacheString::get: the next bit into value's low end (0 past the end). */
static inline uint32_t next_bit(BitReader *in, uint32_t value) {
    if (in->cached_bits == 0) {
        if (in->at == in->size) {
            return value << 1;
        }
        in->cache = in->data[in->at++];
        in->cached_bits = 8;
    }
    value = (value << 1) | ((in->cache >> (in->cached_bits - 1)) & 1u);
    in->cached_bits--;
    return value;
}

/* torchac's binsearch over one CDF row, in its uint16 arithmetic. */
static inline cdf_t binsearch(const cdf_t *row, cdf_t target, cdf_t max_sym) {
    cdf_t left = 0;
    cdf_t right = (cdf_t)(max_sym + 1);
    while (left + 1 < right) {
        const cdf_t m = (cdf_t)((left + right) / 2);
        const cdf_t v = row[m];
        if (v < target) {
            left = m;
        } else if (v > target) {
            right = m;
        } else {
            return m;
        }
    }
    return left;
}

/* The same answer as binsearch for a row whose entries 1 .. max_sym strictly increase (every
 * table the coder builds): the largest i in 1 .. max_sym with row[i] <= target, else 0. It
 * starts where binsearch does, at the middle symbol (the mode of a coder's Gaussian row) and
 * gallops outward, so a likely symbol takes two or three reads instead of log2(Lp) branches that
 * the CPU mispredicts half of the time. */
static inline cdf_t gallop(const cdf_t *row, cdf_t target, int max_sym) {
    int lo, hi;
    const int c = (max_sym + 1) / 2;
    if (c == 0) {
        return 0;
    }
    if (row[c] <= target) {
        lo = c;
        for (int step = 1;; step <<= 1) {
            const int next = lo + step;
            if (next > max_sym) {
                hi = max_sym + 1;
                break;
            }
            if (row[next] > target) {
                hi = next;
                break;
            }
            lo = next;
        }
    } else {
        hi = c;
        for (int step = 1;; step <<= 1) {
            const int next = hi - step;
            if (next < 1) {
                lo = 0;
                break;
            }
            if (row[next] <= target) {
                lo = next;
                break;
            }
            hi = next;
        }
    }
    while (lo + 1 < hi) {
        const int m = (lo + hi) / 2;
        if (row[m] <= target) {
            lo = m;
        } else {
            hi = m;
        }
    }
    return (cdf_t)lo;
}

/* Whether row[1 .. lp - 2] strictly increases. */
static int increasing(const cdf_t *row, int32_t lp) {
    for (int32_t j = 1; j + 1 <= lp - 2; ++j) {
        if (row[j] >= row[j + 1]) {
            return 0;
        }
    }
    return 1;
}

/* Decode n symbols of a torchac stream. rows: [n_rows, lp] CDF rows (uint16 bit patterns, as
 * torchac's int16 tables); row_index: the row of each symbol, or NULL for row 0 throughout.
 * Returns 0, 2 when a size or row index is out of range, or 3 out of memory (nothing decoded). */
SGI_EXPORT int sgi_ac_decode(const cdf_t *rows, int64_t n_rows, int32_t lp,
                             const int32_t *row_index, int64_t n, const uint8_t *data,
                             int64_t size, int16_t *out) {
    if (lp < 2 || lp > 0x10000 || n_rows < 1 || n < 0 || n > INT32_MAX || size < 0) {
        return 2;
    }
    if (row_index != NULL) {
        for (int64_t i = 0; i < n; ++i) {
            if (row_index[i] < 0 || row_index[i] >= n_rows) {
                return 2;
            }
        }
    }
    /* Rows searched by gallop (1) or, not strictly increasing, by torchac's binsearch (0). */
    const int64_t used_rows = row_index != NULL ? n_rows : 1;
    uint8_t *fast = malloc((size_t)(used_rows > 0 ? used_rows : 1));
    if (fast == NULL) {
        return 3;
    }
    for (int64_t r = 0; r < used_rows; ++r) {
        fast[r] = (uint8_t)increasing(rows + r * lp, lp);
    }
    const int max_symbol = lp - 2;
    const uint32_t c_count = 0x10000U;
    uint32_t low = 0;
    uint32_t high = 0xFFFFFFFFU;
    uint32_t value = 0;
    BitReader in = {data, size, 0, 0, 0};
    for (int i = 0; i < 32; ++i) {
        value = next_bit(&in, value);
    }
    for (int64_t i = 0; i < n; ++i) {
        const uint64_t span = (uint64_t)high - (uint64_t)low + 1;
        const uint16_t count =
            (uint16_t)((((uint64_t)value - (uint64_t)low + 1) * c_count - 1) / span);
        const int64_t r = row_index != NULL ? row_index[i] : 0;
        const cdf_t *row = rows + r * lp;
        const cdf_t sym =
            fast[r] ? gallop(row, count, max_symbol) : binsearch(row, count, (cdf_t)max_symbol);
        out[i] = (int16_t)sym;
        if (i == n - 1) {
            break;
        }
        const uint32_t c_low = row[sym];
        const uint32_t c_high = sym == max_symbol ? 0x10000U : row[sym + 1];
        high = (low - 1) + (uint32_t)((span * (uint64_t)c_high) >> 16);
        low = low + (uint32_t)((span * (uint64_t)c_low) >> 16);
        for (;;) {
            if (low >= 0x80000000U || high < 0x80000000U) {
                low <<= 1;
                high = (high << 1) | 1u;
                value = next_bit(&in, value);
            } else if (low >= 0x40000000U && high < 0xC0000000U) {
                low = (low << 1) & 0x7FFFFFFFU;
                high = (high << 1) | 0x80000001U;
                value -= 0x40000000U;
                value = next_bit(&in, value);
            } else {
                break;
            }
        }
    }
    free(fast);
    return 0;
}

/* A module object, so that importing the library as a Python extension (as tools that walk the
 * package do) succeeds; the function itself is reached through ctypes. */
static struct PyModuleDef arith_decoder_module = {
    PyModuleDef_HEAD_INIT, "_arith_decoder",
    "Arithmetic decoder of torchac streams (C ABI, used through ctypes).", -1,
    NULL, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__arith_decoder(void) { return PyModule_Create(&arith_decoder_module); }
