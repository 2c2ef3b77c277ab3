// FP32 depthwise conv on AVX2 (docs/depthwise.md, "AVX2"), the entry mpq_depthwise3x3_f32_lanes
// takes on the AVX2 path: the AVX-512 kernels' contract (the bits of mpq_depthwise_f32 then
// mpq_conv_epilogue_f32), with the INT8 AVX2 kernel's layout (depthwise_avx2.c). Per channel
// the plane is copied into a zero-padded buffer whose columns are split into `stride_w`
// phases (column q of the padded row at phase q % sw, index q / sw), so every tap of a block
// of 16 outputs is two contiguous 8-lane loads and no output takes a scalar path. The row
// kernel it replaces (mpq_depthwise3x3_f32_avx2) ran borders and row tails through the scalar
// pixel: 1.5-8 GFLOP/s on MobileNetV2's layers, 7x7 planes almost all border.
//
// Same bits as the reference: each output sums its taps in (kh, kw) order from +0 with one
// fused multiply-add each, then + 0. The reference skips taps outside the input; here they
// read 0 and add w * 0 = +-0, which only ever changes the sign of a zero sum (x + +-0 is x
// for x != 0), and the final + 0 turns -0 into +0 either way. That needs finite weights (inf
// * 0 is NaN): the caller rejects others. The epilogue is mpq_conv_epilogue_f32's: + bias when
// the bias is not 0, then the clamp with NaN kept (max(lo, v), min(hi, v) return v for NaN v).
#pragma STDC FP_CONTRACT OFF
#include "depthwise_padded.h"
#include <immintrin.h>
#include "transpose8_f32_avx2.h"
#include <stdlib.h>
#include <string.h>

#define AVX2_TARGET __attribute__((target("avx2,fma")))
#define BLOCK MPQ_DW_PADDED_BLOCK  // outputs per block: two vectors

typedef struct {
    const float *x, *w, *bias;
    float *y;
    const mpq_conv2d_shape *s;
    int OH, OW, chunk, clamp;
    float lo, hi;
    mpq_dw_padded g;
} dwf_job;

// t[q] = x[q - pl] inside the row, 0 elsewhere, q in [0, n) (n a multiple of 16). Vector
// stores, not memset/memcpy: a 7x7 plane's rows are 7 floats, and three library calls per
// row cost more than the row's taps.
static AVX2_TARGET void pad_row(const float *row, int W, int pl, float *t, int n) {
    const __m256 zero = _mm256_setzero_ps();
    for (int q = 0; q < n; q += 8) _mm256_storeu_ps(t + q, zero);
    const int count = pl + W < n ? W : n - pl;
    int i = 0;
    for (; i + 8 <= count; i += 8) _mm256_storeu_ps(t + pl + i, _mm256_loadu_ps(row + i));
    if (i < count) {
        // The tail through a lane mask: no read past the row.
        const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(count - i), lanes);
        mpq_store_first8(t + pl + i, _mm256_maskload_ps(row + i, mask), count - i);
    }
}

// Column q of t to phase q % sw at q / sw.
static AVX2_TARGET void split_phases(const float *t, int sw, int len, float *dst) {
    if (sw == 2) {
        for (int j = 0; j < len; j += 8) {
            const __m256 a = _mm256_loadu_ps(t + 2 * j), b = _mm256_loadu_ps(t + 2 * j + 8);
            // shuffle_ps picks per 128-bit lane: [a0 a2 b0 b2 | a4 a6 b4 b6]; the qword
            // permute puts a's pairs first.
            const __m256 ev = _mm256_shuffle_ps(a, b, 0x88), od = _mm256_shuffle_ps(a, b, 0xDD);
            _mm256_storeu_ps(dst + j, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(ev), 0xD8)));
            _mm256_storeu_ps(dst + len + j, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(od), 0xD8)));
        }
        return;
    }
    for (int p = 0; p < sw; p++)
        for (int j = 0; j < len; j++) dst[(size_t)p * len + j] = t[(size_t)j * sw + p];
}

static AVX2_TARGET void pad_plane(const float *plane, const mpq_conv2d_shape *s, const mpq_dw_padded *g, float *buf,
                                  float *scratch) {
    const int sw = s->stride_w, n = sw * g->len;
    for (int r = 0; r < g->rows; r++) {
        float *dst = buf + (size_t)r * g->row_stride;
        const int ih = r - s->pad_top;
        if (ih < 0 || ih >= s->height) {
            memset(dst, 0, g->row_stride * sizeof(float));
            continue;
        }
        const float *row = plane + (size_t)ih * (size_t)s->width;
        if (sw == 1) {
            pad_row(row, s->width, s->pad_left, dst, n);
        } else {
            pad_row(row, s->width, s->pad_left, scratch, n);
            split_phases(scratch, sw, g->len, dst);
        }
    }
}

// 16 outputs from `b` (the block's first output in the padded plane): taps in (kh, kw) order.
static inline __attribute__((always_inline)) AVX2_TARGET void block_sums(const float *b, const size_t *off, const __m256 *wv,
                                                                         int taps, __m256 *s0, __m256 *s1) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    for (int t = 0; t < taps; t++) {
        a0 = _mm256_fmadd_ps(wv[t], _mm256_loadu_ps(b + off[t]), a0);
        a1 = _mm256_fmadd_ps(wv[t], _mm256_loadu_ps(b + off[t] + 8), a1);
    }
    *s0 = a0;
    *s1 = a1;
}

static inline AVX2_TARGET __m256 epilogue8(__m256 v, int add_bias, __m256 bias, int clamp, __m256 lo, __m256 hi) {
    v = _mm256_add_ps(v, _mm256_setzero_ps());  // a -0 sum reads +0
    if (add_bias) v = _mm256_add_ps(v, bias);
    if (clamp) v = _mm256_min_ps(hi, _mm256_max_ps(lo, v));
    return v;
}

static AVX2_TARGET void run_channel(const dwf_job *j, int c, float *buf, float *scratch) {
    const mpq_conv2d_shape *s = j->s;
    const int KH = s->kernel_h, KW = s->kernel_w, taps = KH * KW, OH = j->OH, OW = j->OW;
    const mpq_dw_padded *g = &j->g;
    pad_plane(j->x + (size_t)c * s->height * s->width, s, g, buf, scratch);
    const size_t *off = g->off;  // the call's tap offsets
    __m256 wv[64];
    for (int t = 0; t < taps; t++) wv[t] = _mm256_set1_ps(j->w[(size_t)c * taps + t]);
    const float b = j->bias ? j->bias[c] : 0.0f;
    const int add_bias = b != 0.0f, clamp = j->clamp;
    const __m256 bias = _mm256_set1_ps(b), lo = _mm256_set1_ps(j->lo), hi = _mm256_set1_ps(j->hi);
    float *const yc = j->y + (size_t)c * OH * OW;
    if (OW <= 8) {
        // One vector per output row (7x7 planes): half the taps of a 16-output block.
        for (int oh = 0; oh < OH; oh++) {
            const float *row = buf + (size_t)oh * s->stride_h * g->row_stride;
            __m256 a = _mm256_setzero_ps();
            for (int t = 0; t < taps; t++) a = _mm256_fmadd_ps(wv[t], _mm256_loadu_ps(row + off[t]), a);
            mpq_store_first8(yc + (size_t)oh * OW, epilogue8(a, add_bias, bias, clamp, lo, hi), OW);
        }
        return;
    }
    for (int oh = 0; oh < OH; oh++) {
        const float *row = buf + (size_t)oh * s->stride_h * g->row_stride;
        float *yrow = yc + (size_t)oh * OW;
        for (int ow = 0; ow < OW; ow += BLOCK) {
            __m256 s0, s1;
            if (taps == 9) block_sums(row + ow, off, wv, 9, &s0, &s1);
            else block_sums(row + ow, off, wv, taps, &s0, &s1);
            s0 = epilogue8(s0, add_bias, bias, clamp, lo, hi);
            s1 = epilogue8(s1, add_bias, bias, clamp, lo, hi);
            if (OW - ow >= BLOCK) {
                _mm256_storeu_ps(yrow + ow, s0);
                _mm256_storeu_ps(yrow + ow + 8, s1);
            } else {
                float tmp[BLOCK];
                _mm256_storeu_ps(tmp, s0);
                _mm256_storeu_ps(tmp + 8, s1);
                memcpy(yrow + ow, tmp, (size_t)(OW - ow) * sizeof(float));
            }
        }
    }
}

// Channels [u * chunk, ...): -1 from the job's status when the buffer cannot be had.
static void channels_unit(void *arg, int u, int task) {
    (void)task;
    dwf_job *j = (dwf_job *)arg;
    const int C = j->s->channels, c0 = u * j->chunk, c1 = c0 + j->chunk < C ? c0 + j->chunk : C;
    // The padded plane, then one row before phase splitting.
    const size_t plane = j->g.plane;
    float *buf = (float *)mpq_dw_padded_scratch((plane + j->g.row_stride) * sizeof(float));
    if (!buf) {
        // The reference then the epilogue on these channels: the same bits, slower.
        mpq_conv2d_shape part = *j->s;
        part.channels = part.group = c1 - c0;
        const size_t in = (size_t)j->s->height * j->s->width, out = (size_t)j->OH * j->OW;
        const int taps = j->s->kernel_h * j->s->kernel_w;
        mpq_depthwise_f32_reference(j->x + c0 * in, &part, j->w + (size_t)c0 * taps, j->y + c0 * out);
        mpq_conv_epilogue_f32(MPQ_PATH_REFERENCE, j->y + c0 * out, (size_t)(c1 - c0), out, out, j->bias ? j->bias + c0 : NULL,
                                        j->clamp ? MPQ_ACT_CLAMP : MPQ_ACT_NONE, j->lo, j->hi);
        return;
    }
    for (int c = c0; c < c1; c++) run_channel(j, c, buf, buf + plane);
}

int mpq_depthwise_f32_padded_avx2(const float *x, const mpq_conv2d_shape *s, const float *w, const float *bias,
                                  int clamp, float lo, float hi, float *y, int threads) {
    const int OH = mpq_conv2d_out_h(s), OW = mpq_conv2d_out_w(s), C = s->channels;
    if (s->kernel_h * s->kernel_w > 64 || s->stride_w < 1 || s->stride_h < 1) return -1;
    dwf_job j = {x, w, bias, y, s, OH, OW, C, clamp, lo, hi};
    mpq_dw_padded_plan(s, OH, OW, s->kernel_h * s->kernel_w, &j.g);
    if (threads > 1 && C > 1) {
        // About 8 contiguous channel ranges per thread: a core another process takes holds
        // back only its range.
        const int units = 8 * threads;
        j.chunk = (C + units - 1) / units;
        mpq_run_ranges(threads, (C + j.chunk - 1) / j.chunk, channels_unit, &j);
    } else {
        channels_unit(&j, 0, 0);
    }
    return 0;
}
