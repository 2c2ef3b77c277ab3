// Max pooling on codes and max / average pooling on floats (mpq_pool.h) on the AVX2 path,
// one Conv-sized plane set per line: minimum of REPS calls, and whether the output equals the
// reference path's bit for bit. ResNet-18's 64 x 112x112 3x3/2 max pool first, then smaller
// planes, strides and kernels (their row tails: docs/pooling.md, "Row tails").
//     source benchmarks/ckernels_lib.sh; lib Sources/CKernels /tmp/ck.a
//     clang -O2 -ISources/CKernels/include benchmarks/pool_rows.c /tmp/ck.a -lpthread -lm -o /tmp/pool_rows
//     /tmp/pool_rows [REPS [THREADS]]
#include "mpq_pool.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

// Taps [lo, hi) of each output inside the input, and their count.
static void axis(int in, int out, int k, int s, int pad, int *lo, int *hi, float *count) {
    for (int o = 0; o < out; o++) {
        int l = 0, h = k;
        while (l < k && o * s - pad + l < 0) l++;
        while (h > l && o * s - pad + h - 1 >= in) h--;
        lo[o] = l, hi[o] = h, count[o] = (float)(h - l);
    }
}

int main(int argc, char **argv) {
    const int reps = argc > 1 ? atoi(argv[1]) : 100, threads = argc > 2 ? atoi(argv[2]) : 1;
    static const int shapes[][6] = {  // channels, H, W, kernel, stride, pad
        {64, 112, 112, 3, 2, 1}, {64, 56, 56, 3, 2, 1}, {16, 64, 64, 3, 2, 1}, {32, 28, 28, 2, 2, 0},
        {8, 33, 47, 3, 2, 1},    {16, 20, 20, 5, 1, 2}, {4, 9, 113, 3, 2, 1},  {3, 7, 70, 3, 1, 1}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const int C = shapes[si][0], H = shapes[si][1], W = shapes[si][2], K = shapes[si][3], S = shapes[si][4], P = shapes[si][5];
        const int OH = (H + 2 * P - K) / S + 1, OW = (W + 2 * P - K) / S + 1;
        int *loh = malloc(OH * sizeof(int)), *hih = malloc(OH * sizeof(int)), *low = malloc(OW * sizeof(int)), *hiw = malloc(OW * sizeof(int));
        float *ch = malloc(OH * sizeof(float)), *cw = malloc(OW * sizeof(float));
        axis(H, OH, K, S, P, loh, hih, ch);
        axis(W, OW, K, S, P, low, hiw, cw);
        const mpq_pool2d p = {C, H, W, OH, OW, K, K, S, S, 1, 1, P, P, loh, hih, low, hiw, ch, cw};
        const size_t n = (size_t)C * H * W, m = (size_t)C * OH * OW;
        uint8_t *xc = malloc(n), *yc = malloc(m), *rc = malloc(m);
        float *xf = malloc(n * 4), *yf = malloc(m * 4), *rf = malloc(m * 4);
        unsigned s = 1;
        for (size_t i = 0; i < n; i++) { s = s * 1103515245u + 12345u; xc[i] = s >> 24; xf[i] = (float)(s >> 8) / 16777216.0f - 0.5f; }
        for (int kind = 0; kind < 3; kind++) {  // codes max, floats max, floats average
            double best = 1e9;
            for (int r = 0; r <= reps; r++) {
                const double t = now();
                if (kind == 0) mpq_maxpool2d_u8(r ? MPQ_PATH_AVX2 : MPQ_PATH_REFERENCE, &p, xc, r ? yc : rc, threads);
                else (kind == 1 ? mpq_maxpool2d_f32 : mpq_avgpool2d_f32)(r ? MPQ_PATH_AVX2 : MPQ_PATH_REFERENCE, &p, xf, r ? yf : rf, threads);
                if (r && now() - t < best) best = now() - t;
            }
            const int same = kind == 0 ? !memcmp(yc, rc, m) : !memcmp(yf, rf, m * 4);
            printf("%-10s %2d x %3dx%3d k%d s%d p%d %8.1f us  %s\n", kind == 0 ? "max codes" : kind == 1 ? "max floats" : "avg floats",
                   C, H, W, K, S, P, best * 1e6, same ? "= reference" : "DIFFERS");
        }
        free(loh), free(hih), free(low), free(hiw), free(ch), free(cw), free(xc), free(yc), free(rc), free(xf), free(yf), free(rf);
    }
    return 0;
}
