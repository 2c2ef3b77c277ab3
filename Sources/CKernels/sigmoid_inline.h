#ifndef MPQ_SIGMOID_INLINE_H
#define MPQ_SIGMOID_INLINE_H
// One float's sigmoid, shared by the Sigmoid op (sigmoid.c) and the SiLU fused into the Conv
// epilogue (conv_epilogue.c): the fused SiLU must give the same bits as Sigmoid then Mul, so
// both call this. Inlined into the AVX2 + FMA and AVX-512 loops by the callers, and into the
// reference loops, where `fmaf` is libm's (the same single rounding): every path, the same bits.
#include "mpq_internal.h"
#include <math.h>

// ONNX Runtime's logistic, operation for operation (MLAS `MlasComputeLogistic`: the Sigmoid op,
// the SiLU ORT fuses into QuickGelu, and the table of its QLinearSigmoid; coefficients from
// onnxruntime/core/mlas/lib/logistic.cpp, order and fused multiply-adds of its x86 FMA3
// kernel): x clamped to [-18, 18], then 0.5 + x * p(x^2) / q(x^2), floored at 0. So mpq's FP32
// Sigmoid and SiLU are ORT's bits, and its INT8 Sigmoid tables (built by running this op on the
// code grid) are ORT's tables. Against the mathematical sigmoid (libm expf): within 1.8e-7
// absolute everywhere (3 ulp near 1); below x = -16 the output is 0 or a few 1e-8 (flat 0
// from -18), where the true value is under 1.2e-7. No exp, no subnormals: about 16 vector
// operations per 16 floats, against ~30 for the exp-based form mpq used before (s14-lead).
// NaN stays NaN: every comparison keeps the NaN operand, as MAXPS/MINPS with it second do.
static inline float mpq_logistic1(float v) {
    float x = -18.0f > v ? -18.0f : v;
    x = 18.0f < x ? 18.0f : x;
    const float x2 = x * x;
    float p = fmaf(x2, 4.37031012579801e-11f, 1.15627324459942e-07f);
    p = fmaf(x2, p, 6.08574864600143e-05f);
    p = fmaf(x2, p, 8.51377133304701e-03f);
    p = fmaf(x2, p, 2.48287947061529e-01f);
    p = x * p;
    float q = fmaf(x2, 6.10247389755681e-13f, 5.76102136993427e-09f);
    q = fmaf(x2, q, 6.29106785017040e-06f);
    q = fmaf(x2, q, 1.70198817374094e-03f);
    q = fmaf(x2, q, 1.16817656904453e-01f);
    q = fmaf(x2, q, 9.93151921023180e-01f);
    const float y = p / q + 0.5f;
    return 0.0f > y ? 0.0f : y;
}
#endif
