// The channel-blocked FP32 MaxPool (pool_blocked.c) on the ResNet stems' pools: 3x3 stride 2
// pad 1 over 112x112 planes (resnet_digits' 16 channels, ResNet-18's 64), one image, each
// kernel path, minimum over ROUNDS x REPS calls; the paths' outputs must be the reference's
// bytes ("same").
//     source benchmarks/ckernels_lib.sh; mkdir -p /tmp/bp; ab_build - benchmarks/fp32_blocked_pool.c /tmp/bp
//     /tmp/bp/new ROUNDS THREADS
#include "mpq_kernels.h"
#include "mpq_pool.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "harness.h"

// Taps [lo, hi) inside the input per output index (as PoolOps.tapRanges).
static void taps(int in, int out, int k, int s, int pad, int *lo, int *hi) {
    for (int o = 0; o < out; o++) {
        int l = 0, h = k;
        while (l < k && o * s - pad + l < 0) l++;
        while (h > l && o * s - pad + h - 1 >= in) h--;
        lo[o] = l, hi[o] = h;
    }
}

int main(int argc, char **argv) {
    const int rounds = argc > 1 ? atoi(argv[1]) : 3, threads = argc > 2 ? atoi(argv[2]) : 1;
    const int channel_counts[] = {16, 64};
    for (int ci = 0; ci < 2; ci++) {
        const int c = channel_counts[ci], in = 112, k = 3, s = 2, pad = 1, out = (in + 2 * pad - k) / s + 1;
        const int blocks = (c + 15) / 16;
        const size_t nx = (size_t)blocks * in * in * 16, ny = (size_t)blocks * out * out * 16;
        float *x = aligned_alloc(64, nx * 4), *y[3];
        for (int i = 0; i < 3; i++) y[i] = aligned_alloc(64, ny * 4);
        for (size_t i = 0; i < nx; i++) x[i] = rndf();
        int lo[2 * 64], hi[2 * 64];
        taps(in, out, k, s, pad, lo, hi);
        taps(in, out, k, s, pad, lo + out, hi + out);
        mpq_pool2d p = {(size_t)blocks, in, in, out, out, k, k, s, s, 1, 1, pad, pad, lo, hi, lo + out, hi + out, NULL, NULL};
        const mpq_kernel_path paths[3] = {MPQ_PATH_REFERENCE, MPQ_PATH_AVX2, MPQ_PATH_VNNI};
        const char *names[3] = {"reference", "avx2", "avx512"};
        double best[3] = {1e9, 1e9, 1e9};
        for (int r = 0; r < rounds; r++)
            for (int q = 0; q < 3; q++) {
                if (!mpq_kernel_path_available(paths[q])) continue;
                for (int i = 0; i < (q == 0 ? 3 : 300); i++) {
                    const double t0 = now();
                    mpq_pool2d_f32_blocked(paths[q], 1, &p, c, x, y[q], threads);
                    const double t = now() - t0;
                    if (t < best[q]) best[q] = t;
                }
            }
        printf("maxpool 3x3/2 %dch %dx%d -> %dx%d (%d threads):", c, in, in, out, out, threads);
        for (int q = 0; q < 3; q++)
            if (mpq_kernel_path_available(paths[q]))
                printf("  %s %7.1f us %s", names[q], best[q] * 1e6, q && memcmp(y[q], y[0], ny * 4) ? "DIFFER" : "same");
        printf("\n");
        free(x);
        for (int i = 0; i < 3; i++) free(y[i]);
    }
    return 0;
}
