// Seeds to the Gaussians of one pyramid level, and back (napari_sgi.core._decode_cpu).
//
// One call does what a training step otherwise spends some sixty small PyTorch operations on
// (SGIModel.level_gaussians, then raster_rules.gaussian_pixel_bounds), each paying its dispatch
// and autograd bookkeeping: positions from the offsets and scalings, conics from the covariance
// MLP's output, both scaled to the level, and each Gaussian's tile box. The backward gives the
// gradients of the offsets, scalings and covariance output from those of the level's means and
// conics. The PyTorch code stays the reference (tests compare both); the decoder of a file uses it.
//
// Every Gaussian is computed on its own, and a seed's scaling gradient sums its K Gaussians in
// order, so results do not depend on the number of threads. Boxes follow gaussian_pixel_bounds
// operation for operation in double precision (with -ffp-contract=off, no fused multiply-adds), so
// that, given the same means and conics, they are the same boxes.

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace {

constexpr double TILE = 16.0;

struct Level {
    float scale_x, scale_y;        // level pixels per full-resolution pixel, per axis
    float conic_a, conic_b, conic_c;  // 1 / fx^2, 1 / (fx fy), 1 / fy^2, as float32
    std::int64_t height, width;
};

float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

// gaussian_pixel_bounds of one Gaussian: the pixel box of the tiles its 3-sigma radius touches.
void pixel_box(const float* mean, const float* conic, const Level& level, std::int32_t* box) {
    const double x = mean[0], y = mean[1];
    const double a = conic[0], b = conic[1], c = conic[2];
    const double det_conic = a * c - b * b;
    const bool valid = det_conic > 0 && a > 0 && std::isfinite(det_conic) && std::isfinite(x) &&
                       std::isfinite(y);
    const double safe_det = valid ? det_conic : 1.0;
    const double cov_xx = c / safe_det, cov_yy = a / safe_det;
    const double det_cov = 1.0 / safe_det;
    const double mid = 0.5 * (cov_xx + cov_yy);
    const double lambda_max = mid + std::sqrt(std::max(mid * mid - det_cov, 0.1));
    const double radius = std::ceil(3.0 * std::sqrt(lambda_max));
    const double tiles_x = static_cast<double>((level.width + 15) / 16);
    const double tiles_y = static_cast<double>((level.height + 15) / 16);
    auto clip = [](double v, double hi) { return std::min(std::max(v, 0.0), hi); };
    const double tx0 = clip(std::floor((x - radius) / TILE), tiles_x);
    const double ty0 = clip(std::floor((y - radius) / TILE), tiles_y);
    const double tx1 = clip(std::floor((x + radius) / TILE + 1), tiles_x);
    const double ty1 = clip(std::floor((y + radius) / TILE + 1), tiles_y);
    const double x0 = tx0 * TILE, y0 = ty0 * TILE;
    const double x1 = std::min(tx1 * TILE, static_cast<double>(level.width));
    const double y1 = std::min(ty1 * TILE, static_cast<double>(level.height));
    // A NaN mean or radius gives NaN tiles: those boxes are empty too, as `valid` makes them.
    const bool empty = !valid || !(x1 > x0) || !(y1 > y0);
    box[0] = empty ? 0 : static_cast<std::int32_t>(x0);
    box[1] = empty ? 0 : static_cast<std::int32_t>(y0);
    box[2] = empty ? 0 : static_cast<std::int32_t>(x1);
    box[3] = empty ? 0 : static_cast<std::int32_t>(y1);
}

// The covariance of Gaussian (s1, s2, angle): sigmoid-squashed sizes and the conic's parts.
struct Shape {
    float sig1, sig2, s1, s2, cos, sin, inv1, inv2;
};

Shape shape_of(const float* scaling, const float* cov) {
    Shape s;
    s.sig1 = sigmoid(cov[0]);
    s.sig2 = sigmoid(cov[1]);
    s.s1 = scaling[2] * s.sig1;
    s.s2 = scaling[3] * s.sig2;
    s.cos = std::cos(cov[2]);
    s.sin = std::sin(cov[2]);
    s.inv1 = 1.0f / (s.s1 * s.s1);
    s.inv2 = 1.0f / (s.s2 * s.s2);
    return s;
}

}  // namespace

extern "C" {

#define SGI_EXPORT __attribute__((visibility("default")))

// anchors [N, 2], offsets [N, K, 2], log_scaling [N, 4], cov [N, K, 3] (the covariance MLP's
// output) -> means [N*K, 2] and conics [N*K, 3] in the level's pixels, boxes [N*K, 4].
// Returns 0, or 2 for bad sizes.
SGI_EXPORT int sgi_decode_forward(int threads, std::int64_t seeds, std::int64_t per_seed,
                                  const float* anchors, const float* offsets,
                                  const float* log_scaling, const float* cov, float scale_x,
                                  float scale_y, float conic_a, float conic_b, float conic_c,
                                  std::int64_t height, std::int64_t width, float* means,
                                  float* conics, std::int32_t* boxes) {
    if (seeds < 0 || per_seed < 1 || height < 1 || width < 1) return 2;
    const Level level{scale_x, scale_y, conic_a, conic_b, conic_c, height, width};
#pragma omp parallel for num_threads(std::max(threads, 1)) schedule(static)
    for (std::int64_t n = 0; n < seeds; ++n) {
        float scaling[4];
        for (int i = 0; i < 4; ++i) scaling[i] = std::exp(log_scaling[4 * n + i]);
        for (std::int64_t k = 0; k < per_seed; ++k) {
            const std::int64_t g = n * per_seed + k;
            float* mean = means + 2 * g;
            float* conic = conics + 3 * g;
            mean[0] = (anchors[2 * n] + offsets[2 * g] * scaling[0]) * level.scale_x;
            mean[1] = (anchors[2 * n + 1] + offsets[2 * g + 1] * scaling[1]) * level.scale_y;
            const Shape s = shape_of(scaling, cov + 3 * g);
            conic[0] = (s.cos * s.cos * s.inv1 + s.sin * s.sin * s.inv2) * level.conic_a;
            conic[1] = (s.cos * s.sin * (s.inv1 - s.inv2)) * level.conic_b;
            conic[2] = (s.sin * s.sin * s.inv1 + s.cos * s.cos * s.inv2) * level.conic_c;
            pixel_box(mean, conic, level, boxes + 4 * g);
        }
    }
    return 0;
}

// The gradients of the offsets [N, K, 2], log-scalings [N, 4] and covariance output [N, K, 3]
// from those of the level's means [N*K, 2] and conics [N*K, 3]. Returns 0, or 2 for bad sizes.
SGI_EXPORT int sgi_decode_backward(int threads, std::int64_t seeds, std::int64_t per_seed,
                                   const float* offsets, const float* log_scaling,
                                   const float* cov, float scale_x, float scale_y, float conic_a,
                                   float conic_b, float conic_c, const float* grad_means,
                                   const float* grad_conics, float* grad_offsets,
                                   float* grad_log_scaling, float* grad_cov) {
    if (seeds < 0 || per_seed < 1) return 2;
#pragma omp parallel for num_threads(std::max(threads, 1)) schedule(static)
    for (std::int64_t n = 0; n < seeds; ++n) {
        float scaling[4];
        for (int i = 0; i < 4; ++i) scaling[i] = std::exp(log_scaling[4 * n + i]);
        float grad_scaling[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        for (std::int64_t k = 0; k < per_seed; ++k) {
            const std::int64_t g = n * per_seed + k;
            const float gx = grad_means[2 * g] * scale_x, gy = grad_means[2 * g + 1] * scale_y;
            grad_offsets[2 * g] = gx * scaling[0];
            grad_offsets[2 * g + 1] = gy * scaling[1];
            grad_scaling[0] += gx * offsets[2 * g];
            grad_scaling[1] += gy * offsets[2 * g + 1];
            const Shape s = shape_of(scaling, cov + 3 * g);
            const float ga = grad_conics[3 * g] * conic_a;
            const float gb = grad_conics[3 * g + 1] * conic_b;
            const float gc = grad_conics[3 * g + 2] * conic_c;
            const float cc = s.cos * s.cos, ss = s.sin * s.sin, cs = s.cos * s.sin;
            const float grad_inv1 = ga * cc + gb * cs + gc * ss;
            const float grad_inv2 = ga * ss - gb * cs + gc * cc;
            const float diff = s.inv1 - s.inv2;
            const float grad_angle = (gc - ga) * 2.0f * cs * diff + gb * (cc - ss) * diff;
            // inv = s^-2: d inv / d s = -2 s^-3 = -2 inv / s.
            const float grad_s1 = grad_inv1 * (-2.0f * s.inv1 / s.s1);
            const float grad_s2 = grad_inv2 * (-2.0f * s.inv2 / s.s2);
            float* out = grad_cov + 3 * g;
            out[0] = grad_s1 * scaling[2] * s.sig1 * (1.0f - s.sig1);
            out[1] = grad_s2 * scaling[3] * s.sig2 * (1.0f - s.sig2);
            out[2] = grad_angle;
            grad_scaling[2] += grad_s1 * s.sig1;
            grad_scaling[3] += grad_s2 * s.sig2;
        }
        for (int i = 0; i < 4; ++i) grad_log_scaling[4 * n + i] = grad_scaling[i] * scaling[i];
    }
    return 0;
}

}  // extern "C"
