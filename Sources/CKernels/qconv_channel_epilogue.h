// The epilogue of the pixel-vector INT8 Conv kernels (qgemm_pointwise.c, qgemm_conv_implicit.c):
// each accumulator is 16 pixels of ONE output channel, so every per-channel value is a
// broadcast, and it is epilogue16's sequence (qgemm_vnni.c) with two steps moved or dropped:
//
// - The int32 bias and the zero-point correction (bias_i32 - za * colsum) are the
//   accumulators' start value instead of a sub and an add afterwards: vpdpbusd adds mod 2^32
//   and the reference wraps the same way, so the sum is the same int32.
// - Codes output: `nearbyint(v) * 1 + 0` then vcvtps2dq was the rounding; vcvtps2dq alone rounds
//   to nearest even (the default MXCSR mode, as the existing cvtps_epi32 already relied on),
//   which is nearbyint, and * 1 + 0 only turns -0 into +0, which converts to the same 0. So
//   the codes are cvt(v) + zp, saturated to 8 bits, as depthwise_vnni.c's store16 does.
//
// At K = 16-32 (MobileNetV2's expand convs) the epilogue was ~60% of the pointwise kernel's
// time (perf annotate): it goes from 13 to 8 vector ops per 16 codes.
#ifndef MPQ_QCONV_CHANNEL_EPILOGUE_H
#define MPQ_QCONV_CHANNEL_EPILOGUE_H
#include "mpq_internal.h"
#include <immintrin.h>
#include <math.h>

/// The start value of output channel `co`'s accumulators: bias_i32[co] - za * colsum[co] (mod 2^32).
static inline int32_t mpq_channel_acc_start(const mpq_epilogue *ep, int32_t za, const int32_t *colsum, int co) {
    uint32_t v = (uint32_t)0 - (uint32_t)za * (uint32_t)colsum[co];
    if (ep->bias_i32) v += (uint32_t)ep->bias_i32[co];
    return (int32_t)v;
}

/// The per-channel values of 16 output channels in the lanes, channels [c0, c0 + 16) of `n`
/// (the channel-vector tiles, qgemm_conv_cv.c, and the pointwise blocks' tails): lane i holds
/// a_scale * b_scale[c0 + i] (the float product mpq_channel_epilogue_setup broadcasts) and the
/// bias (0 without one); lanes past n hold 0.
typedef struct {
    __m512 scale, bias;
} mpq_lane_channels;

static inline __attribute__((always_inline, target("avx512f"))) mpq_lane_channels
mpq_lane_channels_load(const mpq_epilogue *ep, int c0, int n) {
    const __mmask16 m = n - c0 >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - c0)) - 1u);
    mpq_lane_channels v;
    v.scale = _mm512_mul_ps(_mm512_set1_ps(ep->a_scale), _mm512_maskz_loadu_ps(m, ep->b_scale + c0));
    v.bias = ep->bias ? _mm512_maskz_loadu_ps(m, ep->bias + c0) : _mm512_setzero_ps();
    return v;
}

/// The per-channel values of the epilogue, broadcast once per channel.
typedef struct {
    __m512 s, bias, lo, hi, out_scale;
    int has_bias, rounds;
} mpq_channel_epilogue;

static inline __attribute__((always_inline, target("avx512f"))) mpq_channel_epilogue
mpq_channel_epilogue_setup(const mpq_epilogue *ep, int co) {
    mpq_channel_epilogue e;
    e.s = _mm512_mul_ps(_mm512_set1_ps(ep->a_scale), _mm512_set1_ps(ep->b_scale[co]));
    e.has_bias = ep->bias != NULL;
    e.bias = _mm512_set1_ps(ep->bias ? ep->bias[co] : 0.0f);
    e.lo = _mm512_set1_ps(ep->clamp_lo);
    e.hi = _mm512_set1_ps(ep->clamp_hi);
    e.rounds = ep->out_scale > 0;
    e.out_scale = _mm512_set1_ps(ep->out_scale);
    return e;
}

/// Dequantized, biased and clamped floats of 16 sums that started at mpq_channel_acc_start.
static inline __attribute__((always_inline, target("avx512f"))) __m512
mpq_channel_values(const mpq_channel_epilogue *e, __m512i acc) {
    __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(acc), e->s);
    if (e->has_bias) v = _mm512_add_ps(v, e->bias);
    return _mm512_min_ps(_mm512_max_ps(v, e->lo), e->hi);
}

/// The float output: the requantize rounding (nearbyint, * out_scale, + 0) where there is one.
static inline __attribute__((always_inline, target("avx512f"))) __m512
mpq_channel_floats(const mpq_channel_epilogue *e, __m512 v) {
    if (!e->rounds) return v;
    return _mm512_add_ps(_mm512_mul_ps(_mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), e->out_scale),
                         _mm512_setzero_ps());
}

/// The codes output (out_scale 1): nearbyint(v) + zp, saturated to 8 bits.
static inline __attribute__((always_inline, target("avx512f"))) __m128i mpq_channel_codes(__m512 v, __m512i zp) {
    return _mm512_cvtusepi32_epi8(_mm512_add_epi32(_mm512_cvtps_epi32(v), zp));
}
/// Which float clamps a codes epilogue (out_scale 1, zero point `out_zp`, `n` channels) needs
/// when the code is saturated to [0, 255] afterwards (the pointwise block tile's packs, the
/// depthwise kernel's max 0 + vpmovusdb) instead of relying on the clamp to keep it in range.
/// lo: saturation at 0 gives round(lo) + zp exactly when that is 0 (rounding is monotone, so
/// clamping before or after it is the same; NaN goes to lo in max_ps and to code 0 through
/// vcvtps2dq's 0x80000000). hi: saturation at 255 gives round(hi) + zp when that is 255,
/// provided vcvtps2dq cannot overflow on the high side (an overflow reads 0x80000000, code 0):
/// |acc| <= 2^31, so |a_scale * b_scale| <= 0.5 and |bias| <= 2^29 keep |v| < 2^31. The
/// runtime's requantizing epilogues clamp to exactly the code range, so both usually go.
typedef struct {
    int need_lo, need_hi;
} mpq_codes_clamps;

static inline mpq_codes_clamps mpq_codes_clamp_plan(const mpq_epilogue *ep, int32_t out_zp, int n) {
    mpq_codes_clamps p = {1, 1};
    p.need_lo = !(nearbyintf(ep->clamp_lo) + (float)out_zp == 0.0f);
    if (!(nearbyintf(ep->clamp_hi) + (float)out_zp == 255.0f)) return p;
    for (int co = 0; co < n; co++) {
        const float s = ep->a_scale * ep->b_scale[co];
        if (!(fabsf(s) <= 0.5f)) return p;
        if (ep->bias && !(fabsf(ep->bias[co]) <= 536870912.0f)) return p;
    }
    p.need_hi = 0;
    return p;
}
#endif
