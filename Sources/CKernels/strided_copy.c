// mpq_strided_copy (mpq_strided.h): Tensor.strided's loop in C, rows claimed over the pool.
#include <stdatomic.h>
#include <string.h>
#include "mpq_internal.h"
#include "mpq_strided.h"
#include "strided_internal.h"

// One output row of `n` elements from `from` with element stride `s` (bytes of `elem`).
// Typed loops so the compiler emits plain moves (memcpy for unit stride).
static void copy_row(size_t elem, const char *from, ptrdiff_t s, size_t n, char *to) {
    if (s == 1) {
        memcpy(to, from, n * elem);
        return;
    }
    switch (elem) {
    case 1: {
        const uint8_t *f = (const uint8_t *)from; uint8_t *t = (uint8_t *)to;
        for (size_t j = 0; j < n; j++) t[j] = f[(ptrdiff_t)j * s];
        break;
    }
    case 2: {
        const uint16_t *f = (const uint16_t *)from; uint16_t *t = (uint16_t *)to;
        for (size_t j = 0; j < n; j++) t[j] = f[(ptrdiff_t)j * s];
        break;
    }
    case 4: {
        const uint32_t *f = (const uint32_t *)from; uint32_t *t = (uint32_t *)to;
        for (size_t j = 0; j < n; j++) t[j] = f[(ptrdiff_t)j * s];
        break;
    }
    default: {
        const uint64_t *f = (const uint64_t *)from; uint64_t *t = (uint64_t *)to;
        for (size_t j = 0; j < n; j++) t[j] = f[(ptrdiff_t)j * s];
        break;
    }
    }
}

// Output rows [lo, hi): the multi-index of row `lo` by division, then an odometer step per
// row, as the Swift loop walks them.
static void copy_rows(const strided_job *j, size_t lo, size_t hi) {
    int r = j->rank;
    size_t inner = j->dims[r - 1];
    size_t idx[MPQ_STRIDED_MAX_RANK];
    ptrdiff_t off = j->offset;
    size_t rest = lo;
    for (int d = r - 2; d >= 0; d--) {
        idx[d] = rest % j->dims[d];
        rest /= j->dims[d];
        off += (ptrdiff_t)idx[d] * j->strides[d];
    }
    char *to = j->dst + lo * inner * j->elem;
    for (size_t row = lo; row < hi; row++) {
        copy_row(j->elem, j->src + off * (ptrdiff_t)j->elem, j->strides[r - 1], inner, to);
        to += inner * j->elem;
        for (int d = r - 2; d >= 0; d--) {
            idx[d]++;
            off += j->strides[d];
            if (idx[d] < j->dims[d]) break;
            off -= j->strides[d] * (ptrdiff_t)j->dims[d];
            idx[d] = 0;
        }
    }
}

// Runs of `chunk` rows from one counter, about 4 claims per task: the calling thread starts
// at once and a core slowed by another process holds up less (as rowwise_fused.c).
static void strided_task(void *arg, int t) {
    (void)t;
    strided_job *j = arg;
    size_t lo, hi;
    while (mpq_claim_run(&j->next, j->chunk, j->rows, &lo, &hi)) copy_rows(j, lo, hi);
}

int mpq_strided_copy(size_t elem_size, const void *src, ptrdiff_t offset, int rank, const size_t *dims,
                     const ptrdiff_t *strides, void *dst, int threads) {
    if (!(elem_size == 1 || elem_size == 2 || elem_size == 4 || elem_size == 8)) return -1;
    if (rank < 1 || rank > MPQ_STRIDED_MAX_RANK) return -1;
    strided_job j = {.elem = elem_size, .src = src, .offset = offset, .rank = rank, .dst = dst};
    size_t rows = 1;
    for (int d = 0; d < rank; d++) {
        j.dims[d] = dims[d];
        j.strides[d] = strides[d];
        if (dims[d] == 0) return 0;
        if (d < rank - 1) rows *= dims[d];
    }
    j.rows = rows;
    if (threads > MPQ_POOL_MAX) threads = MPQ_POOL_MAX;
    const int c = mpq_strided_transpose_dim(&j);
    if (c >= 0) {
        mpq_strided_transpose(&j, c, threads);
        return 0;
    }
    if (threads > (int)rows) threads = (int)rows;
    if (threads < 2) {
        copy_rows(&j, 0, rows);
        return 0;
    }
    size_t per = 4 * (size_t)threads;
    j.chunk = (rows + per - 1) / per;
    atomic_init(&j.next, 0);
    mpq_pool_run(threads, strided_task, &j);
    return 0;
}
