// One-thread (or N-thread) A/B of the channel-blocked FP32 Conv (sconv_blocked.c) against
// today's channel-vector Conv (sconv_cv.c) on the layers of fp32_conv_layers.c: cv reads and
// writes NCHW (its padded copy and transposed stores included), blocked reads and writes
// [C/16][H][W][16]; both one image, bias + Relu, random data, alternated in every round.
// Prints per layer the minimum over ROUNDS x REPS calls, the ratio blocked / cv, the cost of
// reordering the layer's input to blocked once (what a chain pays at its edge), and whether
// the blocked output reordered back is cv's bytes.
//     benchmarks/fp32_blocked_ab.sh ROUNDS THREADS [LAYER-SUBSTRING]
// FLUSH=1 in the environment: caches flushed before every call (weights cold, as in a model).
#include "mpq_kernels.h"
#include "mpq_sgemm.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "harness.h"

typedef struct { const char *name; int c, h, w, m, k, s, pad; } L;
static const L layers[] = {
    {"r18.l1 64->64 3x3 56", 64, 56, 56, 64, 3, 1, 1},
    {"r18.l2a 64->128 3x3/2 56", 64, 56, 56, 128, 3, 2, 1},
    {"r18.l2b 128->128 3x3 28", 128, 28, 28, 128, 3, 1, 1},
    {"r18.l3a 128->256 3x3/2 28", 128, 28, 28, 256, 3, 2, 1},
    {"r18.l3b 256->256 3x3 14", 256, 14, 14, 256, 3, 1, 1},
    {"r18.l4a 256->512 3x3/2 14", 256, 14, 14, 512, 3, 2, 1},
    {"r18.l4b 512->512 3x3 7", 512, 7, 7, 512, 3, 1, 1},
    {"r18.l2ds 64->128 1x1/2 56", 64, 56, 56, 128, 1, 2, 0},
    {"rd.l1 16->16 3x3 56", 16, 56, 56, 16, 3, 1, 1},
    {"rd.l2a 16->32 3x3/2 56", 16, 56, 56, 32, 3, 2, 1},
    {"rd.l2b 32->32 3x3 28", 32, 28, 28, 32, 3, 1, 1},
    {"rd.l3a 32->64 3x3/2 28", 32, 28, 28, 64, 3, 2, 1},
    {"rd.l3b 64->64 3x3 14", 64, 14, 14, 64, 3, 1, 1},
    {"rd.l4b 128->128 3x3 7", 128, 7, 7, 128, 3, 1, 1},
    {"det.stem 3->16 3x3 64", 3, 64, 64, 16, 3, 1, 1},
    {"det.down1 16->24 3x3/2 64", 16, 64, 64, 24, 3, 2, 1},
    {"det.down2 24->32 3x3/2 32", 24, 32, 32, 32, 3, 2, 1},
    {"det.c2 32->32 3x3 16", 32, 16, 16, 32, 3, 1, 1},
    {"det.c3 48->48 3x3 8", 48, 8, 8, 48, 3, 1, 1},
    {"det.c4 64->64 3x3 4", 64, 4, 4, 64, 3, 1, 1},
    {"det.fuse 112->64 3x3 8", 112, 8, 8, 64, 3, 1, 1},
};

int main(int argc, char **argv) {
    const int rounds = argc > 1 ? atoi(argv[1]) : 3, threads = argc > 2 ? atoi(argv[2]) : 1;
    const char *only = argc > 3 ? argv[3] : NULL;
    const mpq_kernel_path path = MPQ_PATH_VNNI;
    const int flush = getenv("FLUSH") && atoi(getenv("FLUSH"));
    double sum[2] = {0, 0};
    for (size_t li = 0; li < sizeof layers / sizeof *layers; li++) {
        const L *l = &layers[li];
        if (only && !strstr(l->name, only)) continue;
        mpq_conv2d_shape s = {l->c, l->h, l->w, l->k, l->k, l->pad, l->pad, l->pad, l->pad, l->s, l->s, 1, 1, 1};
        const int oh = mpq_conv2d_out_h(&s), ow = mpq_conv2d_out_w(&s), K = l->c * l->k * l->k;
        const size_t nx = (size_t)l->c * l->h * l->w, ny = (size_t)l->m * oh * ow;
        const size_t bx = mpq_blocked_image_floats(l->c, l->h, l->w), by = mpq_blocked_image_floats(l->m, oh, ow);
        float *x = aalloc(nx * 4), *w = malloc((size_t)l->m * K * 4), *b = malloc(l->m * 4);
        float *xb = aalloc(bx * 4), *yb = aalloc(by * 4), *y0 = aalloc(ny * 4), *y1 = aalloc(ny * 4);
        for (size_t i = 0; i < nx; i++) x[i] = rndf();
        for (size_t i = 0; i < (size_t)l->m * K; i++) w[i] = rndf() * 0.05f;
        for (int i = 0; i < l->m; i++) b[i] = rndf() * 0.1f;
        void *pw = aalloc(mpq_sconv_pack_weights_size(l->m, K, 1)), *cw = aalloc(mpq_sconv_cv_weights_size(l->m, K, 1));
        mpq_sconv_pack_weights(w, l->m, K, 1, pw);
        mpq_sconv_cv_pack_weights_layout(pw, mpq_sconv_cv_host_layout(), cw);
        mpq_reorder_to_blocked_f32(path, x, 1, l->c, l->h, l->w, xb);
        const double macs = (double)ny * K;
        const int reps = (int)(4e8 / macs) + 3;
        double best[3] = {1e9, 1e9, 1e9};
        for (int r = 0; r < rounds; r++)
            for (int kind = 0; kind < 3; kind++)
                for (int i = 0; i < (kind == 2 ? 20 : reps); i++) {
                    if (flush) flush_caches();
                    const double t0 = now();
                    if (kind == 0) mpq_sconv2d_f32_cv(path, x, 1, &s, cw, b, MPQ_ACT_CLAMP, 0.0f, 1e30f, NULL, y0, threads);
                    else if (kind == 1) mpq_sconv2d_f32_blocked(path, xb, 1, &s, cw, b, MPQ_ACT_CLAMP, 0.0f, 1e30f, NULL, yb, threads);
                    else mpq_reorder_to_blocked_f32(path, x, 1, l->c, l->h, l->w, xb);
                    const double t = now() - t0;
                    if (t < best[kind]) best[kind] = t;
                }
        mpq_reorder_from_blocked_f32(path, yb, 1, l->m, oh, ow, y1);
        sum[0] += best[0];
        sum[1] += best[1];
        printf("%-28s %7.1f MMACs  cv %8.1f us %6.1f GF/s  blocked %8.1f us %6.1f GF/s  ratio %.3f  reorder-in %6.1f us  %s\n",
               l->name, macs / 1e6, best[0] * 1e6, 2 * macs / best[0] / 1e9, best[1] * 1e6, 2 * macs / best[1] / 1e9,
               best[1] / best[0], best[2] * 1e6, memcmp(y0, y1, ny * 4) ? "DIFFER" : "same");
        fflush(stdout);
        free(x); free(w); free(b); free(xb); free(yb); free(y0); free(y1); free(pw); free(cw);
    }
    printf("sum of minima: cv %.1f us, blocked %.1f us, ratio %.3f (%d threads)\n", sum[0] * 1e6, sum[1] * 1e6,
           sum[1] / sum[0], threads);
    return 0;
}
