// Direct depthwise INT8 conv: the scalar reference, and the public entry point.
#include "mpq_internal.h"

#define LANES_DEFAULT_PIXELS (56 * 56)
#define LANES_MAX_BYTES (512 * 1024)

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

void mpq_depthwise_reference_channels(const uint8_t *x, const mpq_conv2d_shape *s, const int8_t *w,
                                      const mpq_epilogue *ep, float *out, uint8_t *out_u8, int32_t out_zp, int c0, int c1) {
    mpq_conv2d_shape part = *s;
    part.channels = part.group = c1 - c0;
    mpq_epilogue e = *ep;
    e.b_scale += c0;
    if (e.bias) e.bias += c0;
    if (e.bias_i32) e.bias_i32 += c0;
    const size_t in = (size_t)s->height * s->width, taps = (size_t)s->kernel_h * s->kernel_w;
    const size_t outp = (size_t)mpq_conv2d_out_h(s) * (size_t)mpq_conv2d_out_w(s);
    mpq_depthwise_reference(x + c0 * in, &part, w + c0 * taps, &e, out ? out + c0 * outp : NULL,
                            out_u8 ? out_u8 + c0 * outp : NULL, out_zp);
}

int mpq_depthwise_vnni_available(void) {
    static int available = -1;   // CPU features do not change; a race writes the same value
    if (available < 0)
        available = mpq_kernel_path_available(MPQ_PATH_VNNI) && __builtin_cpu_supports("avx512vbmi");
    return available;
}

// Whether the AVX2 path runs the channels-in-lanes kernel: output planes of at most
// MPQ_INT8_DW_LANES_PIXELS pixels (read once; 0 turns it off, for A/B), a padded block that
// fits an L2, and at least two 16-channel blocks per thread. Measured one thread on this
// repo's MobileNetV2 layers (benchmarks/int8_conv_layers.c, Zen 3): 0.37-0.56x the pixel
// kernel's time from 56x56 outputs down (96 channels 112/2 included), 1.07x on 32 channels
// at 112x112, where the padded blocks outgrow the L2.
static _Atomic long lanes_pixels = -1;

long mpq_set_depthwise_lanes_pixels(long pixels) {
    const long before = mpq_env_long_once("MPQ_INT8_DW_LANES_PIXELS", LANES_DEFAULT_PIXELS, &lanes_pixels);
    atomic_store_explicit(&lanes_pixels, pixels < 0 ? 0 : pixels, memory_order_relaxed);
    return before;
}

static int lanes_fit(const mpq_conv2d_shape *s, int threads) {
    const long max = mpq_env_long_once("MPQ_INT8_DW_LANES_PIXELS", LANES_DEFAULT_PIXELS, &lanes_pixels);
    const long pixels = (long)mpq_conv2d_out_h(s) * mpq_conv2d_out_w(s);
    const int blocks = (s->channels + 15) / 16;
    return max > 0 && pixels <= max && mpq_depthwise_lanes_bytes(s) <= LANES_MAX_BYTES && (threads <= 1 || blocks >= 2 * threads);
}

// The VNNI path runs the VNNI + VBMI kernel where the CPU has VBMI and the geometry has a
// plan, else the AVX2 kernel (as does the AVX2 path).
// `threads` splits the VBMI and AVX2 kernels' channels over the kernel pool; the reference
// runs on the calling thread.
static void run(mpq_kernel_path path, const uint8_t *x, const mpq_conv2d_shape *s, const int8_t *w,
                const mpq_epilogue *ep, float *out, uint8_t *out_u8, int32_t out_zp, int threads) {
    switch (mpq_resolve_kernel_path(path)) {
    case MPQ_PATH_VNNI:
        if (mpq_depthwise_vnni_available() && mpq_depthwise_vnni_threads(x, s, w, ep, out, out_u8, out_zp, threads) == 0) {
            mpq_note_engine("depthwise+vnni");
            break;
        }
        __attribute__((fallthrough));  // no VBMI, or no gather plan for this geometry: AVX2
    case MPQ_PATH_AVX2:
        if (lanes_fit(s, threads) && mpq_depthwise_lanes_avx2_threads(x, s, w, ep, out, out_u8, out_zp, threads) == 0) {
            mpq_note_engine("depthwise-lanes+avx2");
            break;
        }
        mpq_note_engine("depthwise+avx2");
        mpq_depthwise_avx2_threads(x, s, w, ep, out, out_u8, out_zp, threads);
        break;
    default:
        mpq_note_engine("depthwise+reference");
        mpq_depthwise_reference(x, s, w, ep, out, out_u8, out_zp);
        break;
    }
}

int mpq_depthwise_conv_u8s8(mpq_kernel_path path, const uint8_t *x,
                            const mpq_conv2d_shape *s, const int8_t *w,
                            const mpq_epilogue *ep, float *out) {
    if (!x || !w || !ep || !ep->b_scale || !out || !is_depthwise(s)) return -1;
    run(path, x, s, w, ep, out, NULL, 0, 1);
    return 0;
}

int mpq_depthwise_conv_u8s8_u8_threads(mpq_kernel_path path, const uint8_t *x, const mpq_conv2d_shape *s, const int8_t *w,
                                       const mpq_epilogue *ep, uint8_t *out, uint8_t out_zero_point, int threads) {
    if (!x || !w || !ep || !ep->b_scale || !(ep->out_scale > 0) || !out || !is_depthwise(s)) return -1;
    mpq_epilogue codes = *ep;
    codes.out_scale = 1.0f;   // keeps the rounded q - zp (mpq_qgemm_u8s8_u8)
    run(path, x, s, w, &codes, NULL, out, out_zero_point, threads < 1 ? 1 : threads);
    return 0;
}

int mpq_depthwise_conv_u8s8_u8(mpq_kernel_path path, const uint8_t *x, const mpq_conv2d_shape *s, const int8_t *w,
                               const mpq_epilogue *ep, uint8_t *out, uint8_t out_zero_point) {
    return mpq_depthwise_conv_u8s8_u8_threads(path, x, s, w, ep, out, out_zero_point, 1);
}
