// A chain of transformer FFN pairs on mpq's FP32 linear GEMM (mpq_slinear.h), weights cold:
// Y = (X x B1_p) x B2_p for p = 1..PAIRS, each pair with its own packed weights, so with
// enough pairs (MiniLM: [128, 384] x [384, 1536] x [1536, 384], 2.4 MB per weight; 20 pairs
// hold 94 MB) every call streams its B from memory as in a model, where a harness that
// repeats one call keeps B in the caches. fp32_linear_chain_ort.py times the same chain in
// ONNX Runtime. Prints min / median ms and GFLOP/s (median) and an output hash.
//
//     source benchmarks/ckernels_lib.sh; lib Sources/CKernels /tmp/ck.a
//     clang -O2 -ISources/CKernels/include benchmarks/fp32_linear_chain.c /tmp/ck.a -lpthread -lm -o /tmp/chain
//     /tmp/chain M K N THREADS REPS PAIRS        # e.g. 128 384 1536 2 20 20
//
// MPQ_FP32_LINEAR_SUBPANELS=0 packs the wide layout (docs/fp32-gemm.md, "Sub-panels").
#include "mpq_slinear.h"
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}
static int cmp(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
static void *packed(const float *b, int k, int n) {
    void *p = aligned_alloc(64, (mpq_slinear_pack_weights_size(k, n) + 63) / 64 * 64);
    if (!p || mpq_slinear_pack_weights(b, k, n, 0, p) != 0) abort();
    return p;
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: %s M K N THREADS REPS PAIRS\n", argv[0]);
        return 2;
    }
    const int m = atoi(argv[1]), k = atoi(argv[2]), n = atoi(argv[3]), threads = atoi(argv[4]);
    const int reps = atoi(argv[5]), pairs = atoi(argv[6]);
    float *a = malloc(sizeof(float) * m * k), *b = malloc(sizeof(float) * k * n);
    float *h = malloc(sizeof(float) * m * n), *o = malloc(sizeof(float) * m * k);
    double *ts = malloc(sizeof(double) * reps);
    void **p1 = malloc(sizeof(void *) * pairs), **p2 = malloc(sizeof(void *) * pairs);
    srand(1);
    for (int i = 0; i < m * k; i++) a[i] = rand() / (float)RAND_MAX - 0.5f;
    for (int i = 0; i < k * n; i++) b[i] = (rand() / (float)RAND_MAX - 0.5f) * 0.1f;
    for (int p = 0; p < pairs; p++) {
        p1[p] = packed(b, k, n);  // the same values, separate copies: each call's B is cold
        p2[p] = packed(b, n, k);
    }
    unsigned hash = 2166136261u;
    for (int r = 0; r < reps; r++) {
        const double t = now();
        const float *x = a;
        for (int p = 0; p < pairs; p++) {
            mpq_slinear_f32(MPQ_PATH_AUTO, x, m, k, p1[p], NULL, h, n, threads);
            mpq_slinear_f32(MPQ_PATH_AUTO, h, m, n, p2[p], NULL, o, k, threads);
            x = o;
        }
        ts[r] = now() - t;
        if (r == 0)
            for (size_t i = 0; i < (size_t)m * k * sizeof(float); i++) hash = (hash ^ ((unsigned char *)o)[i]) * 16777619u;
    }
    qsort(ts, reps, sizeof(double), cmp);
    const double flops = 4.0 * m * k * n * pairs;
    printf("mpq chain %d pairs %dx%dx%d threads %d: min %.3f med %.3f ms %.1f GFLOP/s hash %08x\n", pairs, m, k, n,
           threads, ts[0] * 1e3, ts[reps / 2] * 1e3, flops / ts[reps / 2] / 1e9, hash);
    return 0;
}
