// The AVX2 INT8 Conv without an im2col: the GEMM reads each output pixel's taps where they lie
// in a padded channels-last copy of the input (an indirect GEMM; docs/int8-conv.md, "Indirect
// on AVX2").
//
// The im2col wrote KH x KW bytes per input byte, (kh, kw, c) rows of K = taps x C bytes, that
// the GEMM then read once per 16-column panel; perf put 7% of ResNet-18's 3x3 layers in it, and
// the implicit conv that skips it on wide planes runs a slower tile (~0.9x the GEMM tile's rate).
// ONNX Runtime's NHWC QLinearConv (MLAS ConvSym) copies nothing per tap: it points at each tap's
// channels. Here the group's NCHW codes are copied once into xh[Hp][Wp][C] with the padding
// written out (the input zero point, as the im2col's pad taps), 16 pixels x 16 channels per byte
// transpose, and the AVX2 GEMM's tiles take, for row m (output pixel p), the window origin of p
// plus each tap's offset as the row pointer for that tap's C / 4 groups (qgemm_avx2.c, j->ind).
// With (kh, kw, c) packed weights and C % 4 == 0, packed group g is (tap g / (C/4), channels
// 4 (g % (C/4)) ..): the same bytes in the same order as the im2col row, so the same int32 sums
// and the same epilogue: the same output bytes.
#include "im2col_transpose.h"
#include "mpq_internal.h"
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const uint8_t *x;  // the group's first channel plane
    const mpq_conv2d_shape *s;
    int C, Wp;
    uint8_t zp, *xh;
    int tasks;
} nhwc_copy;

// Input rows [r0, r1) into xh with their pad columns: whole rows of 16 pixels x 16 channels
// per transpose straight into xh (`C` bytes a pixel), a row's last partial block through a
// small buffer.
static void copy_rows(const nhwc_copy *j, int r0, int r1) {
    const mpq_conv2d_shape *s = j->s;
    const int W = s->width, C = j->C, pl = s->pad_left;
    const size_t plane = (size_t)s->height * (size_t)W, group_bytes = (size_t)C * plane;
    for (int r = r0; r < r1; r++) {
        uint8_t *row = j->xh + (size_t)(r + s->pad_top) * (size_t)j->Wp * (size_t)C;
        memset(row, j->zp, (size_t)pl * (size_t)C);
        memset(row + (size_t)(pl + W) * (size_t)C, j->zp, (size_t)(j->Wp - pl - W) * (size_t)C);
        for (int w0 = 0; w0 < W; w0 += 16) {
            const int np = W - w0 < 16 ? W - w0 : 16;
            uint8_t *dst = row + (size_t)(pl + w0) * (size_t)C;
            for (int c0 = 0; c0 < C; c0 += 16) {
                const int nc = C - c0 < 16 ? C - c0 : 16;
                __m128i a[16];
                for (int i = 0; i < 16; i++) {
                    const size_t at = (size_t)(c0 + i) * plane + (size_t)r * (size_t)W + (size_t)w0;
                    if (i >= nc) {
                        a[i] = _mm_setzero_si128();
                    } else if (at + 16 <= group_bytes) {
                        a[i] = _mm_loadu_si128((const __m128i *)(j->x + at));  // bytes past the row: not stored
                    } else {
                        uint8_t t[16] = {0};
                        memcpy(t, j->x + at, (size_t)np);
                        a[i] = _mm_loadu_si128((const __m128i *)t);
                    }
                }
                if (np == 16 && nc == 16) {
                    mpq_transpose16_store(a, dst + c0, (size_t)C);
                } else {
                    uint8_t t[256];
                    mpq_transpose16_store(a, t, 16);  // t[pixel * 16 + channel]
                    for (int i = 0; i < np; i++) memcpy(dst + (size_t)i * (size_t)C + c0, t + 16 * i, (size_t)nc);
                }
            }
        }
    }
}

static void copy_task(void *arg, int t) {
    const nhwc_copy *j = (const nhwc_copy *)arg;
    const mpq_conv2d_shape *s = j->s;
    const size_t rowb = (size_t)j->Wp * (size_t)j->C;
    if (t == 0) memset(j->xh, j->zp, (size_t)s->pad_top * rowb);  // the pad rows: first and last task
    if (t == j->tasks - 1) memset(j->xh + (size_t)(s->pad_top + s->height) * rowb, j->zp, (size_t)s->pad_bottom * rowb);
    copy_rows(j, s->height * t / j->tasks, s->height * (t + 1) / j->tasks);
}

int mpq_indirect_conv_applies(const mpq_conv2d_shape *s, int khwc) {
    const int cg = s->group > 0 ? s->channels / s->group : 0, taps = s->kernel_h * s->kernel_w;
    if (!khwc || cg < 4 || cg % 4 || taps < 2 || taps > MPQ_INDIRECT_MAX_TAPS) return 0;
    if (s->pad_top < 0 || s->pad_left < 0 || s->pad_bottom < 0 || s->pad_right < 0) return 0;
    const long hp = (long)s->pad_top + s->height + s->pad_bottom, wp = (long)s->pad_left + s->width + s->pad_right;
    return mpq_conv2d_out_h(s) > 0 && mpq_conv2d_out_w(s) > 0 && hp * wp * cg < INT32_MAX;
}

uint8_t *mpq_indirect_conv_prepare(const uint8_t *x, const mpq_conv2d_shape *s, int g, uint8_t zp, int threads,
                                   mpq_gemm_indirect *d) {
    if (!mpq_indirect_conv_applies(s, 1)) return NULL;
    const int C = s->channels / s->group, Hp = s->pad_top + s->height + s->pad_bottom;
    const int Wp = s->pad_left + s->width + s->pad_right;
    nhwc_copy j = {x + (size_t)g * (size_t)C * (size_t)s->height * (size_t)s->width, s, C, Wp, zp, NULL, 1};
    j.xh = (uint8_t *)malloc((size_t)Hp * (size_t)Wp * (size_t)C);
    if (!j.xh) return NULL;
    // Small copies on one core (as the channel-vector conv's: from 16 KB it pays to split).
    j.tasks = (size_t)Hp * (size_t)Wp * (size_t)C < 16 * 1024 || threads < 1 ? 1 : threads;
    if (j.tasks > s->height) j.tasks = s->height;
    if (j.tasks > 1) mpq_pool_run(j.tasks, copy_task, &j);
    else copy_task(&j, 0);
    d->xh = j.xh;
    d->ow = mpq_conv2d_out_w(s);
    d->c = C;
    d->taps = s->kernel_h * s->kernel_w;
    d->row_step = (size_t)s->stride_h * (size_t)Wp * (size_t)C;
    d->col_step = (size_t)s->stride_w * (size_t)C;
    for (int kh = 0; kh < s->kernel_h; kh++)
        for (int kw = 0; kw < s->kernel_w; kw++)
            d->toff[kh * s->kernel_w + kw] = (kh * s->dilation_h * Wp + kw * s->dilation_w) * C;
    return j.xh;
}

// -1: not set (MPQ_INT8_AVX2_INDIRECT decides, read once; default 1); 0 off; 1 on.
static _Atomic int indirect_mode = -1;

int mpq_set_int8_avx2_indirect(int mode) {
    return atomic_exchange_explicit(&indirect_mode, mode < 0 ? -1 : mode != 0, memory_order_relaxed);
}

int mpq_indirect_mode(void) {
    const int m = atomic_load_explicit(&indirect_mode, memory_order_relaxed);
    if (m >= 0) return m;
    static _Atomic long env = -1;
    return mpq_env_long_once("MPQ_INT8_AVX2_INDIRECT", 1, &env) != 0;
}
