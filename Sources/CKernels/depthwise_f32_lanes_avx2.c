// FP32 depthwise 3x3 with 8 channels in the vector lanes on AVX2 + FMA, NCHW at the boundary:
// the AVX-512 lanes kernel (depthwise_f32_lanes.c, docs/depthwise.md "Channels in the lanes")
// with 8-lane vectors and 8x8 transposes (s21).
//
// Why: the AVX2 padded-plane kernel (depthwise_f32_padded_avx2.c) pads and phase-splits each
// channel's plane and runs 16-output row blocks over it; on MobileNetV2's 28x28-7x7 planes
// most of a row block is padding or tail, and the copy is as much work as the nine taps.
// ORT's NCHWc depthwise took 0.04-0.08 ms per layer where that kernel took 0.09-0.16 (s21,
// `mpq profile` against ORT's profiler, batch 1, two threads). Here, per (8-channel block,
// output-row strip): the input rows the strip needs are transposed into a ring of padded rows
// [row][pad_left + W + pad_right][8] (zero columns either side, a zero row for padded rows;
// stride 2 is a plain load two vectors on); each output vector is the nine fused
// multiply-adds; the strip's outputs [pixel][8] are transposed back into the 8 planes.
//
// Bits: those of the AVX-512 lanes kernel, and so of the reference, by the same argument
// (depthwise_f32_lanes.c's header): a padded tap is fma(w, 0, acc), the sum starts at the
// first product, the final add of the bias or +0 makes every zero sum the reference's +0; the
// caller (mpq_depthwise3x3_f32_lanes) has already sent non-finite weights elsewhere. Every
// FMA is written out (no implicit contraction).
//
// The job, its plan (block and strip split), the scratch buffer and the scalar fallback are the
// AVX-512 kernel's (depthwise_f32_lanes_internal.h); the unit below is its 8-lane form.
#pragma STDC FP_CONTRACT OFF
#include "depthwise_f32_lanes_internal.h"
#include <immintrin.h>
#include "transpose8_f32_avx2.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define L8_TARGET __attribute__((target("avx2,fma")))
#define AI inline __attribute__((always_inline))
#define LANES 8

typedef mpq_dw_lanes_job l8_job;


/// Input pixels [p0, p1) of the plane (p = ih * W + iw) of the block's 8 channels
/// (`planes[c]`), transposed into ring row ih % ring_rows, column pad_left + iw.
static L8_TARGET void transpose_in(const l8_job *j, const float *const *planes, int p0, int p1, float *ring) {
    const size_t row_floats = (size_t)j->Wp * LANES;
    int ih = p0 / j->W, iw = p0 % j->W;
    float *dst = ring + (size_t)(ih % j->ring_rows) * row_floats + (size_t)(j->pl + iw) * LANES;
    for (int p = p0; p < p1; p += LANES) {
        const int n = p1 - p < LANES ? p1 - p : LANES;
        __m256 r[8];
        if (n == LANES) {
            for (int c = 0; c < 8; c++) r[c] = _mm256_loadu_ps(planes[c] + p);
        } else {
            const __m256i m = mpq_first_lanes8(n);  // no read past the plane
            for (int c = 0; c < 8; c++) r[c] = _mm256_maskload_ps(planes[c] + p, m);
        }
        mpq_transpose8_f32(r);
        if (n == LANES && iw + LANES < j->W) {  // all in one row, not its last pixel
            for (int q = 0; q < 8; q++) _mm256_storeu_ps(dst + q * LANES, r[q]);
            dst += LANES * LANES, iw += LANES;
            continue;
        }
        for (int q = 0; q < n; q++) {
            _mm256_storeu_ps(dst, r[q]);
            dst += LANES;
            if (++iw == j->W) {
                iw = 0, ih++;
                dst = ring + (size_t)(ih % j->ring_rows) * row_floats + (size_t)j->pl * LANES;
            }
        }
    }
}

/// Output pixels [q0, q0 + count) of `out` ([pixel][8], pixel q0 at out[0]; the buffer is
/// padded to whole chunks) into the first `cb` planes `planes[c]` at offset q0.
static L8_TARGET __attribute__((no_builtin("memcpy"))) void transpose_out(const float *out, int count, int cb,
                                                                         float *const *planes, int q0) {
    for (int q = 0; q < count; q += LANES) {
        const int n = count - q < LANES ? count - q : LANES;
        __m256 r[8];
        for (int i = 0; i < 8; i++) r[i] = _mm256_load_ps(out + (size_t)(q + i) * LANES);
        mpq_transpose8_f32(r);
        if (n == LANES && cb == LANES) {
            for (int c = 0; c < 8; c++) _mm256_storeu_ps(planes[c] + q0 + q, r[c]);
        } else {
            for (int c = 0; c < cb; c++) mpq_store_first8(planes[c] + q0 + q, r[c], n);
        }
    }
}

/// One output vector: nine fused multiply-adds in (kh, kw) order (the first a product), then
/// the bias (or +0) and the clamp, `max(lo, min(hi, v))`: clamp1's result, NaN kept
/// (vminps/vmaxps return the second operand when either is NaN).
static L8_TARGET AI __m256 output1(const float *r0, const float *r1, const float *r2, const __m256 *wv, __m256 bv,
                                   const int clamp, __m256 lo, __m256 hi) {
    __m256 acc = _mm256_mul_ps(wv[0], _mm256_loadu_ps(r0));
    acc = _mm256_fmadd_ps(wv[1], _mm256_loadu_ps(r0 + 8), acc);
    acc = _mm256_fmadd_ps(wv[2], _mm256_loadu_ps(r0 + 16), acc);
    acc = _mm256_fmadd_ps(wv[3], _mm256_loadu_ps(r1), acc);
    acc = _mm256_fmadd_ps(wv[4], _mm256_loadu_ps(r1 + 8), acc);
    acc = _mm256_fmadd_ps(wv[5], _mm256_loadu_ps(r1 + 16), acc);
    acc = _mm256_fmadd_ps(wv[6], _mm256_loadu_ps(r2), acc);
    acc = _mm256_fmadd_ps(wv[7], _mm256_loadu_ps(r2 + 8), acc);
    acc = _mm256_fmadd_ps(wv[8], _mm256_loadu_ps(r2 + 16), acc);
    acc = _mm256_add_ps(acc, bv);
    return clamp ? _mm256_max_ps(lo, _mm256_min_ps(hi, acc)) : acc;
}

static L8_TARGET AI void row_outputs_k(const float *r0, const float *r1, const float *r2, const __m256 *wv, __m256 bv,
                                       const int clamp, __m256 lo, __m256 hi, int OW, const int s, float *out) {
    int ow = 0;
    // Four independent chains at a time: each output's nine dependent FMAs alone would wait
    // on the FMA latency.
    for (; ow + 4 <= OW; ow += 4)
        for (int k = 0; k < 4; k++) {
            const size_t o = (size_t)(ow + k) * (size_t)s * LANES;
            _mm256_store_ps(out + (size_t)(ow + k) * LANES, output1(r0 + o, r1 + o, r2 + o, wv, bv, clamp, lo, hi));
        }
    for (; ow < OW; ow++) {
        const size_t o = (size_t)ow * (size_t)s * LANES;
        _mm256_store_ps(out + (size_t)ow * LANES, output1(r0 + o, r1 + o, r2 + o, wv, bv, clamp, lo, hi));
    }
}

/// One output row for stride `s` (1 or 2) into `out` ([ow][8]).
static L8_TARGET void row_outputs(const float *r0, const float *r1, const float *r2, const __m256 *wv, __m256 bv,
                                  int clamp, __m256 lo, __m256 hi, int OW, int s, float *out) {
    if (s == 1) {
        if (clamp) row_outputs_k(r0, r1, r2, wv, bv, 1, lo, hi, OW, 1, out);
        else row_outputs_k(r0, r1, r2, wv, bv, 0, lo, hi, OW, 1, out);
    } else {
        if (clamp) row_outputs_k(r0, r1, r2, wv, bv, 1, lo, hi, OW, 2, out);
        else row_outputs_k(r0, r1, r2, wv, bv, 0, lo, hi, OW, 2, out);
    }
}

/// Unit u: channel block u / strips, output rows of strip u % strips.
L8_TARGET void mpq_dw_lanes_unit_avx2(void *arg, int u, int task) {
    (void)task;
    const l8_job *j = arg;
    const int block = u / j->strips, strip = u % j->strips;
    const int c0 = block * LANES, cb = j->C - c0 < LANES ? j->C - c0 : LANES;
    const int oh_begin = (int)((long)j->OH * strip / j->strips), oh_end = (int)((long)j->OH * (strip + 1) / j->strips);
    if (oh_begin >= oh_end) return;
    const size_t in_plane = (size_t)j->H * (size_t)j->W, out_plane = (size_t)j->OH * (size_t)j->OW;
    // Lanes past the last channel repeat it (finite weights, outputs not stored).
    const float *xin[8];
    float *yout[8];
    _Alignas(32) float wt[9][8], bt[8];
    for (int c = 0; c < 8; c++) {
        const int ch = c0 + (c < cb ? c : cb - 1);
        xin[c] = j->x + (size_t)ch * in_plane;
        yout[c] = j->y + (size_t)ch * out_plane;
        for (int t = 0; t < 9; t++) wt[t][c] = j->w[(size_t)ch * 9 + (size_t)t];
        const float b = j->bias ? j->bias[ch] : 0.0f;
        bt[c] = b != 0.0f ? b : 0.0f;  // +0 for a zero bias (turns a -0 sum into the reference's +0)
    }
    __m256 wv[9];
    for (int t = 0; t < 9; t++) wv[t] = _mm256_load_ps(wt[t]);
    const __m256 bv = _mm256_load_ps(bt), lo = _mm256_set1_ps(j->lo), hi = _mm256_set1_ps(j->hi);
    // Ring of padded input rows, a zero row for padded rows, the strip's outputs (a few KiB
    // to tens of KiB), zeroed so pad columns read 0.
    const size_t row_floats = (size_t)j->Wp * LANES;
    float *ring = mpq_dw_lanes_scratch(j->ring_floats + row_floats + j->out_floats);
    if (!ring) {
        mpq_dw_lanes_unit_scalar(j, c0, cb, oh_begin, oh_end);
        return;
    }
    memset(ring, 0, (j->ring_floats + row_floats) * sizeof(float));
    float *zero = ring + j->ring_floats, *out = zero + row_floats;
    int next_in = oh_begin * j->sh - j->pt;  // first input row not yet in the ring
    if (next_in < 0) next_in = 0;
    for (int oh0 = oh_begin; oh0 < oh_end; oh0 += j->sub_rows) {
        const int rows = oh_end - oh0 < j->sub_rows ? oh_end - oh0 : j->sub_rows;
        int need = (oh0 + rows - 1) * j->sh - j->pt + 2;  // last input row these rows read
        if (need > j->H - 1) need = j->H - 1;
        const int first = oh0 * j->sh - j->pt;  // rows a stride over 3 skips are not read
        if (next_in < first) next_in = first;
        if (need >= next_in) {
            transpose_in(j, xin, next_in * j->W, (need + 1) * j->W, ring);
            next_in = need + 1;
        }
        for (int r = 0; r < rows; r++) {
            const int ih = (oh0 + r) * j->sh - j->pt;
            const float *rp[3];
            for (int kh = 0; kh < 3; kh++)
                rp[kh] = (unsigned)(ih + kh) < (unsigned)j->H ? ring + (size_t)((ih + kh) % j->ring_rows) * row_floats : zero;
            row_outputs(rp[0], rp[1], rp[2], wv, bv, j->clamp, lo, hi, j->OW, j->s, out + (size_t)r * (size_t)j->OW * LANES);
        }
        transpose_out(out, rows * j->OW, cb, yout, oh0 * j->OW);
    }
}
