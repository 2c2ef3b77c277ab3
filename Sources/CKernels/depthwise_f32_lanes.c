// FP32 depthwise 3x3 with 16 channels in the vector lanes (AVX-512F), NCHW at the boundary
// (docs/depthwise.md, "Channels in the lanes"). The pixel-lane kernels (depthwise_f32.c,
// depthwise_f32_avx512.c) fetch each tap's window with permutes or masked loads and are
// instruction-bound on 7x7-28x28 planes; ONNX Runtime's NCHWc depthwise (16 channels per
// vector) needs none of that: an output vector is nine products of a weight vector and a
// contiguous input vector. Here, per (16-channel block, output-row strip):
//   1. the input rows a few output rows need are transposed (16x16 in registers, over the
//      contiguous run of pixels, so narrow planes waste no lanes) into a ring of padded rows
//      [row][pad_left + W + pad_right][16], zero columns on either side, a zero row for
//      padded rows: stride 2 is then a plain load 2 vectors further on;
//   2. each output vector is the nine fused multiply-adds w[t] * x in (kh, kw) order, then
//      the bias and the clamp, into a small buffer [pixel][16];
//   3. that buffer is transposed back into the 16 output planes (contiguous runs of pixels).
//
// Bits: the reference (and every other path) sums the taps inside the input from +0 in
// (kh, kw) order with one fused multiply-add per tap, adds +0 (a -0 sum reads +0), then adds
// the bias when it is not 0, then clamps (mpq_conv_epilogue_f32). Here a padded tap is
// fma(w, 0, acc), and the sum starts at the first product (w * x, rounded once, as
// fma(w, x, +0) is) instead of +0; for finite weights w * 0 is an exact zero, and adding a
// zero, or starting without +0, changes at most the sign of a zero partial sum, which no
// later fma(w, x, acc) with a nonzero product sees; the last add, of the bias or of +0 where
// the bias is 0, turns either zero into the reference's +0 and leaves every other value as it
// is. So the outputs are the reference's bits for finite weights; a call with a non-finite
// weight (w * 0 = NaN) returns -1 and the caller runs the pixel-lane kernels. Every FMA is
// written out (no implicit contraction).
#pragma STDC FP_CONTRACT OFF
#include "depthwise_f32_lanes_internal.h"
#include <immintrin.h>
#include "transpose16_f32_avx512.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LANES_TARGET __attribute__((target("avx512f,fma")))
#define AI inline __attribute__((always_inline))

typedef mpq_dw_lanes_job lanes_job;

/// Input pixels [p0, p1) of the plane (row-major, p = ih * W + iw) of the block's 16 channels
/// (`planes[c]`), transposed into ring row ih % ring_rows, column pad_left + iw.
static LANES_TARGET void transpose_in(const lanes_job *j, const float *const *planes, int p0, int p1, float *ring) {
    const size_t row_floats = (size_t)j->Wp * 16;
    int ih = p0 / j->W, iw = p0 % j->W;
    float *dst = ring + (size_t)(ih % j->ring_rows) * row_floats + (size_t)(j->pl + iw) * 16;
    for (int p = p0; p < p1; p += 16) {
        const int n = p1 - p < 16 ? p1 - p : 16;
        __m512 r[16];
        if (n == 16) {
            for (int c = 0; c < 16; c++) r[c] = _mm512_loadu_ps(planes[c] + p);
        } else {
            const __mmask16 m = (__mmask16)((1u << n) - 1);
            for (int c = 0; c < 16; c++) r[c] = _mm512_maskz_loadu_ps(m, planes[c] + p);
        }
        mpq_transpose16_f32(r);
        if (n == 16 && iw + 16 < j->W) {  // all in one row, not its last pixel
            for (int q = 0; q < 16; q++) _mm512_storeu_ps(dst + q * 16, r[q]);
            dst += 256, iw += 16;
            continue;
        }
        for (int q = 0; q < n; q++) {
            _mm512_storeu_ps(dst, r[q]);
            dst += 16;
            if (++iw == j->W) {
                iw = 0, ih++;
                dst = ring + (size_t)(ih % j->ring_rows) * row_floats + (size_t)j->pl * 16;
            }
        }
    }
}

/// Output pixels [q0, q0 + count) of `out` ([pixel][16], pixel q0 at out[0]) into the first
/// `cb` planes `planes[c]` at offset q0. (no_builtin: clang turned the 16 loads into a
/// memcpy of the tile to the stack, 10% of the kernel's time.)
static LANES_TARGET __attribute__((no_builtin("memcpy"))) void transpose_out(const float *out, int count, int cb, float *const *planes, int q0) {
    for (int q = 0; q < count; q += 16) {
        const int n = count - q < 16 ? count - q : 16;
        __m512 r[16];
        for (int i = 0; i < 16; i++) r[i] = _mm512_load_ps(out + (size_t)(q + i) * 16);  // buffer padded to 16
        mpq_transpose16_f32(r);
        if (n == 16 && cb == 16) {
            for (int c = 0; c < 16; c++) _mm512_storeu_ps(planes[c] + q0 + q, r[c]);
        } else {
            const __mmask16 m = (__mmask16)((1u << n) - 1);
            for (int c = 0; c < cb; c++) _mm512_mask_storeu_ps(planes[c] + q0 + q, m, r[c]);
        }
    }
}

/// One output row: nine fused multiply-adds in (kh, kw) order (the first a product, not added
/// to +0), then the bias (or +0) and the clamp: `max(lo, min(hi, v))` with those operand orders is
/// clamp1's `v < lo ? lo : (v > hi ? hi : v)` for lo <= hi, NaN included (vminps/vmaxps
/// return the second operand when either is NaN or both are zeros).
static LANES_TARGET AI __m512 output1(const float *r0, const float *r1, const float *r2, const __m512 *wv, __m512 bv,
                                      const int clamp, __m512 lo, __m512 hi) {
    __m512 acc = _mm512_mul_ps(wv[0], _mm512_loadu_ps(r0));
    acc = _mm512_fmadd_ps(wv[1], _mm512_loadu_ps(r0 + 16), acc);
    acc = _mm512_fmadd_ps(wv[2], _mm512_loadu_ps(r0 + 32), acc);
    acc = _mm512_fmadd_ps(wv[3], _mm512_loadu_ps(r1), acc);
    acc = _mm512_fmadd_ps(wv[4], _mm512_loadu_ps(r1 + 16), acc);
    acc = _mm512_fmadd_ps(wv[5], _mm512_loadu_ps(r1 + 32), acc);
    acc = _mm512_fmadd_ps(wv[6], _mm512_loadu_ps(r2), acc);
    acc = _mm512_fmadd_ps(wv[7], _mm512_loadu_ps(r2 + 16), acc);
    acc = _mm512_fmadd_ps(wv[8], _mm512_loadu_ps(r2 + 32), acc);
    acc = _mm512_add_ps(acc, bv);
    return clamp ? _mm512_max_ps(lo, _mm512_min_ps(hi, acc)) : acc;
}

static LANES_TARGET AI void row_outputs_k(const float *r0, const float *r1, const float *r2, const __m512 *wv, __m512 bv,
                                          const int clamp, __m512 lo, __m512 hi, int OW, const int s, float *out) {
    int ow = 0;
    for (; ow + 4 <= OW; ow += 4)
        for (int k = 0; k < 4; k++) {
            const size_t o = (size_t)(ow + k) * (size_t)s * 16;
            _mm512_store_ps(out + (size_t)(ow + k) * 16, output1(r0 + o, r1 + o, r2 + o, wv, bv, clamp, lo, hi));
        }
    for (; ow < OW; ow++) {
        const size_t o = (size_t)ow * (size_t)s * 16;
        _mm512_store_ps(out + (size_t)ow * 16, output1(r0 + o, r1 + o, r2 + o, wv, bv, clamp, lo, hi));
    }
}

/// One output row for stride `s` (1 or 2) into `out` ([ow][16]).
static LANES_TARGET void row_outputs(const float *r0, const float *r1, const float *r2, const __m512 *wv, __m512 bv,
                                     int clamp, __m512 lo, __m512 hi, int OW, int s, float *out) {
    if (s == 1) {
        if (clamp) row_outputs_k(r0, r1, r2, wv, bv, 1, lo, hi, OW, 1, out);
        else row_outputs_k(r0, r1, r2, wv, bv, 0, lo, hi, OW, 1, out);
    } else {
        if (clamp) row_outputs_k(r0, r1, r2, wv, bv, 1, lo, hi, OW, 2, out);
        else row_outputs_k(r0, r1, r2, wv, bv, 0, lo, hi, OW, 2, out);
    }
}

float *mpq_dw_lanes_scratch(size_t floats) {
    static _Thread_local float *buf;
    static _Thread_local size_t cap;
    if (floats > cap) {
        free(buf);
        buf = aligned_alloc(64, (floats * sizeof(float) + 63) / 64 * 64);
        cap = buf ? floats : 0;
    }
    return buf;
}

void mpq_dw_lanes_unit_scalar(const mpq_dw_lanes_job *j, int c0, int cb, int oh_begin, int oh_end) {
    for (int c = c0; c < c0 + cb; c++) {
        const float *xc = j->x + (size_t)c * (size_t)j->H * (size_t)j->W, *wc = j->w + (size_t)c * 9;
        const float b = j->bias ? j->bias[c] : 0.0f;
        for (int oh = oh_begin; oh < oh_end; oh++)
            for (int ow = 0; ow < j->OW; ow++) {
                float acc = 0.0f;
                for (int kh = 0; kh < 3; kh++)
                    for (int kw = 0; kw < 3; kw++) {
                        const int ih = oh * j->sh - j->pt + kh, iw = ow * j->s - j->pl + kw;
                        if (ih < 0 || ih >= j->H || iw < 0 || iw >= j->W) continue;
                        acc = fmaf(wc[kh * 3 + kw], xc[(size_t)ih * (size_t)j->W + (size_t)iw], acc);
                    }
                float v = acc + 0.0f;
                if (b != 0.0f) v = v + b;
                if (j->clamp) v = v < j->lo ? j->lo : (v > j->hi ? j->hi : v);
                j->y[((size_t)c * (size_t)j->OH + (size_t)oh) * (size_t)j->OW + (size_t)ow] = v;
            }
    }
}

/// Unit u: channel block u / strips, output rows of strip u % strips.
static LANES_TARGET void lanes_unit(void *arg, int u) {
    const lanes_job *j = arg;
    const int block = u / j->strips, strip = u % j->strips;
    const int c0 = block * 16, cb = j->C - c0 < 16 ? j->C - c0 : 16;
    const int oh_begin = (int)((long)j->OH * strip / j->strips), oh_end = (int)((long)j->OH * (strip + 1) / j->strips);
    if (oh_begin >= oh_end) return;
    const size_t in_plane = (size_t)j->H * (size_t)j->W, out_plane = (size_t)j->OH * (size_t)j->OW;
    // Lanes past the last channel repeat it (finite weights, outputs not stored).
    const float *xin[16];
    float *yout[16];
    _Alignas(64) float wt[9][16], bt[16];
    for (int c = 0; c < 16; c++) {
        const int ch = c0 + (c < cb ? c : cb - 1);
        xin[c] = j->x + (size_t)ch * in_plane;
        yout[c] = j->y + (size_t)ch * out_plane;
        for (int t = 0; t < 9; t++) wt[t][c] = j->w[(size_t)ch * 9 + (size_t)t];
        const float b = j->bias ? j->bias[ch] : 0.0f;
        bt[c] = b != 0.0f ? b : 0.0f;  // +0 for a zero bias (turns a -0 sum into the reference's +0)
    }
    __m512 wv[9];
    for (int t = 0; t < 9; t++) wv[t] = _mm512_load_ps(wt[t]);
    const __m512 bv = _mm512_load_ps(bt), lo = _mm512_set1_ps(j->lo), hi = _mm512_set1_ps(j->hi);
    // Ring of padded input rows, a zero row for padded rows, the strip's outputs: the
    // thread's scratch buffer (a few tens of KiB), zeroed so pad columns read 0.
    float *ring = mpq_dw_lanes_scratch(j->ring_floats + (size_t)j->Wp * 16 + j->out_floats);
    if (!ring) {
        mpq_dw_lanes_unit_scalar(j, c0, cb, oh_begin, oh_end);
        return;
    }
    memset(ring, 0, (j->ring_floats + (size_t)j->Wp * 16) * sizeof(float));
    float *zero = ring + j->ring_floats, *out = zero + (size_t)j->Wp * 16;
    const size_t row_floats = (size_t)j->Wp * 16;
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
            float *o = out + (size_t)r * (size_t)j->OW * 16;
            row_outputs(rp[0], rp[1], rp[2], wv, bv, j->clamp, lo, hi, j->OW, j->s, o);
        }
        transpose_out(out, rows * j->OW, cb, yout, oh0 * j->OW);
    }
}

int mpq_dw_lanes_plan(mpq_dw_lanes_job *j, const float *x, const mpq_conv2d_shape *s, const float *w, const float *bias,
                      int clamp, float lo, float hi, float *y, int lanes, int *threads) {
    const int OH = mpq_conv2d_out_h(s), OW = mpq_conv2d_out_w(s);
    *j = (mpq_dw_lanes_job){.x = x, .w = w, .bias = bias, .y = y, .C = s->channels, .H = s->height, .W = s->width,
                            .OH = OH, .OW = OW, .s = s->stride_w, .sh = s->stride_h, .pt = s->pad_top,
                            .pl = s->pad_left, .lanes = lanes, .clamp = clamp, .lo = lo, .hi = hi};
    j->Wp = s->width + s->pad_left + s->pad_right;
    if ((OW - 1) * j->s + 3 > j->Wp) j->Wp = (OW - 1) * j->s + 3;  // reads stay inside the row
    // One output row per sub-strip (two or more below 9 wide, to fill 16-pixel chunks): the
    // ring and the output row stay in L1. Measured (one thread, MobileNetV2's layers): 1.0-1.4x
    // faster than sub-strips of ~128 outputs, most on stride 2 and 14x14.
    j->sub_rows = OW >= 16 ? 1 : 16 / OW;
    if (j->sub_rows > OH) j->sub_rows = OH;
    j->ring_rows = (j->sub_rows - 1) * j->sh + 3;
    j->ring_floats = (size_t)j->ring_rows * (size_t)j->Wp * (size_t)lanes;
    j->out_floats = ((size_t)j->sub_rows * (size_t)OW + (size_t)lanes - 1) / (size_t)lanes * (size_t)lanes * (size_t)lanes;
    // Units: blocks of `lanes` channels x row strips. With threads, whole blocks when they go
    // evenly round (each thread a contiguous run of them: its channels' planes, no strip's
    // overlap rows transposed twice); otherwise about eight units per thread (a late worker
    // leaves its share to the others) and at least 4 output rows per strip.
    // MPQ_FP32_DW_EVEN_BLOCKS=0 (read once): strips whenever there are under eight blocks per
    // thread, as before s15.
    const int blocks = (s->channels + lanes - 1) / lanes;
    if (mpq_single_threaded() || *threads < 1) *threads = 1;  // an image chain's thread: no strips, no overlap rows
    static _Atomic long even_state = -1;
    const int even = mpq_env_long_once("MPQ_FP32_DW_EVEN_BLOCKS", 1, &even_state) && blocks % *threads == 0;
    j->strips = 1;
    if (*threads > 1 && !even) {
        const int want = (8 * *threads + blocks - 1) / blocks, most = OH / 4 > 1 ? OH / 4 : 1;
        j->strips = want < most ? want : most;
    }
    return blocks * j->strips;
}

/// Units numbered block-major (unit u: block u / strips), each thread first its own contiguous
/// range (mpq_run_ranges): a thread's channels are one run of planes, in and out. Claimed one by
/// one from a counter (before s15) the two cores took alternate 16-channel blocks, so each read
/// half its input from the planes the other core had just written (a 1x1 expand before it that
/// splits by output channels, sgemm_conv_direct.c, leaves each core's channels in its own L2).
/// Same units, so the same bytes; MPQ_POOL_RANGES=0 claims from a counter again.
static void lanes_range_unit(void *arg, int u, int task) {
    (void)task;
    lanes_unit(arg, u);
}

/// MPQ_FP32_DW_LANES=0 turns the kernel off (A/B against the pixel-lane kernels).
static int lanes_enabled(void) {
    static _Atomic long state = -1;
    return mpq_env_long_once("MPQ_FP32_DW_LANES", 1, &state) != 0;
}

// The largest output plane the AVX2 path gives its 8-lane kernel (depthwise_f32_lanes_avx2.c):
// every plane by default. One thread on MobileNetV2's layers (Zen 3, s21) it took 0.24-0.52x
// the padded-plane kernel's time from 56x56 outputs down and 0.69 at 32 x 112x112.
#define FP32_LANES_DEFAULT_PIXELS (1L << 30)
static _Atomic long fp32_lanes_pixels = -1;

long mpq_set_fp32_depthwise_lanes_pixels(long pixels) {
    const long before = mpq_env_long_once("MPQ_FP32_DW_LANES_PIXELS", FP32_LANES_DEFAULT_PIXELS, &fp32_lanes_pixels);
    atomic_store_explicit(&fp32_lanes_pixels, pixels < 0 ? 0 : pixels, memory_order_relaxed);
    return before;
}

int mpq_depthwise3x3_f32_lanes(mpq_kernel_path path, const float *x, const mpq_conv2d_shape *s, const float *w,
                               const float *bias, mpq_activation act, float lo, float hi, float *y, int threads) {
    path = mpq_resolve_kernel_path(path);
    // The VNNI path implies AVX-512F; the AVX2 path runs the 8-lane kernel or the padded-plane one.
    if ((path != MPQ_PATH_VNNI && path != MPQ_PATH_AVX2) || !lanes_enabled() || !x || !w || !y) return -1;
    const int OH = mpq_conv2d_out_h(s), OW = mpq_conv2d_out_w(s);
    if (OH <= 0 || OW <= 0 || s->group != s->channels || s->channels <= 0 || s->kernel_h != 3 || s->kernel_w != 3 ||
        s->dilation_h != 1 || s->dilation_w != 1 || (s->stride_w != 1 && s->stride_w != 2) || s->stride_h < 1 ||
        s->pad_top < 0 || s->pad_left < 0 || s->pad_right < 0)
        return -1;
    if (act == MPQ_ACT_SILU || (act == MPQ_ACT_CLAMP && !(lo <= hi))) return -1;
    unsigned nonfinite = 0;  // exponent all ones: inf or NaN (a branch-free loop that vectorises)
    for (size_t i = 0; i < (size_t)s->channels * 9; i++) {
        uint32_t bits;
        memcpy(&bits, w + i, 4);
        nonfinite |= (bits & 0x7F800000u) == 0x7F800000u;
    }
    if (nonfinite) return -1;
    if (path == MPQ_PATH_AVX2) {
        // Output planes up to MPQ_FP32_DW_LANES_PIXELS (default all, read once; 0 for the
        // padded-plane kernel everywhere, an A/B) take the 8-lane form of this kernel.
        const long most = mpq_env_long_once("MPQ_FP32_DW_LANES_PIXELS", FP32_LANES_DEFAULT_PIXELS, &fp32_lanes_pixels);
        if ((long)OH * OW <= most) {
            mpq_dw_lanes_job j;
            const int units = mpq_dw_lanes_plan(&j, x, s, w, bias, act == MPQ_ACT_CLAMP, lo, hi, y, 8, &threads);
            mpq_run_ranges(threads, units, mpq_dw_lanes_unit_avx2, &j);
            return 0;
        }
        return mpq_depthwise_f32_padded_avx2(x, s, w, bias, act == MPQ_ACT_CLAMP, lo, hi, y,
                                             mpq_single_threaded() || threads < 1 ? 1 : threads);
    }
    lanes_job j;
    const int units = mpq_dw_lanes_plan(&j, x, s, w, bias, act == MPQ_ACT_CLAMP, lo, hi, y, 16, &threads);
    mpq_run_ranges(threads, units, lanes_range_unit, &j);
    return 0;
}
