// Packing for the FP32 Conv GEMM: weights once into [k][MR] panels, and the image straight
// into [k][NR] column panels (im2col fused into the packing: no im2col buffer exists).
#include "sgemm_internal.h"
#include <string.h>

#define MR MPQ_SGEMM_MR
#define NR MPQ_SGEMM_NR

static int round_up(int v, int to) { return (v + to - 1) / to * to; }

size_t mpq_sconv_pack_weights_size(int m, int k, int group) {
    if (m <= 0 || k <= 0 || group <= 0 || m % group) return 0;
    return sizeof(mpq_sconv_weights_header) + (size_t)group * (size_t)round_up(m / group, MR) * (size_t)k * sizeof(float);
}

int mpq_sconv_pack_weights(const float *w, int m, int k, int group, void *packed) {
    if (!w || !packed || m <= 0 || k <= 0 || group <= 0 || m % group) return -1;
    mpq_sconv_weights_header *h = (mpq_sconv_weights_header *)packed;
    memset(h, 0, sizeof *h);
    h->magic = MPQ_SCONV_WEIGHTS_MAGIC;
    h->m = m;
    h->k = k;
    h->group = group;
    h->mg = m / group;
    h->mg_padded = round_up(h->mg, MR);
    float *data = (float *)(h + 1);
    const int panels = h->mg_padded / MR;
    for (int g = 0; g < group; g++)
        for (int p = 0; p < panels; p++) {
            float *panel = data + ((size_t)g * (size_t)panels + (size_t)p) * (size_t)k * MR;
            for (int i = 0; i < MR; i++) {
                const int row = p * MR + i;
                const float *src = w + ((size_t)g * (size_t)h->mg + (size_t)row) * (size_t)k;
                for (int kk = 0; kk < k; kk++) panel[(size_t)kk * MR + (size_t)i] = row < h->mg ? src[kk] : 0.0f;
            }
        }
    return 0;
}

// Packing copies values, so every path packs the same bits; the AVX-512 gather is used
// wherever the CPU has it, whatever the kernel path.
static int has_avx512;
static void detect(void) { has_avx512 = __builtin_cpu_supports("avx512f") ? 1 : 0; }

// d[0..count) = row[o * sw + off] for o in [o0, o0 + count), 0 where the tap leaves [0, W).
static void fill_row(float *d, const float *row, int o0, int count, int sw, int off, int W) {
    // Output columns whose tap lies inside the row: [a, b).
    int a = off >= 0 ? 0 : (-off + sw - 1) / sw;
    int b = (W - 1 - off) >= 0 ? (W - 1 - off) / sw + 1 : 0;
    // Both inside [o0, o0 + count], a <= b. (Until s21 `a > b` set a = b without b >= o0: a
    // stretch starting right of the row's last inside tap, a panel's first segment with right
    // padding of at least the kernel's reach, zeroed d[b - o0 .. -1], the previous row of the
    // panel: wrong outputs in the packed path, found by a random-geometry harness.)
    if (a < o0) a = o0;
    if (a > o0 + count) a = o0 + count;
    if (b > o0 + count) b = o0 + count;
    if (b < a) b = a;
    for (int o = o0; o < a; o++) d[o - o0] = 0.0f;
    if (sw == 1) {
        if (b > a) memcpy(d + (a - o0), row + a + off, (size_t)(b - a) * sizeof(float));
    } else if (sw == 2 && has_avx512 && b > a) {
        mpq_sconv_gather2_avx512(d + (a - o0), row + 2 * a + off, b - a);
    } else {
        for (int o = a; o < b; o++) d[o - o0] = row[o * sw + off];
    }
    for (int o = b; o < o0 + count; o++) d[o - o0] = 0.0f;
}

// One stretch of a column panel that lies in one output row of one image.
typedef struct {
    int j, len;         // panel columns [j, j + len)
    int oh, ow;         // the output position of column j
    size_t image;       // that image's offset from x
} segment;

void mpq_sconv_pack_b(const float *x, const mpq_conv2d_shape *s, int oh_n, int ow_n, size_t image_stride,
                      int k0, int k1, int n0, int n1, float *dst) {
    static int detected;
    if (!detected) { detect(); detected = 1; }
    const int H = s->height, W = s->width, KH = s->kernel_h, KW = s->kernel_w;
    const int sh = s->stride_h, sw = s->stride_w, dh = s->dilation_h, dw = s->dilation_w;
    const int pt = s->pad_top, pl = s->pad_left;
    const size_t plane = (size_t)H * (size_t)W;
    const int kc = k1 - k0, taps = KH * KW, pixels = oh_n * ow_n;
    const int pointwise = KH == 1 && KW == 1 && sh == 1 && sw == 1 && pt == 0 && pl == 0 &&
                          s->pad_bottom == 0 && s->pad_right == 0;
    segment segs[NR];
    for (int col = n0, q = 0; col < n1; col += NR, q++) {
        const int nc = n1 - col < NR ? n1 - col : NR, w = round_up(nc, 16);
        float *panel = dst + (size_t)q * NR * (size_t)kc;
        // The panel's segments, found once (not once per row of K): divisions are slow
        // next to the copies when the layer has few output channels.
        int count = 0;
        {
            int img = col / pixels, pix = col % pixels, oh = pix / ow_n, ow = pix % ow_n;
            for (int j = 0; j < nc;) {
                if (oh == oh_n) { oh = 0; img++; }
                const int len = pointwise ? (pixels - (oh * ow_n + ow) < nc - j ? pixels - (oh * ow_n + ow) : nc - j)
                                          : (ow_n - ow < nc - j ? ow_n - ow : nc - j);
                segs[count++] = (segment){j, len, oh, ow, (size_t)img * image_stride};
                j += len;
                if (pointwise) { oh = oh_n; ow = 0; }  // a pointwise segment runs to the image's end
                else { oh++; ow = 0; }
            }
        }
        // Row k = (c, kh, kw), stepped without divisions.
        int c = k0 / taps, kh = (k0 % taps) / KW, kw = k0 % KW;
        for (int kk = 0; kk < kc; kk++) {
            float *d = panel + (size_t)kk * (size_t)w;
            const float *xc = x + (size_t)c * plane;
            for (int g = 0; g < count; g++) {
                const segment *sg = &segs[g];
                const float *xi = xc + sg->image;
                if (pointwise) {
                    memcpy(d + sg->j, xi + (size_t)sg->oh * (size_t)ow_n + (size_t)sg->ow, (size_t)sg->len * sizeof(float));
                    continue;
                }
                const int ih = sg->oh * sh - pt + kh * dh;
                if (ih < 0 || ih >= H) memset(d + sg->j, 0, (size_t)sg->len * sizeof(float));
                else fill_row(d + sg->j, xi + (size_t)ih * (size_t)W, sg->ow, sg->len, sw, kw * dw - pl, W);
            }
            for (int j = nc; j < w; j++) d[j] = 0.0f;
            if (++kw == KW) { kw = 0; if (++kh == KH) { kh = 0; c++; } }
        }
    }
}
