#ifndef MPQ_SGEMM_LINEAR_INTERNAL_H
#define MPQ_SGEMM_LINEAR_INTERNAL_H
// Private to the FP32 linear GEMM (mpq_slinear.h): the micro-tiles of each path.
#include "mpq_internal.h"
#include "mpq_slinear.h"

#define MPQ_SLINEAR_MR 6   ///< activation rows per tile (broadcast operand)
#define MPQ_SLINEAR_NR 64  ///< output columns per tile: four 16-float vectors
#define MPQ_SLINEAR_KC 256 ///< K block of the packed layout

_Static_assert(sizeof(mpq_slinear_weights_header) == 64, "packed-weights header is one cache line");

/// One micro-tile: c[i * ldc + j] for i < mr, j < nc is set to (accumulate: itself plus)
/// sum over k < kc of a[i * lda + k] * B(k, j), as a chain of FMAs in k order, then, with
/// `bias` (the tile's first column's), plus bias[j] (one add), and stored. `a` is the
/// tile's first activation row at its K block's first k (read in place); `b` a packed
/// column panel of width 16 * nv (nc <= 16 * nv, columns nc.. are padding) holding B(k, j)
/// at b[(j / 16) * vstride + k * ldb + j % 16]: the wide layout is ldb = 16 * nv,
/// vstride = 16, the sub-panel one ldb = 16, vstride = 16 * kc.
typedef void (*mpq_slinear_tile_fn)(int kc, const float *a, size_t lda, const float *b, size_t ldb, size_t vstride,
                                    int nv, float *c, size_t ldc, int mr, int nc, int accumulate, const float *bias);

void mpq_slinear_tile_reference(int kc, const float *a, size_t lda, const float *b, size_t ldb, size_t vstride, int nv,
                                float *c, size_t ldc, int mr, int nc, int accumulate, const float *bias);
void mpq_slinear_tile_avx2(int kc, const float *a, size_t lda, const float *b, size_t ldb, size_t vstride, int nv,
                           float *c, size_t ldc, int mr, int nc, int accumulate, const float *bias);
/// Reads rows of 16 * nv floats ldb apart, vstride 16 only (a wide panel, or B read in place);
/// the driver gives a sub-panel pack to the AVX2 tile instead (every AVX-512 CPU has AVX2, and
/// the bits are the same).
void mpq_slinear_tile_avx512(int kc, const float *a, size_t lda, const float *b, size_t ldb, size_t vstride, int nv,
                             float *c, size_t ldc, int mr, int nc, int accumulate, const float *bias);

#endif
