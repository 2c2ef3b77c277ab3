// AVX-512 tile of the channel-vector FP32 Conv (sconv_cv.c, docs/fp32-gemm.md "Channel-
// vector tiles"): NV vectors of 16 output channels x NP output pixels = NV * NP zmm
// accumulators (<= 24). Per k: NV weight loads (one [k][16 NV] row of the block), NP pixel
// broadcasts from the NCHW (zero-padded) image at pixel offset + offsets[k], NV * NP FMAs:
// every lane is fmadd(w, x, acc) in k order from +0, the direct and packed tiles' chain on
// the same values, so the same bits. No lane is junk: lanes past M are zero weights and
// never stored, and pixels are exactly the tile's NP.
// The end transposes each vector's NP x 16 block in registers (unpack + shuffle, 4 x 4
// blocks) and stores 16 rows of NP consecutive output pixels (NCHW).
#include "sgemm_internal.h"
#include <immintrin.h>
#include "sconv_cv_accumulate.h"

#define CV_TARGET __attribute__((target("avx512f,avx512vl")))
#define AI __attribute__((always_inline))

static inline AI CV_TARGET __mmask16 lanes(int n) {
    return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1u);
}

// Rows 4 * I + j (j < 4) of a transposed 16 x NP block: u[j] holds pixels 0-3 of row 4i + j
// in its 128-bit block i, u[4 + j] pixels 4-7. Rows >= `rows` are not stored.
#define STORE_BLOCK(I)                                                                        \
    _Pragma("unroll") for (int jj = 0; jj < 4; jj++) {                                        \
        const int r = 4 * (I) + jj;                                                           \
        if (r < rows) {                                                                       \
            float *d = y + (size_t)r * plane;                                                 \
            const __m128 lo4 = _mm512_extractf32x4_ps(u[jj], I);                              \
            if (NP >= 4) _mm_storeu_ps(d, lo4);                                               \
            else _mm_mask_storeu_ps(d, (__mmask8)((1u << NP) - 1u), lo4);                     \
            if (NP > 4) {                                                                     \
                const __m128 hi4 = _mm512_extractf32x4_ps(u[4 + jj], I);                      \
                if (NP == 8) _mm_storeu_ps(d + 4, hi4);                                       \
                else _mm_mask_storeu_ps(d + 4, (__mmask8)((1u << (NP - 4)) - 1u), hi4);       \
            }                                                                                 \
        }                                                                                     \
    }

// Stores a[p] (p < NP, lane i = output channel i) as y[i * plane + p] for i < rows.
static inline AI CV_TARGET void store_transposed(const __m512 *a, const int NP, float *y, size_t plane, int rows) {
    __m512 v[8], u[8];
    _Pragma("unroll") for (int p = 0; p < 8; p++) v[p] = p < NP ? a[p] : _mm512_setzero_ps();
    _Pragma("unroll") for (int h = 0; h < (NP > 4 ? 2 : 1); h++) {
        const __m512 t0 = _mm512_unpacklo_ps(v[4 * h], v[4 * h + 1]), t1 = _mm512_unpackhi_ps(v[4 * h], v[4 * h + 1]);
        const __m512 t2 = _mm512_unpacklo_ps(v[4 * h + 2], v[4 * h + 3]), t3 = _mm512_unpackhi_ps(v[4 * h + 2], v[4 * h + 3]);
        u[4 * h + 0] = _mm512_shuffle_ps(t0, t2, 0x44);
        u[4 * h + 1] = _mm512_shuffle_ps(t0, t2, 0xEE);
        u[4 * h + 2] = _mm512_shuffle_ps(t1, t3, 0x44);
        u[4 * h + 3] = _mm512_shuffle_ps(t1, t3, 0xEE);
    }
    STORE_BLOCK(0)
    STORE_BLOCK(1)
    STORE_BLOCK(2)
    STORE_BLOCK(3)
}

// The sums (weights layout: sconv_cv_accumulate.h), then the epilogue and the NCHW store.
static inline AI CV_TARGET void cv_tile(int kc, const float *w, const float *x, const int32_t *offsets, const int32_t *pix,
                                        float *y, size_t plane, int rows, const mpq_sgemm_tile_epilogue *ep, const int NV,
                                        const int NP) {
    const float *px[8];
    __m512 sums[64];
    mpq_sconv_cv_windows(x, pix, px, NP);
    mpq_sconv_cv_accumulate(kc, NULL, w, px, offsets, sums, NV, NP);
    _Pragma("unroll") for (int v = 0; v < NV; v++) {
        const int r = rows - 16 * v;
        if (r <= 0) break;
        __m512 *acc = sums + v * NP;
        if (ep) {
            // v + bias where bias != 0 (NaN included), as the other tiles and
            // mpq_conv_epilogue_f32 do; max(lo, v) then min(hi, v): NaN and -0 kept.
            if (ep->bias) {
                const __m512 b = _mm512_maskz_loadu_ps(lanes(r), ep->bias + 16 * v);
                const __mmask16 nz = _mm512_cmp_ps_mask(b, _mm512_setzero_ps(), _CMP_NEQ_UQ);
                _Pragma("unroll") for (int p = 0; p < NP; p++) acc[p] = _mm512_mask_add_ps(acc[p], nz, acc[p], b);
            }
            if (ep->clamp) {
                const __m512 lo = _mm512_set1_ps(ep->lo), hi = _mm512_set1_ps(ep->hi);
                _Pragma("unroll") for (int p = 0; p < NP; p++) acc[p] = _mm512_min_ps(hi, _mm512_max_ps(lo, acc[p]));
            }
        }
        store_transposed(acc, NP, y + (size_t)(16 * v) * plane, plane, r < 16 ? r : 16);
    }
}

#define CV_FN(V, P)                                                                                                  \
    static CV_TARGET void cv_##V##_##P(int kc, const float *w, const float *x, const int32_t *offsets,               \
                                       const int32_t *pix, float *y, size_t plane, int rows,                       \
                                       const mpq_sgemm_tile_epilogue *ep) {                                        \
        cv_tile(kc, w, x, offsets, pix, y, plane, rows, ep, V, P);                                                  \
    }
// Pixels per tile at most: 24 accumulators (8 for one vector: the FMA latency's minimum).
#define CV_ROW8(V) CV_FN(V, 1) CV_FN(V, 2) CV_FN(V, 3) CV_FN(V, 4) CV_FN(V, 5) CV_FN(V, 6) CV_FN(V, 7) CV_FN(V, 8)
#define CV_ROW6(V) CV_FN(V, 1) CV_FN(V, 2) CV_FN(V, 3) CV_FN(V, 4) CV_FN(V, 5) CV_FN(V, 6)
#define CV_ROW4(V) CV_FN(V, 1) CV_FN(V, 2) CV_FN(V, 3) CV_FN(V, 4)
#define CV_ROW3(V) CV_FN(V, 1) CV_FN(V, 2) CV_FN(V, 3)
CV_ROW8(1)
CV_ROW8(2)
CV_ROW8(3)
CV_ROW6(4)
CV_ROW4(5)
CV_ROW4(6)
CV_ROW3(7)
CV_ROW3(8)

typedef void (*cv_fn)(int, const float *, const float *, const int32_t *, const int32_t *, float *, size_t, int,
                      const mpq_sgemm_tile_epilogue *);
#define E8(V) {cv_##V##_1, cv_##V##_2, cv_##V##_3, cv_##V##_4, cv_##V##_5, cv_##V##_6, cv_##V##_7, cv_##V##_8}
#define E6(V) {cv_##V##_1, cv_##V##_2, cv_##V##_3, cv_##V##_4, cv_##V##_5, cv_##V##_6, NULL, NULL}
#define E4(V) {cv_##V##_1, cv_##V##_2, cv_##V##_3, cv_##V##_4, NULL, NULL, NULL, NULL}
#define E3(V) {cv_##V##_1, cv_##V##_2, cv_##V##_3, NULL, NULL, NULL, NULL, NULL}
static const cv_fn table[8][8] = {E8(1), E8(2), E8(3), E6(4), E4(5), E4(6), E3(7), E3(8)};

void mpq_sconv_cv_tile_avx512(int kc, const float *w, int nv, const float *x, const int32_t *offsets, const int32_t *pix,
                              int np, float *y, size_t plane, int rows, const mpq_sgemm_tile_epilogue *ep) {
    table[nv - 1][np - 1](kc, w, x, offsets, pix, y, plane, rows, ep);
}

// One channel plane [H][W] zero-padded into [hp][wp] (pad_top rows and pad_left columns
// first): every float written once, in 16-float stores; a masked load never touches memory
// outside the source row. Replaces a memcpy per row plus scalar pad columns (on 4x4-16x16
// planes the calls, not the bytes, were the cost: 8% of the detector's FP32 batch-1 samples).
CV_TARGET void mpq_sconv_pad_plane_avx512(const float *x, int H, int W, int pt, int pl, int hp, int wp, float *d) {
    const __m512 zero = _mm512_setzero_ps();
    for (int r = 0; r < hp; r++, d += wp) {
        const int h = r - pt;
        if (h < 0 || h >= H) {
            for (int q = 0; q < wp; q += 16) _mm512_mask_storeu_ps(d + q, lanes(wp - q), zero);
            continue;
        }
        const float *row = x + (size_t)h * (size_t)W;
        for (int q = 0; q < wp; q += 16) {
            // Lanes l with 0 <= q + l - pl < W read row[q + l - pl].
            const int lo = pl - q > 0 ? pl - q : 0, hi = W + pl - q < 16 ? W + pl - q : 16;
            const __mmask16 m = hi > lo ? (__mmask16)(lanes(hi) & ~lanes(lo)) : (__mmask16)0;
            const __m512 v = _mm512_maskz_loadu_ps(m, row + (q - pl));
            _mm512_mask_storeu_ps(d + q, lanes(wp - q), v);
        }
    }
}
