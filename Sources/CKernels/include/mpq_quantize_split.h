#ifndef MPQ_QUANTIZE_SPLIT_H
#define MPQ_QUANTIZE_SPLIT_H
// mpq_quantize_u8 split over the kernel pool: large activations (a transformer's FFN
// output, 3M floats at batch 16) are quantized by every core before an INT8 GEMM instead
// of one. Blocks are multiples of 64 elements, so every element takes the same path
// (vector body, not tail) as in one call: the same codes.
#include "mpq_kernels.h"

void mpq_quantize_u8_split(mpq_kernel_path path, const float *x, size_t count, float scale, uint8_t zero_point,
                           uint8_t *y, int threads);

#endif
