// Scalar references of the 2-D pooling kernels (mpq_pool.h): per plane, reduce every input
// row along W into scratch (taps in order), then each output row over its H taps (in
// order), then for average one division. The order is `PoolOps.poolSeparable`'s, so these
// equal the Swift reference bit for bit, and the AVX-512 paths equal these.
#include "pool_internal.h"
#include <math.h>

#define DEFINE_WPASS(NAME, T, EMPTY, COMBINE)                                               \
    static void NAME(const mpq_pool2d *p, const T *row, T *out) {                            \
        for (int o = 0; o < p->out_w; o++) {                                                 \
            const int lo = p->lo_w[o], hi = p->hi_w[o];                                      \
            if (hi <= lo) { out[o] = EMPTY; continue; }                                      \
            const long first = (long)o * p->stride_w - p->pad_left;                          \
            T acc = row[first + (long)lo * p->dilation_w];                                   \
            for (int t = lo + 1; t < hi; t++) {                                              \
                T v = row[first + (long)t * p->dilation_w];                                  \
                acc = COMBINE(v, acc);                                                       \
            }                                                                                \
            out[o] = acc;                                                                    \
        }                                                                                    \
    }

#define DEFINE_HPASS(NAME, T, EMPTY, COMBINE)                                               \
    static void NAME(const mpq_pool2d *p, const T *rows, T *out) {                           \
        const int w = p->out_w;                                                              \
        for (int o = 0; o < p->out_h; o++) {                                                 \
            T *dst = out + (size_t)o * w;                                                    \
            const int lo = p->lo_h[o], hi = p->hi_h[o];                                      \
            if (hi <= lo) { for (int j = 0; j < w; j++) dst[j] = EMPTY; continue; }          \
            const long first = (long)o * p->stride_h - p->pad_top;                           \
            const T *src = rows + (size_t)(first + (long)lo * p->dilation_h) * w;            \
            for (int j = 0; j < w; j++) dst[j] = src[j];                                     \
            for (int t = lo + 1; t < hi; t++) {                                              \
                src = rows + (size_t)(first + (long)t * p->dilation_h) * w;                  \
                for (int j = 0; j < w; j++) dst[j] = COMBINE(src[j], dst[j]);                \
            }                                                                                \
        }                                                                                    \
    }

#define MAX_COMBINE(v, acc) ((v) > (acc) ? (v) : (acc))
#define SUM_COMBINE(v, acc) ((acc) + (v))

DEFINE_WPASS(wpass_max_f32, float, -INFINITY, MAX_COMBINE)
DEFINE_HPASS(hpass_max_f32, float, -INFINITY, MAX_COMBINE)
DEFINE_WPASS(wpass_sum_f32, float, 0.0f, SUM_COMBINE)
DEFINE_HPASS(hpass_sum_f32, float, 0.0f, SUM_COMBINE)
DEFINE_WPASS(wpass_max_u8, uint8_t, 0, MAX_COMBINE)
DEFINE_HPASS(hpass_max_u8, uint8_t, 0, MAX_COMBINE)

void mpq_maxpool2d_f32_reference(const mpq_pool2d *p, const float *x, float *y, size_t p0, size_t p1, float *scratch) {
    const size_t in_plane = (size_t)p->in_h * p->in_w, out_plane = (size_t)p->out_h * p->out_w;
    for (size_t c = p0; c < p1; c++) {
        const float *src = x + c * in_plane;
        for (int r = 0; r < p->in_h; r++) wpass_max_f32(p, src + (size_t)r * p->in_w, scratch + (size_t)r * p->out_w);
        hpass_max_f32(p, scratch, y + c * out_plane);
    }
}

void mpq_maxpool2d_u8_reference(const mpq_pool2d *p, const uint8_t *x, uint8_t *y, size_t p0, size_t p1, uint8_t *scratch) {
    const size_t in_plane = (size_t)p->in_h * p->in_w, out_plane = (size_t)p->out_h * p->out_w;
    for (size_t c = p0; c < p1; c++) {
        const uint8_t *src = x + c * in_plane;
        for (int r = 0; r < p->in_h; r++) wpass_max_u8(p, src + (size_t)r * p->in_w, scratch + (size_t)r * p->out_w);
        hpass_max_u8(p, scratch, y + c * out_plane);
    }
}

void mpq_avgpool2d_f32_reference(const mpq_pool2d *p, const float *x, float *y, size_t p0, size_t p1, float *scratch) {
    const size_t in_plane = (size_t)p->in_h * p->in_w, out_plane = (size_t)p->out_h * p->out_w;
    for (size_t c = p0; c < p1; c++) {
        const float *src = x + c * in_plane;
        float *dst = y + c * out_plane;
        for (int r = 0; r < p->in_h; r++) wpass_sum_f32(p, src + (size_t)r * p->in_w, scratch + (size_t)r * p->out_w);
        hpass_sum_f32(p, scratch, dst);
        for (int oh = 0; oh < p->out_h; oh++)
            for (int ow = 0; ow < p->out_w; ow++) {
                float *v = dst + (size_t)oh * p->out_w + ow;
                *v = *v / (p->count_h[oh] * p->count_w[ow]);
            }
    }
}
