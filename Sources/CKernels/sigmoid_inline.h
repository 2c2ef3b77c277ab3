#ifndef MPQ_SIGMOID_INLINE_H
#define MPQ_SIGMOID_INLINE_H
// One float's sigmoid, both paths, shared by the Sigmoid op (sigmoid.c) and the SiLU
// fused into the Conv epilogue (conv_epilogue.c): the fused SiLU must give the same bits
// as Sigmoid then Mul, so both call these. Inlined into AVX2 + FMA loops by the callers.
#include "mpq_internal.h"

// Both paths split by sign so exp never overflows: x >= 0: 1 / (1 + e^-x); x < 0:
// e^x / (1 + e^x). NaN stays NaN.
static inline float mpq_sigmoid1_reference(float v) {
    if (v >= 0) return 1.0f / (1.0f + expf(-v));
    float e = expf(v);
    return e / (1.0f + e);
}

// e^t for t <= 0, branch-free so the loop vectorises. Below t = -86.5 the result is
// flushed to 0 instead of going subnormal (e^-86.5 = 2.6e-38): subnormal floats cost
// ~100 cycles per operation on x86, here and in the Mul of a SiLU that reads them (the
// detector's stem Sigmoid and Mul took 10x their normal time on large negative inputs),
// and no tolerance can see a value under 2^-125. ONNX Runtime clamps harder still (its
// logistic is flat below x = -18).
static inline float exp_nonpositive(float t) {
    const float lowest = -86.5f;
    float tc = t < lowest ? lowest : t;
    float n = __builtin_floorf(tc * 1.44269504088896341f + 0.5f);  // -125 .. 0
    float r = tc - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float z = r * r;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * z + r + 1.0f;
    union { int i; float f; } scale = {((int)n + 127) << 23};
    float e = p * scale.f;
    return t < lowest ? 0.0f : e;  // NaN: the comparison is false, e is NaN
}

static inline float mpq_sigmoid1_fast(float v) {
    float e = exp_nonpositive(v >= 0 ? -v : v);  // NaN: the comparison is false, e = NaN
    float s = 1.0f / (1.0f + e);
    return v >= 0 ? s : e * s;
}
#endif
