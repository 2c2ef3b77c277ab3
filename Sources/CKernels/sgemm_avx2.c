// AVX2 + FMA micro-tile of the FP32 Conv GEMM, on the same packed layout as the AVX-512
// one: the 6 x (16 * nv) tile is done as nv sub-tiles of 6 rows x 16 pixels (12 ymm
// accumulators, 2 column loads, 1 broadcast: 15 of the 16 ymm registers), each over the
// whole k-block. Each lane is fmadd(w, x, acc) in k order from +0: the reference's bits.
#include "sgemm_internal.h"
#include <immintrin.h>
#include <string.h>

#define AVX2_TARGET __attribute__((target("avx2,fma")))
#define MR MPQ_SGEMM_MR

// `ep` (NULL: none) on a sub-tile's registers, packed or direct. Operand order as in
// sgemm_avx512.c: NaN and -0 kept, as mpq_conv_epilogue_f32 does.
static inline __attribute__((always_inline)) AVX2_TARGET void
apply_epilogue(__m256 acc[MR][2], int mr, const mpq_sgemm_tile_epilogue *ep) {
    if (!ep) return;
    const __m256 lo = _mm256_set1_ps(ep->lo), hi = _mm256_set1_ps(ep->hi);
    _Pragma("unroll") for (int i = 0; i < mr; i++) {
        if (ep->bias && ep->bias[i] != 0.0f) {
            const __m256 bias = _mm256_set1_ps(ep->bias[i]);
            acc[i][0] = _mm256_add_ps(acc[i][0], bias);
            acc[i][1] = _mm256_add_ps(acc[i][1], bias);
        }
        if (ep->clamp) {
            acc[i][0] = _mm256_min_ps(hi, _mm256_max_ps(lo, acc[i][0]));
            acc[i][1] = _mm256_min_ps(hi, _mm256_max_ps(lo, acc[i][1]));
        }
    }
}

static inline __attribute__((always_inline)) AVX2_TARGET void
sub_tile(int kc, const float *a, const float *b, int w, float *c, int ldc, int mr, int nc, int accumulate,
         const mpq_sgemm_tile_epilogue *ep) {
    __m256 acc[MR][2];
    float tmp[MR][16];
    if (accumulate && nc < 16) {
        for (int i = 0; i < mr; i++) memcpy(tmp[i], c + (size_t)i * (size_t)ldc, (size_t)nc * sizeof(float));
    }
    _Pragma("unroll") for (int i = 0; i < mr; i++) {
        if (!accumulate) {
            acc[i][0] = acc[i][1] = _mm256_setzero_ps();
        } else {
            const float *src = nc < 16 ? tmp[i] : c + (size_t)i * (size_t)ldc;
            acc[i][0] = _mm256_loadu_ps(src);
            acc[i][1] = _mm256_loadu_ps(src + 8);
        }
    }
    for (int k = 0; k < kc; k++) {
        const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
        _Pragma("unroll") for (int i = 0; i < mr; i++) {
            const __m256 av = _mm256_broadcast_ss(a + i);
            acc[i][0] = _mm256_fmadd_ps(av, b0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(av, b1, acc[i][1]);
        }
        a += MR;
        b += w;
    }
    apply_epilogue(acc, mr, ep);
    _Pragma("unroll") for (int i = 0; i < mr; i++) {
        float *dst = nc < 16 ? tmp[i] : c + (size_t)i * (size_t)ldc;
        _mm256_storeu_ps(dst, acc[i][0]);
        _mm256_storeu_ps(dst + 8, acc[i][1]);
    }
    if (nc < 16) {
        for (int i = 0; i < mr; i++) memcpy(c + (size_t)i * (size_t)ldc, tmp[i], (size_t)nc * sizeof(float));
    }
}

#define SUB_FN(R) \
    static AVX2_TARGET void sub_##R(int kc, const float *a, const float *b, int w, float *c, int ldc, int nc, int acc, \
                                    const mpq_sgemm_tile_epilogue *ep) { \
        sub_tile(kc, a, b, w, c, ldc, R, nc, acc, ep); \
    }
SUB_FN(1) SUB_FN(2) SUB_FN(3) SUB_FN(4) SUB_FN(5) SUB_FN(6)

typedef void (*sub_fn)(int, const float *, const float *, int, float *, int, int, int, const mpq_sgemm_tile_epilogue *);
static const sub_fn subs[MR] = {sub_1, sub_2, sub_3, sub_4, sub_5, sub_6};

void mpq_sgemm_tile_avx2(int kc, const float *a, const float *b, int nv, float *c, int ldc,
                         int mr, int nc, int accumulate, const mpq_sgemm_tile_epilogue *ep) {
    const int w = 16 * nv;
    for (int q = 0; q < nv && 16 * q < nc; q++) {
        const int cols = nc - 16 * q < 16 ? nc - 16 * q : 16;
        subs[mr - 1](kc, a, b + 16 * q, w, c + 16 * q, ldc, cols, accumulate, ep);
    }
}

// The direct path's tile (sgemm_conv_direct.c): 6 rows x 16 pixels per sub-tile as above,
// row k of b read at b + offsets[k]; a partial sub-tile loads and stores through masks,
// so lanes past nc are never read.
static inline __attribute__((always_inline)) AVX2_TARGET void
direct_sub(int kc, const float *a, const float *b, const int32_t *offsets, float *c, int ldc, int mr, int nc,
           const mpq_sgemm_tile_epilogue *ep) {
    __m256i m0, m1;
    {
        const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(nc), idx);
        m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(nc - 8), idx);
    }
    __m256 acc[MR][2];
    _Pragma("unroll") for (int i = 0; i < mr; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    for (int k = 0; k < kc; k++) {
        const float *bk = b + offsets[k];
        const __m256 b0 = _mm256_maskload_ps(bk, m0), b1 = _mm256_maskload_ps(bk + 8, m1);
        _Pragma("unroll") for (int i = 0; i < mr; i++) {
            const __m256 av = _mm256_broadcast_ss(a + i);
            acc[i][0] = _mm256_fmadd_ps(av, b0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(av, b1, acc[i][1]);
        }
        a += MR;
    }
    apply_epilogue(acc, mr, ep);
    _Pragma("unroll") for (int i = 0; i < mr; i++) {
        float *dst = c + (size_t)i * (size_t)ldc;
        _mm256_maskstore_ps(dst, m0, acc[i][0]);
        _mm256_maskstore_ps(dst + 8, m1, acc[i][1]);
    }
}

#define DIRECT_SUB_FN(R) \
    static AVX2_TARGET void direct_sub_##R(int kc, const float *a, const float *b, const int32_t *off, float *c, int ldc, \
                                           int nc, const mpq_sgemm_tile_epilogue *ep) { \
        direct_sub(kc, a, b, off, c, ldc, R, nc, ep); \
    }
DIRECT_SUB_FN(1) DIRECT_SUB_FN(2) DIRECT_SUB_FN(3) DIRECT_SUB_FN(4) DIRECT_SUB_FN(5) DIRECT_SUB_FN(6)

typedef void (*direct_sub_fn)(int, const float *, const float *, const int32_t *, float *, int, int,
                              const mpq_sgemm_tile_epilogue *);
static const direct_sub_fn direct_subs[MR] = {direct_sub_1, direct_sub_2, direct_sub_3,
                                              direct_sub_4, direct_sub_5, direct_sub_6};

void mpq_sgemm_direct_tile_avx2(int kc, const float *a, const float *b, const int32_t *offsets, int nv,
                                float *c, int ldc, int mr, int nc, const mpq_sgemm_tile_epilogue *ep) {
    for (int q = 0; q < nv && 16 * q < nc; q++) {
        const int cols = nc - 16 * q < 16 ? nc - 16 * q : 16;
        direct_subs[mr - 1](kc, a, b + 16 * q, offsets, c + 16 * q, ldc, cols, ep);
    }
}
