// The AVX2 channel-vector FP32 Conv (sconv_cv_avx2.c) against the direct path on the bench
// models' layer shapes and YOLO-sized ones at 640x640: the data behind `cv_preferred_avx2`
// (sconv_cv.c) and docs/fp32-gemm.md "Channel-vector tiles on AVX2, s22". Random data, bias,
// Clip(0, 6) or SiLU, optionally the fused residual Add + Relu; prints each path's minimum over
// REPS calls, GFLOP/s, cv / direct, and DIFF where the two gave different bytes (they must not).
//     source benchmarks/ckernels_lib.sh && lib Sources/CKernels /tmp/ck.a
//     clang -O2 -ISources/CKernels/include benchmarks/fp32_cv_avx2_layers.c /tmp/ck.a -lpthread -lm -o /tmp/cv
//     [ONLY=substring] [SILU=1] [RES=1] [CVONLY=1] /tmp/cv REPS THREADS IMAGES
// Env knobs of the kernel itself for A/B in one binary: MPQ_CV2_SLICE_PIXELS (0: one slice),
// MPQ_CV2_EVEN_UNITS (0: the 128K-MAC units of the other paths). On a noisy host compare runs
// made side by side (taskset -c 0 for one thread), and repeat.
#include "mpq_kernels.h"
#include "mpq_sgemm.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "harness.h"

typedef struct { const char *name; int c, h, m, k, s, p; } L;  // square planes
static const L layers[] = {
    {"mb 32->16 112", 32, 112, 16, 1, 1, 0},      {"mb 144->24 56", 144, 56, 24, 1, 1, 0},
    {"mb 144->32 28", 144, 28, 32, 1, 1, 0},      {"mb 192->32 28", 192, 28, 32, 1, 1, 0},
    {"mb 192->64 14", 192, 14, 64, 1, 1, 0},      {"mb 64->384 14", 64, 14, 384, 1, 1, 0},
    {"mb 384->64 14", 384, 14, 64, 1, 1, 0},      {"mb 384->96 14", 384, 14, 96, 1, 1, 0},
    {"mb 96->576 14", 96, 14, 576, 1, 1, 0},      {"mb 576->96 14", 576, 14, 96, 1, 1, 0},
    {"mb 576->160 7", 576, 7, 160, 1, 1, 0},      {"mb 160->960 7", 160, 7, 960, 1, 1, 0},
    {"mb 960->160 7", 960, 7, 160, 1, 1, 0},      {"mb 960->320 7", 960, 7, 320, 1, 1, 0},
    {"mb 320->1280 7", 320, 7, 1280, 1, 1, 0},    {"mb stem 3->32 224/2", 3, 224, 32, 3, 2, 1},
    {"r18 64 3x3 56", 64, 56, 64, 3, 1, 1},       {"r18 64->128 /2 56", 64, 56, 128, 3, 2, 1},
    {"r18 128 28", 128, 28, 128, 3, 1, 1},        {"r18 128->256 /2", 128, 28, 256, 3, 2, 1},
    {"r18 256 14", 256, 14, 256, 3, 1, 1},        {"r18 256->512 /2", 256, 14, 512, 3, 2, 1},
    {"r18 512 7", 512, 7, 512, 3, 1, 1},          {"r18 ds 64->128 1x1/2", 64, 56, 128, 1, 2, 0},
    {"r18 ds 256->512 1x1/2", 256, 14, 512, 1, 2, 0}, {"r18 stem 3->64 7x7/2", 3, 224, 64, 7, 2, 3},
    {"rd 16 56", 16, 56, 16, 3, 1, 1},            {"rd 16->32 /2", 16, 56, 32, 3, 2, 1},
    {"rd 32 28", 32, 28, 32, 3, 1, 1},            {"rd 32->64 /2", 32, 28, 64, 3, 2, 1},
    {"rd 64 14", 64, 14, 64, 3, 1, 1},            {"det stem 3->16 64", 3, 64, 16, 3, 1, 1},
    {"det 16->24 /2 64", 16, 64, 24, 3, 2, 1},    {"det 24->32 /2 32", 24, 32, 32, 3, 2, 1},
    {"det 32 16", 32, 16, 32, 3, 1, 1},           {"det 48 8", 48, 8, 48, 3, 1, 1},
    {"det 112->64 8", 112, 8, 64, 3, 1, 1},       {"m24 32->40 28", 32, 28, 40, 3, 1, 1},
    {"m24 40->56 /2 28", 40, 28, 56, 3, 2, 1},    {"y640 3->32 /2", 3, 640, 32, 3, 2, 1},
    {"y640 32->64 /2 320", 32, 320, 64, 3, 2, 1}, {"y640 64->128 /2 160", 64, 160, 128, 3, 2, 1},
};

int main(int argc, char **argv) {
    const int reps = argc > 1 ? atoi(argv[1]) : 10, threads = argc > 2 ? atoi(argv[2]) : 1, images = argc > 3 ? atoi(argv[3]) : 1;
    const mpq_activation act = getenv("SILU") ? MPQ_ACT_SILU : MPQ_ACT_CLAMP;
    const char *only = getenv("ONLY");
    for (size_t li = 0; li < sizeof layers / sizeof *layers; li++) {
        const L *l = &layers[li];
        if (only && !strstr(l->name, only)) continue;
        mpq_conv2d_shape s = {l->c, l->h, l->h, l->k, l->k, l->p, l->p, l->p, l->p, l->s, l->s, 1, 1, 1};
        const int OH = mpq_conv2d_out_h(&s), OW = mpq_conv2d_out_w(&s), K = l->c * l->k * l->k;
        const size_t nx = (size_t)images * l->c * l->h * l->h, ny = (size_t)images * l->m * OH * OW;
        float *x = malloc(nx * 4), *y0 = malloc(ny * 4), *y1 = malloc(ny * 4), *b = malloc(l->m * 4);
        float *w = malloc((size_t)l->m * K * 4), *shortcut = malloc(ny * 4);
        for (size_t q = 0; q < nx; q++) x[q] = rndf();
        for (size_t q = 0; q < (size_t)l->m * K; q++) w[q] = rndf() * 0.1f;
        for (int q = 0; q < l->m; q++) b[q] = q % 5 ? rndf() * 0.1f : 0;
        for (size_t q = 0; q < ny; q++) shortcut[q] = rndf();
        const mpq_sconv_residual res = {shortcut, 0, 1}, *rp = getenv("RES") ? &res : NULL;
        void *pw = aligned_alloc(64, (mpq_sconv_pack_weights_size(l->m, K, 1) + 63) / 64 * 64);
        void *cw = aligned_alloc(64, (mpq_sconv_cv_weights_size(l->m, K, 1) + 63) / 64 * 64);
        mpq_sconv_pack_weights(w, l->m, K, 1, pw);
        mpq_sconv_cv_pack_weights_layout(pw, mpq_sconv_cv_host_layout(), cw);
        double best[2] = {1e30, 1e30};
        for (int r = 0; r < reps; r++)
            for (int v = getenv("CVONLY") ? 1 : 0; v < 2; v++) {
                const double t0 = now();
                const int rc = v ? mpq_sconv2d_f32_cv(MPQ_PATH_AVX2, x, images, &s, cw, b, act, 0, 6, rp, y1, threads)
                                 : mpq_sconv2d_f32_direct_residual(MPQ_PATH_AVX2, x, images, &s, pw, b, act, 0, 6, rp, y0, threads);
                const double t = now() - t0;
                if (rc) { printf("%s: rc %d\n", l->name, rc); return 1; }
                if (t < best[v]) best[v] = t;
            }
        const double gf = 2.0 * K * l->m * OH * OW * images * 1e-9;
        if (getenv("CVONLY"))
            printf("%-24s cv %9.1f us %5.0f GF/s\n", l->name, best[1] * 1e6, gf / best[1]);
        else
            printf("%-24s direct %9.1f us %5.0f GF/s   cv %9.1f us %5.0f GF/s  cv/direct %.2f %s\n", l->name, best[0] * 1e6,
                   gf / best[0], best[1] * 1e6, gf / best[1], best[1] / best[0], memcmp(y0, y1, ny * 4) ? "DIFF" : "");
        free(x); free(y0); free(y1); free(b); free(w); free(shortcut); free(pw); free(cw);
    }
    return 0;
}
