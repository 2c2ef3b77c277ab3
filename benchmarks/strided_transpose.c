// MiniLM's attention head split and merge as mpq_strided_copy sees them (dims merged as
// Tensor.strided merges them), one thread and the pool, batch 1 and 16; each case checked
// element by element against the plain index loop. MPQ_STRIDED_TILED=0 in the environment
// runs the element loop instead of the 16 x 16 tiles (the A/B). Minimum of 200 calls, output
// buffer allocated once (the copy alone, not the allocation).
//     source benchmarks/ckernels_lib.sh; mkdir -p /tmp/st; ab_build - benchmarks/strided_transpose.c /tmp/st
//     /tmp/st/new; MPQ_STRIDED_TILED=0 /tmp/st/new
#include <stdio.h>
#include <string.h>
#include "harness.h"
#include "mpq_strided.h"

typedef struct { const char *name; int rank; size_t dims[4]; ptrdiff_t strides[4]; } shape;

static int check(const shape *s, const float *src, const float *dst) {
    size_t n = 1;
    for (int d = 0; d < s->rank; d++) n *= s->dims[d];
    for (size_t o = 0; o < n; o++) {
        size_t rest = o; ptrdiff_t off = 0;
        for (int d = s->rank - 1; d >= 0; d--) { off += (ptrdiff_t)(rest % s->dims[d]) * s->strides[d]; rest /= s->dims[d]; }
        if (memcmp(&src[off], &dst[o], 4)) return 0;
    }
    return 1;
}

int main(void) {
    // [B, L, H, D] = [b, 128, 12, 32] -> key (0, 2, 3, 1) [b, H*D... merged]; query/value (0, 2, 1, 3); merge back (0, 2, 1, 3).
    const shape cases[] = {
        {"key   b1  [384 x 128] <- (0,2,3,1)", 2, {384, 128}, {1, 384}},
        {"query b1  [12,128,32] <- (0,2,1,3)", 3, {12, 128, 32}, {32, 384, 1}},
        {"merge b1  [128,12,32] <- (0,2,1,3)", 3, {128, 12, 32}, {32, 4096, 1}},
        {"key   b16 [16,384,128]", 3, {16, 384, 128}, {49152, 1, 384}},
        {"query b16 [16,12,128,32]", 4, {16, 12, 128, 32}, {49152, 32, 384, 1}},
    };
    const size_t most = 16 * 49152;
    float *src = aalloc(most * 4), *dst = aalloc(most * 4);
    for (size_t i = 0; i < most; i++) src[i] = rndf();
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        const shape *s = &cases[k];
        for (int threads = 1; threads <= 2; threads++) {
            double best = 1e9;
            for (int it = 0; it < 200; it++) {
                double t0 = now();
                mpq_strided_copy(4, src, 0, s->rank, s->dims, s->strides, dst, threads);
                double t = now() - t0;
                if (t < best) best = t;
            }
            printf("%-36s threads %d  %8.2f us  %s\n", s->name, threads, best * 1e6, check(s, src, dst) ? "ok" : "WRONG");
        }
    }
    return 0;
}
