// AVX-512 parts of the channel-blocked FP32 Conv (sconv_blocked.c, docs/fp32-blocked-layout.md):
// the tile and the reorders NCHW <-> [C/16][H][W][16].
//
// The tile is the channel-vector tile (sconv_cv_avx512.c) with another store: NV vectors of
// 16 output channels x NP pixels, per k NV weight loads and NP broadcasts from
// x + pix[p] + offsets[k], every lane fmadd(w, x, acc) in k order from +0, so the channel-
// vector tile's bits when the broadcast values are the same; the accumulators are stored as
// whole vectors (output pixel p of vector v at y + v * vstride + 16 p), no transpose.
#include "sgemm_internal.h"
#include "sconv_blocked_skip.h"
#include <immintrin.h>
#include "sconv_cv_accumulate.h"
#include "transpose16_f32_avx512.h"

#define BT_TARGET __attribute__((target("avx512f,avx512vl")))
#define AI __attribute__((always_inline))

static inline AI BT_TARGET __mmask16 lanes(int n) {
    return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1u);
}

// The epilogue and the blocked store of NV x NP sums (acc[v * NP + p]): pixel p at y + 16 p,
// or at y + opix[p] (a tap-list tile's scattered pixels).
static inline AI BT_TARGET void bt_finish(__m512 *acc, float *y, const int32_t *opix, size_t vstride, int rows,
                                          const mpq_sgemm_tile_epilogue *ep, const int NV, const int NP) {
    _Pragma("unroll") for (int v = 0; v < NV; v++) {
        const int r = rows - 16 * v;
        const __mmask16 keep = lanes(r);  // lanes past M are stored as +0 (the layout's padding)
        __m512 *a = acc + v * NP;
        if (ep && ep->bias) {
            // v + bias where bias != 0 (NaN included), as the channel-vector tile does.
            const __m512 b = _mm512_maskz_loadu_ps(keep, ep->bias + 16 * v);
            const __mmask16 nz = _mm512_cmp_ps_mask(b, _mm512_setzero_ps(), _CMP_NEQ_UQ);
            _Pragma("unroll") for (int p = 0; p < NP; p++) a[p] = _mm512_mask_add_ps(a[p], nz, a[p], b);
        }
        if (ep && ep->clamp) {
            const __m512 lo = _mm512_set1_ps(ep->lo), hi = _mm512_set1_ps(ep->hi);
            _Pragma("unroll") for (int p = 0; p < NP; p++) a[p] = _mm512_min_ps(hi, _mm512_max_ps(lo, a[p]));
        }
        float *d = y + (size_t)v * vstride;
        if (r >= 16) {
            _Pragma("unroll") for (int p = 0; p < NP; p++) _mm512_storeu_ps(d + (opix ? opix[p] : 16 * p), a[p]);
        } else {
            _Pragma("unroll") for (int p = 0; p < NP; p++)
                _mm512_storeu_ps(d + (opix ? opix[p] : 16 * p), _mm512_maskz_mov_ps(keep, a[p]));
        }
    }
}

// The channel-vector tile's sums (sconv_cv_accumulate.h) over the windows at px, over every
// tap or a tap list (kidx), then the epilogue and the blocked store (pixel p at y + 16 p, or
// y + opix[p]): the tiles', the runs' and the tap-list tiles' common body.
static inline AI BT_TARGET void bt_windows(int kc, const int32_t *kidx, const float *w, const float *const *px,
                                           const int32_t *offsets, float *y, const int32_t *opix, size_t vstride, int rows,
                                           const mpq_sgemm_tile_epilogue *ep, const int NV, const int NP) {
    __m512 acc[64];
    mpq_sconv_cv_accumulate(kc, kidx, w, px, offsets, acc, NV, NP);
    bt_finish(acc, y, opix, vstride, rows, ep, NV, NP);
}

// A tile: pixel p's window at x + pix[p].
static inline AI BT_TARGET void bt_tile(int kc, const float *w, const float *x, const int32_t *offsets, const int32_t *pix,
                                        float *y, size_t vstride, int rows, const mpq_sgemm_tile_epilogue *ep, const int NV,
                                        const int NP) {
    const float *px[8];
    mpq_sconv_cv_windows(x, pix, px, NP);
    bt_windows(kc, NULL, w, px, offsets, y, NULL, vstride, rows, ep, NV, NP);
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

// --- Tap-list tiles (s35, sconv_blocked_skip.c): a pixel class's taps, scattered pixels.
static inline AI BT_TARGET void bt_taps(int kc, const int32_t *kidx, const float *w, const float *x, const int32_t *offsets,
                                        const int32_t *pix, const int32_t *opix, float *y, size_t vstride, int rows,
                                        const mpq_sgemm_tile_epilogue *ep, const int NV, const int NP) {
    const float *px[8];
    mpq_sconv_cv_windows(x, pix, px, NP);
    if (kidx)
        bt_windows(kc, kidx, w, px, offsets, y, opix, vstride, rows, ep, NV, NP);
    else  // every tap: the sequential weights walk of the other tiles
        bt_windows(kc, NULL, w, px, offsets, y, opix, vstride, rows, ep, NV, NP);
}

typedef void (*bt_taps_fn)(int, const int32_t *, const float *, const float *, const int32_t *, const int32_t *,
                           const int32_t *, float *, size_t, int, const mpq_sgemm_tile_epilogue *);
#define TT_FN(V, P)                                                                                                  \
    static BT_TARGET void tt_##V##_##P(int kc, const int32_t *kidx, const float *w, const float *x,                 \
                                       const int32_t *offsets, const int32_t *pix, const int32_t *opix, float *y,   \
                                       size_t vstride, int rows, const mpq_sgemm_tile_epilogue *ep) {              \
        bt_taps(kc, kidx, w, x, offsets, pix, opix, y, vstride, rows, ep, V, P);                                    \
    }
#define TT_ROW6(V) TT_FN(V, 1) TT_FN(V, 2) TT_FN(V, 3) TT_FN(V, 4) TT_FN(V, 5) TT_FN(V, 6)
#define TT_ROW8(V) TT_ROW6(V) TT_FN(V, 7) TT_FN(V, 8)
TT_ROW8(1)
TT_ROW8(2)
TT_ROW8(3)
TT_ROW6(4)
#define TT_E6(V) tt_##V##_1, tt_##V##_2, tt_##V##_3, tt_##V##_4, tt_##V##_5, tt_##V##_6
static const bt_taps_fn taps_table[4][8] = {{TT_E6(1), tt_1_7, tt_1_8}, {TT_E6(2), tt_2_7, tt_2_8}, {TT_E6(3), tt_3_7, tt_3_8},
                                            {TT_E6(4), NULL, NULL}};

void mpq_sconv_blocked_tile_taps_avx512(int kc, const int32_t *kidx, const float *w, int nv, const float *x,
                                        const int32_t *offsets, const int32_t *pix, const int32_t *opix, int np, float *y,
                                        size_t vstride, int rows, const mpq_sgemm_tile_epilogue *ep) {
    taps_table[nv - 1][np - 1](kc, kidx, w, x, offsets, pix, opix, y, vstride, rows, ep);
}

// The guard's scans (sconv_blocked_skip.c): any nonzero |x| under 2^-50, or with `finite` any
// infinity or NaN, in `count` runs of `len` floats `stride` apart makes it 0.
BT_TARGET int mpq_f32_tame_segments_avx512(const float *x, size_t count, size_t len, size_t stride, int finite) {
    const __m512 tiny = _mm512_set1_ps(0x1p-50f), zero = _mm512_setzero_ps(), inf = _mm512_set1_ps(__builtin_inff());
    __mmask16 bad = 0;
    for (size_t s = 0; s < count; s++) {
        const float *r = x + s * stride;
        for (size_t i = 0; i < len; i += 16) {
            const __mmask16 m = lanes(len - i < 16 ? (int)(len - i) : 16);
            const __m512 a = _mm512_abs_ps(_mm512_maskz_loadu_ps(m, r + i));
            bad |= _mm512_cmp_ps_mask(a, tiny, _CMP_LT_OQ) & _mm512_cmp_ps_mask(a, zero, _CMP_GT_OQ);
            // |x| < inf fails for infinities and NaN.
            if (finite) bad |= m & ~_mm512_cmp_ps_mask(a, inf, _CMP_LT_OQ);
            if ((i & 4095) == 0 && bad) return 0;
        }
        if (bad) return 0;
    }
    return 1;
}

// --- Runs of pixels (s33; the AVX2 form is s30's, sconv_blocked_avx2.c) ---
//
// A run's pixels read the input S floats apart (S = 16 or 32 in a blocked image at stride 1 or
// 2, 1 or 2 in an NCHW input's padded planes), so a register tile's windows are one pointer plus
// constant displacements: no pixel table (bk_tile_at) and no pointer per pixel, which capped the
// tiles at 8 pixels (the GPRs); a run takes up to bt_run_most(nv) pixels a tile. The sums are
// the tiles' (mpq_sconv_cv_accumulate, k in order from +0): the same bits.
#define BT_RUN_MAX_NV 4
static inline int bt_run_most(int nv) { return nv == 1 ? 16 : nv == 2 ? 12 : nv == 3 ? 8 : 6; }

static inline AI BT_TARGET void bt_run(int kc, const float *w, const float *x, const int32_t *offsets, float *y, size_t vstride,
                                       int rows, const mpq_sgemm_tile_epilogue *ep, const int NV, const int NP, const int S) {
    const float *px[16];
    _Pragma("unroll") for (int p = 0; p < NP; p++) px[p] = x + (size_t)S * (size_t)p;
    bt_windows(kc, NULL, w, px, offsets, y, NULL, vstride, rows, ep, NV, NP);
}

typedef void (*bt_run_fn)(int, const float *, const float *, const int32_t *, float *, size_t, int,
                          const mpq_sgemm_tile_epilogue *);
#define BR_FN(V, P, S)                                                                                               \
    static BT_TARGET void br_##V##_##P##_##S(int kc, const float *w, const float *x, const int32_t *offsets,       \
                                             float *y, size_t vstride, int rows, const mpq_sgemm_tile_epilogue *ep) { \
        bt_run(kc, w, x, offsets, y, vstride, rows, ep, V, P, S);                                                    \
    }
#define BR_6(V, S) BR_FN(V, 1, S) BR_FN(V, 2, S) BR_FN(V, 3, S) BR_FN(V, 4, S) BR_FN(V, 5, S) BR_FN(V, 6, S)
#define BR_8(V, S) BR_6(V, S) BR_FN(V, 7, S) BR_FN(V, 8, S)
#define BR_12(V, S) BR_8(V, S) BR_FN(V, 9, S) BR_FN(V, 10, S) BR_FN(V, 11, S) BR_FN(V, 12, S)
#define BR_16(V, S) BR_12(V, S) BR_FN(V, 13, S) BR_FN(V, 14, S) BR_FN(V, 15, S) BR_FN(V, 16, S)
#define BR_E6(V, S) br_##V##_1_##S, br_##V##_2_##S, br_##V##_3_##S, br_##V##_4_##S, br_##V##_5_##S, br_##V##_6_##S
#define BR_E8(V, S) BR_E6(V, S), br_##V##_7_##S, br_##V##_8_##S
#define BR_E12(V, S) BR_E8(V, S), br_##V##_9_##S, br_##V##_10_##S, br_##V##_11_##S, br_##V##_12_##S
#define BR_E16(V, S) BR_E12(V, S), br_##V##_13_##S, br_##V##_14_##S, br_##V##_15_##S, br_##V##_16_##S
#define BR_STEP(S)                                                                                                   \
    BR_16(1, S) BR_12(2, S) BR_8(3, S) BR_6(4, S)                                                                    \
    static const bt_run_fn runs_##S[BT_RUN_MAX_NV][16] = {{BR_E16(1, S)}, {BR_E12(2, S)}, {BR_E8(3, S)}, {BR_E6(4, S)}};
BR_STEP(16)  // blocked input, stride 1
BR_STEP(32)  // blocked input, stride 2
BR_STEP(1)   // NCHW planes, stride 1
BR_STEP(2)   // NCHW planes, stride 2

int mpq_sconv_blocked_pixel_runs_avx512(int kc, const float *w, int nv, const mpq_blocked_pixel_run *runs, int count,
                                        const int32_t *offsets, int step, size_t vstride, int rows,
                                        const mpq_sgemm_tile_epilogue *ep) {
    if (nv < 1 || nv > BT_RUN_MAX_NV || (step != 16 && step != 32 && step != 1 && step != 2)) return -1;
    const bt_run_fn *fns = (step == 16 ? runs_16 : step == 32 ? runs_32 : step == 1 ? runs_1 : runs_2)[nv - 1];
    const int most = bt_run_most(nv);
    for (int r = 0; r < count; r++) {
        const int n = runs[r].n, groups = (n + most - 1) / most;
        for (int g = 0, p0 = 0; g < groups; g++) {
            const int p1 = (int)((long)n * (g + 1) / groups);
            fns[p1 - p0 - 1](kc, w, runs[r].x + (size_t)step * (size_t)p0, offsets, runs[r].y + 16 * (size_t)p0, vstride, rows, ep);
            p0 = p1;
        }
    }
    return 0;
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
