// Fast uint8 im2col. mpq_im2col_u8: same output as mpq_im2col_u8_reference, faster:
// - 1x1, stride 1, no padding: A is the group's [C][H*W] planes transposed,
//   done in 16x16 byte blocks with an SSE2 unpack ladder (SSE2 is baseline
//   x86-64, so no run-time dispatch is needed).
// - otherwise: per output pixel, the columns whose taps are all inside the row
//   are copied without per-tap checks, and out-of-range kernel rows are filled
//   once; only border pixels take the checked loop.
// - strided or padded 1x1 with 16+ channels: the (kh, kw, c) tap loop below (the
//   same column order for a 1x1 kernel).
// mpq_im2col_u8_khwc orders columns (kh, kw, c) instead, so every tap is a
// [C][OW] -> [OW][C] transpose done 16x16 at a time (stride 1 and 2): several
// times faster again for 3x3 convs; weights must be reordered to match.
// mpq_im2col_u8_rows builds any range of output rows with any row stride (the
// blocked conv driver, qgemm_conv.c); the whole-image entry points are one range.
#include "mpq_internal.h"
#include "im2col_transpose.h"
#include <emmintrin.h>
#include <string.h>

// dst[j * dstride + i] = src[i * sstride + j * step] for a 16x16 block, step 1 or 2
// (stride-2 rows are 32 bytes, even bytes kept).
static void transpose16(const uint8_t *src, size_t sstride, int step, uint8_t *dst, size_t dstride) {
    __m128i a[16];
    for (int i = 0; i < 16; i++) a[i] = mpq_load16_step(src + (size_t)i * sstride, step);
    mpq_transpose16_store(a, dst, dstride);
}

// transpose16 with step 2 whose loads end at the 16th pixel instead of one byte past it: each
// row's 32 bytes are read from src - 1 and the odd ones kept (the same bytes src[0], src[2],
// ..., src[30]). For the last block of a row, where src + 32 would leave the row (and, on the
// last row of the last channel, the tensor).
static void transpose16_step2_back(const uint8_t *src, size_t sstride, uint8_t *dst, size_t dstride) {
    __m128i a[16];
    for (int i = 0; i < 16; i++) {
        const uint8_t *p = src + (size_t)i * sstride - 1;
        const __m128i lo = _mm_srli_epi16(_mm_loadu_si128((const __m128i *)p), 8);
        const __m128i hi = _mm_srli_epi16(_mm_loadu_si128((const __m128i *)(p + 16)), 8);
        a[i] = _mm_packus_epi16(lo, hi);
    }
    mpq_transpose16_store(a, dst, dstride);
}

// col[p * ld + c] = x[c * plane + p] for p < pixels, c < channels (pixels <= plane: a run
// of whole output rows of a 1x1 stride-1 conv).
static void transpose_planes(const uint8_t *x, int channels, size_t plane, size_t pixels, uint8_t *col, size_t ld) {
    const size_t C = (size_t)channels;
    size_t p0 = 0;
    for (; p0 + 16 <= pixels; p0 += 16) {
        size_t c0 = 0;
        for (; c0 + 16 <= C; c0 += 16) transpose16(x + c0 * plane + p0, plane, 1, col + p0 * ld + c0, ld);
        for (size_t c = c0; c < C; c++)
            for (size_t p = p0; p < p0 + 16; p++) col[p * ld + c] = x[c * plane + p];
    }
    for (size_t p = p0; p < pixels; p++)
        for (size_t c = 0; c < C; c++) col[p * ld + c] = x[c * plane + p];
}

static void im2col_khwc_rows(const uint8_t *x, const mpq_conv2d_shape *s, int g, uint8_t zero_point,
                             int oh0, int oh1, uint8_t *col, size_t ld);

// Rows [oh0, oh1) of the (c, kh, kw) im2col, written from `col` on, pixel rows `ld` bytes apart.
static void im2col_cnk_rows(const uint8_t *x, const mpq_conv2d_shape *s, int g, uint8_t zero_point,
                            int oh0, int oh1, uint8_t *col, size_t ld) {
    const int ow_n = mpq_conv2d_out_w(s);
    const int cg = s->channels / s->group, H = s->height, W = s->width;
    const int KH = s->kernel_h, KW = s->kernel_w, sw = s->stride_w, dw = s->dilation_w;
    const size_t plane = (size_t)H * (size_t)W;
    const uint8_t *xg = x + (size_t)g * (size_t)cg * plane;
    if (KH == 1 && KW == 1 && s->stride_h == 1 && sw == 1 && s->pad_top == 0 && s->pad_left == 0 &&
        s->pad_bottom == 0 && s->pad_right == 0) {
        transpose_planes(xg + (size_t)oh0 * (size_t)W, cg, plane, (size_t)(oh1 - oh0) * (size_t)W, col, ld);
        return;
    }
    if (KH == 1 && KW == 1 && cg >= 16) {
        // Strided or padded 1x1 (a ResNet downsample): (kh, kw, c) is (c, kh, kw) here, and
        // the tap loop transposes 16 x 16 blocks where this loop copied byte by byte.
        im2col_khwc_rows(x, s, g, zero_point, oh0, oh1, col, ld);
        return;
    }
    // Output columns whose every tap lies inside the row: [ow_lo, ow_hi).
    const int span = (KW - 1) * dw;
    int ow_lo = (s->pad_left + sw - 1) / sw;
    int ow_hi = (W - 1 - span + s->pad_left) >= 0 ? (W - 1 - span + s->pad_left) / sw + 1 : 0;
    if (ow_hi > ow_n) ow_hi = ow_n;
    for (int oh = oh0; oh < oh1; oh++) {
        const int ih0 = oh * s->stride_h - s->pad_top;
        // Kernel rows inside the image for this output row: [kh_lo, kh_hi).
        int kh_lo = 0, kh_hi = KH;
        while (kh_lo < KH && ih0 + kh_lo * s->dilation_h < 0) kh_lo++;
        while (kh_hi > kh_lo && ih0 + (kh_hi - 1) * s->dilation_h >= H) kh_hi--;
        for (int ow = 0; ow < ow_n; ow++) {
            uint8_t *row = col + ((size_t)(oh - oh0) * (size_t)ow_n + (size_t)ow) * ld;
            const int iw0 = ow * sw - s->pad_left;
            const int inside = ow >= ow_lo && ow < ow_hi;
            for (int c = 0; c < cg; c++, row += (size_t)KH * (size_t)KW) {
                const uint8_t *pc = xg + (size_t)c * plane + iw0;
                if (kh_lo > 0) memset(row, zero_point, (size_t)kh_lo * (size_t)KW);
                if (kh_hi < KH) memset(row + kh_hi * KW, zero_point, (size_t)(KH - kh_hi) * (size_t)KW);
                for (int kh = kh_lo; kh < kh_hi; kh++) {
                    const uint8_t *src = pc + (size_t)(ih0 + kh * s->dilation_h) * (size_t)W;
                    uint8_t *dst = row + kh * KW;
                    if (inside && dw == 1) {
                        // Constant-size copies become plain moves.
                        switch (KW) {
                        case 1: dst[0] = src[0]; break;
                        case 3: memcpy(dst, src, 3); break;
                        case 5: memcpy(dst, src, 5); break;
                        case 7: memcpy(dst, src, 7); break;
                        default: memcpy(dst, src, (size_t)KW); break;
                        }
                    } else if (inside) {
                        for (int kw = 0; kw < KW; kw++) dst[kw] = src[kw * dw];
                    } else {
                        for (int kw = 0; kw < KW; kw++) {
                            const int iw = iw0 + kw * dw;
                            dst[kw] = (iw >= 0 && iw < W) ? src[kw * dw] : zero_point;
                        }
                    }
                }
            }
        }
    }
}

void mpq_im2col_u8(const uint8_t *x, const mpq_conv2d_shape *s, int g,
                   uint8_t zero_point, uint8_t *col) {
    const size_t k = (size_t)(s->channels / (s->group > 0 ? s->group : 1)) * (size_t)s->kernel_h * (size_t)s->kernel_w;
    mpq_im2col_u8_rows(x, s, g, zero_point, 0, 0, mpq_conv2d_out_h(s), col, k);
}

void mpq_im2col_u8_khwc(const uint8_t *x, const mpq_conv2d_shape *s, int g,
                        uint8_t zero_point, uint8_t *col) {
    const size_t k = (size_t)(s->channels / (s->group > 0 ? s->group : 1)) * (size_t)s->kernel_h * (size_t)s->kernel_w;
    mpq_im2col_u8_rows(x, s, g, zero_point, 1, 0, mpq_conv2d_out_h(s), col, k);
}

void mpq_im2col_u8_rows(const uint8_t *x, const mpq_conv2d_shape *s, int g, uint8_t zero_point, int khwc,
                        int oh0, int oh1, uint8_t *col, size_t ld) {
    const int oh_n = mpq_conv2d_out_h(s), ow_n = mpq_conv2d_out_w(s);
    if (oh_n == 0 || ow_n == 0 || g < 0 || g >= s->group || oh0 < 0 || oh1 > oh_n || oh0 >= oh1) return;
    const int KH = s->kernel_h, KW = s->kernel_w;
    // (kh, kw, c) is (c, kh, kw) for 1x1; that path has the stride-1 plane transpose.
    if (!khwc || (KH == 1 && KW == 1)) im2col_cnk_rows(x, s, g, zero_point, oh0, oh1, col, ld);
    else im2col_khwc_rows(x, s, g, zero_point, oh0, oh1, col, ld);
}

static void im2col_khwc_rows(const uint8_t *x, const mpq_conv2d_shape *s, int g, uint8_t zero_point,
                             int oh0, int oh1, uint8_t *col, size_t ld) {
    const int ow_n = mpq_conv2d_out_w(s);
    const int cg = s->channels / s->group, H = s->height, W = s->width;
    const int KH = s->kernel_h, KW = s->kernel_w, sw = s->stride_w, dw = s->dilation_w, pl = s->pad_left;
    const size_t plane = (size_t)H * (size_t)W, C = (size_t)cg;
    const uint8_t *xg = x + (size_t)g * C * plane;
    for (int oh = oh0; oh < oh1; oh++) {
        uint8_t *orow = col + (size_t)(oh - oh0) * (size_t)ow_n * ld;  // pixel (oh, 0)
        for (int kh = 0; kh < KH; kh++) {
            const int ih = oh * s->stride_h - s->pad_top + kh * s->dilation_h;
            if (ih < 0 || ih >= H) {
                for (int ow = 0; ow < ow_n; ow++)
                    memset(orow + (size_t)ow * ld + (size_t)kh * (size_t)KW * C, zero_point, (size_t)KW * C);
                continue;
            }
            const uint8_t *xrow = xg + (size_t)ih * (size_t)W;  // channel 0, row ih
            for (int kw = 0; kw < KW; kw++) {
                const size_t q = ((size_t)kh * (size_t)KW + (size_t)kw) * C;  // this tap's first column
                const int off = kw * dw - pl;                                // iw = ow * sw + off
                // Output columns whose tap lies inside the row: [a, b).
                int a = off >= 0 ? 0 : (-off + sw - 1) / sw;
                int b = (W - 1 - off) >= 0 ? (W - 1 - off) / sw + 1 : 0;
                if (b > ow_n) b = ow_n;
                if (a > b) a = b;
                for (int ow = 0; ow < a; ow++) memset(orow + (size_t)ow * ld + q, zero_point, C);
                for (int ow = b; ow < ow_n; ow++) memset(orow + (size_t)ow * ld + q, zero_point, C);
                int ow = a;
                if (sw == 1 || sw == 2) {
                    // 16 pixels x 16 channels per transpose; a block's loads must stay in the row.
                    const int need = sw == 1 ? 16 : 32;
                    for (; ow + 16 <= b && ow * sw + off + need <= W; ow += 16) {
                        const uint8_t *src = xrow + ow * sw + off;
                        uint8_t *dst = orow + (size_t)ow * ld + q;
                        size_t c0 = 0;
                        for (; c0 + 16 <= C; c0 += 16) transpose16(src + c0 * plane, plane, sw, dst + c0, ld);
                        for (size_t c = c0; c < C; c++)
                            for (int i = 0; i < 16; i++) dst[(size_t)i * ld + c] = src[c * plane + (size_t)(i * sw)];
                    }
                    // The row's last pixels as one more whole block where its loads fit the row:
                    // stride 1 backs the block up to end at b (rewriting some pixels with the
                    // same bytes); stride 2 reads each row from one byte earlier (stays inside
                    // when the block starts past the row's first byte). Before, up to 15 pixels
                    // per tap went one byte at a time (half the im2col time of a 64x64 stride-2
                    // conv).
                    if (ow < b && C >= 16) {
                        const int start = sw == 1 ? b - 16 : ow;
                        const int first = start * sw + off;   // the block's first input column
                        const int fits = sw == 1 ? start >= a && first + 16 <= W
                                                 : start + 16 <= b && first >= 1 && first + 31 <= W;
                        if (fits) {
                            const uint8_t *src = xrow + first;
                            uint8_t *dst = orow + (size_t)start * ld + q;
                            size_t c0 = 0;
                            for (; c0 + 16 <= C; c0 += 16) {
                                if (sw == 1) transpose16(src + c0 * plane, plane, 1, dst + c0, ld);
                                else transpose16_step2_back(src + c0 * plane, plane, dst + c0, ld);
                            }
                            for (size_t c = c0; c < C; c++)
                                for (int i = 0; i < 16; i++) dst[(size_t)i * ld + c] = src[c * plane + (size_t)(i * sw)];
                            ow = start + 16;
                        }
                    }
                }
                for (; ow < b; ow++) {
                    const uint8_t *src = xrow + ow * sw + off;
                    uint8_t *dst = orow + (size_t)ow * ld + q;
                    for (size_t c = 0; c < C; c++) dst[c] = src[c * plane];
                }
            }
        }
    }
}

void mpq_conv_weights_khwc_s8(const int8_t *w, int cout, int cg, int kh, int kw, int8_t *out) {
    for (int o = 0; o < cout; o++)
        for (int c = 0; c < cg; c++)
            for (int i = 0; i < kh; i++)
                for (int j = 0; j < kw; j++)
                    out[(((size_t)o * kh + i) * kw + j) * cg + c] = w[(((size_t)o * cg + c) * kh + i) * kw + j];
}
