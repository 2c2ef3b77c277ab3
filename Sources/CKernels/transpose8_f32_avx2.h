#ifndef MPQ_TRANSPOSE8_F32_AVX2_H
#define MPQ_TRANSPOSE8_F32_AVX2_H
// 8 x 8 float transpose in AVX2 registers, a first-n-lanes mask and store, shared by the AVX2 kernels
// that move between channel-major planes and channels-in-lanes vectors (depthwise_f32_lanes_avx2.c,
// sconv_cv_avx2.c). The AVX-512 counterpart is transpose16_f32_avx512.h.
#include <immintrin.h>

/// r[i] lane c -> r[c] lane i.
static inline __attribute__((always_inline, target("avx2"))) void mpq_transpose8_f32(__m256 r[8]) {
    __m256 a[8], b[8];
    for (int i = 0; i < 4; i++) {
        a[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        a[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 2; i++) {
        b[4 * i + 0] = _mm256_shuffle_ps(a[4 * i + 0], a[4 * i + 2], 0x44);
        b[4 * i + 1] = _mm256_shuffle_ps(a[4 * i + 0], a[4 * i + 2], 0xEE);
        b[4 * i + 2] = _mm256_shuffle_ps(a[4 * i + 1], a[4 * i + 3], 0x44);
        b[4 * i + 3] = _mm256_shuffle_ps(a[4 * i + 1], a[4 * i + 3], 0xEE);
    }
    for (int i = 0; i < 4; i++) {
        r[i] = _mm256_permute2f128_ps(b[i], b[4 + i], 0x20);
        r[4 + i] = _mm256_permute2f128_ps(b[i], b[4 + i], 0x31);
    }
}

/// All ones in lanes [0, n), zero in the rest: a maskload/maskstore mask for n floats.
static inline __attribute__((always_inline, target("avx2"))) __m256i mpq_first_lanes8(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/// Lanes [0, n) of v to d[0, n) (n <= 8; nothing past them is written): the bytes a
/// maskstore with mpq_first_lanes8(n) writes, in plain stores. Why: vmaskmovps to memory costs
/// ~12 cycles on Zen 3 against ~2 for these (s22, a 16-store loop: 3.9 against 0.7 ns a store);
/// the channel-vector FP32 Conv stored every 6-pixel chunk's 16 channel rows through it.
static inline __attribute__((always_inline, target("avx2"))) void mpq_store_first8(float *d, __m256 v, int n) {
    if (n >= 8) {
        _mm256_storeu_ps(d, v);
        return;
    }
    __m128 part = _mm256_castps256_ps128(v);
    if (n >= 4) {
        _mm_storeu_ps(d, part);
        part = _mm256_extractf128_ps(v, 1);
        d += 4, n -= 4;
    }
    if (n >= 2) {
        _mm_storel_pi((__m64 *)d, part);
        part = _mm_movehl_ps(part, part);
        d += 2, n -= 2;
    }
    if (n) _mm_store_ss(d, part);
}
#endif
