// AVX-512 forms of eltwise.c (run by the VNNI path): 16 elements at a time, the tail
// masked, the reference's operations in its order. Relu is `_mm512_max_ps(0, r)`, which is
// `0 > r ? 0 : r`: NaN and -0 pass through as in `r < 0 ? 0 : r`.
#include "pool_internal.h"
#include <immintrin.h>

#define AVX512_TARGET __attribute__((target("avx512f,avx512bw,avx512vl")))

static inline AVX512_TARGET __mmask16 tail16(size_t left) {
    return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
}

AVX512_TARGET void mpq_binary_f32_avx512(int multiply, int relu, const float *a, const float *b, size_t count, float *y) {
    const __m512 zero = _mm512_setzero_ps();
    for (size_t i = 0; i < count; i += 16) {
        const __mmask16 m = tail16(count - i);
        __m512 va = _mm512_maskz_loadu_ps(m, a + i), vb = _mm512_maskz_loadu_ps(m, b + i);
        __m512 r = multiply ? _mm512_mul_ps(va, vb) : _mm512_add_ps(va, vb);
        if (relu) r = _mm512_max_ps(zero, r);
        _mm512_mask_storeu_ps(y + i, m, r);
    }
}

/// (q - z) * s + 0 for 16 codes: the reference's grid_table entries, computed in registers.
static inline AVX512_TARGET __m512 dequant16(const uint8_t *x, __mmask16 m, __m512i z, __m512 s) {
    __m512i q = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, x));
    return _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(q, z)), s), _mm512_setzero_ps());
}

AVX512_TARGET void mpq_binary_u8_avx512(int multiply, int relu, const uint8_t *a, float scale_a, uint8_t zp_a,
                                        const uint8_t *b, float scale_b, uint8_t zp_b, size_t count,
                                        float scale, uint8_t zp, uint8_t *y) {
    const __m512i za = _mm512_set1_epi32(zp_a), zb = _mm512_set1_epi32(zp_b), z = _mm512_set1_epi32(zp);
    const __m512 sa = _mm512_set1_ps(scale_a), sb = _mm512_set1_ps(scale_b), s = _mm512_set1_ps(scale);
    const __m512 lo = _mm512_set1_ps(0.0f - (float)zp), hi = _mm512_set1_ps(255.0f - (float)zp);
    const __m512 zero = _mm512_setzero_ps();
    for (size_t i = 0; i < count; i += 16) {
        const __mmask16 m = tail16(count - i);
        __m512 va = dequant16(a + i, m, za, sa), vb = dequant16(b + i, m, zb, sb);
        __m512 r = multiply ? _mm512_mul_ps(va, vb) : _mm512_add_ps(va, vb);
        if (relu) r = _mm512_max_ps(zero, r);
        __m512 v = _mm512_div_ps(r, s);
        v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);       // maxps(v, lo): NaN -> lo, as the reference
        v = _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm512_mask_cvtusepi32_storeu_epi8(y + i, m, _mm512_add_epi32(_mm512_cvtps_epi32(v), z));
    }
}

/// 64 lookups per step: vpermt2b picks from 128 table bytes by the low 7 bits of each code,
/// once for each table half, and bit 7 selects the half.
__attribute__((target("avx512f,avx512bw,avx512vbmi")))
void mpq_lookup_u8_vbmi(const uint8_t *x, size_t count, const uint8_t *table, uint8_t *y) {
    const __m512i t0 = _mm512_loadu_si512(table), t1 = _mm512_loadu_si512(table + 64);
    const __m512i t2 = _mm512_loadu_si512(table + 128), t3 = _mm512_loadu_si512(table + 192);
    for (size_t i = 0; i < count; i += 64) {
        const __mmask64 m = count - i >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << (count - i)) - 1);
        const __m512i k = _mm512_maskz_loadu_epi8(m, x + i);
        const __m512i lo = _mm512_permutex2var_epi8(t0, k, t1), hi = _mm512_permutex2var_epi8(t2, k, t3);
        _mm512_mask_storeu_epi8(y + i, m, _mm512_mask_blend_epi8(_mm512_movepi8_mask(k), lo, hi));
    }
}
