// FP32 depthwise 3x3 (one plane, undilated), the MobileNet case. The tap-by-tap Swift
// loop it replaces made nine passes over each output plane (1-4 GFLOP/s on MobileNetV2's
// wide planes); here each output sums its nine taps in registers, eight outputs of a row
// per AVX2 vector (sixteen per AVX-512 vector on the VNNI path), for strides 1 and 2
// (stride 2 de-interleaves two loads). Border
// outputs, other strides and row tails use the scalar pixel, the reference's arithmetic.
// Every path sums the taps that lie inside the input in (kh, kw) order from +0 with one
// fused multiply-add per tap (fmaf, vfmadd), then adds +0 (a -0 sum reads +0), as the
// reference and the Swift loops do, so all paths agree bit for bit (docs/depthwise.md,
// "Fused multiply-add"). No implicit contraction: every FMA here is written out.
#pragma STDC FP_CONTRACT OFF
#include "mpq_internal.h"
#include <immintrin.h>
#include <math.h>

static inline float pixel(const float *x, int H, int W, const float *w, int ih0, int iw0) {
    float acc = 0.0f;
    for (int kh = 0; kh < 3; kh++) {
        int ih = ih0 + kh;
        if (ih < 0 || ih >= H) continue;
        for (int kw = 0; kw < 3; kw++) {
            int iw = iw0 + kw;
            if (iw < 0 || iw >= W) continue;
            acc = fmaf(w[kh * 3 + kw], x[(size_t)ih * (size_t)W + (size_t)iw], acc);
        }
    }
    return acc + 0.0f;
}

// `pixel` for an output whose nine taps are all inside: the same sums, no checks.
static inline float pixel_inside(const float *x, int W, const float *w, int ih0, int iw0) {
    const float *r = x + (size_t)ih0 * (size_t)W + (size_t)iw0;
    float acc = 0.0f;
    for (int kh = 0; kh < 3; kh++)
        for (int kw = 0; kw < 3; kw++) acc = fmaf(w[kh * 3 + kw], r[(size_t)kh * (size_t)W + (size_t)kw], acc);
    return acc + 0.0f;
}

void mpq_depthwise3x3_f32_reference(const float *x, int H, int W, const float *w, int stride_h, int stride_w,
                                    int pad_top, int pad_left, int OH, int OW, float *y) {
    for (int oh = 0; oh < OH; oh++)
        for (int ow = 0; ow < OW; ow++)
            y[(size_t)oh * (size_t)OW + (size_t)ow] = pixel(x, H, W, w, oh * stride_h - pad_top, ow * stride_w - pad_left);
}

// One output column of `rows` rows by the scalar pixel (windows touching padding, row tails):
// the reference's arithmetic, so the vector kernels' bits.
static inline void scalar_column(const float *x, int H, int W, const float *w, int ih0, int stride_h, int rows,
                                 int first, float *y, size_t OW) {
    for (int j = 0; j < rows; j++) {
        const int ihj = ih0 + j * stride_h;
        const int inside = ihj >= 0 && ihj + 2 < H;
        y[(size_t)j * OW] = inside && first >= 0 && first + 2 < W ? pixel_inside(x, W, w, ihj, first) : pixel(x, H, W, w, ihj, first);
    }
}

// Inputs iw, iw + s, ..., iw + 7s of a row (s = 1 or 2); stride 2 reads p[0..15].
static inline __attribute__((target("avx2"))) __m256 load8(const float *p, int s) {
    if (s == 1) return _mm256_loadu_ps(p);
    __m256 a = _mm256_loadu_ps(p), b = _mm256_loadu_ps(p + 8);
    __m256 even = _mm256_shuffle_ps(a, b, 0x88);  // a0 a2 b0 b2 | a4 a6 b4 b6
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(even), 0xD8));
}

// The vector block at `r0` for `n` (1-4) output rows `row_step` input floats apart: eight
// sums per row in registers. A row's sum is a chain of nine dependent adds; running up to
// four rows' chains side by side hides part of the add latency that bounded the one-row
// loop (measured 1.0-1.17x on MobileNetV2's 112-28 planes, four rows ~8% over two). Each
// output's own sum, and so its bits, is unchanged.
static inline __attribute__((target("avx2,fma"))) void blockn(const float *r0, size_t W, int s, const int n, const __m256 *wv,
                                                          float *y, size_t OW, size_t row_step) {
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int kh = 0; kh < 3; kh++)
        for (int kw = 0; kw < 3; kw++)
            for (int j = 0; j < n; j++)
                acc[j] = _mm256_fmadd_ps(wv[kh * 3 + kw], load8(r0 + (size_t)j * row_step + (size_t)kh * W + kw, s), acc[j]);
    for (int j = 0; j < n; j++) _mm256_storeu_ps(y + (size_t)j * OW, _mm256_add_ps(acc[j], _mm256_setzero_ps()));
}

__attribute__((target("avx2,fma")))
void mpq_depthwise3x3_f32_avx2(const float *x, int H, int W, const float *w, int stride_h, int stride_w,
                               int pad_top, int pad_left, int OH, int OW, float *y) {
    const int s = stride_w;
    if (s != 1 && s != 2) {
        mpq_depthwise3x3_f32_reference(x, H, W, w, stride_h, stride_w, pad_top, pad_left, OH, OW, y);
        return;
    }
    // Last input index a block of 8 starting at output ow reads: the last tap of its last
    // pixel (stride 1), one more for stride 2 (its second load covers 16 floats).
    const int reach = s == 1 ? 7 + 2 : 14 + 2 + 1;
    __m256 wv[9];
    for (int t = 0; t < 9; t++) wv[t] = _mm256_set1_ps(w[t]);
    const size_t row_step = (size_t)stride_h * (size_t)W;
    for (int oh = 0; oh < OH;) {
        const int ih0 = oh * stride_h - pad_top;
        const int rows_inside = ih0 >= 0 && ih0 + 2 < H;
        // Up to four rows together while their windows lie inside the input's rows.
        int rows = 1;
        while (rows_inside && rows < 4 && oh + rows < OH && ih0 + rows * stride_h + 2 < H) rows++;
        float *yrow = y + (size_t)oh * (size_t)OW;
        int ow = 0;
        while (ow < OW) {
            const int first = ow * s - pad_left;
            int start = -1;
            if (rows_inside && first >= 0) {
                if (ow + 8 <= OW && first + reach < W) {
                    start = ow;
                } else if (ow + 8 > OW && OW >= 8) {
                    // Row tail: a block ending at the last output, re-writing outputs
                    // already done with the same bits, instead of going scalar.
                    const int b = OW - 8, bf = b * s - pad_left;
                    if (bf >= 0 && bf + reach < W) start = b;
                }
            }
            if (start < 0) {
                scalar_column(x, H, W, w, ih0, stride_h, rows, first, yrow + ow, (size_t)OW);
                ow++;
                continue;
            }
            const float *r = x + (size_t)ih0 * (size_t)W + (size_t)(start * s - pad_left);
            switch (rows) {
            case 4: blockn(r, (size_t)W, s, 4, wv, yrow + start, (size_t)OW, row_step); break;
            case 3: blockn(r, (size_t)W, s, 3, wv, yrow + start, (size_t)OW, row_step); break;
            case 2: blockn(r, (size_t)W, s, 2, wv, yrow + start, (size_t)OW, row_step); break;
            default: blockn(r, (size_t)W, s, 1, wv, yrow + start, (size_t)OW, row_step); break;
            }
            ow = start + 8;
        }
        oh += rows;
    }
}

// MARK: - The same plane kernel, 16 outputs per vector (AVX-512)

// Inputs iw, iw + s, ..., iw + 15s of a row (s = 1 or 2). Stride 2 reads p[0..30] (the
// second load masked to 15 floats), so a block reads exactly the inputs its windows cover.
static inline __attribute__((target("avx512f"))) __m512 load16(const float *p, int s) {
    if (s == 1) return _mm512_loadu_ps(p);
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    return _mm512_permutex2var_ps(_mm512_loadu_ps(p), even, _mm512_maskz_loadu_ps((__mmask16)0x7FFF, p + 16));
}

// `blockn` with 16 outputs per row: the same nine dependent fused multiply-adds per output,
// in the same order, so the same bits; twice the outputs per instruction.
static inline __attribute__((target("avx512f"))) void blockn16(const float *r0, size_t W, int s, const int n,
                                                               const __m512 *wv, float *y, size_t OW, size_t row_step) {
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    for (int kh = 0; kh < 3; kh++)
        for (int kw = 0; kw < 3; kw++)
            for (int j = 0; j < n; j++)
                acc[j] = _mm512_fmadd_ps(wv[kh * 3 + kw], load16(r0 + (size_t)j * row_step + (size_t)kh * W + kw, s), acc[j]);
    for (int j = 0; j < n; j++) _mm512_storeu_ps(y + (size_t)j * OW, _mm512_add_ps(acc[j], _mm512_setzero_ps()));
}

// Up to four rows whose windows lie inside the input's rows at a time, 16-output blocks
// over the columns whose windows lie inside the row ([lo, hi]). Everything else, the
// padded border, goes to masked 16-blocks (`mpq_depthwise3x3_f32_borders_avx512`): the
// scalar pixel there took ~40% of a 112-wide plane (2% of its outputs) and ~60% of a
// 56-wide one. Rows narrower than 16 interior outputs keep the 8-wide kernel.
__attribute__((target("avx512f")))
static void depthwise3x3_f32_avx512(const float *x, int H, int W, const float *w, int stride_h, int stride_w,
                                    int pad_top, int pad_left, int OH, int OW, float *y) {
    const int s = stride_w;
    int lo = (pad_left + s - 1) / s, hi = W - 3 + pad_left >= 0 ? (W - 3 + pad_left) / s : -1;
    if (hi > OW - 1) hi = OW - 1;
    if ((s != 1 && s != 2) || hi - lo + 1 < 16) {
        mpq_depthwise3x3_f32_avx2(x, H, W, w, stride_h, stride_w, pad_top, pad_left, OH, OW, y);
        return;
    }
    // Rows [oh_lo, oh_hi] have their windows inside the input's rows; of those, columns
    // [L, R) (multiples of 16 from either end, inside [lo, hi]) run unmasked here, the rest
    // (one 16-block per side and the first and last row for pad 1) in masked blocks: a
    // 112-wide row is 7 blocks, as if unpadded. A middle narrower than a block goes masked.
    const int oh_lo = (pad_top + stride_h - 1) / stride_h;
    int oh_hi = H - 3 + pad_top >= 0 ? (H - 3 + pad_top) / stride_h : -1;
    if (oh_hi > OH - 1) oh_hi = OH - 1;
    int L = (lo + 15) / 16 * 16, R = OW - (OW - 1 - hi + 15) / 16 * 16;
    if (R - L < 16) L = R = OW;
    mpq_depthwise3x3_f32_borders_avx512(x, H, W, w, stride_h, s, pad_top, pad_left, OH, OW, oh_lo, oh_hi, L, R, y);
    if (L >= R) return;
    __m512 wv[9];
    for (int t = 0; t < 9; t++) wv[t] = _mm512_set1_ps(w[t]);
    const size_t row_step = (size_t)stride_h * (size_t)W;
    for (int oh = oh_lo; oh <= oh_hi;) {
        const int ih0 = oh * stride_h - pad_top, rows = oh_hi + 1 - oh < 4 ? oh_hi + 1 - oh : 4;
        float *yrow = y + (size_t)oh * (size_t)OW;
        for (int b = L; b < R; b += 16) {
            const int start = b + 16 <= R ? b : R - 16;  // the last block ends at R (same bits twice)
            const float *r = x + (size_t)ih0 * (size_t)W + (size_t)(start * s - pad_left);
            switch (rows) {
            case 4: blockn16(r, (size_t)W, s, 4, wv, yrow + start, (size_t)OW, row_step); break;
            case 3: blockn16(r, (size_t)W, s, 3, wv, yrow + start, (size_t)OW, row_step); break;
            case 2: blockn16(r, (size_t)W, s, 2, wv, yrow + start, (size_t)OW, row_step); break;
            default: blockn16(r, (size_t)W, s, 1, wv, yrow + start, (size_t)OW, row_step); break;
            }
        }
        oh += rows;
    }
}

void mpq_depthwise3x3_f32(mpq_kernel_path path, const float *x, int H, int W, const float *w, int stride_h,
                          int stride_w, int pad_top, int pad_left, int OH, int OW, float *y) {
    path = mpq_resolve_kernel_path(path);
    if (path == MPQ_PATH_REFERENCE)
        mpq_depthwise3x3_f32_reference(x, H, W, w, stride_h, stride_w, pad_top, pad_left, OH, OW, y);
    else if (path == MPQ_PATH_VNNI)  // the VNNI path implies AVX-512F (dispatch.c)
        depthwise3x3_f32_avx512(x, H, W, w, stride_h, stride_w, pad_top, pad_left, OH, OW, y);
    else
        mpq_depthwise3x3_f32_avx2(x, H, W, w, stride_h, stride_w, pad_top, pad_left, OH, OW, y);
}

// MARK: - Whole-image depthwise (any kernel size), choosing a kernel per geometry

void mpq_depthwise_f32_reference(const float *x, const mpq_conv2d_shape *s, const float *w, float *y) {
    const int OH = mpq_conv2d_out_h(s), OW = mpq_conv2d_out_w(s);
    const int H = s->height, W = s->width, KH = s->kernel_h, KW = s->kernel_w;
    for (int c = 0; c < s->channels; c++) {
        const float *xc = x + (size_t)c * (size_t)H * (size_t)W, *wc = w + (size_t)c * (size_t)KH * (size_t)KW;
        float *yc = y + (size_t)c * (size_t)OH * (size_t)OW;
        for (int oh = 0; oh < OH; oh++)
            for (int ow = 0; ow < OW; ow++) {
                float acc = 0.0f;
                for (int kh = 0; kh < KH; kh++) {
                    const int ih = oh * s->stride_h - s->pad_top + kh * s->dilation_h;
                    if (ih < 0 || ih >= H) continue;
                    for (int kw = 0; kw < KW; kw++) {
                        const int iw = ow * s->stride_w - s->pad_left + kw * s->dilation_w;
                        if (iw < 0 || iw >= W) continue;
                        acc = fmaf(wc[kh * KW + kw], xc[(size_t)ih * (size_t)W + (size_t)iw], acc);
                    }
                }
                yc[(size_t)oh * (size_t)OW + (size_t)ow] = acc + 0.0f;  // a -0 sum reads +0
            }
    }
}

int mpq_depthwise_f32(mpq_kernel_path path, const float *x, const mpq_conv2d_shape *s, const float *w, float *y) {
    const int OH = mpq_conv2d_out_h(s), OW = mpq_conv2d_out_w(s);
    if (!x || !w || !y || OH <= 0 || OW <= 0 || s->group != s->channels) return -1;
    path = mpq_resolve_kernel_path(path);
    // The AVX-512 kernels (docs/depthwise.md), chosen by what measured fastest per geometry
    // (`mpq-bench depthwise`, one thread): the row kernel for stride-1 rows of 9-32 outputs
    // and stride 2 onto 16-32 (borders masked, not scalar: 1.0-1.9x faster than the 3x3
    // plane kernel there, 1.5x the gather kernel on 14-wide planes); the gather kernel for
    // narrower planes (several rows per vector) and stride 2 onto fewer than 16; the 3x3
    // plane kernel for wider rows (since its borders went to masked blocks, s11: 1.2x
    // faster than the row kernel at 56 and 112, whose masks and per-tap `vpermt2ps` cost
    // more than the plane kernel's unmasked interior); the row kernel again for the kernel
    // sizes the plane kernel does not take.
    const int plane3x3 = s->kernel_h == 3 && s->kernel_w == 3 && s->dilation_h == 1 && s->dilation_w == 1;
    if (path == MPQ_PATH_VNNI) {
        const int rows_fastest = OW <= 32 && ((s->stride_w == 1 && OW > 8) || (s->stride_w == 2 && OW >= 16));
        if (rows_fastest && mpq_depthwise_f32_rows_avx512(x, s, w, y) == 0) return 0;
        if (mpq_depthwise_f32_avx512(x, s, w, y) == 0) return 0;
        if (!plane3x3 && mpq_depthwise_f32_rows_avx512(x, s, w, y) == 0) return 0;
    }
    if (path == MPQ_PATH_REFERENCE || !plane3x3) {
        mpq_depthwise_f32_reference(x, s, w, y);
        return 0;
    }
    const size_t in = (size_t)s->height * (size_t)s->width, out = (size_t)OH * (size_t)OW;
    for (int c = 0; c < s->channels; c++)
        mpq_depthwise3x3_f32(path, x + (size_t)c * in, s->height, s->width, w + (size_t)c * 9, s->stride_h, s->stride_w,
                             s->pad_top, s->pad_left, OH, OW, y + (size_t)c * out);
    return 0;
}
