// AVX-512 parts of the channel-blocked FP32 Conv (sconv_blocked.c, docs/fp32-blocked-layout.md):
// the tile and the reorders NCHW <-> [C/16][H][W][16].
//
// The tile is the channel-vector tile (sconv_cv_avx512.c) with another store: NV vectors of
// 16 output channels x NP pixels, per k NV weight loads and NP broadcasts from
// x + pix[p] + offsets[k], every lane fmadd(w, x, acc) in k order from +0, so the channel-
// vector tile's bits when the broadcast values are the same; the accumulators are stored as
// whole vectors (output pixel p of vector v at y + v * vstride + 16 p), no transpose.
#include "sgemm_internal.h"
#include <immintrin.h>
#include "sconv_cv_accumulate.h"
#include "transpose16_f32_avx512.h"

#define BT_TARGET __attribute__((target("avx512f,avx512vl")))
#define AI __attribute__((always_inline))

static inline AI BT_TARGET __mmask16 lanes(int n) {
    return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1u);
}

// The channel-vector tile's sums (sconv_cv_accumulate.h), then the epilogue and the blocked store.
static inline AI BT_TARGET void bt_tile(int kc, const float *w, const float *x, const int32_t *offsets, const int32_t *pix,
                                        float *y, size_t vstride, int rows, const mpq_sgemm_tile_epilogue *ep, const int NV,
                                        const int NP) {
    __m512 acc[8][8];
    mpq_sconv_cv_accumulate(kc, w, x, offsets, pix, acc, NV, NP);
    _Pragma("unroll") for (int v = 0; v < NV; v++) {
        const int r = rows - 16 * v;
        const __mmask16 keep = lanes(r);  // lanes past M are stored as +0 (the layout's padding)
        if (ep && ep->bias) {
            // v + bias where bias != 0 (NaN included), as the channel-vector tile does.
            const __m512 b = _mm512_maskz_loadu_ps(keep, ep->bias + 16 * v);
            const __mmask16 nz = _mm512_cmp_ps_mask(b, _mm512_setzero_ps(), _CMP_NEQ_UQ);
            _Pragma("unroll") for (int p = 0; p < NP; p++) acc[v][p] = _mm512_mask_add_ps(acc[v][p], nz, acc[v][p], b);
        }
        if (ep && ep->clamp) {
            const __m512 lo = _mm512_set1_ps(ep->lo), hi = _mm512_set1_ps(ep->hi);
            _Pragma("unroll") for (int p = 0; p < NP; p++) acc[v][p] = _mm512_min_ps(hi, _mm512_max_ps(lo, acc[v][p]));
        }
        float *d = y + (size_t)v * vstride;
        if (r >= 16) {
            _Pragma("unroll") for (int p = 0; p < NP; p++) _mm512_storeu_ps(d + 16 * p, acc[v][p]);
        } else {
            _Pragma("unroll") for (int p = 0; p < NP; p++) _mm512_storeu_ps(d + 16 * p, _mm512_maskz_mov_ps(keep, acc[v][p]));
        }
    }
}

#define BT_FN(V, P)                                                                                                  \
    static BT_TARGET void bt_##V##_##P(int kc, const float *w, const float *x, const int32_t *offsets,               \
                                       const int32_t *pix, float *y, size_t vstride, int rows,                     \
                                       const mpq_sgemm_tile_epilogue *ep) {                                        \
        bt_tile(kc, w, x, offsets, pix, y, vstride, rows, ep, V, P);                                                \
    }
#define BT_ROW8(V) BT_FN(V, 1) BT_FN(V, 2) BT_FN(V, 3) BT_FN(V, 4) BT_FN(V, 5) BT_FN(V, 6) BT_FN(V, 7) BT_FN(V, 8)
#define BT_ROW6(V) BT_FN(V, 1) BT_FN(V, 2) BT_FN(V, 3) BT_FN(V, 4) BT_FN(V, 5) BT_FN(V, 6)
#define BT_ROW4(V) BT_FN(V, 1) BT_FN(V, 2) BT_FN(V, 3) BT_FN(V, 4)
#define BT_ROW3(V) BT_FN(V, 1) BT_FN(V, 2) BT_FN(V, 3)
BT_ROW8(1)
BT_ROW8(2)
BT_ROW8(3)
BT_ROW6(4)
BT_ROW4(5)
BT_ROW4(6)
BT_ROW3(7)
BT_ROW3(8)

typedef void (*bt_fn)(int, const float *, const float *, const int32_t *, const int32_t *, float *, size_t, int,
                      const mpq_sgemm_tile_epilogue *);
#define E8(V) {bt_##V##_1, bt_##V##_2, bt_##V##_3, bt_##V##_4, bt_##V##_5, bt_##V##_6, bt_##V##_7, bt_##V##_8}
#define E6(V) {bt_##V##_1, bt_##V##_2, bt_##V##_3, bt_##V##_4, bt_##V##_5, bt_##V##_6, NULL, NULL}
#define E4(V) {bt_##V##_1, bt_##V##_2, bt_##V##_3, bt_##V##_4, NULL, NULL, NULL, NULL}
#define E3(V) {bt_##V##_1, bt_##V##_2, bt_##V##_3, NULL, NULL, NULL, NULL, NULL}
static const bt_fn table[8][8] = {E8(1), E8(2), E8(3), E6(4), E4(5), E4(6), E3(7), E3(8)};

void mpq_sconv_blocked_tile_avx512(int kc, const float *w, int nv, const float *x, const int32_t *offsets,
                                   const int32_t *pix, int np, float *y, size_t vstride, int rows,
                                   const mpq_sgemm_tile_epilogue *ep) {
    table[nv - 1][np - 1](kc, w, x, offsets, pix, y, vstride, rows, ep);
}

// One image [C][hw] -> [ceil(C / 16)][hw][16], lanes past C zero: 16 channel rows x 16 pixels
// loaded (masked at the ends), transposed, stored as 16 pixel vectors.
BT_TARGET void mpq_reorder_to_blocked_f32_avx512(const float *x, int channels, size_t hw, float *y) {
    for (int cb = 0; cb < (channels + 15) / 16; cb++) {
        const int nc = channels - 16 * cb < 16 ? channels - 16 * cb : 16;
        const float *xc = x + (size_t)16 * cb * hw;
        float *yc = y + (size_t)16 * cb * hw;
        for (size_t p = 0; p < hw; p += 16) {
            const int np = hw - p < 16 ? (int)(hw - p) : 16;
            __m512 r[16];
            _Pragma("unroll") for (int i = 0; i < 16; i++)
                r[i] = i < nc ? _mm512_maskz_loadu_ps(lanes(np), xc + (size_t)i * hw + p) : _mm512_setzero_ps();
            mpq_transpose16_f32(r);
            for (int i = 0; i < np; i++) _mm512_storeu_ps(yc + (p + (size_t)i) * 16, r[i]);
        }
    }
}

// One image [ceil(C / 16)][hw][16] -> [C][hw] (lanes past C dropped).
BT_TARGET void mpq_reorder_from_blocked_f32_avx512(const float *x, int channels, size_t hw, float *y) {
    for (int cb = 0; cb < (channels + 15) / 16; cb++) {
        const int nc = channels - 16 * cb < 16 ? channels - 16 * cb : 16;
        const float *xc = x + (size_t)16 * cb * hw;
        float *yc = y + (size_t)16 * cb * hw;
        for (size_t p = 0; p < hw; p += 16) {
            const int np = hw - p < 16 ? (int)(hw - p) : 16;
            __m512 r[16];
            _Pragma("unroll") for (int i = 0; i < 16; i++)
                r[i] = i < np ? _mm512_loadu_ps(xc + (p + (size_t)i) * 16) : _mm512_setzero_ps();
            mpq_transpose16_f32(r);
            for (int i = 0; i < nc; i++) _mm512_mask_storeu_ps(yc + (size_t)i * hw + p, lanes(np), r[i]);
        }
    }
}

// Border tiles' patch (sconv_blocked.c): rows [ih0, ih0 + ph) x columns [iw0, iw0 + pw) of
// every channel block of a blocked image [cb][H][W][16] into [cb][ph][pwc][16], +0 where the
// position is outside the image (the padding's value in today's padded copy).
BT_TARGET void mpq_sconv_blocked_patch_avx512(const float *x, int cbs, int H, int W, int ih0, int iw0, int ph, int pw,
                                              int pwc, float *d) {
    const __m512 zero = _mm512_setzero_ps();
    for (int cb = 0; cb < cbs; cb++)
        for (int r = 0; r < ph; r++) {
            const int ih = ih0 + r;
            float *dr = d + ((size_t)cb * ph + r) * (size_t)pwc * 16;
            if (ih < 0 || ih >= H) {
                for (int q = 0; q < pw; q++) _mm512_storeu_ps(dr + 16 * q, zero);
                continue;
            }
            const float *xr = x + (((size_t)cb * H + ih) * (size_t)W) * 16;
            for (int q = 0; q < pw; q++) {
                const int iw = iw0 + q;
                _mm512_storeu_ps(dr + 16 * q, iw < 0 || iw >= W ? zero : _mm512_loadu_ps(xr + (size_t)iw * 16));
            }
        }
}
