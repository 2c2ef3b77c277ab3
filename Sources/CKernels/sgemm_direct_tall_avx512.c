// Tall AVX-512 tiles of the direct FP32 Conv path (sgemm_conv_direct.c) for narrow column
// tiles: a small plane (8x8 or 4x4 after padding and stride phases: 20-80 flat positions)
// leaves one or two 16-pixel vectors per column tile, where the regular 6-row tile holds
// only 6-12 accumulators and spends 7 loads per 6 FMAs. Here P consecutive weight panels
// (6P output channels) share the column loads: 24 x 1 vector (P = 4: 1 column load and 24
// broadcast FMAs per k) or 12 x 2 vectors (P = 2: 2 loads, 12 broadcasts, 24 FMAs).
//
// Each output is still fmadd(w, x, acc) over k in order from +0, then the same epilogue
// (bias skipped where 0, clamp as min(hi, max(lo, v))), so the bits are those of the
// 6-row tile and of the scalar reference (mpq_sgemm_direct_tile_reference): this only
// changes which outputs share a register pass.
#include "sgemm_internal.h"
#include <immintrin.h>

#define AVX512_TARGET __attribute__((target("avx512f")))
#define MR MPQ_SGEMM_MR
#define TALL_ROWS 24

static inline __attribute__((always_inline)) AVX512_TARGET void
tall_tile(int kc, const float *a, size_t panel_stride, const float *b, const int32_t *offsets, float *c, int ldc,
          int panels, int nv, int mr, int nc, const mpq_sgemm_tile_epilogue *ep) {
    __m512 acc[TALL_ROWS][2];
    __mmask16 mask[2];
    _Pragma("unroll") for (int q = 0; q < nv; q++) {
        const int cols = nc - 16 * q;
        mask[q] = cols >= 16 ? (__mmask16)0xFFFF : cols <= 0 ? (__mmask16)0 : (__mmask16)((1u << cols) - 1u);
    }
    _Pragma("unroll") for (int i = 0; i < panels * MR; i++)
        _Pragma("unroll") for (int q = 0; q < nv; q++) acc[i][q] = _mm512_setzero_ps();
    for (int k = 0; k < kc; k++) {
        const float *bk = b + offsets[k];
        __m512 bv[2];
        _Pragma("unroll") for (int q = 0; q < nv; q++) bv[q] = _mm512_maskz_loadu_ps(mask[q], bk + 16 * q);
        _Pragma("unroll") for (int p = 0; p < panels; p++) {
            const float *ak = a + (size_t)p * panel_stride + (size_t)k * MR;
            _Pragma("unroll") for (int r = 0; r < MR; r++) {
                const __m512 av = _mm512_set1_ps(ak[r]);
                _Pragma("unroll") for (int q = 0; q < nv; q++)
                    acc[p * MR + r][q] = _mm512_fmadd_ps(av, bv[q], acc[p * MR + r][q]);
            }
        }
    }
    // Rows past mr are the zero padding rows of the group's last panel: computed, never stored.
    if (ep) {
        const __m512 lo = _mm512_set1_ps(ep->lo), hi = _mm512_set1_ps(ep->hi);
        _Pragma("unroll") for (int i = 0; i < panels * MR; i++) {
            if (i < mr && ep->bias && ep->bias[i] != 0.0f) {
                const __m512 bias = _mm512_set1_ps(ep->bias[i]);
                _Pragma("unroll") for (int q = 0; q < nv; q++) acc[i][q] = _mm512_add_ps(acc[i][q], bias);
            }
            if (ep->clamp)
                _Pragma("unroll") for (int q = 0; q < nv; q++) acc[i][q] = _mm512_min_ps(hi, _mm512_max_ps(lo, acc[i][q]));
        }
    }
    if (ep && ep->valid) {  // the compressing store (mpq_sgemm_tile_epilogue)
        _Pragma("unroll") for (int i = 0; i < panels * MR; i++)
            if (i < mr)
                _Pragma("unroll") for (int q = 0; q < nv; q++) {
                    const int n = __builtin_popcount(ep->valid[q]);
                    _mm512_mask_storeu_ps(c + (size_t)i * (size_t)ldc + ep->place[q], (__mmask16)((1u << n) - 1u),
                                          _mm512_maskz_compress_ps((__mmask16)ep->valid[q], acc[i][q]));
                }
        return;
    }
    _Pragma("unroll") for (int i = 0; i < panels * MR; i++)
        if (i < mr)
            _Pragma("unroll") for (int q = 0; q < nv; q++)
                _mm512_mask_storeu_ps(c + (size_t)i * (size_t)ldc + 16 * q, mask[q], acc[i][q]);
}

#define TALL_FN(P, V) \
    static AVX512_TARGET void tall_##P##_##V(int kc, const float *a, size_t ps, const float *b, const int32_t *off, \
                                             float *c, int ldc, int mr, int nc, const mpq_sgemm_tile_epilogue *ep) { \
        tall_tile(kc, a, ps, b, off, c, ldc, P, V, mr, nc, ep); \
    }
TALL_FN(2, 1) TALL_FN(3, 1) TALL_FN(4, 1) TALL_FN(2, 2)

int mpq_sgemm_direct_tall_panels(int nv) { return nv == 1 ? 4 : nv == 2 ? 2 : 1; }

void mpq_sgemm_direct_tall_avx512(int kc, const float *a, size_t panel_stride, const float *b, const int32_t *offsets,
                                  int nv, float *c, int ldc, int mr, int nc, const mpq_sgemm_tile_epilogue *ep) {
    const int panels = (mr + MR - 1) / MR;
    if (nv == 1 && panels == 4) tall_4_1(kc, a, panel_stride, b, offsets, c, ldc, mr, nc, ep);
    else if (nv == 1 && panels == 3) tall_3_1(kc, a, panel_stride, b, offsets, c, ldc, mr, nc, ep);
    else if (nv == 1 && panels == 2) tall_2_1(kc, a, panel_stride, b, offsets, c, ldc, mr, nc, ep);
    else if (nv == 2 && panels == 2) tall_2_2(kc, a, panel_stride, b, offsets, c, ldc, mr, nc, ep);
    else  // one panel, or a shape without a tall instantiation: the 6-row tile per panel
        for (int p = 0, row = 0; row < mr; p++, row += MR)
            mpq_sgemm_direct_tile_avx512(kc, a + (size_t)p * panel_stride, b, offsets, nv, c + (size_t)row * (size_t)ldc,
                                         ldc, mr - row < MR ? mr - row : MR, nc,
                                         ep ? &(mpq_sgemm_tile_epilogue){ep->bias ? ep->bias + row : NULL, ep->clamp,
                                                                           ep->lo, ep->hi, ep->valid, ep->place}
                                            : NULL);
}
