#ifndef MPQ_ACTIVATION_GEMM_H
#define MPQ_ACTIVATION_GEMM_H
// The steps around the u8 x s8 GEMM of an INT8 MatMul of two activations (Kernels'
// QuantizedActivationMatMul.swift: attention's Q·Kᵀ and probabilities·V), in C instead of
// Swift loops with overflow checks. Integer steps are exact; the float step is the same
// int64 -> float conversion (round to nearest) and one multiply as the Swift code had.
#include <stddef.h>
#include <stdint.h>

/// The right operand B [K][N] uint8 (row stride `ldb`) as the GEMM's [N][K] int8 operand:
/// bt[c * k + j] = b[j * ldb + c] - 128 (the code's top bit flipped).
void mpq_transpose_shift_u8(const uint8_t *b, int k, int n, int ldb, int8_t *bt);

/// sums[r] = sum_j a[r * k + j] - za * k, for `rows` rows of `k` codes.
void mpq_row_sums_u8(const uint8_t *a, size_t rows, int k, int32_t za, int64_t *sums);

/// out[r * n + c] = (float)(acc[r * n + c] - zb * sums[r]) * scale over `rows` rows of `n`:
/// B's zero-point correction, then the float scale. `k` (the GEMM's) bounds the values:
/// |acc|, |zb * sums| <= 255 * 128 * k, so up to k = 32896 the difference is taken in int32.
void mpq_row_correct_scale_f32(const int32_t *acc, size_t rows, int n, int k, const int64_t *sums, int64_t zb,
                               float scale, float *out);

/// mpq_row_correct_scale_f32's scalar form; the function itself takes an AVX2 loop with the
/// same operations (the same bits) unless MPQ_KERNEL_PATH=reference or the CPU lacks AVX2.
void mpq_row_correct_scale_f32_reference(const int32_t *acc, size_t rows, int n, int k, const int64_t *sums,
                                         int64_t zb, float scale, float *out);

/// The same correction, then ONNX Runtime's QLinearMatMul requantization (MlasRequantizeOutput
/// with `multiplier` = s_a * s_b / s_y): v = (float)(acc - zb * sums[r]) * multiplier, clamped
/// to [-zp, 255 - zp], rounded half to even, + zp: the uint8 output codes, exactly ORT's
/// bytes (its int32 accumulator is the same exact sum).
void mpq_row_correct_requant_u8(const int32_t *acc, size_t rows, int n, int k, const int64_t *sums, int64_t zb,
                                float multiplier, uint8_t zp, uint8_t *out);

/// Its scalar form (the AVX2 loop gives the same bytes).
void mpq_row_correct_requant_u8_reference(const int32_t *acc, size_t rows, int n, int k, const int64_t *sums,
                                          int64_t zb, float multiplier, uint8_t zp, uint8_t *out);

/// B [K][N] uint8 (row stride `ldb` >= n) straight into the packed int8 operand of
/// mpq_qgemm_u8s8 (`packed`: mpq_pack_b_s8_size(n, k) bytes): the same bytes as
/// mpq_transpose_shift_u8 followed by mpq_pack_b_s8(bt, n, k, k, packed), without the
/// transposed copy. 0, or -1 on bad arguments.
int mpq_pack_b_shift_u8(const uint8_t *b, int k, int n, int ldb, void *packed);

/// Its scalar reference (one byte at a time).
int mpq_pack_b_shift_u8_reference(const uint8_t *b, int k, int n, int ldb, void *packed);

#endif
