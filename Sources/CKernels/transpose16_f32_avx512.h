#ifndef MPQ_TRANSPOSE16_F32_AVX512_H
#define MPQ_TRANSPOSE16_F32_AVX512_H
// The one 16 x 16 float transpose in registers, shared by the INT8 GEMM's channel-major store
// (qgemm_vnni.c), the FP32 depthwise lanes kernel (depthwise_f32_lanes.c) and the blocked
// layout's reorders (sconv_blocked_avx512.c). Data movement only, so every caller's bits are
// those of any other transpose. Inlined into callers compiled for AVX-512F or more.
#include <immintrin.h>

/// r[i] lane j -> r[j] lane i: unpack pairs, 64-bit shuffles, two rounds of 128-bit shuffles
/// (64 shuffles in all).
static inline __attribute__((always_inline, target("avx512f"))) void mpq_transpose16_f32(__m512 r[16]) {
    __m512 t[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) {
        r[4 * i + 0] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
        r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
        r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
    }
    for (int h = 0; h < 2; h++)
        for (int j = 0; j < 4; j++) {
            t[8 * h + j] = _mm512_shuffle_f32x4(r[8 * h + j], r[8 * h + 4 + j], 0x88);
            t[8 * h + 4 + j] = _mm512_shuffle_f32x4(r[8 * h + j], r[8 * h + 4 + j], 0xDD);
        }
    for (int j = 0; j < 8; j++) {
        r[j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0x88);
        r[8 + j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0xDD);
    }
}
#endif
