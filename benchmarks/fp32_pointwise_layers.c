// MobileNetV2's 1x1 (pointwise) FP32 convs, one image, bias (+ Relu6 on the expand layers), random
// data: mpq_sconv2d_f32 (what the runtime calls: the direct path for these) or, with MODE 1, the
// channel-vector kernel. Prints per layer the minimum of ROUNDS x REPS calls in microseconds (thread
// CPU time on one thread, wall time on several), GFLOP/s and a checksum of the output bits (equal
// checksums: equal bytes).   benchmarks/fp32_pointwise_ab.sh [ROUNDS] [THREADS]
// Direct use: fp32_pointwise_layers ROUNDS REPS THREADS MODE
#include "mpq_kernels.h"
#include "mpq_sgemm.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <stdint.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static double wall(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static uint64_t st = 88172645463325252ull;
static float rndf(void) { st ^= st << 13; st ^= st >> 7; st ^= st << 17; return (float)((st >> 40) & 0xFFFF) / 32768.0f - 1.0f; }
typedef struct { int c, h, m, relu; } L;
static const L layers[] = {{16, 112, 96, 1}, {32, 112, 16, 0}, {96, 56, 24, 0}, {24, 56, 144, 1}, {144, 56, 24, 0}, {144, 28, 32, 0},
  {32, 28, 192, 1}, {192, 28, 32, 0}, {192, 14, 64, 0}, {64, 14, 384, 1}, {384, 14, 64, 0}, {384, 14, 96, 0}, {96, 14, 576, 1},
  {576, 14, 96, 0}, {576, 7, 160, 0}, {160, 7, 960, 1}, {960, 7, 160, 0}, {960, 7, 320, 0}, {320, 7, 1280, 1}};
int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 3, reps = argc > 2 ? atoi(argv[2]) : 20, threads = argc > 3 ? atoi(argv[3]) : 1;
    int cvmode = argc > 4 ? atoi(argv[4]) : 0;
    double tot = 0;
    for (size_t li = 0; li < sizeof layers / sizeof *layers; li++) {
        const L *l = &layers[li];
        mpq_conv2d_shape s = {l->c, l->h, l->h, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 1};
        size_t nx = (size_t)l->c * l->h * l->h, ny = (size_t)l->m * l->h * l->h;
        float *x = malloc(nx * 4), *y = malloc(ny * 4), *b = malloc(l->m * 4), *w = malloc((size_t)l->m * l->c * 4);
        for (size_t q = 0; q < nx; q++) x[q] = rndf();
        for (size_t q = 0; q < (size_t)l->m * l->c; q++) w[q] = rndf() * 0.1f;
        for (int q = 0; q < l->m; q++) b[q] = rndf() * 0.1f;
        void *pw = aligned_alloc(64, (mpq_sconv_pack_weights_size(l->m, l->c, 1) + 63) / 64 * 64);
        void *cw = aligned_alloc(64, (mpq_sconv_cv_weights_size(l->m, l->c, 1) + 63) / 64 * 64);
        mpq_sconv_pack_weights(w, l->m, l->c, 1, pw);
        mpq_sconv_cv_pack_weights_layout(pw, mpq_sconv_cv_host_layout(), cw);
        double best = 1e9;
        uint32_t sum = 0;
        for (int r = 0; r < rounds * reps; r++) {
            double t0 = threads > 1 ? wall() : now();
            if (cvmode) mpq_sconv2d_f32_cv(MPQ_PATH_VNNI, x, 1, &s, cw, b, l->relu ? MPQ_ACT_CLAMP : MPQ_ACT_NONE, 0, 6, NULL, y, threads);
            else mpq_sconv2d_f32(MPQ_PATH_VNNI, x, 1, &s, pw, b, l->relu ? MPQ_ACT_CLAMP : MPQ_ACT_NONE, 0, 6, y, threads);
            double t = (threads > 1 ? wall() : now()) - t0;
            if (t < best) best = t;
        }
        for (size_t q = 0; q < ny; q++) { uint32_t u; memcpy(&u, y + q, 4); sum = sum * 31 + u; }
        printf("%4d->%-4d %3dx%-3d %8.1f us %6.1f GFLOP/s  %08x\n", l->c, l->m, l->h, l->h, best * 1e6,
               2.0 * l->c * l->m * l->h * l->h / best * 1e-9, sum);
        tot += best;
        free(x); free(y); free(b); free(w); free(pw); free(cw);
    }
    printf("total %.1f us\n", tot * 1e6);
}
