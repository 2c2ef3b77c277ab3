// ONNX QuantizeLinear to uint8, AVX-512 (run by the VNNI path): 16 floats at a
// time, the tail with masks. Same order of operations as quantize_reference.c.
#include "mpq_internal.h"
#include <immintrin.h>

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
