// The `ort` scheme's region kernels on float tensors that carry uint8 grid values: the
// scalar reference, and the public entry points. Every path (region_avx512.c) does the
// same operations in the same order, so the float bits agree:
//   requantize: v = x / s (a division, as QuantizeLinear), clamp to [-zp, 255 - zp]
//               (maxps/minps semantics: NaN -> -zp), round half to even, * s, + 0
//               (-0 -> +0, as DequantizeLinear gives);
//   binary:     the same applied to a + b or a * b (one float op, as the FP32 op);
//   lookup:     k = nearbyint(x / s) + zp clamped to [0, 255] (NaN -> 0), y = table[k]
//               (a unary op on a requantized input sees at most 256 values).
#include "mpq_internal.h"
#include "pool_internal.h" // mpq_binary_u8_reference: the one scalar Add/Mul on codes
#include <math.h>

static inline float requant_scalar(float r, float s, float lo, float hi) {
    float v = r / s;
    v = (v > lo) ? v : lo;
    v = (v < hi) ? v : hi;
    v = nearbyintf(v);
    v = v * s;
    v = v + 0.0f;
    return v;
}

void mpq_requantize_f32_reference(const float *x, size_t count, float scale, uint8_t zp, float *y) {
    const float lo = 0.0f - (float)zp, hi = 255.0f - (float)zp;
    for (size_t i = 0; i < count; i++) y[i] = requant_scalar(x[i], scale, lo, hi);
}

void mpq_requantize_binary_f32_reference(int multiply, const float *a, const float *b, size_t count,
                                         float scale, uint8_t zp, float *y) {
    const float lo = 0.0f - (float)zp, hi = 255.0f - (float)zp;
    for (size_t i = 0; i < count; i++) {
        float r = multiply ? a[i] * b[i] : a[i] + b[i];
        y[i] = requant_scalar(r, scale, lo, hi);
    }
}

void mpq_lookup_u8grid_f32_reference(const float *x, size_t count, float scale, uint8_t zp,
                                     const float *table, float *y) {
    const float z = (float)zp;
    for (size_t i = 0; i < count; i++) {
        float k = nearbyintf(x[i] / scale);
        k = k + z;
        k = (k > 0.0f) ? k : 0.0f;
        k = (k < 255.0f) ? k : 255.0f;
        y[i] = table[(int)k];
    }
}

void mpq_requantize_f32(mpq_kernel_path path, const float *x, size_t count, float scale, uint8_t zp, float *y) {
    path = mpq_resolve_kernel_path(path);
    if (path == MPQ_PATH_VNNI) mpq_requantize_f32_avx512(x, count, scale, zp, y);
    else if (path == MPQ_PATH_AVX2) mpq_requantize_f32_avx2(x, count, scale, zp, y);
    else mpq_requantize_f32_reference(x, count, scale, zp, y);
}

void mpq_requantize_binary_f32(mpq_kernel_path path, int multiply, const float *a, const float *b, size_t count,
                               float scale, uint8_t zp, float *y) {
    path = mpq_resolve_kernel_path(path);
    if (path == MPQ_PATH_VNNI) mpq_requantize_binary_f32_avx512(multiply, a, b, count, scale, zp, y);
    else if (path == MPQ_PATH_AVX2) mpq_requantize_binary_f32_avx2(multiply, a, b, count, scale, zp, y);
    else mpq_requantize_binary_f32_reference(multiply, a, b, count, scale, zp, y);
}

void mpq_lookup_u8grid_f32(mpq_kernel_path path, const float *x, size_t count, float scale, uint8_t zp,
                           const float *table, float *y) {
    path = mpq_resolve_kernel_path(path);
    if (path == MPQ_PATH_VNNI) mpq_lookup_u8grid_f32_avx512(x, count, scale, zp, table, y);
    else if (path == MPQ_PATH_AVX2) mpq_lookup_u8grid_f32_avx2(x, count, scale, zp, table, y);
    else mpq_lookup_u8grid_f32_reference(x, count, scale, zp, table, y);
}

// MARK: - uint8 chains (docs/int8-chains.md): the same arithmetic on uint8 codes.

void mpq_dequantize_u8_reference(const uint8_t *x, size_t count, float scale, uint8_t zp, float *y) {
    float table[256];
    mpq_grid_table(scale, zp, table);
    for (size_t i = 0; i < count; i++) y[i] = table[x[i]];
}

void mpq_requantize_binary_u8_reference(int multiply, const uint8_t *a, float scale_a, uint8_t zp_a, const uint8_t *b,
                                        float scale_b, uint8_t zp_b, size_t count, float scale, uint8_t zp, uint8_t *y) {
    mpq_binary_u8_reference(multiply, 0, a, scale_a, zp_a, b, scale_b, zp_b, count, scale, zp, y);
}

void mpq_lookup_u8(const uint8_t *x, size_t count, const uint8_t *table, uint8_t *y) {
    for (size_t i = 0; i < count; i++) y[i] = table[x[i]];
}

void mpq_dequantize_u8(mpq_kernel_path path, const uint8_t *x, size_t count, float scale, uint8_t zp, float *y) {
    path = mpq_resolve_kernel_path(path);
    if (path == MPQ_PATH_VNNI) mpq_dequantize_u8_avx512(x, count, scale, zp, y);
    else if (path == MPQ_PATH_AVX2) mpq_dequantize_u8_avx2(x, count, scale, zp, y);
    else mpq_dequantize_u8_reference(x, count, scale, zp, y);
}

void mpq_requantize_binary_u8(mpq_kernel_path path, int multiply, const uint8_t *a, float scale_a, uint8_t zp_a,
                              const uint8_t *b, float scale_b, uint8_t zp_b, size_t count, float scale, uint8_t zp,
                              uint8_t *y) {
    path = mpq_resolve_kernel_path(path);
    if (path == MPQ_PATH_VNNI)
        mpq_requantize_binary_u8_avx512(multiply, a, scale_a, zp_a, b, scale_b, zp_b, count, scale, zp, y);
    else if (path == MPQ_PATH_AVX2)
        mpq_requantize_binary_u8_avx2(multiply, a, scale_a, zp_a, b, scale_b, zp_b, count, scale, zp, y);
    else mpq_requantize_binary_u8_reference(multiply, a, scale_a, zp_a, b, scale_b, zp_b, count, scale, zp, y);
}

// Split over the kernel pool in 64-code units, contiguous per thread: each code is computed
// alone, so the bytes are those of one call. MobileNetV2's ten INT8 residual Adds ran on one
// core at batch 1 (16% of the run's single-threaded time in perf).
typedef struct {
    mpq_kernel_path path;
    int multiply;
    const uint8_t *a, *b;
    float scale_a, scale_b, scale;
    uint8_t zp_a, zp_b, zp;
    size_t count, unit;
    uint8_t *y;
} requantize_split;

static void requantize_unit(void *arg, int u, int t) {
    (void)t;
    const requantize_split *r = arg;
    const size_t i0 = (size_t)u * r->unit, n = r->count - i0 < r->unit ? r->count - i0 : r->unit;
    mpq_requantize_binary_u8(r->path, r->multiply, r->a + i0, r->scale_a, r->zp_a, r->b + i0, r->scale_b, r->zp_b, n, r->scale,
                             r->zp, r->y + i0);
}

void mpq_requantize_binary_u8_threads(mpq_kernel_path path, int multiply, const uint8_t *a, float scale_a, uint8_t zp_a,
                                      const uint8_t *b, float scale_b, uint8_t zp_b, size_t count, float scale, uint8_t zp,
                                      uint8_t *y, int threads) {
    if (threads <= 1 || count < 4096) {
        mpq_requantize_binary_u8(path, multiply, a, scale_a, zp_a, b, scale_b, zp_b, count, scale, zp, y);
        return;
    }
    const size_t per = (count + 4 * (size_t)threads - 1) / (4 * (size_t)threads);
    requantize_split r = {path, multiply, a, b, scale_a, scale_b, scale, zp_a, zp_b, zp, count, (per + 63) / 64 * 64, y};
    mpq_run_ranges(threads, (int)((count + r.unit - 1) / r.unit), requantize_unit, &r);
}
