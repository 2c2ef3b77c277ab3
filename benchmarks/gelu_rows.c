// The fused bias + GELU row kernel (mpq_bias_gelu_f32 / _u8, rowwise_fused.c) on MiniLM's FFN
// shape (128 tokens x 1536), and the unfused Erf op's kernel (mpq_erf_f32) on as many floats:
// minimum of 300 calls each, and a hash of the outputs so that two builds can be compared for
// bytes. ORT's side is its BiasGelu node in its profiler.
//     source benchmarks/ckernels_lib.sh; lib Sources/CKernels /tmp/ck.a
//     clang -O2 -ISources/CKernels/include benchmarks/gelu_rows.c /tmp/ck.a -lpthread -lm -o /tmp/gelu_rows
//     /tmp/gelu_rows [THREADS [ROWS]]
#include "mpq_fused.h"
#include "mpq_rowwise.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    const int threads = argc > 1 ? atoi(argv[1]) : 1, rows = argc > 2 ? atoi(argv[2]) : 128, cols = 1536, reps = 300;
    float *x = malloc((size_t)rows * cols * 4), *b = malloc(cols * 4), *y = malloc((size_t)rows * cols * 4);
    uint8_t *c = malloc((size_t)rows * cols);
    unsigned s = 1;
    for (size_t i = 0; i < (size_t)rows * cols; i++) { s = s * 1103515245u + 12345u; x[i] = ((s >> 8) / 16777216.0f - 0.5f) * 8; }
    for (int i = 0; i < cols; i++) b[i] = 0.01f * (i % 7);
    double bu = 1e9, bf = 1e9;
    for (int r = 0; r < reps; r++) {
        double t = now();
        mpq_bias_gelu_u8(MPQ_PATH_AUTO, x, rows, cols, b, 1.4142135f, 1.0f, 0.5f, MPQ_PATH_AUTO, 0.02f, 10, c, threads);
        t = now() - t;
        if (t < bu) bu = t;
        t = now();
        mpq_bias_gelu_f32(MPQ_PATH_AUTO, x, rows, cols, b, 1.4142135f, 1.0f, 0.5f, y, threads);
        t = now() - t;
        if (t < bf) bf = t;
    }
    double be = 1e9;
    for (int r = 0; r < reps; r++) {
        const double t = now();
        mpq_erf_f32(MPQ_PATH_AUTO, x, (size_t)rows * cols, y, threads);
        if (now() - t < be) be = now() - t;
    }
    unsigned he = 0;
    for (size_t i = 0; i < (size_t)rows * cols; i++) {
        unsigned u;
        memcpy(&u, y + i, 4);
        he = he * 31 + u;
    }
    mpq_bias_gelu_f32(MPQ_PATH_AUTO, x, rows, cols, b, 1.4142135f, 1.0f, 0.5f, y, threads);
    unsigned h = 0;
    for (size_t i = 0; i < (size_t)rows * cols; i++) {
        unsigned u;
        memcpy(&u, y + i, 4);
        h = h * 31 + c[i] + u * 7;
    }
    printf("threads %d, %d x %d: GELU codes %.1f us, floats %.1f us, hash %08x; Erf %.1f us, hash %08x\n", threads, rows,
           cols, bu * 1e6, bf * 1e6, h, be * 1e6, he);
    return 0;
}
