// AVX-512 FP32 depthwise conv for planes narrower than 16 outputs (MobileNet's 14x14 and
// 7x7 layers), the same window-gather idea as the INT8 kernel (depthwise_vnni.c):
//
// The 3x3 plane kernel (depthwise_f32.c) vectorises 8 outputs of one row and sends every
// output whose window touches padding, and every row shorter than 8, to a scalar loop:
// on a 7x7 plane nothing is vectorised, on 14x14 over half the outputs are scalar (about
// 1 GFLOP/s). Here a plan, computed once per call from the geometry (every channel
// shares it), puts several output rows in one 16-lane vector (7x7: two rows) and says for
// each (group of outputs, kernel tap) which 32 floats to load and how `vpermt2ps` picks
// each output's input from them, with a mask of the lanes whose tap lies inside the
// input. Each tap is then a masked fused multiply-add of w * x: padded taps are skipped,
// not added as 0, and every output sums its taps in (kh, kw) order from +0 with one FMA
// per tap, then adds +0, exactly like the reference, so this path gives the reference's bits.
#pragma STDC FP_CONTRACT OFF
#include "mpq_internal.h"
#include <immintrin.h>
#include <stdlib.h>

#define AVX512_TARGET __attribute__((target("avx512f,fma")))

/// How 16 outputs get one tap's inputs: lane l = window[idx[l]], window = 32 floats at
/// `offset` (relative to the plane), loaded where `load_lo`/`load_hi` say (inside the plane).
typedef struct {
    _Alignas(64) int32_t idx[16];
    int64_t offset;
    uint16_t load_lo, load_hi, valid;
} tap_gather;
_Static_assert(sizeof(tap_gather) == 128, "tap entries keep idx 64-byte aligned");

/// Fills the plan for `rows` output rows per vector; -1 if a window does not fit 32 floats.
static int plan_fill(const mpq_conv2d_shape *s, int OH, int OW, int rows, tap_gather *plan) {
    const int KH = s->kernel_h, KW = s->kernel_w, H = s->height, W = s->width;
    const int groups = (OH + rows - 1) / rows;
    const int64_t plane = (int64_t)H * W;
    for (int g = 0; g < groups; g++)
        for (int t = 0; t < KH * KW; t++) {
            tap_gather *e = plan + (size_t)g * (size_t)(KH * KW) + (size_t)t;
            const int kh = t / KW, kw = t % KW;
            int64_t pos[16], lo = INT64_MAX, hi = INT64_MIN;
            e->valid = 0;
            for (int l = 0; l < 16; l++) {
                const int oh = g * rows + l / OW, ow = l % OW;
                pos[l] = -1;
                if (l >= rows * OW || oh >= OH) continue;
                const int ih = oh * s->stride_h - s->pad_top + kh * s->dilation_h;
                const int iw = ow * s->stride_w - s->pad_left + kw * s->dilation_w;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                pos[l] = (int64_t)ih * W + iw;
                e->valid |= (uint16_t)(1u << l);
                if (pos[l] < lo) lo = pos[l];
                if (pos[l] > hi) hi = pos[l];
            }
            if (!e->valid) lo = hi = 0;
            if (hi - lo >= 32) return -1;
            e->offset = lo;
            e->load_lo = e->load_hi = 0;
            for (int l = 0; l < 16; l++) {
                e->idx[l] = pos[l] < 0 ? 0 : (int32_t)(pos[l] - lo);
                if (lo + l >= 0 && lo + l < plane) e->load_lo |= (uint16_t)(1u << l);
                if (lo + 16 + l >= 0 && lo + 16 + l < plane) e->load_hi |= (uint16_t)(1u << l);
            }
        }
    return 0;
}

AVX512_TARGET int mpq_depthwise_f32_avx512(const float *x, const mpq_conv2d_shape *s, const float *w, float *y) {
    const int OH = mpq_conv2d_out_h(s), OW = mpq_conv2d_out_w(s);
    const int KH = s->kernel_h, KW = s->kernel_w, taps = KH * KW;
    if (OW >= 16 || taps > 64) return -1;
    tap_gather *plan = NULL;
    int rows = 16 / OW;
    for (; rows >= 1; rows--) {
        if (rows > OH && rows > 1) continue;
        free(plan);
        const size_t groups = (size_t)((OH + rows - 1) / rows);
        plan = aligned_alloc(64, groups * (size_t)taps * sizeof(tap_gather));
        if (!plan) return -1;
        if (plan_fill(s, OH, OW, rows, plan) == 0) break;
    }
    if (rows < 1) { free(plan); return -1; }
    const int groups = (OH + rows - 1) / rows;
    const size_t plane_in = (size_t)s->height * (size_t)s->width, plane_out = (size_t)OH * (size_t)OW;
    for (int c = 0; c < s->channels; c++) {
        const float *xc = x + (size_t)c * plane_in;
        const float *wc = w + (size_t)c * (size_t)taps;
        __m512 wv[64];
        for (int t = 0; t < taps; t++) wv[t] = _mm512_set1_ps(wc[t]);
        for (int g = 0; g < groups; g++) {
            const tap_gather *e = plan + (size_t)g * (size_t)taps;
            __m512 acc = _mm512_setzero_ps();
            for (int t = 0; t < taps; t++, e++) {
                const float *win = xc + e->offset;
                __m512 a = _mm512_maskz_loadu_ps(e->load_lo, win), b = _mm512_maskz_loadu_ps(e->load_hi, win + 16);
                __m512 v = _mm512_permutex2var_ps(a, _mm512_load_si512(e->idx), b);
                acc = _mm512_mask3_fmadd_ps(wv[t], v, acc, e->valid);
            }
            const int oh = g * rows, n = (OH - oh < rows ? OH - oh : rows) * OW;
            _mm512_mask_storeu_ps(y + (size_t)c * plane_out + (size_t)oh * (size_t)OW, (__mmask16)((1u << n) - 1),
                                  _mm512_add_ps(acc, _mm512_setzero_ps()));
        }
    }
    free(plan);
    return 0;
}

// MARK: - Wide rows: 16 outputs of a row per vector, borders included

// The 3x3 plane kernel (depthwise_f32.c) sends every output whose window touches padding
// (the first and last column of each row, the first and last row) to a scalar loop: on
// MobileNetV2's 112-28 wide planes that scalar `pixel` took ~40% of the kernel's time
// (perf, batch 16). Here each tap of 16 outputs of a row is one masked load (columns
// outside the input are not read) and a *masked* fused multiply-add (lanes whose tap lies
// in the padding keep their sum), and a kernel row outside the input is skipped: every
// output, border or not, sums exactly the taps inside the input in (kh, kw) order from +0
// with one FMA per tap, then adds +0, as the reference does, so it gives the reference's
// bits. Stride 2 loads 32 consecutive floats and keeps the even ones (`vpermt2ps`).
// Up to four output rows run side by side (four independent add chains).

/// Lanes [lo, hi) of a `bits`-lane mask (empty when hi <= lo), lo and hi clamped to [0, bits].
static inline uint32_t lane_range(int lo, int hi, int bits) {
    if (lo < 0) lo = 0;
    if (hi > bits) hi = bits;
    if (hi <= lo) return 0;
    const uint64_t upper = (hi == 64) ? ~0ull : ((1ull << hi) - 1);
    return (uint32_t)(upper & ~((1ull << lo) - 1));
}

/// Outputs ow in [lo, hi) whose column tap `kw` (column ow * s - pad_left + kw) lies
/// inside [0, W), for stride s = 1 or 2 (shifts, no division: this runs per block).
static inline void tap_columns(int s, int pad_left, int kw, int W, int *lo, int *hi) {
    const int a = pad_left - kw, b = W - 1 + pad_left - kw;
    *lo = a <= 0 ? 0 : (s == 1 ? a : (a + 1) >> 1);
    *hi = b < 0 ? 0 : (s == 1 ? b : b >> 1) + 1;
}

/// The masks of the 16-column block at `ow0`: `valid[kw]` the lanes whose tap kw is inside
/// the row, `lo2[kw]`/`hi2[kw]` the floats a stride-2 block loads; returns the store mask.
static inline uint16_t block_masks(const mpq_conv2d_shape *s, int KW, int W, int OW, int ow0, uint16_t *valid,
                                   uint16_t *lo2, uint16_t *hi2) {
    const int last = OW - ow0 < 16 ? OW - ow0 : 16;
    for (int kw = 0; kw < KW; kw++) {
        int lo, hi;
        tap_columns(s->stride_w, s->pad_left, kw, W, &lo, &hi);
        lo -= ow0, hi -= ow0;
        if (hi > last) hi = last;
        valid[kw] = (uint16_t)lane_range(lo, hi, 16);
        // Stride 2: lane l reads float 2l of the 32 loaded; load floats [2lo, 2hi - 1),
        // all between two columns inside the row.
        const uint32_t span = lane_range(2 * lo, 2 * hi - 1, 32);
        lo2[kw] = (uint16_t)span;
        hi2[kw] = (uint16_t)(span >> 16);
    }
    return (uint16_t)lane_range(0, last, 16);
}

/// `n` output rows (`oh0`...) x 16 columns (`ow0`...), kernel KH x KW: `valid[kw]` the lanes
/// whose tap kw is inside the row, `lo2[kw]`/`hi2[kw]` the stride-2 load masks.
static AVX512_TARGET inline __attribute__((always_inline)) void rows_block(
    const float *xc, int H, int W, const mpq_conv2d_shape *s, const __m512 *wv, int KH, int KW, int sw, int n, int oh0,
    int ow0, const uint16_t *valid, const uint16_t *lo2, const uint16_t *hi2, uint16_t store, float *y, int OW) {
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    // Branch-free, fully unrolled for constant sizes (a `continue` per padded row kept the
    // accumulators on the stack): a kernel row in the padding gets an all-zero mask (no
    // load, no add) and a row pointer clamped to row 0.
    for (int kh = 0; kh < KH; kh++) {
        const float *row[4];
        __mmask16 inside[4];
#pragma clang loop unroll(full)
        for (int j = 0; j < n; j++) {
            const int ih = (oh0 + j) * s->stride_h - s->pad_top + kh * s->dilation_h;
            const int in = (unsigned)ih < (unsigned)H;
            row[j] = xc + (size_t)(in ? ih : 0) * (size_t)W + ((ptrdiff_t)ow0 * sw - s->pad_left);
            inside[j] = in ? 0xFFFF : 0;
        }
        for (int kw = 0; kw < KW; kw++) {
            const __m512 wt = wv[kh * KW + kw];
#pragma clang loop unroll(full)
            for (int j = 0; j < n; j++) {
                // Lanes outside the row (or the whole kernel row in the padding) are masked, never read.
                const __mmask16 m = valid[kw] & inside[j];
                __m512 v;
                if (sw == 1) {
                    v = _mm512_maskz_loadu_ps(m, row[j] + kw);
                } else {
                    const __mmask16 l = lo2[kw] & inside[j], h = hi2[kw] & inside[j];
                    v = _mm512_permutex2var_ps(_mm512_maskz_loadu_ps(l, row[j] + kw), even, _mm512_maskz_loadu_ps(h, row[j] + kw + 16));
                }
                acc[j] = _mm512_mask3_fmadd_ps(wt, v, acc[j], m);
            }
        }
    }
    for (int j = 0; j < n; j++)
        _mm512_mask_storeu_ps(y + (size_t)(oh0 + j) * (size_t)OW + ow0, store, _mm512_add_ps(acc[j], _mm512_setzero_ps()));
}

/// `rows_block` for n = 1-4 rows of an undilated 3x3 plane, stride 1 or 2 across.
static AVX512_TARGET void block3x3(const float *xc, const mpq_conv2d_shape *s, const __m512 *wv, int n, int oh0, int ow0,
                                   const uint16_t *valid, const uint16_t *lo2, const uint16_t *hi2, uint16_t store,
                                   float *yc, int OW) {
    const int H = s->height, W = s->width;
#define MPQ_BLOCK(sw, rows) rows_block(xc, H, W, s, wv, 3, 3, sw, rows, oh0, ow0, valid, lo2, hi2, store, yc, OW)
    if (s->stride_w == 1) {
        switch (n) {
        case 4: MPQ_BLOCK(1, 4); break;
        case 3: MPQ_BLOCK(1, 3); break;
        case 2: MPQ_BLOCK(1, 2); break;
        default: MPQ_BLOCK(1, 1); break;
        }
    } else {
        switch (n) {
        case 4: MPQ_BLOCK(2, 4); break;
        case 3: MPQ_BLOCK(2, 3); break;
        case 2: MPQ_BLOCK(2, 2); break;
        default: MPQ_BLOCK(2, 1); break;
        }
    }
#undef MPQ_BLOCK
}

/// The outputs of one undilated 3x3 plane (stride 1 or 2 across) that the 3x3 plane kernel
/// (depthwise_f32.c) leaves to masked blocks: every row outside [oh_lo, oh_hi] (whose
/// windows leave the input's rows), and the 16-blocks [0, L) from the left and [R, OW)
/// from the right of the others. The scalar pixel did these: ~40% of a 112-wide plane's
/// time for 2% of its outputs. Masks are computed once per column block, the rows run in
/// groups of four under it. Same bits as the pixel (`rows_block`).
AVX512_TARGET void mpq_depthwise3x3_f32_borders_avx512(const float *xc, int H, int W, const float *w9, int stride_h,
                                                      int stride_w, int pad_top, int pad_left, int OH, int OW,
                                                      int oh_lo, int oh_hi, int L, int R, float *yc) {
    const mpq_conv2d_shape s = {.channels = 1, .height = H, .width = W, .kernel_h = 3, .kernel_w = 3,
                                .pad_top = pad_top, .pad_left = pad_left, .stride_h = stride_h, .stride_w = stride_w,
                                .dilation_h = 1, .dilation_w = 1, .group = 1};
    __m512 wv[9];
    for (int t = 0; t < 9; t++) wv[t] = _mm512_set1_ps(w9[t]);
    uint16_t valid[3], lo2[3], hi2[3];
    // Rows outside [oh_lo, oh_hi]: whole rows, one at a time.
    for (int b = 0; b < OW; b += 16) {
        const uint16_t store = block_masks(&s, 3, W, OW, b, valid, lo2, hi2);
        for (int oh = 0; oh < OH; oh++)
            if (oh < oh_lo || oh > oh_hi) block3x3(xc, &s, wv, 1, oh, b, valid, lo2, hi2, store, yc, OW);
    }
    // Rows inside: the blocks [0, L) from the left and [R, OW) from the right, four rows at a time.
    for (int side = 0; side < 2; side++)
        for (int b = side ? R : 0; b < (side ? OW : L); b += 16) {
            const uint16_t store = block_masks(&s, 3, W, OW, b, valid, lo2, hi2);
            for (int oh = oh_lo; oh <= oh_hi;) {
                const int n = oh_hi + 1 - oh < 4 ? oh_hi + 1 - oh : 4;
                block3x3(xc, &s, wv, n, oh, b, valid, lo2, hi2, store, yc, OW);
                oh += n;
            }
        }
}

AVX512_TARGET int mpq_depthwise_f32_rows_avx512(const float *x, const mpq_conv2d_shape *s, const float *w, float *y) {
    const int OH = mpq_conv2d_out_h(s), OW = mpq_conv2d_out_w(s);
    const int KH = s->kernel_h, KW = s->kernel_w, H = s->height, W = s->width, taps = KH * KW;
    if ((s->stride_w != 1 && s->stride_w != 2) || s->dilation_w != 1 || KW > 16 || taps > 64 || OH <= 0 || OW <= 0) return -1;
    const size_t plane_in = (size_t)H * (size_t)W, plane_out = (size_t)OH * (size_t)OW;
    for (int c = 0; c < s->channels; c++) {
        const float *xc = x + (size_t)c * plane_in;
        float *yc = y + (size_t)c * plane_out;
        __m512 wv[64];
        for (int t = 0; t < taps; t++) wv[t] = _mm512_set1_ps(w[(size_t)c * (size_t)taps + (size_t)t]);
        // Rows outer, column blocks inner: a group of rows' inputs stays in L1 while it is
        // swept left to right (the masks are a few integer ops per block).
        for (int oh = 0; oh < OH;) {
            const int n = OH - oh >= 4 ? 4 : 1;
            for (int ow0 = 0; ow0 < OW; ow0 += 16) {
                uint16_t valid[16], lo2[16], hi2[16];
                const uint16_t store = block_masks(s, KW, W, OW, ow0, valid, lo2, hi2);
                // Constant kernel size, stride and row count for MobileNet's 3x3 layers.
#define MPQ_ROWS(kh, kw, sw, n) rows_block(xc, H, W, s, wv, kh, kw, sw, n, oh, ow0, valid, lo2, hi2, store, yc, OW)
                if (KH == 3 && KW == 3 && s->stride_w == 1) {
                    if (n == 4) MPQ_ROWS(3, 3, 1, 4); else MPQ_ROWS(3, 3, 1, 1);
                } else if (s->stride_w == 1) {
                    if (n == 4) MPQ_ROWS(KH, KW, 1, 4); else MPQ_ROWS(KH, KW, 1, 1);
                } else {
                    if (n == 4) MPQ_ROWS(KH, KW, 2, 4); else MPQ_ROWS(KH, KW, 2, 1);
                }
#undef MPQ_ROWS
            }
            oh += n;
        }
    }
    return 0;
}
