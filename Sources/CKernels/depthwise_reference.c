// Direct depthwise INT8 conv: the scalar reference, and the public entry point.
#include "mpq_internal.h"

static int is_depthwise(const mpq_conv2d_shape *s) {
    return mpq_conv2d_out_h(s) > 0 && mpq_conv2d_out_w(s) > 0 && s->group == s->channels;
}

void mpq_depthwise_reference(const uint8_t *x, const mpq_conv2d_shape *s, const int8_t *w,
                             const mpq_epilogue *ep, float *out, uint8_t *out_u8, int32_t out_zp) {
    const int OH = mpq_conv2d_out_h(s), OW = mpq_conv2d_out_w(s);
    const int H = s->height, W = s->width, KH = s->kernel_h, KW = s->kernel_w;
    for (int c = 0; c < s->channels; c++) {
        const uint8_t *plane = x + (size_t)c * (size_t)H * (size_t)W;
        const int8_t *wc = w + (size_t)c * (size_t)KH * (size_t)KW;
        for (int oh = 0; oh < OH; oh++) {
            for (int ow = 0; ow < OW; ow++) {
                int32_t acc = 0;
                for (int kh = 0; kh < KH; kh++) {
                    int ih = oh * s->stride_h - s->pad_top + kh * s->dilation_h;
                    for (int kw = 0; kw < KW; kw++) {
                        int iw = ow * s->stride_w - s->pad_left + kw * s->dilation_w;
                        int32_t a = (ih >= 0 && ih < H && iw >= 0 && iw < W)
                                        ? (int32_t)plane[(size_t)ih * (size_t)W + (size_t)iw]
                                        : ep->a_zero_point;
                        acc += (a - ep->a_zero_point) * (int32_t)wc[kh * KW + kw];
                    }
                }
                size_t at = ((size_t)c * (size_t)OH + (size_t)oh) * (size_t)OW + (size_t)ow;
                float v = mpq_epilogue_scalar(
                    acc, ep->bias_i32, ep->a_scale, ep->b_scale[c], ep->bias, c, ep->clamp_lo, ep->clamp_hi, ep->out_scale);
                if (out_u8) out_u8[at] = mpq_code_u8(v, out_zp);
                else out[at] = v;
            }
        }
    }
}

int mpq_depthwise_vnni_available(void) {
    static int available = -1;   // CPU features do not change; a race writes the same value
    if (available < 0)
        available = mpq_kernel_path_available(MPQ_PATH_VNNI) && __builtin_cpu_supports("avx512vbmi");
    return available;
}

// The VNNI path runs the VNNI + VBMI kernel where the CPU has VBMI and the geometry has a
// plan, else the AVX2 kernel (as does the AVX2 path).
static void run(mpq_kernel_path path, const uint8_t *x, const mpq_conv2d_shape *s, const int8_t *w,
                const mpq_epilogue *ep, float *out, uint8_t *out_u8, int32_t out_zp) {
    switch (mpq_resolve_kernel_path(path)) {
    case MPQ_PATH_VNNI:
        if (mpq_depthwise_vnni_available() && mpq_depthwise_vnni(x, s, w, ep, out, out_u8, out_zp) == 0) break;
        mpq_depthwise_avx2(x, s, w, ep, out, out_u8, out_zp);
        break;
    case MPQ_PATH_AVX2: mpq_depthwise_avx2(x, s, w, ep, out, out_u8, out_zp); break;
    default: mpq_depthwise_reference(x, s, w, ep, out, out_u8, out_zp); break;
    }
}

// One image over several cores: contiguous channel ranges (chunks claimed by pool threads). Every
// kernel computes a channel from its own plane, weights and epilogue entries only (the
// gather plan depends on the geometry, not on the channel count), so a range is an
// independent call on a sub-shape and the split changes no byte. Why here and not in
// Swift: mpq_pool_run wakes parked workers in a few microseconds, and its caller runs any
// task a worker has not claimed yet, so on a busy machine a split layer costs what one
// thread costs instead of waiting a scheduler slice for the second core (which is what
// made splitting MobileNetV2's small batch-1 layers with concurrentPerform slower).
typedef struct {
    mpq_kernel_path path;
    const uint8_t *x;
    const mpq_conv2d_shape *s;
    const int8_t *w;
    const mpq_epilogue *ep;
    float *out;
    uint8_t *out_u8;
    int32_t out_zp;
    int tasks;
} channel_split;

static void channel_range(void *arg, int t) {
    const channel_split *j = arg;
    const mpq_conv2d_shape *s = j->s;
    const int c0 = (int)((int64_t)s->channels * t / j->tasks), c1 = (int)((int64_t)s->channels * (t + 1) / j->tasks);
    if (c0 >= c1) return;
    mpq_conv2d_shape part = *s;
    part.channels = part.group = c1 - c0;
    mpq_epilogue ep = *j->ep;
    ep.b_scale += c0;
    if (ep.bias) ep.bias += c0;
    if (ep.bias_i32) ep.bias_i32 += c0;
    const size_t in_plane = (size_t)s->height * (size_t)s->width;
    const size_t out_plane = (size_t)mpq_conv2d_out_h(s) * (size_t)mpq_conv2d_out_w(s);
    run(j->path, j->x + (size_t)c0 * in_plane, &part, j->w + (size_t)c0 * (size_t)s->kernel_h * (size_t)s->kernel_w, &ep,
        j->out ? j->out + (size_t)c0 * out_plane : NULL, j->out_u8 ? j->out_u8 + (size_t)c0 * out_plane : NULL, j->out_zp);
}

static void run_split(mpq_kernel_path path, const uint8_t *x, const mpq_conv2d_shape *s, const int8_t *w,
                      const mpq_epilogue *ep, float *out, uint8_t *out_u8, int32_t out_zp, int threads) {
    if (threads <= 1 || s->channels < 2) {
        run(path, x, s, w, ep, out, out_u8, out_zp);
        return;
    }
    // Two chunks per thread, claimed as threads come free (mpq_run_chunks): a busy second
    // core delays the layer by one chunk at most. Not more: the VNNI kernel builds its
    // gather plan once per call (a few us on a 7x7 plane).
    int chunks = 2 * threads;
    if (chunks > s->channels) chunks = s->channels;
    channel_split j = {path, x, s, w, ep, out, out_u8, out_zp, chunks};
    mpq_run_chunks(threads, chunks, channel_range, &j);
}

int mpq_depthwise_conv_u8s8_threads(mpq_kernel_path path, const uint8_t *x, const mpq_conv2d_shape *s,
                                    const int8_t *w, const mpq_epilogue *ep, float *out, int threads) {
    if (!x || !w || !ep || !ep->b_scale || !out || !is_depthwise(s)) return -1;
    run_split(path, x, s, w, ep, out, NULL, 0, threads);
    return 0;
}

int mpq_depthwise_conv_u8s8_u8_threads(mpq_kernel_path path, const uint8_t *x, const mpq_conv2d_shape *s,
                                       const int8_t *w, const mpq_epilogue *ep, uint8_t *out, uint8_t out_zero_point,
                                       int threads) {
    if (!x || !w || !ep || !ep->b_scale || !(ep->out_scale > 0) || !out || !is_depthwise(s)) return -1;
    mpq_epilogue codes = *ep;
    codes.out_scale = 1.0f;   // keeps the rounded q - zp (mpq_qgemm_u8s8_u8)
    run_split(path, x, s, w, &codes, NULL, out, out_zero_point, threads);
    return 0;
}

int mpq_depthwise_conv_u8s8(mpq_kernel_path path, const uint8_t *x,
                            const mpq_conv2d_shape *s, const int8_t *w,
                            const mpq_epilogue *ep, float *out) {
    return mpq_depthwise_conv_u8s8_threads(path, x, s, w, ep, out, 1);
}

int mpq_depthwise_conv_u8s8_u8(mpq_kernel_path path, const uint8_t *x, const mpq_conv2d_shape *s, const int8_t *w,
                               const mpq_epilogue *ep, uint8_t *out, uint8_t out_zero_point) {
    return mpq_depthwise_conv_u8s8_u8_threads(path, x, s, w, ep, out, out_zero_point, 1);
}
