// AVX2 + FMA parts of the channel-blocked FP32 Conv (sconv_blocked.c, docs/fp32-blocked-layout.md
// "s27: the blocked layout on AVX2"): the tile, the reorders NCHW <-> [C/16][H][W][16] and the
// border patch.
//
// Why: on an AVX2 host the channel-vector Conv (sconv_cv_avx2.c) pads a copy of every padded
// input and transposes every 6-pixel chunk into the output planes; on the detector's thin
// layers at batch 16 the copies alone were 11% of its one-core FP32 samples (perf, s27). In the
// blocked layout a tile reads the input in place and stores whole vectors.
//
// The tile: per 16-channel vector of the block, 2 ymm x up to 6 pixels (12 accumulators; per k
// 2 weight loads, 6 broadcasts, 12 FMAs: the part kernel's chunk), over the whole of K with the
// sums in registers (the blocked driver's planes are small and its weights under 1 MiB a chain,
// ImageChain.largeWeights, so a vector's weights stay in L2). Every lane is fmadd(w, x, acc) in
// k order from +0 on the values the channel-vector tile reads, then the bias where it is not 0
// and the clamp as finish8 applies them: the channel-vector tile's bits. A vector's second half
// is skipped where its 8 channels are all past M (the detector's 24- and 48-channel layers);
// lanes past M are stored as +0 (the layout's padding).
#include "sgemm_internal.h"
#include <immintrin.h>
#include "transpose8_f32_avx2.h"

#define BA_TARGET __attribute__((target("avx2,fma")))
#define AI inline __attribute__((always_inline))
#define BA_MAX_P 6  // pixels per register tile

// Vector v of a tile's channel-vector weights (rows or slices), read per K block through
// mpq_sconv_cv_vector_block.
typedef struct {
    const float *w;
    int kc, nv, v, sliced;
} ba_weights;

// acc[h][p] = the chain over all k of w(k, 8h + lane) * x(p, k), H halves x P pixels.
static BA_TARGET AI void sums(const ba_weights *b, const float *const *px, const int32_t *offsets, __m256 acc[2][BA_MAX_P],
                              const int H, const int P) {
    _Pragma("unroll") for (int p = 0; p < P; p++) {
        acc[0][p] = _mm256_setzero_ps();
        acc[1][p] = _mm256_setzero_ps();
    }
    for (int k0 = 0; k0 < b->kc; k0 += MPQ_SCONV_CV_KC) {
        const int k1 = b->kc - k0 < MPQ_SCONV_CV_KC ? b->kc : k0 + MPQ_SCONV_CV_KC;
        size_t stride;
        const float *wk = mpq_sconv_cv_vector_block(b->w, b->kc, b->nv, b->v, k0, b->sliced, &stride);
        for (int k = k0; k < k1; k++, wk += stride) {
            const ptrdiff_t o = offsets[k];
            const __m256 w0 = _mm256_loadu_ps(wk);
            const __m256 w1 = H > 1 ? _mm256_loadu_ps(wk + 8) : w0;
            _Pragma("unroll") for (int p = 0; p < P; p++) {
                const __m256 xb = _mm256_broadcast_ss(px[p] + o);
                acc[0][p] = _mm256_fmadd_ps(w0, xb, acc[0][p]);
                if (H > 1) acc[1][p] = _mm256_fmadd_ps(w1, xb, acc[1][p]);
            }
        }
    }
}

// Bias (where not 0, NaN included) and clamp on 8 channels' sums, as finish8 does; lanes at or
// past `live` zeroed; stored to y + 16 p.
static BA_TARGET AI void finish_half(__m256 *acc, float *y, int live, const float *bias, const mpq_sgemm_tile_epilogue *ep,
                                     const int P) {
    const __m256i keep = mpq_first_lanes8(live);
    if (ep && bias) {
        const __m256 bv = _mm256_maskload_ps(bias, keep);
        const __m256 nz = _mm256_cmp_ps(bv, _mm256_setzero_ps(), _CMP_NEQ_UQ);
        _Pragma("unroll") for (int p = 0; p < P; p++) acc[p] = _mm256_blendv_ps(acc[p], _mm256_add_ps(acc[p], bv), nz);
    }
    if (ep && ep->clamp) {
        const __m256 lo = _mm256_set1_ps(ep->lo), hi = _mm256_set1_ps(ep->hi);
        _Pragma("unroll") for (int p = 0; p < P; p++) acc[p] = _mm256_min_ps(hi, _mm256_max_ps(lo, acc[p]));
    }
    if (live < 8) {
        const __m256 m = _mm256_castsi256_ps(keep);
        _Pragma("unroll") for (int p = 0; p < P; p++) acc[p] = _mm256_and_ps(acc[p], m);
    }
    _Pragma("unroll") for (int p = 0; p < P; p++) _mm256_storeu_ps(y + 16 * p, acc[p]);
}

// Vector v (channels 16 v .. 16 v + 15, `live` of them below M) x P pixels.
static BA_TARGET AI void vector_tile(const ba_weights *b, const float *const *px, const int32_t *offsets, float *y, int live,
                                     const float *bias, const mpq_sgemm_tile_epilogue *ep, const int P) {
    __m256 acc[2][BA_MAX_P];
    if (live > 8) {
        sums(b, px, offsets, acc, 2, P);
        finish_half(acc[0], y, 8, bias, ep, P);
        finish_half(acc[1], y + 8, live - 8, bias ? bias + 8 : NULL, ep, P);
        return;
    }
    sums(b, px, offsets, acc, 1, P);
    finish_half(acc[0], y, live, bias, ep, P);
    const __m256 zero = _mm256_setzero_ps();
    _Pragma("unroll") for (int p = 0; p < P; p++) _mm256_storeu_ps(y + 16 * p + 8, zero);
}

#define BA_FN(P)                                                                                                      \
    static BA_TARGET void vector_tile_##P(const ba_weights *b, const float *const *px, const int32_t *offsets, float *y, \
                                          int live, const float *bias, const mpq_sgemm_tile_epilogue *ep) {           \
        vector_tile(b, px, offsets, y, live, bias, ep, P);                                                            \
    }
BA_FN(1)
BA_FN(2)
BA_FN(3)
BA_FN(4)
BA_FN(5)
BA_FN(6)
typedef void (*vector_tile_fn)(const ba_weights *, const float *const *, const int32_t *, float *, int, const float *,
                               const mpq_sgemm_tile_epilogue *);
static const vector_tile_fn vector_tiles[BA_MAX_P] = {vector_tile_1, vector_tile_2, vector_tile_3,
                                                      vector_tile_4, vector_tile_5, vector_tile_6};

// The blocked tile's contract (sgemm_internal.h): nv vectors x np pixels (np up to 8: in two
// even register tiles past 6), y[v * vstride + 16 p + lane].
static void blocked_tile(int kc, const float *w, int nv, const float *x, const int32_t *offsets, const int32_t *pix, int np,
                         float *y, size_t vstride, int rows, const mpq_sgemm_tile_epilogue *ep, int sliced) {
    const float *px[8];
    for (int p = 0; p < np; p++) px[p] = x + pix[p];
    const int groups = (np + BA_MAX_P - 1) / BA_MAX_P;
    for (int v = 0; v < nv; v++) {
        const ba_weights b = {w, kc, nv, v, sliced};
        const int live = rows - 16 * v < 16 ? rows - 16 * v : 16;
        const float *bias = ep && ep->bias ? ep->bias + 16 * v : NULL;
        float *yv = y + (size_t)v * vstride;
        for (int g = 0, p0 = 0; g < groups; g++) {
            const int p1 = np * (g + 1) / groups;
            vector_tiles[p1 - p0 - 1](&b, px + p0, offsets, yv + 16 * (size_t)p0, live, bias, ep);
            p0 = p1;
        }
    }
}

void mpq_sconv_blocked_tile_avx2(int kc, const float *w, int nv, const float *x, const int32_t *offsets, const int32_t *pix,
                                 int np, float *y, size_t vstride, int rows, const mpq_sgemm_tile_epilogue *ep) {
    blocked_tile(kc, w, nv, x, offsets, pix, np, y, vstride, rows, ep, 0);
}

void mpq_sconv_blocked_tile_avx2_sliced(int kc, const float *w, int nv, const float *x, const int32_t *offsets,
                                        const int32_t *pix, int np, float *y, size_t vstride, int rows,
                                        const mpq_sgemm_tile_epilogue *ep) {
    blocked_tile(kc, w, nv, x, offsets, pix, np, y, vstride, rows, ep, 1);
}

// One image [C][hw] -> [ceil(C / 16)][hw][16], lanes past C zero: per 8 channels x 8 pixels one
// register transpose (loads masked at the plane's end), stored as 8 half vectors.
BA_TARGET void mpq_reorder_to_blocked_f32_avx2(const float *x, int channels, size_t hw, float *y) {
    for (int cb = 0; cb < (channels + 15) / 16; cb++)
        for (int h = 0; h < 2; h++) {
            const int c0 = 16 * cb + 8 * h, nc = channels - c0 < 8 ? channels - c0 : 8;
            float *yc = y + (size_t)16 * cb * hw + 8 * h;
            if (nc <= 0) {
                for (size_t p = 0; p < hw; p++) _mm256_storeu_ps(yc + 16 * p, _mm256_setzero_ps());
                continue;
            }
            const float *xc = x + (size_t)c0 * hw;
            for (size_t p = 0; p < hw; p += 8) {
                const int np = hw - p < 8 ? (int)(hw - p) : 8;
                const __m256i m = mpq_first_lanes8(np);
                __m256 r[8];
                _Pragma("unroll") for (int i = 0; i < 8; i++)
                    r[i] = i < nc ? (np == 8 ? _mm256_loadu_ps(xc + (size_t)i * hw + p) : _mm256_maskload_ps(xc + (size_t)i * hw + p, m))
                                  : _mm256_setzero_ps();
                mpq_transpose8_f32(r);
                for (int i = 0; i < np; i++) _mm256_storeu_ps(yc + (p + (size_t)i) * 16, r[i]);
            }
        }
}

// One image [ceil(C / 16)][hw][16] -> [C][hw] (lanes past C dropped).
BA_TARGET void mpq_reorder_from_blocked_f32_avx2(const float *x, int channels, size_t hw, float *y) {
    for (int cb = 0; cb < (channels + 15) / 16; cb++)
        for (int h = 0; h < 2; h++) {
            const int c0 = 16 * cb + 8 * h, nc = channels - c0 < 8 ? channels - c0 : 8;
            if (nc <= 0) continue;
            const float *xc = x + (size_t)16 * cb * hw + 8 * h;
            float *yc = y + (size_t)c0 * hw;
            for (size_t p = 0; p < hw; p += 8) {
                const int np = hw - p < 8 ? (int)(hw - p) : 8;
                __m256 r[8];
                _Pragma("unroll") for (int i = 0; i < 8; i++)
                    r[i] = i < np ? _mm256_loadu_ps(xc + (p + (size_t)i) * 16) : _mm256_setzero_ps();
                mpq_transpose8_f32(r);
                for (int i = 0; i < nc; i++) mpq_store_first8(yc + (size_t)i * hw + p, r[i], np);
            }
        }
}

// Border tiles' patch (sconv_blocked.c): as mpq_sconv_blocked_patch_avx512, 2 ymm a vector.
BA_TARGET void mpq_sconv_blocked_patch_avx2(const float *x, int cbs, int H, int W, int ih0, int iw0, int ph, int pw, int pwc,
                                            float *d) {
    const __m256 zero = _mm256_setzero_ps();
    for (int cb = 0; cb < cbs; cb++)
        for (int r = 0; r < ph; r++) {
            const int ih = ih0 + r;
            float *dr = d + ((size_t)cb * ph + r) * (size_t)pwc * 16;
            if (ih < 0 || ih >= H) {
                for (int q = 0; q < pw; q++) {
                    _mm256_storeu_ps(dr + 16 * q, zero);
                    _mm256_storeu_ps(dr + 16 * q + 8, zero);
                }
                continue;
            }
            const float *xr = x + (((size_t)cb * H + ih) * (size_t)W) * 16;
            for (int q = 0; q < pw; q++) {
                const int iw = iw0 + q, in = iw >= 0 && iw < W;
                _mm256_storeu_ps(dr + 16 * q, in ? _mm256_loadu_ps(xr + (size_t)iw * 16) : zero);
                _mm256_storeu_ps(dr + 16 * q + 8, in ? _mm256_loadu_ps(xr + (size_t)iw * 16 + 8) : zero);
            }
        }
}
