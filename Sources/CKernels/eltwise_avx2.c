// AVX2 forms of the elementwise kernels on floats and codes (eltwise.c, region_reference.c),
// run by the AVX2 path: 8 elements at a time, the reference's operations in its order, the
// tail (under 8 elements) through the reference itself. On an AVX2-only host these ran
// scalar: ResNet-18's INT8 residual Add + Relu on codes took 0.54 ms per 56x56x64 tensor
// (2.7 ns per code), more than the FP32 Add it replaces.
// Relu is `_mm256_max_ps(0, r)` = `0 > r ? 0 : r` (NaN and -0 pass as in `r < 0 ? 0 : r`);
// the clamp `_mm256_max_ps(v, lo)` = `v > lo ? v : lo` (NaN -> lo), then `min(v, hi)`.
#include "pool_internal.h"
#include <immintrin.h>

#define AVX2_TARGET __attribute__((target("avx2")))

AVX2_TARGET void mpq_binary_f32_avx2(int multiply, int relu, const float *a, const float *b, size_t count, float *y) {
    const __m256 zero = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 8 <= count; i += 8) {
        const __m256 va = _mm256_loadu_ps(a + i), vb = _mm256_loadu_ps(b + i);
        __m256 r = multiply ? _mm256_mul_ps(va, vb) : _mm256_add_ps(va, vb);
        if (relu) r = _mm256_max_ps(zero, r);
        _mm256_storeu_ps(y + i, r);
    }
    if (i < count) mpq_binary_f32_reference(multiply, relu, a + i, b + i, count - i, y + i);
}

/// (q - z) * s + 0 for 8 codes: the reference's grid_table entries, computed in registers.
static inline AVX2_TARGET __m256 dequant8(const uint8_t *x, __m256i z, __m256 s) {
    const __m256i q = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)x));
    return _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(q, z)), s), _mm256_setzero_ps());
}

/// Rounded codes of 8 values already clamped to [-zp, 255 - zp]: cvt (nearest even, the
/// default rounding, as nearbyintf) + zp, packed to 8 bytes.
static inline AVX2_TARGET void store_codes8(uint8_t *y, __m256 v, __m256i z) {
    const __m256i q = _mm256_add_epi32(_mm256_cvtps_epi32(v), z);
    const __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
    _mm_storel_epi64((__m128i *)y, _mm_packus_epi16(w, w));
}

static inline AVX2_TARGET void binary_codes(int multiply, int relu, const uint8_t *a, float scale_a, uint8_t zp_a,
                                            const uint8_t *b, float scale_b, uint8_t zp_b, size_t count, float scale,
                                            uint8_t zp, uint8_t *y) {
    const __m256i za = _mm256_set1_epi32(zp_a), zb = _mm256_set1_epi32(zp_b), z = _mm256_set1_epi32(zp);
    const __m256 sa = _mm256_set1_ps(scale_a), sb = _mm256_set1_ps(scale_b), s = _mm256_set1_ps(scale);
    const __m256 lo = _mm256_set1_ps(0.0f - (float)zp), hi = _mm256_set1_ps(255.0f - (float)zp);
    const __m256 zero = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 8 <= count; i += 8) {
        const __m256 va = dequant8(a + i, za, sa), vb = dequant8(b + i, zb, sb);
        __m256 r = multiply ? _mm256_mul_ps(va, vb) : _mm256_add_ps(va, vb);
        if (relu) r = _mm256_max_ps(zero, r);
        __m256 v = _mm256_div_ps(r, s);
        v = _mm256_min_ps(_mm256_max_ps(v, lo), hi);
        store_codes8(y + i, v, z);
    }
    if (i < count) mpq_binary_u8_reference(multiply, relu, a + i, scale_a, zp_a, b + i, scale_b, zp_b, count - i, scale, zp, y + i);
}

AVX2_TARGET void mpq_binary_u8_avx2(int multiply, int relu, const uint8_t *a, float scale_a, uint8_t zp_a, const uint8_t *b,
                                    float scale_b, uint8_t zp_b, size_t count, float scale, uint8_t zp, uint8_t *y) {
    binary_codes(multiply, relu, a, scale_a, zp_a, b, scale_b, zp_b, count, scale, zp, y);
}

// mpq_requantize_binary_u8_reference is mpq_binary_u8_reference without the Relu.
AVX2_TARGET void mpq_requantize_binary_u8_avx2(int multiply, const uint8_t *a, float scale_a, uint8_t zp_a, const uint8_t *b,
                                               float scale_b, uint8_t zp_b, size_t count, float scale, uint8_t zp, uint8_t *y) {
    binary_codes(multiply, 0, a, scale_a, zp_a, b, scale_b, zp_b, count, scale, zp, y);
}

AVX2_TARGET void mpq_dequantize_u8_avx2(const uint8_t *x, size_t count, float scale, uint8_t zp, float *y) {
    const __m256i z = _mm256_set1_epi32(zp);
    const __m256 s = _mm256_set1_ps(scale);
    size_t i = 0;
    for (; i + 8 <= count; i += 8) _mm256_storeu_ps(y + i, dequant8(x + i, z, s));
    if (i < count) mpq_dequantize_u8_reference(x + i, count - i, scale, zp, y + i);
}

// y[i] = table[x[i]], 32 codes per step (s27): vpshufb looks up 16 entries by an index's low 4
// bits and gives 0 where its bit 7 is set, so each of the table's 16 segments is one shuffle of
// t + 0x70 (saturating), t = x - 16 k (wrapping): bit 7 is clear exactly where x's high nibble
// is k, and the low nibble is x's. The 16 results OR together; every code comes from its one segment, so
// the bytes are the scalar lookup's. One thread, 65,536 codes (the detector's stem SiLU at batch
// 1): about twice the scalar loop's rate (benchmarks/README "s27").
AVX2_TARGET void mpq_lookup_u8_avx2(const uint8_t *x, size_t count, const uint8_t *table, uint8_t *y) {
    __m256i seg[16];
    for (int k = 0; k < 16; k++) seg[k] = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(table + 16 * k)));
    const __m256i lift = _mm256_set1_epi8(0x70), sixteen = _mm256_set1_epi8(16);
    size_t i = 0;
    for (; i + 32 <= count; i += 32) {
        const __m256i v = _mm256_loadu_si256((const __m256i *)(x + i));
        __m256i t = v, r = _mm256_shuffle_epi8(seg[0], _mm256_adds_epu8(v, lift));
        for (int k = 1; k < 16; k++) {
            t = _mm256_sub_epi8(t, sixteen);  // x - 16 k: high nibble 0 exactly in segment k
            r = _mm256_or_si256(r, _mm256_shuffle_epi8(seg[k], _mm256_adds_epu8(t, lift)));
        }
        _mm256_storeu_si256((__m256i *)(y + i), r);
    }
    for (; i < count; i++) y[i] = table[x[i]];
}
