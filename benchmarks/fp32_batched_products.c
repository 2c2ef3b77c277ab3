// Attention's activation x activation products on mpq's FP32 linear GEMM as
// LinearOps.batchedPackedProduct runs them: ITEMS matrices A [M x K] x B [K x N], each B
// packed into a scratch panel and multiplied on one thread with A's rows read in place.
// MiniLM at batch 16: Q x K^T is 128 32 128 192, softmax x V 128 128 32 192. Prints the
// minimum over REPS passes, the part of it spent packing B, GFLOP/s and an output hash
// (the same bytes before and after a kernel change). MPQ_KERNEL_PATH=avx2 runs the AVX2 tile.
//
//     source benchmarks/ckernels_lib.sh; lib Sources/CKernels /tmp/ck.a
//     clang -O2 -ISources/CKernels/include benchmarks/fp32_batched_products.c /tmp/ck.a -lpthread -lm -o /tmp/bp
//     /tmp/bp M K N ITEMS REPS
#include "mpq_slinear.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}
static void *aalloc(size_t bytes) { return aligned_alloc(64, (bytes + 63) / 64 * 64); }

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: %s M K N ITEMS REPS\n", argv[0]);
        return 2;
    }
    const int m = atoi(argv[1]), k = atoi(argv[2]), n = atoi(argv[3]), items = atoi(argv[4]), reps = atoi(argv[5]);
    const size_t na = (size_t)items * m * k, nb = (size_t)items * k * n, nc = (size_t)items * m * n;
    float *a = aalloc(na * 4), *b = aalloc(nb * 4), *c = aalloc(nc * 4);
    for (size_t i = 0; i < na; i++) a[i] = (float)(i % 7) * 0.1f - 0.3f;
    for (size_t i = 0; i < nb; i++) b[i] = (float)(i % 5) * 0.1f - 0.2f;
    void *scratch = aalloc(mpq_slinear_pack_weights_size(k, n));
    double best = 1e30, best_pack = 0;
    for (int r = 0; r < reps; r++) {
        double pack = 0;
        const double t0 = now();
        for (int i = 0; i < items; i++) {
            const double p0 = now();
            if (mpq_slinear_pack_weights(b + (size_t)i * k * n, k, n, 0, scratch) != 0) return 1;
            pack += now() - p0;
            if (mpq_slinear_f32(MPQ_PATH_AUTO, a + (size_t)i * m * k, m, k, scratch, NULL, c + (size_t)i * m * n, n, 1) != 0)
                return 1;
        }
        const double t = now() - t0;
        if (t < best) best = t, best_pack = pack;
    }
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < nc; i++) {
        uint32_t v;
        memcpy(&v, &c[i], 4);
        h = (h ^ v) * 16777619u;
    }
    printf("%dx%dx%d x%d: min %.3f ms (packing %.3f) %.1f GFLOP/s hash %08x\n", m, k, n, items, best * 1e3,
           best_pack * 1e3, 2.0 * m * k * n * items / best / 1e9, h);
    return 0;
}
