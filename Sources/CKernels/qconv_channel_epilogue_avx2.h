// The 8-lane form of qconv_channel_epilogue.h's per-channel epilogue, for the AVX2 kernels
// whose vectors hold pixels of ONE output channel (qgemm_pointwise_avx2.c, depthwise_avx2.c):
// every per-channel value a broadcast, the reference's float sequence (mpq_epilogue_scalar)
// in its order. The fields are copied out of the mpq_epilogue so the kernels' loops keep them
// in registers (stores to the output could alias the struct).
#ifndef MPQ_QCONV_CHANNEL_EPILOGUE_AVX2_H
#define MPQ_QCONV_CHANNEL_EPILOGUE_AVX2_H
#include "mpq_internal.h"
#include <immintrin.h>

typedef struct {
    __m256 s, bias, lo, hi, out_scale;
    int has_bias, rounds;
} mpq_channel8;

static inline __attribute__((always_inline, target("avx2"))) mpq_channel8 mpq_channel8_setup(const mpq_epilogue *ep, int co) {
    mpq_channel8 e;
    // The float product of the broadcasts, as the reference's a_scale * b_scale.
    e.s = _mm256_mul_ps(_mm256_set1_ps(ep->a_scale), _mm256_set1_ps(ep->b_scale[co]));
    e.has_bias = ep->bias != NULL;
    e.bias = _mm256_set1_ps(ep->bias ? ep->bias[co] : 0.0f);
    e.lo = _mm256_set1_ps(ep->clamp_lo);
    e.hi = _mm256_set1_ps(ep->clamp_hi);
    e.rounds = ep->out_scale > 0;
    e.out_scale = _mm256_set1_ps(ep->out_scale);
    return e;
}

/// Dequantized and biased, then clamped (max then min: NaN and -0 as the reference's ?:) on
/// the sides the caller asks for (a kernel whose codes saturate may drop a clamp, with
/// mpq_codes_clamp_plan).
static inline __attribute__((always_inline, target("avx2"))) __m256
mpq_channel8_values(const mpq_channel8 *e, __m256i acc, int clamp_lo, int clamp_hi) {
    __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(acc), e->s);
    if (e->has_bias) v = _mm256_add_ps(v, e->bias);
    if (clamp_lo) v = _mm256_max_ps(v, e->lo);
    if (clamp_hi) v = _mm256_min_ps(v, e->hi);
    return v;
}

/// The requantize rounding where there is one (nearbyint, * out_scale, + 0: -0 -> +0).
static inline __attribute__((always_inline, target("avx2"))) __m256 mpq_channel8_rounded(const mpq_channel8 *e, __m256 v) {
    if (!e->rounds) return v;
    return _mm256_add_ps(_mm256_mul_ps(_mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), e->out_scale),
                         _mm256_setzero_ps());
}
#endif
