// AVX-512 micro-tile of the FP32 linear GEMM: up to 6 activation rows x 4 vectors of 16
// output columns = 24 zmm accumulators; per k, 4 loads of B's row (a wide packed panel's,
// ldb = its width, or an unpacked row-major B's, ldb = its row stride) and 6
// broadcasts straight from the activation rows (no packing of A) feed 24 FMAs. One
// instantiation per (rows, vectors) so the accumulators live in registers. Each lane is
// fmadd(a, b, acc) in k order from +0, then + bias: the reference's bits.
#include "sgemm_linear_internal.h"
#include <immintrin.h>

#define AVX512_TARGET __attribute__((target("avx512f")))
#define MR MPQ_SLINEAR_MR

static inline AVX512_TARGET __mmask16 lanes(int cols) {
    return cols >= 16 ? (__mmask16)0xFFFF : cols <= 0 ? (__mmask16)0 : (__mmask16)((1u << cols) - 1u);
}

static inline __attribute__((always_inline)) AVX512_TARGET void
tile(int kc, const float *a, size_t lda, const float *b, size_t ldb, float *c, size_t ldc, int mr, int nv, int nc,
     int accumulate, const float *bias) {
    __m512 acc[MR][4];
    __mmask16 mask[4];
    const float *row[MR];
    _Pragma("unroll") for (int i = 0; i < mr; i++) row[i] = a + (size_t)i * lda;
    _Pragma("unroll") for (int q = 0; q < nv; q++) mask[q] = lanes(nc - 16 * q);
    _Pragma("unroll") for (int i = 0; i < mr; i++)
        _Pragma("unroll") for (int q = 0; q < nv; q++)
            acc[i][q] = accumulate ? _mm512_maskz_loadu_ps(mask[q], c + (size_t)i * ldc + 16 * q) : _mm512_setzero_ps();
    const size_t next = (size_t)MR * lda;  // the next row tile's rows, which A's in-place reads would miss
    for (int k = 0; k < kc; k++) {
        if ((k & 15) == 0)
            _Pragma("unroll") for (int i = 0; i < mr; i++) _mm_prefetch((const char *)(row[i] + next + k), _MM_HINT_T0);
        __m512 bv[4];
        _Pragma("unroll") for (int q = 0; q < nv; q++) bv[q] = _mm512_loadu_ps(b + 16 * q);
        _Pragma("unroll") for (int i = 0; i < mr; i++) {
            const __m512 av = _mm512_set1_ps(row[i][k]);
            _Pragma("unroll") for (int q = 0; q < nv; q++) acc[i][q] = _mm512_fmadd_ps(av, bv[q], acc[i][q]);
        }
        b += ldb;
    }
    if (bias) {
        _Pragma("unroll") for (int q = 0; q < nv; q++) {
            const __m512 bq = _mm512_maskz_loadu_ps(mask[q], bias + 16 * q);
            _Pragma("unroll") for (int i = 0; i < mr; i++) acc[i][q] = _mm512_add_ps(acc[i][q], bq);
        }
    }
    _Pragma("unroll") for (int i = 0; i < mr; i++)
        _Pragma("unroll") for (int q = 0; q < nv; q++)
            _mm512_mask_storeu_ps(c + (size_t)i * ldc + 16 * q, mask[q], acc[i][q]);
}

#define TILE_FN(R, V) \
    static AVX512_TARGET void tile_##R##_##V(int kc, const float *a, size_t lda, const float *b, size_t ldb, float *c, \
                                             size_t ldc, int nc, int acc, const float *bias) { \
        tile(kc, a, lda, b, ldb, c, ldc, R, V, nc, acc, bias); \
    }
#define TILE_ROW(R) TILE_FN(R, 1) TILE_FN(R, 2) TILE_FN(R, 3) TILE_FN(R, 4)
TILE_ROW(1) TILE_ROW(2) TILE_ROW(3) TILE_ROW(4) TILE_ROW(5) TILE_ROW(6)

typedef void (*tile_fn)(int, const float *, size_t, const float *, size_t, float *, size_t, int, int, const float *);
#define TILE_ENTRY(R) { tile_##R##_1, tile_##R##_2, tile_##R##_3, tile_##R##_4 }
static const tile_fn tiles[MR][4] = {
    TILE_ENTRY(1), TILE_ENTRY(2), TILE_ENTRY(3), TILE_ENTRY(4), TILE_ENTRY(5), TILE_ENTRY(6),
};

void mpq_slinear_tile_avx512(int kc, const float *a, size_t lda, const float *b, size_t ldb, size_t vstride, int nv,
                             float *c, size_t ldc, int mr, int nc, int accumulate, const float *bias) {
    (void)vstride;  // 16: a row's vectors are adjacent (see the header)
    tiles[mr - 1][nv - 1](kc, a, lda, b, ldb, c, ldc, nc, accumulate, bias);
}
