// Few-channel im2col from a padded copy of the image (docs/int8-conv.md, "Few-channel
// stems"). A stem conv (3 input channels, 3x3 or 7x7) has too few channels per group for
// the (kh, kw, c) transposes, and the (c, kh, kw) loop in im2col_fast.c copies 3 or 7
// bytes per tap and pixel (9 or 21 tiny copies per pixel, checked ones at the border).
// Here the group's planes are first copied once into a buffer with the padding written
// out (zero_point) plus slack on the right, so no tap of any output pixel needs a bounds
// check. Then every column q = (c, kh, kw) of a row of output pixels is one row of that
// buffer read at stride `stride_w`: 16 pixels x 16 columns are one 16 x 16 byte transpose
// from 16 row pointers. K is covered by blocks at 0, 16, ... and one last block ending at
// the padded K (overlapping the one before it: the same bytes written twice); columns
// from K to the padded K read a row of zero bytes, which is what the driver's calloc gave
// them before. Stride 1 or 2 (the transpose keeps every second byte of 32), any dilation.
// Same bytes as mpq_im2col_u8_reference; the scalar tail below is the same gather.
#include "mpq_internal.h"
#include "im2col_transpose.h"
#include <string.h>

/// Slack bytes right of each padded row: a stride-2 block of 16 pixels reads 32 bytes from
/// its first tap, one past the last one it keeps.
#define ROW_SLACK 32
/// Most columns a row of taps may have (the pointer table lives on the stack).
#define MAX_K 1024

typedef struct {
    int cg, ph, pitch;  // planes, padded rows, bytes per padded row
} padded_geometry;

static padded_geometry geometry(const mpq_conv2d_shape *s) {
    padded_geometry p;
    p.cg = s->channels / s->group;
    p.ph = s->height + s->pad_top + s->pad_bottom;
    p.pitch = s->width + s->pad_left + s->pad_right + ROW_SLACK;
    return p;
}

int mpq_im2col_padded_applies(const mpq_conv2d_shape *s, int khwc) {
    if (mpq_conv2d_out_h(s) == 0 || mpq_conv2d_out_w(s) == 0) return 0;
    const int cg = s->channels / s->group, k = cg * s->kernel_h * s->kernel_w;
    // (kh, kw, c) order with 16+ channels has its own transposes; a 1x1 kernel has the
    // plane transpose; K below 16 has no whole 16-column block.
    return !khwc && cg < 16 && s->kernel_h * s->kernel_w > 1 && (s->stride_w == 1 || s->stride_w == 2) &&
           k >= 16 && k <= MAX_K;
}

size_t mpq_im2col_padded_bytes(const mpq_conv2d_shape *s) {
    const padded_geometry p = geometry(s);
    // The group's planes, then one row of zeros (the K-pad columns' source).
    return ((size_t)p.cg * (size_t)p.ph + 1) * (size_t)p.pitch;
}

void mpq_im2col_pad_image(const uint8_t *x, const mpq_conv2d_shape *s, int g, uint8_t zero_point, uint8_t *buf) {
    const padded_geometry p = geometry(s);
    const int H = s->height, W = s->width, pl = s->pad_left;
    const size_t plane = (size_t)H * (size_t)W, pplane = (size_t)p.ph * (size_t)p.pitch;
    const uint8_t *xg = x + (size_t)g * (size_t)p.cg * plane;
    for (int c = 0; c < p.cg; c++) {
        uint8_t *dst = buf + (size_t)c * pplane;
        memset(dst, zero_point, (size_t)s->pad_top * (size_t)p.pitch);
        for (int h = 0; h < H; h++) {
            uint8_t *row = dst + (size_t)(s->pad_top + h) * (size_t)p.pitch;
            memset(row, zero_point, (size_t)pl);
            memcpy(row + pl, xg + (size_t)c * plane + (size_t)h * (size_t)W, (size_t)W);
            memset(row + pl + W, zero_point, (size_t)(p.pitch - pl - W));
        }
        memset(dst + (size_t)(s->pad_top + H) * (size_t)p.pitch, zero_point, (size_t)s->pad_bottom * (size_t)p.pitch);
    }
    memset(buf + (size_t)p.cg * pplane, 0, (size_t)p.pitch);
}

void mpq_im2col_padded_rows(const uint8_t *buf, const mpq_conv2d_shape *s, int oh0, int oh1, uint8_t *col, size_t ld) {
    const padded_geometry p = geometry(s);
    const int ow_n = mpq_conv2d_out_w(s), KH = s->kernel_h, KW = s->kernel_w, sw = s->stride_w;
    const int kp = (int)ld;  // columns from K to ld read the zero row
    const size_t pplane = (size_t)p.ph * (size_t)p.pitch;
    const uint8_t *zeros = buf + (size_t)p.cg * pplane;
    const uint8_t *tap[MAX_K + 16];
    for (int oh = oh0; oh < oh1; oh++) {
        // Column q's source for output pixel ow: tap[q] + ow * sw (the zero row: + 0 would
        // do, and + ow * sw stays inside its pitch, so it takes the same step).
        int q = 0;
        for (int c = 0; c < p.cg; c++)
            for (int kh = 0; kh < KH; kh++) {
                const uint8_t *row = buf + (size_t)c * pplane + (size_t)(oh * s->stride_h + kh * s->dilation_h) * (size_t)p.pitch;
                for (int kw = 0; kw < KW; kw++) tap[q++] = row + kw * s->dilation_w;
            }
        for (; q < kp; q++) tap[q] = zeros;
        uint8_t *orow = col + (size_t)(oh - oh0) * (size_t)ow_n * ld;
        int ow = 0;
        for (; ow + 16 <= ow_n; ow += 16) {
            const size_t off = (size_t)ow * (size_t)sw;
            uint8_t *dst = orow + (size_t)ow * ld;
            for (int q0 = 0;; q0 += 16) {
                if (q0 + 16 > kp) q0 = kp - 16;  // the last block ends at kp
                __m128i a[16];
                for (int i = 0; i < 16; i++) a[i] = mpq_load16_step(tap[q0 + i] + off, sw);
                mpq_transpose16_store(a, dst + q0, ld);
                if (q0 + 16 >= kp) break;
            }
        }
        for (; ow < ow_n; ow++) {
            const size_t off = (size_t)ow * (size_t)sw;
            uint8_t *dst = orow + (size_t)ow * ld;
            for (int c = 0; c < kp; c++) dst[c] = tap[c][off];
        }
    }
}

int mpq_im2col_u8_padded(const uint8_t *x, const mpq_conv2d_shape *s, int g, uint8_t zero_point, uint8_t *col,
                         uint8_t *scratch) {
    if (g < 0 || g >= s->group || !mpq_im2col_padded_applies(s, 0)) return -1;
    const size_t k = (size_t)(s->channels / s->group) * (size_t)s->kernel_h * (size_t)s->kernel_w;
    mpq_im2col_pad_image(x, s, g, zero_point, scratch);
    mpq_im2col_padded_rows(scratch, s, 0, mpq_conv2d_out_h(s), col, k);
    return 0;
}

// One row of a column plane: n bytes src[0], src[step], ... (step 1 or 2), 16 at a time through
// the im2col's own mpq_load16_step (the row's slack covers a stride-2 block's 32-byte read).
static void plane_row(const uint8_t *src, int step, int n, uint8_t *dst) {
    if (step == 1) {
        memcpy(dst, src, (size_t)n);
        return;
    }
    int i = 0;
    for (; i + 16 <= n; i += 16) _mm_storeu_si128((__m128i *)(dst + i), mpq_load16_step(src + (size_t)i * (size_t)step, step));
    for (; i < n; i++) dst[i] = src[(size_t)i * (size_t)step];
}

void mpq_im2col_padded_planes(const uint8_t *buf, const mpq_conv2d_shape *s, int q0, int q1, uint8_t *planes) {
    const padded_geometry p = geometry(s);
    const int oh_n = mpq_conv2d_out_h(s), ow_n = mpq_conv2d_out_w(s), KH = s->kernel_h, KW = s->kernel_w;
    const size_t pplane = (size_t)p.ph * (size_t)p.pitch, P = (size_t)oh_n * (size_t)ow_n;
    for (int q = q0; q < q1; q++) {
        const int c = q / (KH * KW), kh = q / KW % KH, kw = q % KW;
        const uint8_t *src = buf + (size_t)c * pplane + (size_t)(kh * s->dilation_h) * (size_t)p.pitch + (size_t)(kw * s->dilation_w);
        uint8_t *dst = planes + (size_t)q * P;
        for (int oh = 0; oh < oh_n; oh++, dst += ow_n) {
            const uint8_t *row = src + (size_t)oh * (size_t)s->stride_h * (size_t)p.pitch;
            plane_row(row, s->stride_w, ow_n, dst);
        }
    }
}
