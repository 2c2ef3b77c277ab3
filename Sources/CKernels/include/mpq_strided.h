#ifndef MPQ_STRIDED_H
#define MPQ_STRIDED_H
// The data mover behind Transpose / Slice / Split / Expand / Tile (Swift `Tensor.strided`)
// in C, split over the kernel pool. A transformer's head split and merge (MiniLM: Q, K, V
// and the context, 4 x [16, 128, 384] floats per layer at batch 16) were single-threaded
// Swift loops, all of it serial wall time. A copy has no arithmetic, so every split and
// every path writes the same bytes as the Swift loop (the reference, kept beside it).
#include <stddef.h>
#include <stdint.h>

/// Most dims `mpq_strided_copy` takes (after the caller merged contiguous ones).
#define MPQ_STRIDED_MAX_RANK 16

/// dst[i0, ..., i_{r-1}] (row-major, dense) = src[offset + sum_d i_d * strides[d]] for
/// elements of `elem_size` bytes (1, 2, 4 or 8). Strides and offset count elements and may
/// be 0 or negative. `threads` > 1 splits the outer rows (all dims but the last) over the
/// kernel pool in claimed runs. 4-byte elements whose last dim is strided while another dim
/// reads the source contiguously (a transpose: attention's Kᵀ) move as 16 x 16 register tiles
/// on AVX-512F CPUs (strided_transpose.c; `MPQ_STRIDED_TILED=0` the element loop): the same
/// bytes. Returns -1 (nothing written) for an unsupported element
/// size or rank, else 0.
int mpq_strided_copy(size_t elem_size, const void *src, ptrdiff_t offset, int rank, const size_t *dims,
                     const ptrdiff_t *strides, void *dst, int threads);

#endif
