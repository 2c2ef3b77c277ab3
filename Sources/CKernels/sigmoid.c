// FP32 Sigmoid: the scalar reference (libm expf, the formula the Swift op used) and a
// vectorised path whose exp is a degree-6 polynomial after range reduction (Cephes
// expf), about 1-2 ulp from expf, with results under 2^-125 flushed to 0. Sigmoid was a scalar libm call per element, the
// largest non-GEMM cost of SiLU (Sigmoid * Mul) detectors.
#include "sigmoid_inline.h"

void mpq_sigmoid_f32_reference(const float *x, size_t count, float *y) {
    for (size_t i = 0; i < count; i++) y[i] = mpq_sigmoid1_reference(x[i]);
}

// y == x (the Sigmoid op works in place) or disjoint. Without the pragma clang guards the
// vector loop with an overlap check that an in-place call fails, so the op ran this loop
// one float at a time: 39% of all samples of `mpq-bench model` on the detector (its
// `--scheme inputs` run, where SiLU is an unfused Sigmoid + Mul). Each lane computes the
// scalar expression, so both loops give the same bits (SigmoidKernelTests).
__attribute__((target("avx2,fma")))
void mpq_sigmoid_f32_avx2(const float *x, size_t count, float *y) {
#pragma clang loop vectorize(assume_safety)
    for (size_t i = 0; i < count; i++) y[i] = mpq_sigmoid1_fast(x[i]);
}

// The same loop 16 lanes wide (the VNNI path implies AVX-512F): the same expression per
// float, so the AVX2 loop's bits (SigmoidKernelTests), as the AVX-512 Conv epilogue's SiLU.
__attribute__((target("avx512f,fma")))
static void sigmoid_f32_avx512(const float *x, size_t count, float *y) {
#pragma clang loop vectorize(assume_safety)
    for (size_t i = 0; i < count; i++) y[i] = mpq_sigmoid1_fast(x[i]);
}

void mpq_sigmoid_f32(mpq_kernel_path path, const float *x, size_t count, float *y) {
    path = mpq_resolve_kernel_path(path);
    if (path == MPQ_PATH_REFERENCE) mpq_sigmoid_f32_reference(x, count, y);
    else if (path == MPQ_PATH_VNNI) sigmoid_f32_avx512(x, count, y);
    else mpq_sigmoid_f32_avx2(x, count, y);
}
