// AVX2 forms of the float region kernels (run by the AVX2 path; before, it ran the scalar
// reference, whose nearbyintf call per element was 2-3% of MiniLM's all-INT8 run here): 8
// floats at a time, the operations of region_reference.c in the same order, the tail in
// the reference itself (the same bits).
#include "mpq_internal.h"
#include <immintrin.h>

#define AVX2_TARGET __attribute__((target("avx2")))

static inline AVX2_TARGET __m256 requant8(__m256 r, __m256 s, __m256 lo, __m256 hi) {
    __m256 v = _mm256_div_ps(r, s);
    v = _mm256_min_ps(_mm256_max_ps(v, lo), hi);       // maxps(v, lo): NaN -> lo, as the reference
    v = _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    return _mm256_add_ps(_mm256_mul_ps(v, s), _mm256_setzero_ps());
}

AVX2_TARGET void mpq_requantize_f32_avx2(const float *x, size_t count, float scale, uint8_t zp, float *y) {
    const __m256 s = _mm256_set1_ps(scale);
    const __m256 lo = _mm256_set1_ps(0.0f - (float)zp), hi = _mm256_set1_ps(255.0f - (float)zp);
    size_t i = 0;
    for (; i + 8 <= count; i += 8) _mm256_storeu_ps(y + i, requant8(_mm256_loadu_ps(x + i), s, lo, hi));
    if (i < count) mpq_requantize_f32_reference(x + i, count - i, scale, zp, y + i);
}

AVX2_TARGET void mpq_requantize_binary_f32_avx2(int multiply, const float *a, const float *b, size_t count,
                                                float scale, uint8_t zp, float *y) {
    const __m256 s = _mm256_set1_ps(scale);
    const __m256 lo = _mm256_set1_ps(0.0f - (float)zp), hi = _mm256_set1_ps(255.0f - (float)zp);
    size_t i = 0;
    for (; i + 8 <= count; i += 8) {
        __m256 va = _mm256_loadu_ps(a + i), vb = _mm256_loadu_ps(b + i);
        __m256 r = multiply ? _mm256_mul_ps(va, vb) : _mm256_add_ps(va, vb);
        _mm256_storeu_ps(y + i, requant8(r, s, lo, hi));
    }
    if (i < count) mpq_requantize_binary_f32_reference(multiply, a + i, b + i, count - i, scale, zp, y + i);
}

AVX2_TARGET void mpq_lookup_u8grid_f32_avx2(const float *x, size_t count, float scale, uint8_t zp,
                                            const float *table, float *y) {
    const __m256 s = _mm256_set1_ps(scale), z = _mm256_set1_ps((float)zp);
    const __m256 zero = _mm256_setzero_ps(), top = _mm256_set1_ps(255.0f);
    size_t i = 0;
    for (; i + 8 <= count; i += 8) {
        __m256 k = _mm256_round_ps(_mm256_div_ps(_mm256_loadu_ps(x + i), s), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        k = _mm256_add_ps(k, z);
        k = _mm256_min_ps(_mm256_max_ps(k, zero), top);  // NaN -> 0, as the reference
        _mm256_storeu_ps(y + i, _mm256_i32gather_ps(table, _mm256_cvttps_epi32(k), 4));
    }
    if (i < count) mpq_lookup_u8grid_f32_reference(x + i, count - i, scale, zp, table, y + i);
}
