#ifndef MPQ_STRIDED_INTERNAL_H
#define MPQ_STRIDED_INTERNAL_H
// What strided_copy.c and its transposing case (strided_transpose.c) share.
#include <stdatomic.h>
#include <stddef.h>
#include "mpq_strided.h"

typedef struct {
    size_t elem;
    const char *src;
    ptrdiff_t offset;
    int rank;
    size_t dims[MPQ_STRIDED_MAX_RANK];
    ptrdiff_t strides[MPQ_STRIDED_MAX_RANK];
    char *dst;
    size_t rows;          // product of all dims but the last
    size_t chunk;         // rows per claim
    _Atomic size_t next;  // the first row nobody has claimed yet
} strided_job;

typedef struct {
    const strided_job *job;
    int c;                                       // the output dim that reads the source contiguously
    size_t bands;                                // ceil(dims[c] / 16)
    size_t units;                                // outer index x band
    ptrdiff_t dst_strides[MPQ_STRIDED_MAX_RANK];  // the dense output's
    size_t chunk;
    _Atomic size_t next;
} strided_transpose_job;

/// The dim c < rank - 1 that a 16 x 16 tiled transpose runs along (source stride 1, at least 8
/// long), when the last dim is strided and at least 8 long, the elements are 4 bytes, the CPU has
/// AVX-512F and MPQ_STRIDED_TILED is not 0; else -1 (the element loop runs).
int mpq_strided_transpose_dim(const strided_job *j);

/// Every element of `j` through 16 x 16 register tiles along `c` and the last dim, units over
/// the pool in claimed runs.
void mpq_strided_transpose(const strided_job *j, int c, int threads);

#endif
