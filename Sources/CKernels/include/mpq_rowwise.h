#ifndef MPQ_ROWWISE_H
#define MPQ_ROWWISE_H
// FP32 row kernels of transformer encoders: Softmax over the last axis, Erf (GELU),
// LayerNormalization. Each has a scalar reference (libm, the formulas the Swift ops
// used) and an AVX2 + FMA path; `MPQ_PATH_VNNI` machines run the AVX2 path too (these
// kernels are memory- and exp-bound, 256-bit vectors are enough). Results of the fast
// paths are within a few ulp of the reference, not bit-identical (polynomial exp/erf,
// vector summation order). `threads` > 1 splits rows (or elements) over the kernel pool.
#include "mpq_kernels.h"

/// Softmax of `rows` contiguous rows of `n` floats, in place: max, e = exp(x - max),
/// x = e * (1 / sum e). Fast path: exp below -86.5 is 0 (no subnormals), so the
/// -3.4e38 attention-mask entries cost nothing extra.
void mpq_softmax_rows_f32(mpq_kernel_path path, float *x, size_t rows, size_t n, int threads);

/// ONNX Erf, `y` may be `x`. Reference: libm erff. Fast path: erf(x) = x + x P(x^2) for
/// |x| <= 0.921875, else sign(x) (1 - exp(Q(|x|))), 1 beyond 3.925 (erfc < 2^-27),
/// with P, Q fitted by tools/fit_erf.py (about 1.3 ulp from erff). NaN stays NaN.
void mpq_erf_f32(mpq_kernel_path path, const float *x, size_t count, float *y, int threads);

/// LayerNormalization of `rows` rows of `cols` floats: mean and population variance in
/// double (two passes), y = (x - mean) * inv_std * scale[j] + bias[j] (bias may be NULL).
/// `mean` and `inv_std` (rows floats each) may be NULL.
void mpq_layernorm_f32(mpq_kernel_path path, const float *x, size_t rows, size_t cols,
                       const float *scale, const float *bias, float epsilon,
                       float *y, float *mean, float *inv_std, int threads);

/// Makes glibc's malloc serve every block from the heap (no per-block mmap) and never trim it, so
/// the runtime's freed activation buffers are reused without page faults (see
/// Kernels/HeapReuse.swift). Returns 1 if applied, 0 where the C library is not glibc.
int mpq_keep_heap(void);

#endif
