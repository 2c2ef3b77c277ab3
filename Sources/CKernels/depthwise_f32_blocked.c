// FP32 depthwise 3x3 on channel-blocked activations ([N][C/16][H][W][16], docs/fp32-blocked-layout.md,
// step 3): the lanes kernel (depthwise_f32_lanes.c) without its transposes. There every 16-channel
// block's input rows were transposed into a ring of padded rows and every output row transposed
// back into planes; here a blocked row already is [pixel][16], so an output vector is nine fused
// multiply-adds of weight vectors and input vectors read in place. Only the outputs whose window
// crosses the left or right edge read a small zero-padded copy of their three columns; a row above
// or below the image reads a zero row.
//
// Bits: the lanes kernel's arithmetic per lane (the first tap a product, then eight FMAs in
// (kh, kw) order, a padded tap multiplying +0, then the bias or +0, then the clamp), which its
// header shows equal to the reference (taps inside from +0, + 0, the bias when not 0, clamp1) for
// finite weights; a non-finite weight returns -1 (the caller runs the NCHW kernels). Lanes past C
// are stored +0 (the layout's invariant), whatever the clamp's range. The scalar path computes
// the reference's sums directly. Every FMA is written out (no implicit contraction).
#pragma STDC FP_CONTRACT OFF
#include "mpq_internal.h"
#include "mpq_sgemm.h"
#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define BDW_TARGET __attribute__((target("avx512f,fma")))
#define AI inline __attribute__((always_inline))

typedef struct {
    const float *x, *w, *bias;
    float *y;
    int C, H, W, OH, OW, sh, sw, pt, pl, cbs, strips, clamp;
    float lo, hi;
    size_t in_image, out_image;
} bdw_job;

/// Reference for one output lane: taps inside the image in (kh, kw) order from +0 by fmaf,
/// + 0, the bias when not 0, clamp1 (`mpq_depthwise3x3_f32_reference` + `mpq_conv_epilogue_f32`).
static float reference_output(const bdw_job *j, const float *xb, int c, int oh, int ow) {
    const float *wc = j->w + (size_t)c * 9;
    float acc = 0.0f;
    for (int kh = 0; kh < 3; kh++)
        for (int kw = 0; kw < 3; kw++) {
            const int ih = oh * j->sh - j->pt + kh, iw = ow * j->sw - j->pl + kw;
            if (ih < 0 || ih >= j->H || iw < 0 || iw >= j->W) continue;
            acc = fmaf(wc[kh * 3 + kw], xb[((size_t)ih * j->W + (size_t)iw) * 16 + (size_t)(c % 16)], acc);
        }
    float v = acc + 0.0f;
    const float b = j->bias ? j->bias[c] : 0.0f;
    if (b != 0.0f) v = v + b;
    if (j->clamp) v = v < j->lo ? j->lo : (v > j->hi ? j->hi : v);
    return v;
}

static void unit_reference(const bdw_job *j, int img, int cb, int oh0, int oh1) {
    const float *xb = j->x + (size_t)img * j->in_image + (size_t)cb * j->H * j->W * 16;
    float *yb = j->y + (size_t)img * j->out_image + (size_t)cb * j->OH * j->OW * 16;
    for (int oh = oh0; oh < oh1; oh++)
        for (int ow = 0; ow < j->OW; ow++)
            for (int l = 0; l < 16; l++) {
                const int c = cb * 16 + l;
                yb[((size_t)oh * j->OW + ow) * 16 + (size_t)l] = c < j->C ? reference_output(j, xb, c, oh, ow) : 0.0f;
            }
}

/// One output vector from three rows of three tap vectors each (`r[kh] + kw * step`): the lanes
/// kernel's `output1`, then lanes past C set to +0.
static BDW_TARGET AI __m512 output1(const float *r0, const float *r1, const float *r2, const int step, const __m512 *wv,
                                    __m512 bv, const int clamp, __m512 lo, __m512 hi, __mmask16 live) {
    __m512 acc = _mm512_mul_ps(wv[0], _mm512_loadu_ps(r0));
    acc = _mm512_fmadd_ps(wv[1], _mm512_loadu_ps(r0 + step), acc);
    acc = _mm512_fmadd_ps(wv[2], _mm512_loadu_ps(r0 + 2 * step), acc);
    acc = _mm512_fmadd_ps(wv[3], _mm512_loadu_ps(r1), acc);
    acc = _mm512_fmadd_ps(wv[4], _mm512_loadu_ps(r1 + step), acc);
    acc = _mm512_fmadd_ps(wv[5], _mm512_loadu_ps(r1 + 2 * step), acc);
    acc = _mm512_fmadd_ps(wv[6], _mm512_loadu_ps(r2), acc);
    acc = _mm512_fmadd_ps(wv[7], _mm512_loadu_ps(r2 + step), acc);
    acc = _mm512_fmadd_ps(wv[8], _mm512_loadu_ps(r2 + 2 * step), acc);
    acc = _mm512_add_ps(acc, bv);
    if (clamp) acc = _mm512_max_ps(lo, _mm512_min_ps(hi, acc));
    return _mm512_maskz_mov_ps(live, acc);
}

/// Output row `oh` of one block: `rows[kh]` the input rows (or a zero row), outputs [a, b) read
/// in place, the others through a zero-padded copy of their three columns.
static BDW_TARGET AI void row_k(const bdw_job *j, const float *const *rows, const __m512 *wv, __m512 bv, const int clamp,
                                __m512 lo, __m512 hi, __mmask16 live, const int s, int a, int b, float *yrow) {
    _Alignas(64) float patch[3][48];
    for (int ow = 0; ow < j->OW; ow++) {
        if (ow == a && b > a) {
            const size_t st = (size_t)s * 16;
            const float *p0 = rows[0] + ((size_t)a * s - (size_t)j->pl) * 16, *p1 = rows[1] + ((size_t)a * s - (size_t)j->pl) * 16,
                        *p2 = rows[2] + ((size_t)a * s - (size_t)j->pl) * 16;
            int q = a;
            for (; q + 4 <= b; q += 4)
                for (int k = 0; k < 4; k++) {
                    const size_t o = (size_t)(q - a + k) * st;
                    _mm512_storeu_ps(yrow + (size_t)(q + k) * 16, output1(p0 + o, p1 + o, p2 + o, 16, wv, bv, clamp, lo, hi, live));
                }
            for (; q < b; q++) {
                const size_t o = (size_t)(q - a) * st;
                _mm512_storeu_ps(yrow + (size_t)q * 16, output1(p0 + o, p1 + o, p2 + o, 16, wv, bv, clamp, lo, hi, live));
            }
            ow = b - 1;
            continue;
        }
        const int iw0 = ow * s - j->pl;
        for (int kh = 0; kh < 3; kh++)
            for (int kw = 0; kw < 3; kw++) {
                const int iw = iw0 + kw;
                const __m512 v = iw >= 0 && iw < j->W ? _mm512_loadu_ps(rows[kh] + (size_t)iw * 16) : _mm512_setzero_ps();
                _mm512_store_ps(patch[kh] + kw * 16, v);
            }
        _mm512_storeu_ps(yrow + (size_t)ow * 16, output1(patch[0], patch[1], patch[2], 16, wv, bv, clamp, lo, hi, live));
    }
}

/// The thread's zero row of at least `floats` floats, kept between calls; NULL if it cannot be
/// allocated.
static float *zero_row(size_t floats) {
    static _Thread_local float *buf;
    static _Thread_local size_t cap;
    if (floats > cap) {
        free(buf);
        buf = calloc(floats, sizeof(float));
        cap = buf ? floats : 0;
    }
    return buf;
}

/// Block cb's nine taps and bias as 16-lane rows (lanes past C +0; +0 for a zero bias, which
/// turns a -0 sum into the reference's +0); returns its live lanes. Both SIMD units load these.
static int block_taps(const bdw_job *j, int cb, float wt[9][16], float bt[16]) {
    const int c0 = cb * 16, n = j->C - c0 < 16 ? j->C - c0 : 16;
    for (int l = 0; l < 16; l++) {
        for (int t = 0; t < 9; t++) wt[t][l] = l < n ? j->w[(size_t)(c0 + l) * 9 + (size_t)t] : 0.0f;
        const float b = l < n && j->bias ? j->bias[c0 + l] : 0.0f;
        bt[l] = b != 0.0f ? b : 0.0f;
    }
    return n;
}

/// Outputs [*a, *b) of a row: those whose three columns lie inside the input row.
static void inside_outputs(const bdw_job *j, int *a, int *b) {
    *a = (j->pl + j->sw - 1) / j->sw;
    *b = (j->W - 3 + j->pl) / j->sw + 1;
    if (*b > j->OW) *b = j->OW;
    if (j->W < 3 || *b < *a) *b = *a;
}

/// The three input rows of block `xb` output row oh reads (the zero row above or below the image).
static void input_rows(const bdw_job *j, const float *xb, const float *zero, int oh, const float *rows[3]) {
    for (int kh = 0; kh < 3; kh++) {
        const int ih = oh * j->sh - j->pt + kh;
        rows[kh] = ih >= 0 && ih < j->H ? xb + (size_t)ih * j->W * 16 : zero;
    }
}

static BDW_TARGET void unit_avx512(const bdw_job *j, int img, int cb, int oh0, int oh1) {
    _Alignas(64) float wt[9][16], bt[16];
    const int n = block_taps(j, cb, wt, bt);
    const __mmask16 live = (__mmask16)((1u << n) - 1);
    const float *zero = zero_row((size_t)(j->W + 4) * 16);
    if (!zero) {
        unit_reference(j, img, cb, oh0, oh1);
        return;
    }
    __m512 wv[9];
    for (int t = 0; t < 9; t++) wv[t] = _mm512_load_ps(wt[t]);
    const __m512 bv = _mm512_load_ps(bt), lo = _mm512_set1_ps(j->lo), hi = _mm512_set1_ps(j->hi);
    int a, b;
    inside_outputs(j, &a, &b);
    const float *xb = j->x + (size_t)img * j->in_image + (size_t)cb * j->H * j->W * 16;
    float *yb = j->y + (size_t)img * j->out_image + (size_t)cb * j->OH * j->OW * 16;
    for (int oh = oh0; oh < oh1; oh++) {
        const float *rows[3];
        input_rows(j, xb, zero, oh, rows);
        float *yrow = yb + (size_t)oh * j->OW * 16;
        if (j->sw == 1) {
            if (j->clamp) row_k(j, rows, wv, bv, 1, lo, hi, live, 1, a, b, yrow);
            else row_k(j, rows, wv, bv, 0, lo, hi, live, 1, a, b, yrow);
        } else {
            if (j->clamp) row_k(j, rows, wv, bv, 1, lo, hi, live, 2, a, b, yrow);
            else row_k(j, rows, wv, bv, 0, lo, hi, live, 2, a, b, yrow);
        }
    }
}

// --- AVX2 (s27): each 16-lane vector as two halves of 8, the same arithmetic per lane.
#define BDW2_TARGET __attribute__((target("avx2,fma")))

/// One output vector's half (`h`: lanes 8h..8h+7) from three rows of three tap vectors: output1's
/// chain on 8 lanes, then lanes past C set to +0.
static BDW2_TARGET AI __m256 output1_half(const float *r0, const float *r1, const float *r2, const int step, const __m256 *wv,
                                          __m256 bv, const int clamp, __m256 lo, __m256 hi, __m256 live) {
    __m256 acc = _mm256_mul_ps(wv[0], _mm256_loadu_ps(r0));
    acc = _mm256_fmadd_ps(wv[1], _mm256_loadu_ps(r0 + step), acc);
    acc = _mm256_fmadd_ps(wv[2], _mm256_loadu_ps(r0 + 2 * step), acc);
    acc = _mm256_fmadd_ps(wv[3], _mm256_loadu_ps(r1), acc);
    acc = _mm256_fmadd_ps(wv[4], _mm256_loadu_ps(r1 + step), acc);
    acc = _mm256_fmadd_ps(wv[5], _mm256_loadu_ps(r1 + 2 * step), acc);
    acc = _mm256_fmadd_ps(wv[6], _mm256_loadu_ps(r2), acc);
    acc = _mm256_fmadd_ps(wv[7], _mm256_loadu_ps(r2 + step), acc);
    acc = _mm256_fmadd_ps(wv[8], _mm256_loadu_ps(r2 + 2 * step), acc);
    acc = _mm256_add_ps(acc, bv);
    if (clamp) acc = _mm256_max_ps(lo, _mm256_min_ps(hi, acc));
    return _mm256_and_ps(acc, live);
}

/// Both halves of output `ow`'s vector from rows whose tap vectors are `step` floats apart.
static BDW2_TARGET AI void output1_avx2(const float *r0, const float *r1, const float *r2, const int step, const __m256 wv[2][9],
                                        const __m256 *bv, const int clamp, __m256 lo, __m256 hi, const __m256 *live, float *y) {
    _mm256_storeu_ps(y, output1_half(r0, r1, r2, step, wv[0], bv[0], clamp, lo, hi, live[0]));
    _mm256_storeu_ps(y + 8, output1_half(r0 + 8, r1 + 8, r2 + 8, step, wv[1], bv[1], clamp, lo, hi, live[1]));
}

/// row_k on AVX2: outputs [a, b) read in place, the others through a zero-padded copy of their
/// three columns.
static BDW2_TARGET AI void row_k_avx2(const bdw_job *j, const float *const *rows, const __m256 wv[2][9], const __m256 *bv,
                                      const int clamp, __m256 lo, __m256 hi, const __m256 *live, const int s, int a, int b,
                                      float *yrow) {
    _Alignas(32) float patch[3][48];
    for (int ow = 0; ow < j->OW; ow++) {
        if (ow == a && b > a) {
            const size_t st = (size_t)s * 16;
            const float *p0 = rows[0] + ((size_t)a * s - (size_t)j->pl) * 16, *p1 = rows[1] + ((size_t)a * s - (size_t)j->pl) * 16,
                        *p2 = rows[2] + ((size_t)a * s - (size_t)j->pl) * 16;
            for (int q = a; q < b; q++) {
                const size_t o = (size_t)(q - a) * st;
                output1_avx2(p0 + o, p1 + o, p2 + o, 16, wv, bv, clamp, lo, hi, live, yrow + (size_t)q * 16);
            }
            ow = b - 1;
            continue;
        }
        const int iw0 = ow * s - j->pl;
        for (int kh = 0; kh < 3; kh++)
            for (int kw = 0; kw < 3; kw++) {
                const int iw = iw0 + kw, in = iw >= 0 && iw < j->W;
                _mm256_store_ps(patch[kh] + kw * 16, in ? _mm256_loadu_ps(rows[kh] + (size_t)iw * 16) : _mm256_setzero_ps());
                _mm256_store_ps(patch[kh] + kw * 16 + 8, in ? _mm256_loadu_ps(rows[kh] + (size_t)iw * 16 + 8) : _mm256_setzero_ps());
            }
        output1_avx2(patch[0], patch[1], patch[2], 16, wv, bv, clamp, lo, hi, live, yrow + (size_t)ow * 16);
    }
}

static BDW2_TARGET void unit_avx2(const bdw_job *j, int img, int cb, int oh0, int oh1) {
    _Alignas(32) float wt[9][16], bt[16];
    const int n = block_taps(j, cb, wt, bt);
    const float *zero = zero_row((size_t)(j->W + 4) * 16);
    if (!zero) {
        unit_reference(j, img, cb, oh0, oh1);
        return;
    }
    __m256 wv[2][9], bv[2], live[2];
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (int h = 0; h < 2; h++) {
        for (int t = 0; t < 9; t++) wv[h][t] = _mm256_load_ps(wt[t] + 8 * h);
        bv[h] = _mm256_load_ps(bt + 8 * h);
        live[h] = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(n - 8 * h), lane));
    }
    const __m256 lo = _mm256_set1_ps(j->lo), hi = _mm256_set1_ps(j->hi);
    int a, b;
    inside_outputs(j, &a, &b);
    const float *xb = j->x + (size_t)img * j->in_image + (size_t)cb * j->H * j->W * 16;
    float *yb = j->y + (size_t)img * j->out_image + (size_t)cb * j->OH * j->OW * 16;
    for (int oh = oh0; oh < oh1; oh++) {
        const float *rows[3];
        input_rows(j, xb, zero, oh, rows);
        float *yrow = yb + (size_t)oh * j->OW * 16;
        if (j->sw == 1) {
            if (j->clamp) row_k_avx2(j, rows, wv, bv, 1, lo, hi, live, 1, a, b, yrow);
            else row_k_avx2(j, rows, wv, bv, 0, lo, hi, live, 1, a, b, yrow);
        } else {
            if (j->clamp) row_k_avx2(j, rows, wv, bv, 1, lo, hi, live, 2, a, b, yrow);
            else row_k_avx2(j, rows, wv, bv, 0, lo, hi, live, 2, a, b, yrow);
        }
    }
}

/// Unit u: image u / (strips cbs), then row strip, then channel block, so that a thread's
/// contiguous range of units (mpq_run_ranges) is a band of output rows over all blocks: the
/// pixels a pointwise Conv split by pixels wrote on the same core (and reads next).
static int unit_rows(const bdw_job *j, int u, int *img, int *cb, int *oh0, int *oh1) {
    *cb = u % j->cbs;
    const int strip = u / j->cbs % j->strips;
    *img = u / j->cbs / j->strips;
    *oh0 = (int)((long)j->OH * strip / j->strips);
    *oh1 = (int)((long)j->OH * (strip + 1) / j->strips);
    return *oh0 < *oh1;
}

static void bdw_unit_avx512(void *arg, int u, int task) {
    (void)task;
    int img, cb, oh0, oh1;
    if (unit_rows(arg, u, &img, &cb, &oh0, &oh1)) unit_avx512(arg, img, cb, oh0, oh1);
}

static void bdw_unit_avx2(void *arg, int u, int task) {
    (void)task;
    int img, cb, oh0, oh1;
    if (unit_rows(arg, u, &img, &cb, &oh0, &oh1)) unit_avx2(arg, img, cb, oh0, oh1);
}

static void bdw_unit_reference(void *arg, int u, int task) {
    (void)task;
    int img, cb, oh0, oh1;
    if (unit_rows(arg, u, &img, &cb, &oh0, &oh1)) unit_reference(arg, img, cb, oh0, oh1);
}

int mpq_depthwise3x3_f32_blocked_applies(const mpq_conv2d_shape *s) {
    if (!s) return 0;
    const int OH = mpq_conv2d_out_h(s), OW = mpq_conv2d_out_w(s);
    return OH > 0 && OW > 0 && s->group == s->channels && s->channels > 0 && s->kernel_h == 3 && s->kernel_w == 3 &&
           s->dilation_h == 1 && s->dilation_w == 1 && (s->stride_w == 1 || s->stride_w == 2) && s->stride_h >= 1 &&
           s->pad_top >= 0 && s->pad_left >= 0 && s->pad_bottom >= 0 && s->pad_right >= 0 &&
           (long)(s->channels + 15) / 16 * 16 * s->height * (long)s->width < INT32_MAX;
}

int mpq_depthwise3x3_f32_blocked(mpq_kernel_path path, const float *x, int images, const mpq_conv2d_shape *s, const float *w,
                                 const float *bias, mpq_activation act, float lo, float hi, float *y, int threads) {
    if (!x || !w || !y || images < 0 || !mpq_depthwise3x3_f32_blocked_applies(s)) return -1;
    if (act == MPQ_ACT_SILU || (act == MPQ_ACT_CLAMP && !(lo <= hi))) return -1;
    unsigned nonfinite = 0;  // exponent all ones: inf or NaN (see the header)
    for (size_t i = 0; i < (size_t)s->channels * 9; i++) {
        uint32_t bits;
        memcpy(&bits, w + i, 4);
        nonfinite |= (bits & 0x7F800000u) == 0x7F800000u;
    }
    if (nonfinite) return -1;
    bdw_job j = {.x = x, .w = w, .bias = bias, .y = y, .C = s->channels, .H = s->height, .W = s->width,
                 .OH = mpq_conv2d_out_h(s), .OW = mpq_conv2d_out_w(s), .sh = s->stride_h, .sw = s->stride_w,
                 .pt = s->pad_top, .pl = s->pad_left, .clamp = act == MPQ_ACT_CLAMP, .lo = lo, .hi = hi};
    j.cbs = (s->channels + 15) / 16;
    j.in_image = mpq_blocked_image_floats(s->channels, s->height, s->width);
    j.out_image = mpq_blocked_image_floats(s->channels, j.OH, j.OW);
    if (images == 0) return 0;
    // Fewer images than threads: row strips, one per thread (at least two output rows each),
    // so each thread's units are one band of rows over all blocks.
    if (mpq_single_threaded() || threads < 1) threads = 1;
    j.strips = 1;
    if (images < threads) {
        j.strips = threads;
        if (j.strips > j.OH / 2) j.strips = j.OH / 2 > 1 ? j.OH / 2 : 1;
    }
    const int units = images * j.strips * j.cbs;
    const mpq_kernel_path k = mpq_resolve_kernel_path(path);
    mpq_run_ranges(threads, units, k == MPQ_PATH_VNNI ? bdw_unit_avx512 : k == MPQ_PATH_AVX2 ? bdw_unit_avx2 : bdw_unit_reference, &j);
    return 0;
}
