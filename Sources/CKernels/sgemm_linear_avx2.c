// AVX2 + FMA micro-tile of the FP32 linear GEMM, on either packed layout (the host's is the
// sub-panel one, each 16 columns contiguous over k): the 6 x (16 * nv) tile is done as nv
// sub-tiles of 6 rows x 16 columns (12 ymm accumulators, 2 panel loads, 1 broadcast), each
// over the whole K block. Each lane is
// fmadd(a, b, acc) in k order from +0, then + bias: the reference's bits.
#include "sgemm_linear_internal.h"
#include <immintrin.h>
#include <string.h>

#define AVX2_TARGET __attribute__((target("avx2,fma")))
#define MR MPQ_SLINEAR_MR

static inline __attribute__((always_inline)) AVX2_TARGET void
sub_tile(int kc, const float *a, size_t lda, const float *b, size_t ldb, float *c, size_t ldc, int mr, int nc,
         int accumulate, const float *bias, int prefetch) {
    __m256 acc[MR][2];
    float tmp[MR][16];
    const float *row[MR];
    _Pragma("unroll") for (int i = 0; i < mr; i++) row[i] = a + (size_t)i * lda;
    if (accumulate && nc < 16)
        for (int i = 0; i < mr; i++) memcpy(tmp[i], c + (size_t)i * ldc, (size_t)nc * sizeof(float));
    _Pragma("unroll") for (int i = 0; i < mr; i++) {
        if (!accumulate) {
            acc[i][0] = acc[i][1] = _mm256_setzero_ps();
        } else {
            const float *src = nc < 16 ? tmp[i] : c + (size_t)i * ldc;
            acc[i][0] = _mm256_loadu_ps(src);
            acc[i][1] = _mm256_loadu_ps(src + 8);
        }
    }
    // The next row tile's rows, a cache line per row every 16 k (see the AVX-512 tile).
    const size_t next = (size_t)MR * lda;
    for (int k = 0; k < kc; k++) {
        if (prefetch && (k & 15) == 0)
            _Pragma("unroll") for (int i = 0; i < mr; i++) _mm_prefetch((const char *)(row[i] + next + k), _MM_HINT_T0);
        const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
        _Pragma("unroll") for (int i = 0; i < mr; i++) {
            const __m256 av = _mm256_broadcast_ss(row[i] + k);
            acc[i][0] = _mm256_fmadd_ps(av, b0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(av, b1, acc[i][1]);
        }
        b += ldb;
    }
    if (bias) {
        float bt[16] = {0};
        memcpy(bt, bias, (size_t)(nc < 16 ? nc : 16) * sizeof(float));
        const __m256 lo = _mm256_loadu_ps(bt), hi = _mm256_loadu_ps(bt + 8);
        _Pragma("unroll") for (int i = 0; i < mr; i++) {
            acc[i][0] = _mm256_add_ps(acc[i][0], lo);
            acc[i][1] = _mm256_add_ps(acc[i][1], hi);
        }
    }
    _Pragma("unroll") for (int i = 0; i < mr; i++) {
        float *dst = nc < 16 ? tmp[i] : c + (size_t)i * ldc;
        _mm256_storeu_ps(dst, acc[i][0]);
        _mm256_storeu_ps(dst + 8, acc[i][1]);
    }
    if (nc < 16)
        for (int i = 0; i < mr; i++) memcpy(c + (size_t)i * ldc, tmp[i], (size_t)nc * sizeof(float));
}

#define SUB_FN(R) \
    static AVX2_TARGET void sub_##R(int kc, const float *a, size_t lda, const float *b, size_t ldb, float *c, \
                                    size_t ldc, int nc, int acc, const float *bias, int prefetch) { \
        sub_tile(kc, a, lda, b, ldb, c, ldc, R, nc, acc, bias, prefetch); \
    }
SUB_FN(1) SUB_FN(2) SUB_FN(3) SUB_FN(4) SUB_FN(5) SUB_FN(6)

typedef void (*sub_fn)(int, const float *, size_t, const float *, size_t, float *, size_t, int, int, const float *, int);
static const sub_fn subs[MR] = {sub_1, sub_2, sub_3, sub_4, sub_5, sub_6};

void mpq_slinear_tile_avx2(int kc, const float *a, size_t lda, const float *b, size_t ldb, size_t vstride, int nv,
                           float *c, size_t ldc, int mr, int nc, int accumulate, const float *bias) {
    for (int q = 0; q < nv && 16 * q < nc; q++) {
        const int cols = nc - 16 * q < 16 ? nc - 16 * q : 16;
        subs[mr - 1](kc, a, lda, b + (size_t)q * vstride, ldb, c + 16 * q, ldc, cols, accumulate,
                     bias ? bias + 16 * q : NULL, q == 0);
    }
}
