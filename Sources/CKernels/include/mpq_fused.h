#ifndef MPQ_FUSED_H
#define MPQ_FUSED_H
// Transformer chains fused at run time into one pass over each row (Kernels'
// Session+FusionTransformer.swift): the elementwise ops before or after a row kernel
// (mpq_rowwise.h) run on a row while it is in cache, instead of one single-threaded pass
// over the whole tensor per op. Every element goes through the same IEEE operations, in
// the same order, as the unfused ops (Add, Div, Mul are one rounding each; no FMA), and
// the row kernel is the same function of the same `path`, so the results are the unfused
// ones bit for bit, on every path. `threads` > 1 splits rows over the kernel pool (the
// result does not depend on it).
#include "mpq_kernels.h"

/// The GELU of BERT exports, after an optional bias Add, per element of `rows` rows of
/// `cols`: h = x + bias[j] (bias NULL: h = x); y = (h * (erf(h / div) + add)) * mul.
void mpq_bias_gelu_f32(mpq_kernel_path path, const float *x, size_t rows, size_t cols, const float *bias,
                       float div, float add, float mul, float *y, int threads);

/// mpq_bias_gelu_f32 with the output written as uint8 codes: each row's floats (the same
/// bits as mpq_bias_gelu_f32's) go through mpq_quantize_u8(quantize_path, ..., scale,
/// zero_point), so the codes equal quantizing mpq_bias_gelu_f32's output, on every split.
/// For a GELU whose only reader is an INT8 MatMul (a transformer's FFN): the 4-byte floats
/// are neither written nor read back to be quantized.
void mpq_bias_gelu_u8(mpq_kernel_path path, const float *x, size_t rows, size_t cols, const float *bias,
                      float div, float add, float mul, mpq_kernel_path quantize_path, float scale, uint8_t zero_point,
                      uint8_t *codes, int threads);

/// Attention probabilities: for each of `rows` rows of `n`, s = x * scale (`divide`:
/// x / scale), s += mask[mask_offsets[r] + k] when `mask` is not NULL, then the Softmax
/// of the row (mpq_softmax_rows_f32's row function) into `y`.
void mpq_scaled_masked_softmax_f32(mpq_kernel_path path, const float *x, size_t rows, size_t n, float scale,
                                   int divide, const float *mask, const size_t *mask_offsets, float *y, int threads);

/// mpq_scaled_masked_softmax_f32 with the output written as uint8 codes, as mpq_bias_gelu_u8:
/// each row's probabilities (the same bits) through mpq_quantize_u8(quantize_path, ...,
/// qscale, zero_point). For attention probabilities whose reader is the INT8 MatMul with V:
/// the floats are neither written nor read back to be quantized.
void mpq_scaled_masked_softmax_u8(mpq_kernel_path path, const float *x, size_t rows, size_t n, float scale,
                                  int divide, const float *mask, const size_t *mask_offsets,
                                  mpq_kernel_path quantize_path, float qscale, uint8_t zero_point, uint8_t *codes,
                                  int threads);

/// Post-attention / post-FFN normalisation: r = x + bias[j] (bias NULL: r = x), then
/// r = r + residual, then LayerNormalization of r over each row of `cols` (mpq_layernorm_f32's
/// row function, `beta` not NULL) into `y`.
void mpq_add_layernorm_f32(mpq_kernel_path path, const float *x, const float *bias, const float *residual,
                           size_t rows, size_t cols, const float *scale, const float *beta, float epsilon,
                           float *y, int threads);

/// A bias Add after a MatMul, out of place: y[r][j] = x[r][j] + bias[j] over `rows` rows of
/// `cols` (x unchanged; y not x).
void mpq_add_bias_rows_into_f32(const float *x, size_t rows, size_t cols, const float *bias, float *y, int threads);

#endif
