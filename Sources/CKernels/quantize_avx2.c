// ONNX QuantizeLinear to uint8, AVX2: 8 floats at a time, the tail by the reference.
// Same order of operations as quantize_reference.c (see there for why).
#include "mpq_internal.h"
#include <immintrin.h>

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
