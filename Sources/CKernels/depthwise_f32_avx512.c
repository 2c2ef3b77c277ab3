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
// input. Each tap is then a masked add of w * x: padded taps are skipped, not added as 0,
// and every output sums its taps in (kh, kw) order from +0 with a separate multiply and
// add, exactly like the reference, so this path gives the reference's bits (no FMA).
#pragma STDC FP_CONTRACT OFF
#include "mpq_internal.h"
#include <immintrin.h>
#include <stdlib.h>

#define AVX512_TARGET __attribute__((target("avx512f")))

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
                acc = _mm512_mask_add_ps(acc, e->valid, acc, _mm512_mul_ps(wv[t], v));
            }
            const int oh = g * rows, n = (OH - oh < rows ? OH - oh : rows) * OW;
            _mm512_mask_storeu_ps(y + (size_t)c * plane_out + (size_t)oh * (size_t)OW, (__mmask16)((1u << n) - 1), acc);
        }
    }
    free(plan);
    return 0;
}
