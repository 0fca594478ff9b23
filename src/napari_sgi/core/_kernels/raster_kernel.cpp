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

#include <Python.h>

#include <algorithm>
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

struct RasterArgs {
    const float* means;         // [P, 2]
    const float* conics;        // [P, 3]
    const float* colors;        // [P, C]
    const std::int32_t* bounds; // [P, 4] x0, y0, x1, y1, exclusive ends
    std::int64_t count, channels, height, width;
    float sigma_cut, alpha_max;
    float* image;       // [C, H, W] forward output
    float* grad_means;  // [P, 2]
    float* grad_conics; // [P, 3]
    float* grad_colors; // [P, C]
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

using ForwardTile = void (*)(const RasterArgs&, const std::int32_t*, std::int64_t, std::int64_t,
                             float*);
using BackwardGaussian = void (*)(const RasterArgs&, const float*, std::int64_t, float*);

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

std::int64_t tile_range_end(std::int64_t end) { return (end + TILE - 1) / TILE; }

// Per tile, the indices of the Gaussians whose box reaches it, in increasing order (CSR layout).
void bin_gaussians(const RasterArgs& a, std::vector<std::int64_t>& offsets,
                   std::vector<std::int32_t>& list) {
    const std::int64_t tiles_x = tile_range_end(a.width), tiles_y = tile_range_end(a.height);
    offsets.assign(tiles_x * tiles_y + 1, 0);
    auto for_each_tile = [&](std::int64_t g, auto&& visit) {
        const std::int32_t* box = a.bounds + 4 * g;
        const std::int64_t x0 = std::max<std::int64_t>(box[0], 0);
        const std::int64_t y0 = std::max<std::int64_t>(box[1], 0);
        const std::int64_t x1 = std::min<std::int64_t>(box[2], a.width);
        const std::int64_t y1 = std::min<std::int64_t>(box[3], a.height);
        if (x1 <= x0 || y1 <= y0) return;
        for (std::int64_t ty = y0 / TILE; ty < tile_range_end(y1); ++ty)
            for (std::int64_t tx = x0 / TILE; tx < tile_range_end(x1); ++tx) visit(ty * tiles_x + tx);
    };
    for (std::int64_t g = 0; g < a.count; ++g) {
        for_each_tile(g, [&](std::int64_t t) { ++offsets[t + 1]; });
    }
    for (std::size_t t = 1; t < offsets.size(); ++t) offsets[t] += offsets[t - 1];
    list.resize(offsets.back());
    std::vector<std::int64_t> fill(offsets.begin(), offsets.end() - 1);
    for (std::int64_t g = 0; g < a.count; ++g) {
        for_each_tile(g, [&](std::int64_t t) { list[fill[t]++] = static_cast<std::int32_t>(g); });
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
                     std::int64_t height, std::int64_t width, float sigma_cut, float alpha_max) {
    RasterArgs a{};
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

// Instruction sets: 0 baseline, 1 AVX2+FMA, 2 AVX-512. Entry points return 0 on success,
// 1 for an instruction set this CPU lacks, 2 for bad sizes, 3 when out of memory.
#define SGI_EXPORT __attribute__((visibility("default")))

SGI_EXPORT int sgi_raster_isa_supported(int isa) { return isa_supported(isa) ? 1 : 0; }

SGI_EXPORT int sgi_raster_forward(int isa, int threads, const float* means, const float* conics,
                                  const float* colors, const std::int32_t* bounds, std::int64_t count,
                                  std::int64_t channels, std::int64_t height, std::int64_t width,
                                  float sigma_cut, float alpha_max, float* image) {
    if (!isa_supported(isa)) return 1;
    if (count < 0 || count > INT32_MAX || channels < 1 || height < 1 || width < 1) return 2;
    try {
        RasterArgs a = make_args(means, conics, colors, bounds, count, channels, height, width,
                                 sigma_cut, alpha_max);
        a.image = image;
        std::vector<std::int64_t> offsets;
        std::vector<std::int32_t> list;
        bin_gaussians(a, offsets, list);
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

SGI_EXPORT int sgi_raster_backward(int isa, int threads, const float* means, const float* conics,
                                   const float* colors, const std::int32_t* bounds, std::int64_t count,
                                   std::int64_t channels, std::int64_t height, std::int64_t width,
                                   float sigma_cut, float alpha_max, const float* grad_image,
                                   float* grad_means, float* grad_conics, float* grad_colors) {
    if (!isa_supported(isa)) return 1;
    if (count < 0 || count > INT32_MAX || channels < 1 || height < 1 || width < 1) return 2;
    try {
        RasterArgs a = make_args(means, conics, colors, bounds, count, channels, height, width,
                                 sigma_cut, alpha_max);
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
            try {
                lanes.resize(channels * TILE);
            } catch (const std::bad_alloc&) {
#pragma omp atomic write
                failed = true;
            }
#pragma omp for schedule(dynamic, 64)
            for (std::int64_t j = 0; j < count; ++j) {
                if (lanes.empty()) continue;
                backward_gaussian(a, grad_tiles.data(), order[j], lanes.data());
            }
        }
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
