// Scalar reference micro-tile of the FP32 linear GEMM: a plain loop, never optimised. Each
// output is fmaf(a, b, acc) over k in order, then + bias, the chain every SIMD path
// computes lane by lane, so the paths agree with this one bit for bit.
#include "sgemm_linear_internal.h"
#include <math.h>

void mpq_slinear_tile_reference(int kc, const float *a, size_t lda, const float *b, size_t ldb, size_t vstride, int nv,
                                float *c, size_t ldc, int mr, int nc, int accumulate, const float *bias) {
    (void)nv;
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nc; j++) {
            const float *bj = b + (size_t)(j / 16) * vstride + (size_t)(j % 16);
            float acc = accumulate ? c[(size_t)i * ldc + (size_t)j] : 0.0f;
            for (int k = 0; k < kc; k++) acc = fmaf(a[(size_t)i * lda + (size_t)k], bj[(size_t)k * ldb], acc);
            if (bias) acc = acc + bias[j];
            c[(size_t)i * ldc + (size_t)j] = acc;
        }
}
