// ONNX QuantizeLinear to uint8: reference, AVX2 and AVX-512 paths.
// All paths divide (as ONNX specifies; x * (1/scale) rounds differently), clamp
// to [-zp, 255 - zp] in float *before* converting (so huge values and NaN
// cannot hit cvtps2dq's 0x80000000 "integer indefinite"), then round with the
// current rounding mode (nearest-even by default, i.e. nearbyint) and add zp.
// Clamping first is exact because the bounds are integers.
#include "mpq_internal.h"
#include <immintrin.h>
#include <math.h>

void mpq_quantize_u8_reference(const float *x, size_t count, float scale, uint8_t zp, uint8_t *y) {
    const float lo = -(float)zp, hi = 255.0f - (float)zp;
    for (size_t i = 0; i < count; i++) {
        float v = x[i] / scale;
        v = (v > lo) ? v : lo;  // as maxps(v, lo): NaN -> lo
        v = (v < hi) ? v : hi;
        y[i] = (uint8_t)((int)nearbyintf(v) + (int)zp);
    }
}

__attribute__((target("avx2")))
void mpq_quantize_u8_avx2(const float *x, size_t count, float scale, uint8_t zp, uint8_t *y) {
    const __m256 s = _mm256_set1_ps(scale);
    const __m256 lo = _mm256_set1_ps(-(float)zp), hi = _mm256_set1_ps(255.0f - (float)zp);
    const __m256i z = _mm256_set1_epi32(zp);
    size_t i = 0;
    for (; i + 8 <= count; i += 8) {
        __m256 v = _mm256_div_ps(_mm256_loadu_ps(x + i), s);
        v = _mm256_min_ps(_mm256_max_ps(v, lo), hi);
        __m256i q = _mm256_add_epi32(_mm256_cvtps_epi32(v), z);
        __m128i w = _mm_packus_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
        _mm_storel_epi64((__m128i *)(y + i), _mm_packus_epi16(w, w));
    }
    mpq_quantize_u8_reference(x + i, count - i, scale, zp, y + i);
}

__attribute__((target("avx512f,avx512bw")))
void mpq_quantize_u8_avx512(const float *x, size_t count, float scale, uint8_t zp, uint8_t *y) {
    const __m512 s = _mm512_set1_ps(scale);
    const __m512 lo = _mm512_set1_ps(-(float)zp), hi = _mm512_set1_ps(255.0f - (float)zp);
    const __m512i z = _mm512_set1_epi32(zp);
    for (size_t i = 0; i < count; i += 16) {
        size_t left = count - i;
        __mmask16 m = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
        __m512 v = _mm512_div_ps(_mm512_maskz_loadu_ps(m, x + i), s);
        v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
        __m512i q = _mm512_add_epi32(_mm512_cvtps_epi32(v), z);
        _mm512_mask_cvtusepi32_storeu_epi8(y + i, m, q);
    }
}

void mpq_quantize_u8(mpq_kernel_path path, const float *x, size_t count,
                     float scale, uint8_t zero_point, uint8_t *y) {
    switch (mpq_resolve_kernel_path(path)) {
    case MPQ_PATH_VNNI: mpq_quantize_u8_avx512(x, count, scale, zero_point, y); break;
    case MPQ_PATH_AVX2: mpq_quantize_u8_avx2(x, count, scale, zero_point, y); break;
    default: mpq_quantize_u8_reference(x, count, scale, zero_point, y); break;
    }
}
