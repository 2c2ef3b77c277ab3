// One-thread (or N-thread) timing of mpq's FP32 depthwise 3x3 kernels on MobileNetV2's depthwise
// layers (224x224, pads 1), one image, bias + Relu6: "pixels" = what the runtime ran before
// s12-dwlanes (mpq_depthwise_f32 on the VNNI path, then mpq_conv_epilogue_f32), "lanes" =
// mpq_depthwise3x3_f32_lanes (16 channels in the vector lanes, epilogue fused). Both in one
// process, alternated, one thread; prints the minimum per kernel in microseconds (thread CPU
// time, so a run descheduled on the shared machine does not count) and whether both gave
// the same bytes.   benchmarks/fp32_depthwise_lanes.sh [ROUNDS] [REPS]
#include "mpq_kernels.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static uint64_t st = 88172645463325252ull;
static float rndf(void) { st ^= st << 13; st ^= st >> 7; st ^= st << 17; return (float)((st >> 40) & 0xFFFF) / 32768.0f - 1.0f; }

typedef struct { int c, h, s; } L;
// MobileNetV2's depthwise layer shapes (C, H = W, stride).
static const L layers[] = {{32, 112, 1}, {96, 112, 2}, {144, 56, 1}, {144, 56, 2}, {192, 28, 1},
                           {192, 28, 2}, {384, 14, 1}, {576, 14, 1}, {576, 14, 2}, {960, 7, 1}};

int main(int argc, char **argv) {
    const int rounds = argc > 1 ? atoi(argv[1]) : 5, reps = argc > 2 ? atoi(argv[2]) : 30;
    printf("%-14s %10s %9s %7s %s\n", "C x H x W / s", "pixels us", "lanes us", "ratio", "bytes");
    for (size_t li = 0; li < sizeof layers / sizeof *layers; li++) {
        const L *l = &layers[li];
        mpq_conv2d_shape s = {.channels = l->c, .group = l->c, .height = l->h, .width = l->h, .kernel_h = 3, .kernel_w = 3,
                              .stride_h = l->s, .stride_w = l->s, .dilation_h = 1, .dilation_w = 1,
                              .pad_top = 1, .pad_left = 1, .pad_bottom = 1, .pad_right = 1};
        const int OH = mpq_conv2d_out_h(&s), OW = mpq_conv2d_out_w(&s);
        const size_t nin = (size_t)l->c * l->h * l->h, nout = (size_t)l->c * OH * OW;
        float *x = malloc(nin * 4), *w = malloc((size_t)l->c * 36), *b = malloc((size_t)l->c * 4);
        float *y0 = malloc(nout * 4), *y1 = malloc(nout * 4);
        for (size_t i = 0; i < nin; i++) x[i] = rndf();
        for (int i = 0; i < l->c * 9; i++) w[i] = rndf();
        for (int i = 0; i < l->c; i++) b[i] = rndf();
        double best_old = 1e9, best_new = 1e9;
        for (int r = 0; r < rounds; r++) {
            for (int k = 0; k < reps; k++) {
                const double t0 = now();
                mpq_depthwise_f32(MPQ_PATH_VNNI, x, &s, w, y0);
                mpq_conv_epilogue_f32(MPQ_PATH_VNNI, y0, (size_t)l->c, (size_t)OH * OW, (size_t)OH * OW, b, MPQ_ACT_CLAMP, 0.0f, 6.0f);
                const double t = now() - t0;
                if (t < best_old) best_old = t;
            }
            for (int k = 0; k < reps; k++) {
                const double t0 = now();
                if (mpq_depthwise3x3_f32_lanes(MPQ_PATH_VNNI, x, &s, w, b, MPQ_ACT_CLAMP, 0.0f, 6.0f, y1, 1) != 0) {
                    printf("the lanes kernel declined %dx%d (no AVX-512?)\n", l->c, l->h);
                    return 1;
                }
                const double t = now() - t0;
                if (t < best_new) best_new = t;
            }
        }
        char shape[32];
        snprintf(shape, sizeof shape, "%dx%dx%d/%d", l->c, l->h, l->h, l->s);
        printf("%-14s %10.1f %9.1f %7.2f %s\n", shape, best_old * 1e6, best_new * 1e6, best_old / best_new,
               memcmp(y0, y1, nout * 4) ? "DIFFER" : "same");
        free(x), free(w), free(b), free(y0), free(y1);
    }
    return 0;
}
