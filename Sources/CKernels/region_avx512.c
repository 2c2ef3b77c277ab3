// AVX-512 forms of the region kernels (run by the VNNI path): 16 floats at a time, the
// tail with masks, the operations of region_reference.c in the same order.
#include "mpq_internal.h"
#include <immintrin.h>

#define AVX512_TARGET __attribute__((target("avx512f")))

static inline AVX512_TARGET __mmask16 tail_mask(size_t left) {
    return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
}

static inline AVX512_TARGET __m512 requant16(__m512 r, __m512 s, __m512 lo, __m512 hi) {
    __m512 v = _mm512_div_ps(r, s);
    v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);       // maxps(v, lo): NaN -> lo, as the reference
    v = _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    return _mm512_add_ps(_mm512_mul_ps(v, s), _mm512_setzero_ps());
}

AVX512_TARGET void mpq_requantize_f32_avx512(const float *x, size_t count, float scale, uint8_t zp, float *y) {
    const __m512 s = _mm512_set1_ps(scale);
    const __m512 lo = _mm512_set1_ps(0.0f - (float)zp), hi = _mm512_set1_ps(255.0f - (float)zp);
    for (size_t i = 0; i < count; i += 16) {
        __mmask16 m = tail_mask(count - i);
        _mm512_mask_storeu_ps(y + i, m, requant16(_mm512_maskz_loadu_ps(m, x + i), s, lo, hi));
    }
}

AVX512_TARGET void mpq_requantize_binary_f32_avx512(int multiply, const float *a, const float *b, size_t count,
                                                    float scale, uint8_t zp, float *y) {
    const __m512 s = _mm512_set1_ps(scale);
    const __m512 lo = _mm512_set1_ps(0.0f - (float)zp), hi = _mm512_set1_ps(255.0f - (float)zp);
    for (size_t i = 0; i < count; i += 16) {
        __mmask16 m = tail_mask(count - i);
        __m512 va = _mm512_maskz_loadu_ps(m, a + i), vb = _mm512_maskz_loadu_ps(m, b + i);
        __m512 r = multiply ? _mm512_mul_ps(va, vb) : _mm512_add_ps(va, vb);
        _mm512_mask_storeu_ps(y + i, m, requant16(r, s, lo, hi));
    }
}

AVX512_TARGET void mpq_lookup_u8grid_f32_avx512(const float *x, size_t count, float scale, uint8_t zp,
                                                const float *table, float *y) {
    const __m512 s = _mm512_set1_ps(scale), z = _mm512_set1_ps((float)zp);
    const __m512 zero = _mm512_setzero_ps(), top = _mm512_set1_ps(255.0f);
    for (size_t i = 0; i < count; i += 16) {
        __mmask16 m = tail_mask(count - i);
        __m512 k = _mm512_roundscale_ps(_mm512_div_ps(_mm512_maskz_loadu_ps(m, x + i), s),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        k = _mm512_add_ps(k, z);
        k = _mm512_min_ps(_mm512_max_ps(k, zero), top);  // NaN -> 0, as the reference
        __m512i idx = _mm512_cvttps_epi32(k);
        _mm512_mask_storeu_ps(y + i, m, _mm512_mask_i32gather_ps(zero, m, idx, table, 4));
    }
}

// MARK: - uint8 chains: the reference's grid_table values computed in registers,
// (float)(q - zp) * scale + 0, the same three operations.

#define AVX512BW_TARGET __attribute__((target("avx512f,avx512bw,avx512vl")))

static inline AVX512BW_TARGET __m512 dequant16(const uint8_t *x, __mmask16 m, __m512i z, __m512 s) {
    __m512i q = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, x));
    return _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(q, z)), s), _mm512_setzero_ps());
}

AVX512BW_TARGET void mpq_dequantize_u8_avx512(const uint8_t *x, size_t count, float scale, uint8_t zp, float *y) {
    const __m512i z = _mm512_set1_epi32(zp);
    const __m512 s = _mm512_set1_ps(scale);
    for (size_t i = 0; i < count; i += 16) {
        __mmask16 m = tail_mask(count - i);
        _mm512_mask_storeu_ps(y + i, m, dequant16(x + i, m, z, s));
    }
}

AVX512BW_TARGET void mpq_requantize_binary_u8_avx512(int multiply, const uint8_t *a, float scale_a, uint8_t zp_a,
                                                     const uint8_t *b, float scale_b, uint8_t zp_b, size_t count,
                                                     float scale, uint8_t zp, uint8_t *y) {
    const __m512i za = _mm512_set1_epi32(zp_a), zb = _mm512_set1_epi32(zp_b), z = _mm512_set1_epi32(zp);
    const __m512 sa = _mm512_set1_ps(scale_a), sb = _mm512_set1_ps(scale_b), s = _mm512_set1_ps(scale);
    const __m512 lo = _mm512_set1_ps(0.0f - (float)zp), hi = _mm512_set1_ps(255.0f - (float)zp);
    for (size_t i = 0; i < count; i += 16) {
        __mmask16 m = tail_mask(count - i);
        __m512 va = dequant16(a + i, m, za, sa), vb = dequant16(b + i, m, zb, sb);
        __m512 v = _mm512_div_ps(multiply ? _mm512_mul_ps(va, vb) : _mm512_add_ps(va, vb), s);
        v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
        v = _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm512_mask_cvtusepi32_storeu_epi8(y + i, m, _mm512_add_epi32(_mm512_cvtps_epi32(v), z));
    }
}
