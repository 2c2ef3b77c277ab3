#ifndef MPQ_SLINEAR_H
#define MPQ_SLINEAR_H
// mpq's own FP32 GEMM for Gemm / MatMul with a constant weight B (docs/fp32-gemm.md,
// "Linear"): Y[M][N] = A[M][K] x B[K][N] (+ bias[N]), B packed once per session into
// 64-column panels, the activation rows of A read in place as the broadcast operand
// (no per-call packing), 6 x 64 register tiles (AVX-512, AVX2 + FMA, scalar reference),
// the bias added to each tile's registers after its last K block, and the split over the
// kernel pool by column groups (each core keeps its part of B in its L2) and row blocks.
//
// Every path computes each output as fmaf(a, b, acc) over k = 0..K-1 in order from +0,
// then one float add of bias[j] (when given): all paths, blockings and thread counts give
// the reference's bits, and the bias add is the bits of a separate ONNX Add after the
// product. The sum order differs from OpenBLAS's (float rounding only).
#include "mpq_kernels.h"

/// Packed B: this header (64 bytes), then per K block of 256 (the last one shorter) all
/// column panels, panel q being kc x w floats with w = min(64, N - 64 q) rounded up to 16
/// (zeros beyond N), panel q of the block from k0 at data + k0 * panels * 64 + q * 64 * kc.
/// Inside a panel, by `layout`:
/// - MPQ_SLINEAR_LAYOUT_WIDE: [kc][w], one 256-byte row per k (the AVX-512 tile loads its
///   four vectors from one row);
/// - MPQ_SLINEAR_LAYOUT_SUB16: [w / 16][kc][16], each 16 columns contiguous over k (an AVX2
///   sub-tile, which covers 16 columns at a time, then streams one sequential run instead
///   of every fourth cache line of the panel: docs/fp32-gemm.md, "Sub-panels").
/// Position-independent (no pointers), so it can be copied or cached.
typedef struct {
    uint32_t magic;  ///< MPQ_SLINEAR_WEIGHTS_MAGIC
    int32_t k, n, panels;
    int32_t layout;  ///< MPQ_SLINEAR_LAYOUT_*
    int32_t reserved[11];
} mpq_slinear_weights_header;
#define MPQ_SLINEAR_LAYOUT_WIDE 0
#define MPQ_SLINEAR_LAYOUT_SUB16 1
#define MPQ_SLINEAR_WEIGHTS_MAGIC 0x4C50504Du /* "MPPL" */

/// Bytes `mpq_slinear_pack_weights` needs for B of K x N (0 for bad sizes).
size_t mpq_slinear_pack_weights_size(int k, int n);

/// Packs B once: [K][N] row-major, or with `trans_b` [N][K] (a Gemm with transB = 1), in
/// the layout this CPU's tile reads fastest (`mpq_slinear_host_layout`). Returns 0, or -1
/// on bad arguments.
int mpq_slinear_pack_weights(const float *b, int k, int n, int trans_b, void *packed);
/// The same in a given layout (tests run every path on both). Returns -1 on a bad layout.
int mpq_slinear_pack_weights_layout(const float *b, int k, int n, int trans_b, int layout, void *packed);
/// WIDE where the AUTO path is AVX-512, else SUB16.
int mpq_slinear_host_layout(void);

/// y[i * ldy + j] = sum_k a[i * lda + k] * B[k][j] (+ bias[j]) for i < m, j < N, written,
/// not accumulated. `bias` may be NULL. `threads` > 1 splits over the kernel pool (the
/// result does not depend on it). Returns 0, or -1 on bad arguments or no memory.
int mpq_slinear_f32(mpq_kernel_path path, const float *a, int m, int lda, const void *packed_b,
                    const float *bias, float *y, int ldy, int threads);

/// mpq_slinear_f32 with B unpacked: B(k, j) = b[k * ldb + j], N a multiple of 16 (whole
/// vectors: the tiles load every row's columns unmasked). For a B used once (attention's
/// activation x activation products), where packing it cost 13-16% of the product. The same
/// FMA chains, so the bits of packing B and calling mpq_slinear_f32. Returns 0, or -1 on bad
/// arguments (N not a multiple of 16 included) or no memory.
int mpq_slinear_f32_rows(mpq_kernel_path path, const float *a, int m, int lda, const float *b, int k, int n, int ldb,
                         const float *bias, float *y, int ldy, int threads);

#endif
