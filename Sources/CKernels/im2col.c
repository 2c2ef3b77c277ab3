// Conv geometry helpers and the reference uint8 im2col (rows = output pixels,
// cols = (c, kh, kw)): every tap bounds-checked, obviously right. The fast
// version, which the public entry point runs, is in im2col_fast.c.
#include "mpq_internal.h"
#include <string.h>

static int valid(const mpq_conv2d_shape *s) {
    return s && s->channels > 0 && s->height > 0 && s->width > 0 && s->kernel_h > 0 &&
           s->kernel_w > 0 && s->stride_h > 0 && s->stride_w > 0 && s->dilation_h > 0 &&
           s->dilation_w > 0 && s->group > 0 && s->channels % s->group == 0 &&
           s->pad_top >= 0 && s->pad_left >= 0 && s->pad_bottom >= 0 && s->pad_right >= 0;
}

int mpq_conv2d_out_h(const mpq_conv2d_shape *s) {
    if (!valid(s)) return 0;
    int span = s->dilation_h * (s->kernel_h - 1) + 1;
    int room = s->height + s->pad_top + s->pad_bottom - span;
    return room < 0 ? 0 : room / s->stride_h + 1;
}

int mpq_conv2d_out_w(const mpq_conv2d_shape *s) {
    if (!valid(s)) return 0;
    int span = s->dilation_w * (s->kernel_w - 1) + 1;
    int room = s->width + s->pad_left + s->pad_right - span;
    return room < 0 ? 0 : room / s->stride_w + 1;
}

void mpq_im2col_u8_reference(const uint8_t *x, const mpq_conv2d_shape *s, int g,
                             uint8_t zero_point, uint8_t *col) {
    int oh_n = mpq_conv2d_out_h(s), ow_n = mpq_conv2d_out_w(s);
    if (oh_n == 0 || ow_n == 0 || g < 0 || g >= s->group) return;
    const int cg = s->channels / s->group, H = s->height, W = s->width;
    const int KH = s->kernel_h, KW = s->kernel_w;
    const size_t K = (size_t)cg * (size_t)KH * (size_t)KW;
    for (int oh = 0; oh < oh_n; oh++) {
        for (int ow = 0; ow < ow_n; ow++) {
            uint8_t *row = col + ((size_t)oh * (size_t)ow_n + (size_t)ow) * K;
            const int iw0 = ow * s->stride_w - s->pad_left;
            for (int c = 0; c < cg; c++) {
                const uint8_t *plane = x + (size_t)(g * cg + c) * (size_t)H * (size_t)W;
                for (int kh = 0; kh < KH; kh++, row += KW) {
                    int ih = oh * s->stride_h - s->pad_top + kh * s->dilation_h;
                    if (ih < 0 || ih >= H) {
                        memset(row, zero_point, (size_t)KW);
                        continue;
                    }
                    const uint8_t *src = plane + (size_t)ih * (size_t)W;
                    for (int kw = 0; kw < KW; kw++) {
                        int iw = iw0 + kw * s->dilation_w;
                        row[kw] = (iw >= 0 && iw < W) ? src[iw] : zero_point;
                    }
                }
            }
        }
    }
}
