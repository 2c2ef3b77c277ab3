// AVX-512 VNNI + VBMI depthwise INT8 conv: 16 output pixels of one channel per vector,
// four kernel taps of a row per vpdpbusd.
//
// The AVX2 kernel beside it widens to int32 and multiplies one tap at a time, and runs
// any output whose window touches padding, or any row narrower than its 8-pixel block,
// through a scalar loop: MobileNetV2's 7x7 and 14x14 planes ran almost entirely scalar
// (about 1 GOP/s). Here every output goes through the same vector code:
//
// - A *gather plan*, computed once per call from the geometry alone (every channel
//   shares it), says for each group of 16 outputs and each (kernel row, quad of taps)
//   which 64-byte window of the input plane to load and how `vpermb` rearranges it into
//   16 quads: lane l holds the 4 input bytes that output l multiplies by taps
//   4q..4q+3 of that kernel row. Taps that read padding take the zero point `za`
//   (a masked permute), taps past the kernel width get weight 0.
// - `vpdpbusd` multiplies the u8 quads by the channel's s8 weight quad and adds the four
//   products to int32 lanes: exact (no int16 saturation, unlike vpmaddubsw).
// - Padding reads `za`, so every output sums all KH*KW taps of u8 values:
//   sum (x - za) * w = sum x * w - za * sum w, exact in int32 (wrapping the same way).
// - Small planes put several output rows in one vector (7x7: two rows, 14 lanes), so a
//   7x7 plane is 4 vectors instead of 49 scalar pixels. Wide planes use one row per
//   vector and a plan per 16-pixel column block, valid for every row (rows outside the
//   input read a row of `za`).
// - Wide plans run two output rows at a time (undilated, stride 1 or 2): they read
//   KH + stride input rows instead of 2 * KH, each gathered once for both, and the two
//   accumulator chains run side by side (1.6-1.9x on MobileNetV2's wide layers); stride 1
//   runs four rows at a time (KH + 3 input rows, four chains).
// - Outputs land in lanes in NCHW order, so the epilogue stores them directly: no
//   layout transform on either side.
// The epilogue is mpq_epilogue_scalar's sequence, vectorised op for op (same roundings).
// Returns -1 (computing nothing) for a geometry whose windows do not fit 64 bytes
// (strides over 3 or large dilations), which the caller runs on the AVX2 kernel.
#include "mpq_internal.h"
#include "qconv_channel_epilogue.h"
#include <immintrin.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define VNNI_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi")))

/// How 16 outputs get one (kernel row, tap quad)'s input bytes.
typedef struct {
    _Alignas(64) uint8_t idx[64];  ///< byte j of the quad vector = window[idx[j]]
    int64_t offset;     ///< window start: relative to the input row (wide plans) or plane (small plans)
    uint64_t load;      ///< window bytes that lie in the readable range (others are not read)
    uint64_t valid;     ///< quad bytes that read the input (the others take za)
} gather;
_Static_assert(sizeof(gather) == 128, "gather entries keep idx 64-byte aligned");

/// The plan for one geometry. Wide (`rows_per_vector` 1): `blocks` column blocks of one
/// output row, entries [block][kh][quad], offsets relative to the input row the kernel row
/// reads. Small (`rows_per_vector` > 1): `blocks` groups of rows, entries [group][kh][quad],
/// offsets relative to the plane, padding rows marked invalid.
typedef struct {
    int rows_per_vector, blocks, quads;
    gather *g;
} plan;

typedef struct { int oh, ow, lanes; } block_span;

static int plan_fill(const mpq_conv2d_shape *s, int OH, int OW, int rows, plan *p) {
    const int KH = s->kernel_h, KW = s->kernel_w, H = s->height, W = s->width;
    const int quads = (KW + 3) / 4;
    const int blocks = rows == 1 ? (OW + 15) / 16 : (OH + rows - 1) / rows;
    const int per_block = (rows == 1 ? 1 : KH) * quads;
    p->rows_per_vector = rows;
    p->blocks = blocks;
    p->quads = quads;
    p->g = aligned_alloc(64, ((size_t)blocks * (size_t)per_block * sizeof(gather) + 63) / 64 * 64);
    if (!p->g) return -1;
    const int64_t readable = rows == 1 ? W : (int64_t)H * W;
    for (int b = 0; b < blocks; b++) {
        for (int kh = 0; kh < (rows == 1 ? 1 : KH); kh++) {
            for (int q = 0; q < quads; q++) {
                gather *e = p->g + ((size_t)b * (size_t)(rows == 1 ? 1 : KH) + (size_t)kh) * (size_t)quads + (size_t)q;
                int64_t pos[64];
                int64_t lo = INT64_MAX, hi = INT64_MIN;
                e->valid = 0;
                for (int j = 0; j < 64; j++) {
                    const int lane = j / 4, tap = 4 * q + j % 4;
                    int oh, ow;
                    if (rows == 1) { oh = 0; ow = 16 * b + lane; }
                    else { oh = b * rows + lane / OW; ow = lane % OW; }
                    pos[j] = -1;
                    if (tap >= KW || ow >= OW || (rows > 1 && (lane >= rows * OW || oh >= OH))) continue;
                    const int iw = ow * s->stride_w - s->pad_left + tap * s->dilation_w;
                    if (iw < 0 || iw >= W) continue;
                    int64_t at = iw;
                    if (rows > 1) {
                        const int ih = oh * s->stride_h - s->pad_top + kh * s->dilation_h;
                        if (ih < 0 || ih >= H) continue;
                        at += (int64_t)ih * W;
                    }
                    pos[j] = at;
                    e->valid |= 1ull << j;
                    if (at < lo) lo = at;
                    if (at > hi) hi = at;
                }
                if (!e->valid) lo = hi = 0;
                if (hi - lo >= 64) { free(p->g); p->g = NULL; return -1; }
                e->offset = lo;
                e->load = 0;
                for (int j = 0; j < 64; j++) {
                    e->idx[j] = pos[j] < 0 ? 0 : (uint8_t)(pos[j] - lo);
                    if (lo + j >= 0 && lo + j < readable) e->load |= 1ull << j;
                }
            }
        }
    }
    return 0;
}

/// The plan for `s`: several output rows per vector when a row has fewer than 16 pixels
/// and their windows fit, else one row per vector. -1 if no plan fits.
static int plan_make(const mpq_conv2d_shape *s, int OH, int OW, plan *p) {
    for (int rows = OW < 16 ? 16 / OW : 1; rows >= 2; rows--) {
        if (rows > OH) continue;
        if (plan_fill(s, OH, OW, rows, p) == 0) return 0;
    }
    return plan_fill(s, OH, OW, 1, p);
}

// Plans by geometry, kept per thread (mpq_geometry_cache): MobileNetV2's 17 depthwise layers
// rebuilt theirs on every call, 4% of the batch-1 INT8 run's single-threaded time in perf.
static _Thread_local mpq_geometry_cache plans;

static void plan_release(void *p) {
    free(((plan *)p)->g);
    free(p);
}

/// The plan for `s` from this thread's cache, made on a miss; the cache owns its table.
static int plan_cached(const mpq_conv2d_shape *s, int OH, int OW, plan *p) {
    const plan *kept = mpq_geometry_cache_find(&plans, s, 0);
    if (!kept) {
        plan *made = malloc(sizeof *made);
        if (!made) return -1;
        if (plan_make(s, OH, OW, made) != 0) {
            free(made);
            return -1;
        }
        kept = mpq_geometry_cache_put(&plans, s, 0, made, plan_release);
    }
    *p = *kept;
    return 0;
}

/// The channel's weight quads ([kh][quad], taps past KW = 0) and the sum of its taps.
static inline __attribute__((always_inline)) void weight_quads(const int8_t *wc, int KH, int KW, int quads, int32_t *wq, int32_t *sum) {
    int32_t total = 0;
    for (int kh = 0; kh < KH; kh++)
        for (int q = 0; q < quads; q++) {
            uint32_t v = 0;
            for (int k = 0; k < 4; k++) {
                const int tap = 4 * q + k;
                const int8_t w = tap < KW ? wc[kh * KW + tap] : 0;
                total += w;
                v |= (uint32_t)(uint8_t)w << (8 * k);
            }
            wq[kh * quads + q] = (int32_t)v;
        }
    *sum = total;
}

/// The per-channel part of the epilogue, broadcast once per channel: the pixel-vector INT8
/// Conv kernels' (qconv_channel_epilogue.h), with the accumulators' start value beside it.
typedef struct {
    __m512i correction;   // -za * sum(w) + bias_i32
    mpq_channel_epilogue e;
} channel_epilogue;

/// How a channel's outputs are stored: floats or codes with the epilogue as written
/// (STORE_ANY, chosen per call), or codes whose clamps are both at the code range (STORE_SAT:
/// no float clamps, the code saturated to [0, 255] instead; mpq_codes_clamp_plan says when
/// that is the same byte). A compile-time argument, so the codes forms have no branch on the
/// output kind per vector.
enum { STORE_ANY = 0, STORE_SAT = 1 };

/// The epilogue of 16 outputs whose accumulator already holds the correction.
static inline __attribute__((always_inline)) VNNI_TARGET void store16(__m512i acc, const channel_epilogue *ce, __mmask16 lanes,
                                                                      float *out, uint8_t *out_u8, __m512i zp, const int store) {
    if (store == STORE_SAT) {
        __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(acc), ce->e.s);
        if (ce->e.has_bias) v = _mm512_add_ps(v, ce->e.bias);
        const __m512i q = _mm512_max_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(v), zp), _mm512_setzero_si512());
        _mm512_mask_cvtusepi32_storeu_epi8(out_u8, lanes, q);
        return;
    }
    const __m512 v = mpq_channel_values(&ce->e, acc);
    if (out_u8) {
        // out_scale is 1 here: the code is nearbyint(v) + zp (mpq_code_u8); converting with
        // round-to-nearest-even is nearbyint then the (exact) conversion, and x * 1 + 0 only
        // turns -0 into +0, which converts to the same 0. Stored truncated to 8 bits.
        __m512i q = _mm512_cvt_roundps_epi32(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm512_mask_cvtepi32_storeu_epi8(out_u8, lanes, _mm512_add_epi32(q, zp));
        return;
    }
    _mm512_mask_storeu_ps(out, lanes, mpq_channel_floats(&ce->e, v));
}

/// What every channel of one call shares.
typedef struct {
    const mpq_conv2d_shape *s;
    const plan *p;
    const uint8_t *za_row;  // a row of za for kernel rows outside the input (wide plans)
    __m512i zav, zp;
    int OH, OW;
} call_ctx;

/// One channel: plane `xc` in, `oc` (floats) or `cc` (codes) out. Always inlined with KH and
/// quads as arguments, so the 3x3 call (KH 3, quads 1) compiles with every kernel-row loop
/// unrolled and its `r < KH` tests resolved: the generic loops branched per input row and
/// kept the accumulators' selection at run time (perf: branches and moves were most of the
/// samples, the vpdpbusd few).
static inline __attribute__((always_inline)) VNNI_TARGET void
channel(const call_ctx *cx, const uint8_t *xc, const __m512i *wv, const channel_epilogue *cep, float *oc, uint8_t *cc,
        const int KH, const int quads, const int store) {
    const mpq_conv2d_shape *s = cx->s;
    const plan *pp = cx->p;
    const int OH = cx->OH, OW = cx->OW, H = s->height, W = s->width;
    const uint8_t *za_row = cx->za_row;
    const __m512i zav = cx->zav, zp = cx->zp;
    const channel_epilogue ce = *cep;
    if (pp->rows_per_vector == 1) {
        int oh = 0;
        // Two output rows at a time when their kernel rows are consecutive input rows
        // (undilated, stride 1 or 2): they read KH + stride rows instead of 2 * KH, and each
        // is gathered once for both (measured 1.7-1.9x on MobileNetV2's stride-1 layers).
        const int sh = s->stride_h;
        if (s->dilation_h == 1 && (sh == 1 || sh == 2)) {
            // Stride 1: four output rows at a time, KH + 3 input rows each gathered once
            // and fed to up to four independent accumulator chains (1.1-1.3x over row
            // pairs on MobileNetV2's 112-28 wide stride-1 layers, one thread, A/B in one
            // process; stride 2 measured no faster, so it keeps the pairs).
            if (sh == 1 && KH <= 60) {
                for (; oh + 4 <= OH; oh += 4) {
                    const uint8_t *rows[64];
                    for (int r = 0; r < KH + 3; r++) {
                        const int ih = oh - s->pad_top + r;
                        rows[r] = ih >= 0 && ih < H ? xc + (size_t)ih * (size_t)W : za_row;
                    }
                    for (int b = 0; b < pp->blocks; b++) {
                        const gather *g = pp->g + (size_t)b * (size_t)quads;
                        __m512i acc0 = ce.correction, acc1 = ce.correction, acc2 = ce.correction, acc3 = ce.correction;
                        for (int q = 0; q < quads; q++) {
                            const gather *e = g + q;
                            const __m512i idx = _mm512_load_si512(e->idx);
                            for (int r = 0; r < KH + 3; r++) {
                                __m512i win = _mm512_maskz_loadu_epi8(e->load, rows[r] + e->offset);
                                __m512i quad = _mm512_mask_permutexvar_epi8(zav, e->valid, idx, win);
                                // Input row r is kernel row r - j of output row oh + j.
                                if (r < KH) acc0 = _mm512_dpbusd_epi32(acc0, quad, wv[r * quads + q]);
                                if (r >= 1 && r - 1 < KH) acc1 = _mm512_dpbusd_epi32(acc1, quad, wv[(r - 1) * quads + q]);
                                if (r >= 2 && r - 2 < KH) acc2 = _mm512_dpbusd_epi32(acc2, quad, wv[(r - 2) * quads + q]);
                                if (r >= 3) acc3 = _mm512_dpbusd_epi32(acc3, quad, wv[(r - 3) * quads + q]);
                            }
                        }
                        const int ow = 16 * b, n = OW - ow < 16 ? OW - ow : 16;
                        const size_t at = (size_t)oh * (size_t)OW + (size_t)ow;
                        const __mmask16 lanes = (__mmask16)((1u << n) - 1);
                        store16(acc0, &ce, lanes, oc ? oc + at : NULL, cc ? cc + at : NULL, zp, store);
                        store16(acc1, &ce, lanes, oc ? oc + at + OW : NULL, cc ? cc + at + OW : NULL, zp, store);
                        store16(acc2, &ce, lanes, oc ? oc + at + 2 * OW : NULL, cc ? cc + at + 2 * OW : NULL, zp, store);
                        store16(acc3, &ce, lanes, oc ? oc + at + 3 * OW : NULL, cc ? cc + at + 3 * OW : NULL, zp, store);
                    }
                }
            }
            for (; oh + 2 <= OH; oh += 2) {
                const uint8_t *rows[66];
                for (int r = 0; r < KH + sh; r++) {
                    const int ih = oh * sh - s->pad_top + r;
                    rows[r] = ih >= 0 && ih < H ? xc + (size_t)ih * (size_t)W : za_row;
                }
                for (int b = 0; b < pp->blocks; b++) {
                    const gather *g = pp->g + (size_t)b * (size_t)quads;
                    __m512i acc0 = ce.correction, acc1 = ce.correction;
                    for (int q = 0; q < quads; q++) {
                        const gather *e = g + q;
                        const __m512i idx = _mm512_load_si512(e->idx);
                        for (int r = 0; r < KH + sh; r++) {
                            __m512i win = _mm512_maskz_loadu_epi8(e->load, rows[r] + e->offset);
                            __m512i quad = _mm512_mask_permutexvar_epi8(zav, e->valid, idx, win);
                            if (r < KH) acc0 = _mm512_dpbusd_epi32(acc0, quad, wv[r * quads + q]);
                            if (r >= sh) acc1 = _mm512_dpbusd_epi32(acc1, quad, wv[(r - sh) * quads + q]);
                        }
                    }
                    const int ow = 16 * b, n = OW - ow < 16 ? OW - ow : 16;
                    const size_t at = (size_t)oh * (size_t)OW + (size_t)ow;
                    const __mmask16 lanes = (__mmask16)((1u << n) - 1);
                    store16(acc0, &ce, lanes, oc ? oc + at : NULL, cc ? cc + at : NULL, zp, store);
                    store16(acc1, &ce, lanes, oc ? oc + at + OW : NULL, cc ? cc + at + OW : NULL, zp, store);
                }
            }
        }
        for (; oh < OH; oh++) {
            const uint8_t *rows[64];
            for (int kh = 0; kh < KH; kh++) {
                const int ih = oh * s->stride_h - s->pad_top + kh * s->dilation_h;
                rows[kh] = ih >= 0 && ih < H ? xc + (size_t)ih * (size_t)W : za_row;
            }
            for (int b = 0; b < pp->blocks; b++) {
                const gather *g = pp->g + (size_t)b * (size_t)quads;
                __m512i acc = ce.correction;
                for (int kh = 0; kh < KH; kh++)
                    for (int q = 0; q < quads; q++) {
                        const gather *e = g + q;
                        __m512i win = _mm512_maskz_loadu_epi8(e->load, rows[kh] + e->offset);
                        __m512i quad = _mm512_mask_permutexvar_epi8(zav, e->valid, _mm512_load_si512(e->idx), win);
                        acc = _mm512_dpbusd_epi32(acc, quad, wv[kh * quads + q]);
                    }
                const int ow = 16 * b, n = OW - ow < 16 ? OW - ow : 16;
                const size_t at = (size_t)oh * (size_t)OW + (size_t)ow;
                store16(acc, &ce, (__mmask16)((1u << n) - 1), oc ? oc + at : NULL, cc ? cc + at : NULL, zp, store);
            }
        }
    } else {
        const int rpv = pp->rows_per_vector;
        for (int b = 0; b < pp->blocks; b++) {
            const gather *g = pp->g + (size_t)b * (size_t)KH * (size_t)quads;
            __m512i acc = ce.correction;
            for (int t = 0; t < KH * quads; t++) {
                const gather *e = g + t;
                __m512i win = _mm512_maskz_loadu_epi8(e->load, xc + e->offset);
                __m512i quad = _mm512_mask_permutexvar_epi8(zav, e->valid, _mm512_load_si512(e->idx), win);
                acc = _mm512_dpbusd_epi32(acc, quad, wv[t]);
            }
            const int oh = b * rpv, nrows = OH - oh < rpv ? OH - oh : rpv;
            const size_t at = (size_t)oh * (size_t)OW;
            store16(acc, &ce, (__mmask16)((1u << (nrows * OW)) - 1), oc ? oc + at : NULL, cc ? cc + at : NULL, zp, store);
        }
    }
}

static VNNI_TARGET void channel_3x3(const call_ctx *cx, const uint8_t *xc, const __m512i *wv, const channel_epilogue *ce,
                                    float *oc, uint8_t *cc) {
    channel(cx, xc, wv, ce, oc, cc, 3, 1, STORE_ANY);
}

static VNNI_TARGET void channel_3x3_sat(const call_ctx *cx, const uint8_t *xc, const __m512i *wv, const channel_epilogue *ce,
                                        uint8_t *cc) {
    channel(cx, xc, wv, ce, NULL, cc, 3, 1, STORE_SAT);
}

/// Two channels of a small plan (several rows per vector: 7x7) side by side, 3x3, codes with
/// saturation. One vector of such a plane is a serial chain (3 vpdpbusd, convert, scale,
/// convert, store) and a channel only 4 of them: ~100 cycles per channel, latency-bound.
/// Two independent chains share each tap's index vector and masks.
static VNNI_TARGET void small_pair_3x3_sat(const call_ctx *cx, const uint8_t *x0, const uint8_t *x1, const __m512i *w0,
                                           const __m512i *w1, const channel_epilogue *ce0, const channel_epilogue *ce1,
                                           uint8_t *c0, uint8_t *c1) {
    const plan *pp = cx->p;
    const int OH = cx->OH, OW = cx->OW, rpv = pp->rows_per_vector;
    const __m512i zav = cx->zav, zp = cx->zp;
    for (int b = 0; b < pp->blocks; b++) {
        const gather *g = pp->g + (size_t)b * 3;
        __m512i a0 = ce0->correction, a1 = ce1->correction;
        _Pragma("unroll") for (int t = 0; t < 3; t++) {
            const gather *e = g + t;
            const __m512i idx = _mm512_load_si512(e->idx);
            const __m512i q0 = _mm512_mask_permutexvar_epi8(zav, e->valid, idx, _mm512_maskz_loadu_epi8(e->load, x0 + e->offset));
            const __m512i q1 = _mm512_mask_permutexvar_epi8(zav, e->valid, idx, _mm512_maskz_loadu_epi8(e->load, x1 + e->offset));
            a0 = _mm512_dpbusd_epi32(a0, q0, w0[t]);
            a1 = _mm512_dpbusd_epi32(a1, q1, w1[t]);
        }
        const int oh = b * rpv, nrows = OH - oh < rpv ? OH - oh : rpv;
        const size_t at = (size_t)oh * (size_t)OW;
        const __mmask16 lanes = (__mmask16)((1u << (nrows * OW)) - 1);
        store16(a0, ce0, lanes, NULL, c0 + at, zp, STORE_SAT);
        store16(a1, ce1, lanes, NULL, c1 + at, zp, STORE_SAT);
    }
}

static VNNI_TARGET void channel_any(const call_ctx *cx, const uint8_t *xc, const __m512i *wv, const channel_epilogue *ce,
                                    float *oc, uint8_t *cc, int KH, int quads) {
    channel(cx, xc, wv, ce, oc, cc, KH, quads, STORE_ANY);
}

/// One call's shared state: the plan, the za row, and the arguments; channels [c0, c1) are
/// independent of every other channel, so any split of them gives the same bytes.
typedef struct {
    const uint8_t *x;
    const int8_t *w;
    const mpq_epilogue *ep;
    float *out;
    uint8_t *out_u8;
    call_ctx cx;
    int sat;            // codes with both clamps at the code range (STORE_SAT)
    int chunk, chunks;  // channels per claimed unit, units
} dw_call;

/// Channel c's weight quads (broadcast into wv) and epilogue.
static inline __attribute__((always_inline)) VNNI_TARGET void setup_channel(const dw_call *d, int c, __m512i *wv,
                                                                            channel_epilogue *ce) {
    const mpq_conv2d_shape *s = d->cx.s;
    const mpq_epilogue *ep = d->ep;
    const int KH = s->kernel_h, KW = s->kernel_w, quads = d->cx.p->quads;
    int32_t wq[64], wsum;
    // The 3x3 form with constant sizes: the generic loop's branches per tap were a
    // visible part of a 7x7 plane's ~110 cycles per channel.
    if (KH == 3 && KW == 3) weight_quads(d->w + (size_t)c * 9, 3, 3, 1, wq, &wsum);
    else weight_quads(d->w + (size_t)c * (size_t)KH * (size_t)KW, KH, KW, quads, wq, &wsum);
    for (int t = 0; t < KH * quads; t++) wv[t] = _mm512_set1_epi32(wq[t]);
    int32_t corr = (int32_t)((uint32_t)0 - (uint32_t)ep->a_zero_point * (uint32_t)wsum);
    if (ep->bias_i32) corr = (int32_t)((uint32_t)corr + (uint32_t)ep->bias_i32[c]);
    ce->correction = _mm512_set1_epi32(corr);
    ce->e = mpq_channel_epilogue_setup(ep, c);
}

static VNNI_TARGET void run_channels(const dw_call *d, int c0, int c1) {
    const mpq_conv2d_shape *s = d->cx.s;
    const int KH = s->kernel_h, quads = d->cx.p->quads;
    const size_t plane_in = (size_t)s->height * (size_t)s->width, plane_out = (size_t)d->cx.OH * (size_t)d->cx.OW;
    __m512i wv[64];
    int c = c0;
    if (KH == 3 && quads == 1 && d->sat && d->cx.p->rows_per_vector > 1) {
        __m512i wv1[3];
        channel_epilogue ce0, ce1;
        for (; c + 2 <= c1; c += 2) {
            setup_channel(d, c, wv, &ce0);
            setup_channel(d, c + 1, wv1, &ce1);
            small_pair_3x3_sat(&d->cx, d->x + (size_t)c * plane_in, d->x + (size_t)(c + 1) * plane_in, wv, wv1, &ce0, &ce1,
                               d->out_u8 + (size_t)c * plane_out, d->out_u8 + (size_t)(c + 1) * plane_out);
        }
    }
    for (; c < c1; c++) {
        const uint8_t *xc = d->x + (size_t)c * plane_in;
        channel_epilogue ce;
        setup_channel(d, c, wv, &ce);
        float *oc = d->out ? d->out + (size_t)c * plane_out : NULL;
        uint8_t *cc = d->out_u8 ? d->out_u8 + (size_t)c * plane_out : NULL;
        if (KH == 3 && quads == 1 && d->sat) channel_3x3_sat(&d->cx, xc, wv, &ce, cc);
        else if (KH == 3 && quads == 1) channel_3x3(&d->cx, xc, wv, &ce, oc, cc);
        else channel_any(&d->cx, xc, wv, &ce, oc, cc, KH, quads);
    }
}

// Channels per unit: about this many units per thread. Each unit is a few whole channels,
// independent, so small units cost nothing but a claim; at 4 per thread the caller waited
// for the worker's last unit in 32% of its pool waits (MobileNetV2 INT8 batch 1, perf).
static void channels_unit(void *arg, int u, int t) {
    (void)t;
    const dw_call *d = (const dw_call *)arg;
    const int C = d->cx.s->channels;
    const int c0 = u * d->chunk, c1 = c0 + d->chunk < C ? c0 + d->chunk : C;
    run_channels(d, c0, c1);
}

VNNI_TARGET int mpq_depthwise_vnni_threads(const uint8_t *x, const mpq_conv2d_shape *s, const int8_t *w,
                                           const mpq_epilogue *ep, float *out, uint8_t *out_u8, int32_t out_zp,
                                           int threads) {
    const int OH = mpq_conv2d_out_h(s), OW = mpq_conv2d_out_w(s);
    const int W = s->width, KH = s->kernel_h, KW = s->kernel_w, C = s->channels;
    // Weight quads live in registers/stack: at most 64 (kernel row, quad) pairs.
    if (KH * ((KW + 3) / 4) > 64) return -1;
    plan p;
    if (plan_cached(s, OH, OW, &p) != 0) return -1;
    // Rows outside the input (wide plans) read this row of za.
    uint8_t *za_row = NULL;
    if (p.rows_per_vector == 1) {
        za_row = malloc((size_t)W + 64);
        if (!za_row) return -1;
        memset(za_row, (uint8_t)ep->a_zero_point, (size_t)W + 64);
    }
    dw_call d = {x, w, ep, out, out_u8,
                 {s, &p, za_row, _mm512_set1_epi8((char)(uint8_t)ep->a_zero_point), _mm512_set1_epi32(out_zp), OH, OW}, 0, C, 1};
    if (out_u8) {
        const mpq_codes_clamps cp = mpq_codes_clamp_plan(ep, out_zp, C);
        d.sat = !cp.need_lo && !cp.need_hi;
    }
    if (threads > 1 && C > 1) {
        // About 16 units per thread (mpq_int8_dw_units_per_thread): a core another process takes holds back only its unit.
        // Contiguous channel ranges per thread (mpq_run_ranges), as the 1x1 convs' pixels.
        const int units = mpq_int8_dw_units_per_thread() * threads;
        d.chunk = (C + units - 1) / units;
        d.chunks = (C + d.chunk - 1) / d.chunk;
        mpq_run_ranges(threads, d.chunks, channels_unit, &d);
    } else {
        run_channels(&d, 0, C);
    }
    free(za_row);
    return 0;
}

int mpq_depthwise_vnni(const uint8_t *x, const mpq_conv2d_shape *s, const int8_t *w, const mpq_epilogue *ep, float *out,
                       uint8_t *out_u8, int32_t out_zp) {
    return mpq_depthwise_vnni_threads(x, s, w, ep, out, out_u8, out_zp, 1);
}
