// The padded-plane layout shared by the two AVX2 depthwise kernels (depthwise_avx2.c: int16
// x - za; depthwise_f32_padded_avx2.c: floats; docs/depthwise.md, "AVX2 hosts"). Per channel
// the plane is copied into a zero-padded buffer: rows [0, rows) are input rows -pad_top..,
// each `stride_w` phase arrays of `len` elements (padded column q at phase q % sw, index
// q / sw), so every tap of a block of MPQ_DW_PADDED_BLOCK outputs is a contiguous load.
#ifndef MPQ_DEPTHWISE_PADDED_H
#define MPQ_DEPTHWISE_PADDED_H
#include "mpq_internal.h"
#include <stdlib.h>

#define MPQ_DW_PADDED_BLOCK 16   // outputs per block
#define MPQ_DW_PADDED_MAX_TAPS 128

typedef struct {
    int rows, len;         // padded rows; elements per phase (a multiple of 16)
    size_t row_stride;     // elements: stride_w * len
    size_t plane;          // elements: rows * row_stride
    /// Tap t's element offset from a block's first output: the same for every channel, so
    /// computed once per call.
    size_t off[MPQ_DW_PADDED_MAX_TAPS];
} mpq_dw_padded;

/// The layout for `s` (OH x OW outputs) with the offsets of `count` taps (<= 128); entries past
/// the kernel's last tap repeat it (the INT8 kernel pairs an odd last tap with weight 0).
static inline void mpq_dw_padded_plan(const mpq_conv2d_shape *s, int OH, int OW, int count, mpq_dw_padded *g) {
    const int blocks = (OW + MPQ_DW_PADDED_BLOCK - 1) / MPQ_DW_PADDED_BLOCK, taps = s->kernel_h * s->kernel_w;
    g->rows = (OH - 1) * s->stride_h + (s->kernel_h - 1) * s->dilation_h + 1;
    // The last block reads indices up to blocks * 16 - 1 + the largest tap offset / stride.
    g->len = (blocks * MPQ_DW_PADDED_BLOCK + ((s->kernel_w - 1) * s->dilation_w) / s->stride_w + 15) & ~15;
    g->row_stride = (size_t)s->stride_w * (size_t)g->len;
    g->plane = (size_t)g->rows * g->row_stride;
    for (int t = 0; t < count; t++) {
        const int tt = t < taps ? t : taps - 1, kh = tt / s->kernel_w, q = (tt % s->kernel_w) * s->dilation_w;
        g->off[t] = (size_t)kh * s->dilation_h * g->row_stride + (size_t)(q % s->stride_w) * g->len + (size_t)(q / s->stride_w);
    }
}

/// This thread's padded-plane buffer of at least `bytes` (64-byte aligned), grown when too
/// small and kept between calls (a buffer per call would be mapped and faulted in each
/// time); NULL when allocation fails. One per including file.
static inline void *mpq_dw_padded_scratch(size_t bytes) {
    static _Thread_local void *buf;
    static _Thread_local size_t cap;
    if (cap < bytes) {
        free(buf);
        buf = aligned_alloc(64, (bytes + 63) / 64 * 64);
        cap = buf ? bytes : 0;
    }
    return buf;
}
#endif
