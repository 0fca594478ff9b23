// Compiled CPU backend of the differentiable sum rasterizer (napari_sgi.core._raster_cpu).
//
// Plain C ABI on float32 buffers, loaded with ctypes (which releases the GIL); no PyTorch headers.
// The kernel body (raster_body.inc) is compiled three times, for AVX-512, AVX2+FMA and baseline x86-64,
// and the caller picks one at run time, so the shared library runs on any x86-64 CPU.
//
// Forward: Gaussians are binned to 16x16 tiles in index order; threads share out tiles, so no two
// threads write the same pixel and every pixel sums its Gaussians in the same order, whatever the
// number of threads. Backward: threads share out Gaussians; each one loops over its own pixel box, so
// gradients need neither atomics nor a reduction pass and are equally deterministic.
//
// Both skip what cannot contribute: only the pixels within a pixel of a Gaussian's ellipse
// sigma <= cut are evaluated (see GaussianTiles), the sigma test deciding for each as before, so
// the (Gaussian, pixel) pairs taken and the results are those of evaluating the whole box.

#include <Python.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <new>
#include <vector>

#include <omp.h>

namespace {

constexpr std::int64_t TILE = 16;
constexpr std::int64_t TILE_PIXELS = TILE * TILE;

// Pixel-centre offsets inside a tile, by position k = row * 16 + lane: lane + 0.5 and row + 0.5.
struct CentreTables {
    alignas(64) float lane[TILE_PIXELS];
    alignas(64) float row[TILE_PIXELS];
    CentreTables() {
        for (std::int64_t k = 0; k < TILE_PIXELS; ++k) {
            lane[k] = static_cast<float>(k % TILE) + 0.5f;
            row[k] = static_cast<float>(k / TILE) + 0.5f;
        }
    }
};
const CentreTables kCentres;
const float* const kLaneCentre = kCentres.lane;
const float* const kRowCentre = kCentres.row;

// Where a Gaussian can contribute. With u = x - mean_x and v = y - mean_y for a pixel centre
// (x, y), sigma <= cut is the ellipse E: A u^2 + 2 B u v + C v^2 <= K = 2 cut, of half extents
// rx = sqrt(K Sigma_xx) = sqrt(K C / det) and ry = sqrt(K Sigma_yy) = sqrt(K A / det),
// det = A C - B^2. Only the pixel centres within kMargin pixels of E in x and in y (E grown by a
// 2 x 2 pixel square) are evaluated; the sigma test still decides for each of them. The margin
// covers the rounding of the float sigma: a centre outside E grown by a disc of radius 1 has,
// exactly, sigma >= cut (1 + 1/r)^2 with r the long half axis of E, while float sigma is off by at
// most about 24 * 2^-24 * cond * sigma, cond = lambda_max / lambda_min of the conic. Skipping
// applies to a Gaussian only where cond * r <= kMaxConditionTimesReach, which keeps that error
// under a tenth of the margin; the others, and those with a non-finite mean, conic or colour
// (whose box may hold NaNs), get their whole box.
constexpr double kMargin = 1.0;
constexpr double kMaxConditionTimesReach = 1e5;
// Pixel centres x + 0.5 are exact floats below 2^22; larger images are never skipped.
constexpr std::int64_t kMaxSkipSide = std::int64_t{1} << 22;

struct RasterArgs {
    const float* means;         // [P, 2]
    const float* conics;        // [P, 3]
    const float* colors;        // [P, C]
    const std::int32_t* bounds; // [P, 4] x0, y0, x1, y1, exclusive ends
    std::int64_t count, channels, height, width;
    float sigma_cut, alpha_max;
    bool skip;          // evaluate only near each ellipse; false: every pixel of every box
    float* image;       // [C, H, W] forward output
    float* grad_means;  // [P, 2]
    float* grad_conics; // [P, 3]
    float* grad_colors; // [P, C]
};

std::int64_t tile_range_end(std::int64_t end) { return (end + TILE - 1) / TILE; }

struct Span {
    std::int64_t lo, hi; // pixels [lo, hi), empty when hi <= lo
};

// The pixels p of [first, end) whose centre p + 0.5 lies in [m + lo, m + hi] (0 <= first <= end).
Span centres_within(double m, double lo, double hi, std::int64_t first, std::int64_t end) {
    // Clamped first, so the conversions cannot overflow; truncation is floor for these >= 0 values.
    const double low = static_cast<double>(first), high = static_cast<double>(end);
    const double from = std::clamp(m + lo - 0.5, low, high);
    const double to = std::clamp(m + hi + 0.5, low, high);
    auto p0 = static_cast<std::int64_t>(from);
    p0 += static_cast<double>(p0) < from;          // ceil(m + lo - 0.5)
    const auto p1 = static_cast<std::int64_t>(to); // floor(m + hi - 0.5) + 1
    return {p0, std::max(p0, p1)};
}

// One of E's two views: t across s, where (s, t) is (u, v) (rows of a column strip) or (v, u).
// At a given s, t = (-q s +- sqrt(r k - det s^2)) / r, with r the coefficient of t^2; the upper
// branch is concave and highest (t = t_reach) at s = s_top, the lower one convex and lowest
// (t = -t_reach) at s = -s_top.
struct View {
    double q, det, rk, inv_r, s_reach, t_reach, s_top;

    // [t0, t1]: the t of E plus the margin over s in [s0, s1]; false when the strip misses it.
    bool across(double s0, double s1, double& t0, double& t1) const {
        s0 = std::max(s0 - kMargin, -s_reach);
        s1 = std::min(s1 + kMargin, s_reach);
        if (!(s0 <= s1)) return false;
        const double top = std::clamp(s_top, s0, s1), bottom = std::clamp(-s_top, s0, s1);
        t1 = top == s_top ? t_reach
                          : (std::sqrt(std::max(rk - det * top * top, 0.0)) - q * top) * inv_r;
        t0 = bottom == -s_top
                 ? -t_reach
                 : (-std::sqrt(std::max(rk - det * bottom * bottom, 0.0)) - q * bottom) * inv_r;
        t1 += kMargin;
        t0 -= kMargin;
        return true;
    }
};

// Gaussian g's ellipse E as rows across columns (v across u) and its half extent in x, if skipping
// applies to it (see above).
bool ellipse_of(const RasterArgs& a, std::int64_t g, View& rows, double& rx) {
    const double mx = a.means[2 * g], my = a.means[2 * g + 1];
    const double ca = a.conics[3 * g], cb = a.conics[3 * g + 1], cc = a.conics[3 * g + 2];
    bool finite = std::isfinite(mx) && std::isfinite(my) && std::isfinite(ca) &&
                  std::isfinite(cb) && std::isfinite(cc);
    for (std::int64_t c = 0; c < a.channels; ++c) {
        finite = finite && std::isfinite(a.colors[g * a.channels + c]);
    }
    if (!finite || !(ca > 0.0) || !(cc > 0.0) || a.width >= kMaxSkipSide ||
        a.height >= kMaxSkipSide)
        return false;
    const double det = ca * cc - cb * cb;
    if (!(det > 0.0)) return false;
    const double k = 2.0 * static_cast<double>(a.sigma_cut);
    const double mid = 0.5 * (ca + cc);
    const double lambda_max = mid + std::sqrt(std::max(mid * mid - det, 0.0));
    const double lambda_min = det / lambda_max;
    if (!(lambda_max / lambda_min * std::sqrt(k / lambda_min) <= kMaxConditionTimesReach)) {
        return false;
    }
    rx = std::sqrt(k * cc / det);
    const double ry = std::sqrt(k * ca / det);
    rows = {cb, det, cc * k, 1.0 / cc, rx, ry, -cb * ry / ca};
    return true;
}

// The tiles of Gaussian g's box (clipped to the image) that its ellipse plus the margin reaches,
// with the pixel rows to evaluate in each (all tiles and rows of the box when skipping is off or
// does not apply to g): rows of tiles top to bottom, each left to right,
// `while (tiles.next(tx, ty, rows))`. A loop rather than a callback, so that the backward's loops
// over a tile's rows stay vectorised. A tile is reached when the rows of E plus the margin over
// the tile's columns (its column strip, computed once per column of tiles) meet the tile's rows.
class GaussianTiles {
  public:
    // strips: room for one Span per column of tiles of the image.
    GaussianTiles(const RasterArgs& a, std::int64_t g, Span* strips) : strips_(strips) {
        const std::int32_t* box = a.bounds + 4 * g;
        col0_ = std::max<std::int64_t>(box[0], 0);
        row0_ = std::max<std::int64_t>(box[1], 0);
        col1_ = std::min<std::int64_t>(box[2], a.width);
        row1_ = std::min<std::int64_t>(box[3], a.height);
        View e;
        double rx;
        if (col1_ <= col0_ || row1_ <= row0_) {
            row1_ = row0_;
        } else if (a.skip && ellipse_of(a, g, e, rx)) {
            bounded_ = true;
            const double mx = a.means[2 * g], my = a.means[2 * g + 1];
            const Span rows =
                centres_within(my, -e.t_reach - kMargin, e.t_reach + kMargin, row0_, row1_);
            const Span cols = centres_within(mx, -rx - kMargin, rx + kMargin, col0_, col1_);
            row0_ = rows.lo;
            row1_ = cols.hi <= cols.lo ? rows.lo : rows.hi;
            col0_ = cols.lo;
            col1_ = cols.hi;
            double v0, v1;
            for (std::int64_t tx = col0_ / TILE; tx < tile_range_end(col1_); ++tx) {
                const double u0 = static_cast<double>(std::max(col0_, tx * TILE)) + 0.5 - mx;
                const double u1 =
                    static_cast<double>(std::min(col1_, tx * TILE + TILE)) - 0.5 - mx;
                strips_[tx - col0_ / TILE] = e.across(u0, u1, v0, v1)
                                                 ? centres_within(my, v0, v1, row0_, row1_)
                                                 : Span{row0_, row0_};
            }
        }
        ty_ = row0_ / TILE;
        tx_ = col0_ / TILE;
    }

    bool next(std::int64_t& tx, std::int64_t& ty, Span& rows) {
        const std::int64_t tx_begin = col0_ / TILE, tx_end = tile_range_end(col1_);
        for (; ty_ < tile_range_end(row1_); ++ty_, tx_ = tx_begin) {
            const std::int64_t lo = std::max(row0_, ty_ * TILE);
            const std::int64_t hi = std::min(row1_, ty_ * TILE + TILE);
            while (tx_ < tx_end) {
                const std::int64_t t = tx_++;
                rows = {lo, hi};
                if (bounded_) {
                    rows.lo = std::max(lo, strips_[t - tx_begin].lo);
                    rows.hi = std::min(hi, strips_[t - tx_begin].hi);
                }
                if (rows.lo < rows.hi) {
                    tx = t;
                    ty = ty_;
                    return true;
                }
            }
        }
        return false;
    }

  private:
    Span* const strips_;
    std::int64_t row0_, row1_, col0_, col1_, ty_, tx_;
    bool bounded_ = false;
};

// One Gaussian of a tile's list in the forward: its index and the tile rows [r0, r1) to evaluate.
struct TileEntry {
    std::int32_t g;
    std::uint8_t r0, r1;
};

}  // namespace

// One namespace per instruction set, each compiled under its own `#pragma GCC target`. Other compilers
// (clang ignores the pragma) get the baseline version only.
#define SGI_PRAGMA(text) _Pragma(#text)
#define SGI_TARGET_PUSH(spec) SGI_PRAGMA(GCC push_options) SGI_PRAGMA(GCC target(spec))
#define SGI_TARGET_POP SGI_PRAGMA(GCC pop_options)

#define SGI_FMA(a, b, c) ((a) * (b) + (c))
namespace isa_baseline {
#include "raster_body.inc"
}  // namespace isa_baseline
#undef SGI_FMA

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__) && !defined(__clang__)
#define SGI_X86_VARIANTS 1
#define SGI_FMA(a, b, c) __builtin_fmaf((a), (b), (c))
SGI_TARGET_PUSH("avx2,fma")
namespace isa_avx2 {
#include "raster_body.inc"
}  // namespace isa_avx2
SGI_TARGET_POP

SGI_TARGET_PUSH("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,prefer-vector-width=512")
namespace isa_avx512 {
#include "raster_body.inc"
}  // namespace isa_avx512
SGI_TARGET_POP
#undef SGI_FMA
#endif

namespace {

enum Isa : int { ISA_BASELINE = 0, ISA_AVX2 = 1, ISA_AVX512 = 2 };

using ForwardTile = void (*)(const RasterArgs&, const TileEntry*, std::int64_t, std::int64_t,
                             float*);
using BackwardGaussian = void (*)(const RasterArgs&, const float*, std::int64_t, float*, Span*);

bool isa_supported(int isa) {
    switch (isa) {
    case ISA_BASELINE:
        return true;
#ifdef SGI_X86_VARIANTS
    case ISA_AVX2:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case ISA_AVX512:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    default:
        return false;
    }
}

ForwardTile forward_for(int isa) {
#ifdef SGI_X86_VARIANTS
    if (isa == ISA_AVX512) return isa_avx512::forward_tile_any;
    if (isa == ISA_AVX2) return isa_avx2::forward_tile_any;
#endif
    return isa_baseline::forward_tile_any;
}

BackwardGaussian backward_for(int isa) {
#ifdef SGI_X86_VARIANTS
    if (isa == ISA_AVX512) return isa_avx512::backward_gaussian;
    if (isa == ISA_AVX2) return isa_avx2::backward_gaussian;
#endif
    return isa_baseline::backward_gaussian;
}

// Per tile, the Gaussians that can contribute to it, in increasing index order, with the rows to
// evaluate (CSR layout). Threads write each Gaussian's tiles into its own slot of a staging area
// (room for its whole box); a counting sort by tile then keeps the index order.
void bin_gaussians(const RasterArgs& a, int threads, std::vector<std::int64_t>& offsets,
                   std::vector<TileEntry>& list) {
    const std::int64_t tiles_x = tile_range_end(a.width), tiles_y = tile_range_end(a.height);
    struct Staged {
        std::int32_t tile;
        std::uint8_t r0, r1;
    };
    std::vector<std::int64_t> slot(a.count + 1, 0), found(a.count, 0);
    for (std::int64_t g = 0; g < a.count; ++g) {
        const std::int32_t* box = a.bounds + 4 * g;
        const std::int64_t x0 = std::max<std::int64_t>(box[0], 0);
        const std::int64_t y0 = std::max<std::int64_t>(box[1], 0);
        const std::int64_t x1 = std::min<std::int64_t>(box[2], a.width);
        const std::int64_t y1 = std::min<std::int64_t>(box[3], a.height);
        const bool empty = x1 <= x0 || y1 <= y0;
        const std::int64_t room =
            empty ? 0 : (tile_range_end(x1) - x0 / TILE) * (tile_range_end(y1) - y0 / TILE);
        slot[g + 1] = slot[g] + room;
    }
    std::vector<Staged> staged(slot[a.count]);
    bool failed = false;
#pragma omp parallel num_threads(std::max(threads, 1))
    {
        std::vector<Span> strips;
        try {
            strips.resize(tiles_x);
        } catch (const std::bad_alloc&) {
#pragma omp atomic write
            failed = true;
        }
#pragma omp for schedule(dynamic, 256)
        for (std::int64_t g = 0; g < a.count; ++g) {
            if (strips.empty()) continue;
            Staged* out = staged.data() + slot[g];
            std::int64_t tx, ty;
            Span rows;
            for (GaussianTiles tiles(a, g, strips.data()); tiles.next(tx, ty, rows);) {
                *out++ = {static_cast<std::int32_t>(ty * tiles_x + tx),
                          static_cast<std::uint8_t>(rows.lo - ty * TILE),
                          static_cast<std::uint8_t>(rows.hi - ty * TILE)};
            }
            found[g] = out - (staged.data() + slot[g]);
        }
    }
    if (failed) throw std::bad_alloc();
    offsets.assign(tiles_x * tiles_y + 1, 0);
    for (std::int64_t g = 0; g < a.count; ++g) {
        for (std::int64_t j = slot[g]; j < slot[g] + found[g]; ++j) ++offsets[staged[j].tile + 1];
    }
    for (std::size_t t = 1; t < offsets.size(); ++t) offsets[t] += offsets[t - 1];
    list.resize(offsets.back());
    std::vector<std::int64_t> fill(offsets.begin(), offsets.end() - 1);
    for (std::int64_t g = 0; g < a.count; ++g) {
        for (std::int64_t j = slot[g]; j < slot[g] + found[g]; ++j) {
            const Staged& entry = staged[j];
            list[fill[entry.tile]++] = {static_cast<std::int32_t>(g), entry.r0, entry.r1};
        }
    }
}

// Gaussians sorted by the tile of their box's corner (stable counting sort). Visiting them in this
// order keeps the dL/dimage tiles they read in cache; each Gaussian's gradient does not depend on it.
std::vector<std::int32_t> spatial_order(const RasterArgs& a) {
    const std::int64_t tiles_x = tile_range_end(a.width), tiles_y = tile_range_end(a.height);
    auto tile_of = [&](std::int64_t g) {
        const std::int32_t* box = a.bounds + 4 * g;
        const std::int64_t tx = std::clamp<std::int64_t>(box[0], 0, a.width - 1) / TILE;
        const std::int64_t ty = std::clamp<std::int64_t>(box[1], 0, a.height - 1) / TILE;
        return ty * tiles_x + tx;
    };
    std::vector<std::int64_t> start(tiles_x * tiles_y + 1, 0);
    for (std::int64_t g = 0; g < a.count; ++g) ++start[tile_of(g) + 1];
    for (std::size_t t = 1; t < start.size(); ++t) start[t] += start[t - 1];
    std::vector<std::int32_t> order(a.count);
    for (std::int64_t g = 0; g < a.count; ++g) {
        order[start[tile_of(g)]++] = static_cast<std::int32_t>(g);
    }
    return order;
}

RasterArgs make_args(const float* means, const float* conics, const float* colors,
                     const std::int32_t* bounds, std::int64_t count, std::int64_t channels,
                     std::int64_t height, std::int64_t width, float sigma_cut, float alpha_max,
                     int skip) {
    RasterArgs a{};
    a.skip = skip != 0;
    a.means = means;
    a.conics = conics;
    a.colors = colors;
    a.bounds = bounds;
    a.count = count;
    a.channels = channels;
    a.height = height;
    a.width = width;
    a.sigma_cut = sigma_cut;
    a.alpha_max = alpha_max;
    return a;
}

}  // namespace

extern "C" {

// Instruction sets: 0 baseline, 1 AVX2+FMA, 2 AVX-512. skip: 1 evaluates only the pixels near each
// Gaussian's ellipse (same results), 0 every pixel of its box. Entry points return 0 on success,
// 1 for an instruction set this CPU lacks, 2 for bad sizes, 3 when out of memory.
#define SGI_EXPORT __attribute__((visibility("default")))

SGI_EXPORT int sgi_raster_isa_supported(int isa) { return isa_supported(isa) ? 1 : 0; }

SGI_EXPORT int sgi_raster_forward(int isa, int threads, int skip, const float* means,
                                  const float* conics, const float* colors,
                                  const std::int32_t* bounds, std::int64_t count,
                                  std::int64_t channels, std::int64_t height, std::int64_t width,
                                  float sigma_cut, float alpha_max, float* image) {
    if (!isa_supported(isa)) return 1;
    if (count < 0 || count > INT32_MAX || channels < 1 || height < 1 || width < 1) return 2;
    try {
        RasterArgs a = make_args(means, conics, colors, bounds, count, channels, height, width,
                                 sigma_cut, alpha_max, skip);
        a.image = image;
        std::vector<std::int64_t> offsets;
        std::vector<TileEntry> list;
        bin_gaussians(a, threads, offsets, list);
        const std::int64_t tiles = static_cast<std::int64_t>(offsets.size()) - 1;
        const ForwardTile forward_tile = forward_for(isa);
        bool failed = false;
#pragma omp parallel num_threads(std::max(threads, 1))
        {
            std::vector<float> acc;
            try {
                acc.resize(channels * TILE_PIXELS);
            } catch (const std::bad_alloc&) {
#pragma omp atomic write
                failed = true;
            }
#pragma omp for schedule(dynamic, 4)
            for (std::int64_t t = 0; t < tiles; ++t) {
                if (acc.empty()) continue;
                forward_tile(a, list.data() + offsets[t], offsets[t + 1] - offsets[t], t, acc.data());
            }
        }
        return failed ? 3 : 0;
    } catch (const std::bad_alloc&) {
        return 3;
    }
}

SGI_EXPORT int sgi_raster_backward(int isa, int threads, int skip, const float* means,
                                   const float* conics, const float* colors,
                                   const std::int32_t* bounds, std::int64_t count,
                                   std::int64_t channels, std::int64_t height, std::int64_t width,
                                   float sigma_cut, float alpha_max, const float* grad_image,
                                   float* grad_means, float* grad_conics, float* grad_colors) {
    if (!isa_supported(isa)) return 1;
    if (count < 0 || count > INT32_MAX || channels < 1 || height < 1 || width < 1) return 2;
    try {
        RasterArgs a = make_args(means, conics, colors, bounds, count, channels, height, width,
                                 sigma_cut, alpha_max, skip);
        a.grad_means = grad_means;
        a.grad_conics = grad_conics;
        a.grad_colors = grad_colors;
        const std::int64_t tiles_x = tile_range_end(width), tiles_y = tile_range_end(height);
        // dL/dimage rearranged tile by tile [tiles, C, 256], zero outside the image, so that a
        // Gaussian reads whole 16-pixel rows of one tile without bounds checks.
        std::vector<float> grad_tiles(tiles_x * tiles_y * channels * TILE_PIXELS);
        const std::vector<std::int32_t> order = spatial_order(a);
        const BackwardGaussian backward_gaussian = backward_for(isa);
        bool failed = false;
#pragma omp parallel num_threads(std::max(threads, 1))
        {
#pragma omp for schedule(static)
            for (std::int64_t t = 0; t < tiles_x * tiles_y; ++t) {
                const std::int64_t tx = t % tiles_x, ty = t / tiles_x;
                const std::int64_t rows = std::min(height - ty * TILE, TILE);
                const std::int64_t cols = std::min(width - tx * TILE, TILE);
                for (std::int64_t c = 0; c < channels; ++c) {
                    float* dst = grad_tiles.data() + (t * channels + c) * TILE_PIXELS;
                    for (std::int64_t r = 0; r < rows; ++r) {
                        const float* src = grad_image + (c * height + ty * TILE + r) * width;
                        std::copy(src + tx * TILE, src + tx * TILE + cols, dst + r * TILE);
                    }
                }
            }
            std::vector<float> lanes;
            std::vector<Span> strips;
            try {
                lanes.resize(channels * TILE);
                strips.resize(tiles_x);
            } catch (const std::bad_alloc&) {
#pragma omp atomic write
                failed = true;
            }
#pragma omp for schedule(dynamic, 64)
            for (std::int64_t j = 0; j < count; ++j) {
                if (strips.empty()) continue;
                backward_gaussian(a, grad_tiles.data(), order[j], lanes.data(), strips.data());
            }
        }
        return failed ? 3 : 0;
    } catch (const std::bad_alloc&) {
        return 3;
    }
}

// The (Gaussian, pixel) pairs the forward and the backward evaluate (whole 16-pixel tile rows),
// into *pairs: with skip = 0, those of the boxes (clipped to the image, widened to whole tiles).
SGI_EXPORT int sgi_raster_evaluated_pairs(int threads, int skip, const float* means,
                                          const float* conics, const float* colors,
                                          const std::int32_t* bounds, std::int64_t count,
                                          std::int64_t channels, std::int64_t height,
                                          std::int64_t width, float sigma_cut,
                                          std::int64_t* pairs) {
    if (count < 0 || count > INT32_MAX || channels < 1 || height < 1 || width < 1) return 2;
    try {
        RasterArgs a = make_args(means, conics, colors, bounds, count, channels, height, width,
                                 sigma_cut, 0.0f, skip);
        std::int64_t total = 0;
        bool failed = false;
#pragma omp parallel num_threads(std::max(threads, 1)) reduction(+ : total)
        {
            std::vector<Span> strips;
            try {
                strips.resize(tile_range_end(width));
            } catch (const std::bad_alloc&) {
#pragma omp atomic write
                failed = true;
            }
#pragma omp for schedule(dynamic, 256)
            for (std::int64_t g = 0; g < count; ++g) {
                if (strips.empty()) continue;
                std::int64_t tx, ty;
                Span rows;
                for (GaussianTiles tiles(a, g, strips.data()); tiles.next(tx, ty, rows);) {
                    total += (rows.hi - rows.lo) * TILE;
                }
            }
        }
        *pairs = total;
        return failed ? 3 : 0;
    } catch (const std::bad_alloc&) {
        return 3;
    }
}

}  // extern "C"

// A module object, so that importing the library as a Python extension (as tools that walk the package
// do) succeeds; the functions themselves are reached through ctypes.
static struct PyModuleDef raster_kernel_module = {
    PyModuleDef_HEAD_INIT, "_raster_kernel",
    "Compiled CPU sum rasterizer (C ABI, used through ctypes).", -1,
    nullptr, nullptr, nullptr, nullptr, nullptr};

PyMODINIT_FUNC PyInit__raster_kernel(void) { return PyModule_Create(&raster_kernel_module); }
