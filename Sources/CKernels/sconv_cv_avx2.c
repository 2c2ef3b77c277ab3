// AVX2 + FMA tile of the channel-vector FP32 Conv (sconv_cv.c, docs/fp32-gemm.md "Channel-
// vector tiles"; s21). The driver hands a tile of NV vectors of 16 output channels x NP output
// pixels (NV <= 8, NP <= mpq_sconv_cv_tile_pixels(NV)), sized for 32 zmm registers; AVX2 has 16
// ymm, so the tile runs as sub-tiles of one vector (16 channels = 2 ymm) x up to 6 pixels: 12
// accumulators, 2 weight loads and up to 6 broadcasts per k. Every output is still
// fmadd(w, x, acc) in k order from +0 on the same values, so the AVX-512 tile's and the
// reference's bits. The end: bias where it is not 0, the clamp (max(lo, v) then min(hi, v):
// NaN and -0 kept, as the other tiles), an 8x8 transpose per 8 channels, and NP consecutive
// output pixels stored per channel (NCHW).
//
// Why on AVX2: the direct path puts pixels in the lanes, so a 7x7 plane computes 64 lanes for
// 49 pixels and a 1x1 Conv with many input channels reads one cache line per k from a
// different plane; MobileNetV2's 1x1 projections at 14x14 and 7x7 ran at half ORT's rate
// there (s21, `mpq profile` against ORT's profiler).
#include "sgemm_internal.h"
#include <immintrin.h>

#define CV2_TARGET __attribute__((target("avx2,fma")))
#define AI inline __attribute__((always_inline))

static CV2_TARGET AI __m256i first_lanes(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// r[i] lane c -> r[c] lane i (8 x 8 floats).
static CV2_TARGET AI void transpose8_ps(__m256 r[8]) {
    __m256 a[8], b[8];
    for (int i = 0; i < 4; i++) {
        a[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        a[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 2; i++) {
        b[4 * i + 0] = _mm256_shuffle_ps(a[4 * i + 0], a[4 * i + 2], 0x44);
        b[4 * i + 1] = _mm256_shuffle_ps(a[4 * i + 0], a[4 * i + 2], 0xEE);
        b[4 * i + 2] = _mm256_shuffle_ps(a[4 * i + 1], a[4 * i + 3], 0x44);
        b[4 * i + 3] = _mm256_shuffle_ps(a[4 * i + 1], a[4 * i + 3], 0xEE);
    }
    for (int i = 0; i < 4; i++) {
        r[i] = _mm256_permute2f128_ps(b[i], b[4 + i], 0x20);
        r[4 + i] = _mm256_permute2f128_ps(b[i], b[4 + i], 0x31);
    }
}

// One sub-tile: the 16 channels whose weights are w[k * wstride + 0..15] x P pixels (x at
// px[p] + offsets[k]), epilogue, stored to channel rows [0, rows) of y (rows <= 16).
static CV2_TARGET AI void sub_tile(int kc, const float *w, size_t wstride, const float *const *px, const int32_t *offsets,
                                   float *y, size_t plane, int rows, const float *bias, const mpq_sgemm_tile_epilogue *ep,
                                   const int P) {
    __m256 acc[2][6];
    _Pragma("unroll") for (int p = 0; p < P; p++) acc[0][p] = acc[1][p] = _mm256_setzero_ps();
    for (int k = 0; k < kc; k++, w += wstride) {
        const ptrdiff_t o = offsets[k];
        const __m256 w0 = _mm256_loadu_ps(w), w1 = _mm256_loadu_ps(w + 8);
        _Pragma("unroll") for (int p = 0; p < P; p++) {
            const __m256 xb = _mm256_broadcast_ss(px[p] + o);
            acc[0][p] = _mm256_fmadd_ps(w0, xb, acc[0][p]);
            acc[1][p] = _mm256_fmadd_ps(w1, xb, acc[1][p]);
        }
    }
    _Pragma("unroll") for (int h = 0; h < 2; h++) {
        const int r = rows - 8 * h;
        if (r <= 0) break;
        if (ep && bias) {
            // v + bias where bias != 0 (NaN included), as mpq_conv_epilogue_f32 does.
            const __m256 b = _mm256_maskload_ps(bias + 8 * h, first_lanes(r));
            const __m256 nz = _mm256_cmp_ps(b, _mm256_setzero_ps(), _CMP_NEQ_UQ);
            _Pragma("unroll") for (int p = 0; p < P; p++)
                acc[h][p] = _mm256_blendv_ps(acc[h][p], _mm256_add_ps(acc[h][p], b), nz);
        }
        if (ep && ep->clamp) {
            const __m256 lo = _mm256_set1_ps(ep->lo), hi = _mm256_set1_ps(ep->hi);
            _Pragma("unroll") for (int p = 0; p < P; p++) acc[h][p] = _mm256_min_ps(hi, _mm256_max_ps(lo, acc[h][p]));
        }
        __m256 t[8];
        _Pragma("unroll") for (int p = 0; p < 8; p++) t[p] = p < P ? acc[h][p] : _mm256_setzero_ps();
        transpose8_ps(t);
        const __m256i keep = first_lanes(P);
        const int n = r < 8 ? r : 8;
        float *d = y + (size_t)(8 * h) * plane;
        for (int c = 0; c < n; c++) _mm256_maskstore_ps(d + (size_t)c * plane, keep, t[c]);
    }
}

#define SUB(P)                                                                                                        \
    static CV2_TARGET void sub_##P(int kc, const float *w, size_t wstride, const float *const *px,                    \
                                   const int32_t *offsets, float *y, size_t plane, int rows, const float *bias,       \
                                   const mpq_sgemm_tile_epilogue *ep) {                                                \
        sub_tile(kc, w, wstride, px, offsets, y, plane, rows, bias, ep, P);                                            \
    }
SUB(1)
SUB(2)
SUB(3)
SUB(4)
SUB(5)
SUB(6)
typedef void (*sub_fn)(int, const float *, size_t, const float *const *, const int32_t *, float *, size_t, int,
                       const float *, const mpq_sgemm_tile_epilogue *);
static const sub_fn subs[6] = {sub_1, sub_2, sub_3, sub_4, sub_5, sub_6};

void mpq_sconv_cv_tile_avx2(int kc, const float *w, int nv, const float *x, const int32_t *offsets, const int32_t *pix,
                            int np, float *y, size_t plane, int rows, const mpq_sgemm_tile_epilogue *ep) {
    // Weights (sconv_cv_accumulate.h): nv <= 4, one block of rows [k][16 nv]; nv > 4, a block
    // of rows of 64 then one of rows of 16 (nv - 4) at w + kc * 64.
    const int na = nv < 4 ? nv : 4, nb = nv - na;
    // Pixels in chunks of at most 6, as even as they go (8 -> 4 + 4: eight FMA chains each).
    const int chunks = (np + 5) / 6;
    for (int v = 0; v < nv; v++) {
        const int r = rows - 16 * v;
        if (r <= 0) break;
        const float *wv = v < na ? w + 16 * v : w + (size_t)kc * 64 + 16 * (v - na);
        const size_t wstride = v < na ? 16 * (size_t)na : 16 * (size_t)nb;
        const float *bias = ep && ep->bias ? ep->bias + 16 * v : NULL;
        for (int c = 0, p0 = 0; c < chunks; c++) {
            const int p1 = (int)((long)np * (c + 1) / chunks);
            const float *px[6];
            for (int p = p0; p < p1; p++) px[p - p0] = x + pix[p];
            subs[p1 - p0 - 1](kc, wv, wstride, px, offsets, y + (size_t)(16 * v) * plane + p0, plane, r < 16 ? r : 16, bias,
                              ep);
            p0 = p1;
        }
    }
}
