// Scalar reference micro-tile of the FP32 Conv GEMM: a plain loop, never optimised. Each
// output is fmaf(a, b, acc) over k in order, the chain every SIMD path computes lane by
// lane, so the paths agree with this one bit for bit.
#include "sgemm_internal.h"
#include <math.h>
#include <stddef.h>

void mpq_sgemm_tile_reference(int kc, const float *a, const float *b, int nv, float *c, int ldc,
                              int mr, int nc, int accumulate, const mpq_sgemm_tile_epilogue *ep) {
    const int w = 16 * nv;
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nc; j++) {
            float acc = accumulate ? c[(size_t)i * (size_t)ldc + (size_t)j] : 0.0f;
            for (int k = 0; k < kc; k++) acc = fmaf(a[(size_t)k * MPQ_SGEMM_MR + (size_t)i], b[(size_t)k * (size_t)w + (size_t)j], acc);
            if (ep) {
                if (ep->bias && ep->bias[i] != 0.0f) acc = acc + ep->bias[i];
                if (ep->clamp) acc = acc < ep->lo ? ep->lo : (acc > ep->hi ? ep->hi : acc);
            }
            c[(size_t)i * (size_t)ldc + (size_t)j] = acc;
        }
}

// The direct path's tile: the same fmaf chain, b[k][j] read at b + offsets[k] + j.
void mpq_sgemm_direct_tile_reference(int kc, const float *a, const float *b, const int32_t *offsets, int nv,
                                     float *c, int ldc, int mr, int nc, const mpq_sgemm_tile_epilogue *ep) {
    (void)nv;
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nc; j++) {
            float acc = 0.0f;
            for (int k = 0; k < kc; k++) acc = fmaf(a[(size_t)k * MPQ_SGEMM_MR + (size_t)i], b[(ptrdiff_t)offsets[k] + j], acc);
            if (ep) {
                if (ep->bias && ep->bias[i] != 0.0f) acc = acc + ep->bias[i];
                if (ep->clamp) acc = acc < ep->lo ? ep->lo : (acc > ep->hi ? ep->hi : acc);
            }
            c[(size_t)i * (size_t)ldc + (size_t)j] = acc;
        }
}
