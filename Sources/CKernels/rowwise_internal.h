#ifndef MPQ_ROWWISE_INTERNAL_H
#define MPQ_ROWWISE_INTERNAL_H
// Per-path bodies of the row kernels (mpq_rowwise.h), each over a contiguous range.
#include "mpq_internal.h"
#include "mpq_rowwise.h"

void mpq_softmax_rows_reference(float *x, size_t rows, size_t n);
void mpq_softmax_rows_avx2(float *x, size_t rows, size_t n);
/// The same bits with 16-lane exps (AVX-512F; the VNNI path).
void mpq_softmax_rows_avx512(float *x, size_t rows, size_t n);
void mpq_erf_reference(const float *x, size_t count, float *y);
void mpq_erf_avx2(const float *x, size_t count, float *y);
void mpq_layernorm_reference(const float *x, size_t rows, size_t cols, const float *scale, const float *bias,
                             float epsilon, float *y, float *mean, float *inv_std);
void mpq_layernorm_avx2(const float *x, size_t rows, size_t cols, const float *scale, const float *bias,
                        float epsilon, float *y, float *mean, float *inv_std);
#endif
