// glibc malloc tuning for the runtime's allocation pattern (mpq_rowwise.h).
#include "mpq_rowwise.h"
#if defined(__GLIBC__)
#include <limits.h>
#include <malloc.h>
#endif

int mpq_keep_heap(void) {
#if defined(__GLIBC__)
    // 32 MiB is the largest mmap threshold glibc accepts (HEAP_MAX_SIZE / 2); larger
    // blocks (attention scores at batch 64: 50 MB) would still be mmapped per op, so mmap
    // is turned off for allocations altogether (glibc still falls back to it when the heap
    // cannot grow). MiniLM FP32 at batch 64: 4.5 s -> 3.1 s per batch in `mpq profile`.
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_MMAP_MAX, 0);
    mallopt(M_TRIM_THRESHOLD, INT_MAX);
    return 1;
#else
    return 0;
#endif
}
