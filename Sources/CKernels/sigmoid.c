// FP32 Sigmoid: ONNX Runtime's logistic (sigmoid_inline.h) on every path, the same bits: the
// reference loop (libm fmaf), an AVX2 + FMA loop and an AVX-512 loop, each lane the scalar
// expression. Sigmoid was a scalar libm call per element, the largest non-GEMM cost of SiLU
// (Sigmoid * Mul) detectors, then an exp-based polynomial (s11) until s14 took ORT's formula.
#include "sigmoid_inline.h"

void mpq_sigmoid_f32_reference(const float *x, size_t count, float *y) {
    for (size_t i = 0; i < count; i++) y[i] = mpq_logistic1(x[i]);
}

// y == x (the Sigmoid op works in place) or disjoint. Without the pragma clang guards the
// vector loop with an overlap check that an in-place call fails, so the op ran this loop
// one float at a time: 39% of all samples of `mpq-bench model` on the detector (its
// `--scheme inputs` run, where SiLU is an unfused Sigmoid + Mul). Each lane computes the
// scalar expression, so both loops give the same bits (SigmoidKernelTests).
__attribute__((target("avx2,fma")))
void mpq_sigmoid_f32_avx2(const float *x, size_t count, float *y) {
#pragma clang loop vectorize(assume_safety)
    for (size_t i = 0; i < count; i++) y[i] = mpq_logistic1(x[i]);
}

// The same loop 16 lanes wide (the VNNI path implies AVX-512F): the same expression per
// float, so the AVX2 loop's bits (SigmoidKernelTests), as the AVX-512 Conv epilogue's SiLU.
__attribute__((target("avx512f,fma")))
static void sigmoid_f32_avx512(const float *x, size_t count, float *y) {
#pragma clang loop vectorize(assume_safety)
    for (size_t i = 0; i < count; i++) y[i] = mpq_logistic1(x[i]);
}

void mpq_sigmoid_f32(mpq_kernel_path path, const float *x, size_t count, float *y) {
    path = mpq_resolve_kernel_path(path);
    if (path == MPQ_PATH_REFERENCE) mpq_sigmoid_f32_reference(x, count, y);
    else if (path == MPQ_PATH_VNNI) sigmoid_f32_avx512(x, count, y);
    else mpq_sigmoid_f32_avx2(x, count, y);
}
