// FP32 Conv epilogue: bias, then Relu/Clip or SiLU, on one block of a Conv's output right
// after its GEMM, while it is still in cache (before, the bias, the clamp and the SiLU's
// Sigmoid and Mul were each a pass over the whole batch's output, and Sigmoid and Mul each
// allocated one). Every path gives the bits of the unfused ops it replaces on that path:
// `v + bias` (skipped for a zero bias, as the Swift bias pass does: -0 + 0 would be +0),
// the clamp of FusedActivation.apply (NaN stays NaN), and v * sigmoid(v) with the
// Sigmoid op's own per-element function (sigmoid_inline.h).
#include "sigmoid_inline.h"

static inline float clamp1(float v, float lo, float hi) {
    return v < lo ? lo : (v > hi ? hi : v);  // NaN: both comparisons false, NaN stays
}

void mpq_conv_epilogue_f32_reference(float *y, size_t rows, size_t cols, size_t ld, const float *bias,
                                     mpq_activation act, float lo, float hi) {
    for (size_t r = 0; r < rows; r++) {
        float *row = y + r * ld;
        const float b = bias ? bias[r] : 0.0f;
        for (size_t i = 0; i < cols; i++) {
            float v = b != 0.0f ? row[i] + b : row[i];
            if (act == MPQ_ACT_CLAMP) v = clamp1(v, lo, hi);
            else if (act == MPQ_ACT_SILU) v = v * mpq_logistic1(v);
            row[i] = v;
        }
    }
}

// One loop per case, each branch-free inside so it vectorises (AVX2 + FMA).
__attribute__((target("avx2,fma")))
void mpq_conv_epilogue_f32_avx2(float *y, size_t rows, size_t cols, size_t ld, const float *bias,
                                mpq_activation act, float lo, float hi) {
    for (size_t r = 0; r < rows; r++) {
        float *row = y + r * ld;
        const float b = bias ? bias[r] : 0.0f;
        if (b != 0.0f) {
            for (size_t i = 0; i < cols; i++) row[i] += b;
        }
        if (act == MPQ_ACT_CLAMP) {
            for (size_t i = 0; i < cols; i++) row[i] = clamp1(row[i], lo, hi);
        } else if (act == MPQ_ACT_SILU) {
            for (size_t i = 0; i < cols; i++) { float v = row[i]; row[i] = v * mpq_logistic1(v); }
        }
    }
}

// The same loops compiled for AVX-512 (16 lanes, 32 registers: the SiLU's constants stay in
// registers), used on the AVX-512 path: the SiLU was half of a 3-channel 64x64 stem Conv's
// time on AVX2. Same source expressions, so the same operations per element (contraction
// into FMA is decided per expression, not per vector width): the AVX2 loop's bits.
__attribute__((target("avx512f,fma")))
void mpq_conv_epilogue_f32_avx512(float *y, size_t rows, size_t cols, size_t ld, const float *bias,
                                  mpq_activation act, float lo, float hi) {
    for (size_t r = 0; r < rows; r++) {
        float *row = y + r * ld;
        const float b = bias ? bias[r] : 0.0f;
        if (b != 0.0f) {
            for (size_t i = 0; i < cols; i++) row[i] += b;
        }
        if (act == MPQ_ACT_CLAMP) {
            for (size_t i = 0; i < cols; i++) row[i] = clamp1(row[i], lo, hi);
        } else if (act == MPQ_ACT_SILU) {
            for (size_t i = 0; i < cols; i++) { float v = row[i]; row[i] = v * mpq_logistic1(v); }
        }
    }
}

void mpq_conv_epilogue_f32(mpq_kernel_path path, float *y, size_t rows, size_t cols, size_t ld,
                           const float *bias, mpq_activation act, float lo, float hi) {
    path = mpq_resolve_kernel_path(path);
    if (path == MPQ_PATH_REFERENCE) mpq_conv_epilogue_f32_reference(y, rows, cols, ld, bias, act, lo, hi);
    else if (path == MPQ_PATH_VNNI) mpq_conv_epilogue_f32_avx512(y, rows, cols, ld, bias, act, lo, hi);
    else mpq_conv_epilogue_f32_avx2(y, rows, cols, ld, bias, act, lo, hi);
}
