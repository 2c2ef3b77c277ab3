// A batch through one channel-blocked FP32 Conv (sconv_blocked.c) as the whole-batch chains run
// it, against the same images one call each (what image chains run) and against the NCHW
// channel-vector Conv on the batch (sconv_cv.c, its blocks over images): ResNet-18's layer3 and
// layer4 shapes and a few smaller ones. Bias + Relu, random data; the batch's output must be
// the one-call-per-image bytes ("same"). Why it exists (s37): a cut chain's rest ran node by
// node on NCHW values (the channel-vector Conv); run over the batch blocked, ResNet-18's layer3
// and layer4 take 0.90-0.95x the time on two threads.
//     source benchmarks/ckernels_lib.sh; mkdir -p /tmp/bb; ab_build - benchmarks/fp32_blocked_batch.c /tmp/bb
//     /tmp/bb/new ROUNDS THREADS IMAGES [LAYER-SUBSTRING]
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
    {"r18.l2b 128->128 3x3 28", 128, 28, 28, 128, 3, 1, 1},
    {"r18.l3a 128->256 3x3/2 28", 128, 28, 28, 256, 3, 2, 1},
    {"r18.l3b 256->256 3x3 14", 256, 14, 14, 256, 3, 1, 1},
    {"r18.l3ds 128->256 1x1/2 28", 128, 28, 28, 256, 1, 2, 0},
    {"r18.l4a 256->512 3x3/2 14", 256, 14, 14, 512, 3, 2, 1},
    {"r18.l4b 512->512 3x3 7", 512, 7, 7, 512, 3, 1, 1},
    {"r18.l4ds 256->512 1x1/2 14", 256, 14, 14, 512, 1, 2, 0},
    {"rd.l4b 128->128 3x3 7", 128, 7, 7, 128, 3, 1, 1},
    {"det.fuse 112->64 3x3 8", 112, 8, 8, 64, 3, 1, 1},
};

int main(int argc, char **argv) {
    const int rounds = argc > 1 ? atoi(argv[1]) : 3, threads = argc > 2 ? atoi(argv[2]) : 1;
    const int images = argc > 3 ? atoi(argv[3]) : 16;
    const char *only = argc > 4 ? argv[4] : NULL;
    const mpq_kernel_path path = MPQ_PATH_VNNI;
    double sum[3] = {0, 0, 0};
    for (size_t li = 0; li < sizeof layers / sizeof *layers; li++) {
        const L *l = &layers[li];
        if (only && !strstr(l->name, only)) continue;
        mpq_conv2d_shape s = {l->c, l->h, l->w, l->k, l->k, l->pad, l->pad, l->pad, l->pad, l->s, l->s, 1, 1, 1};
        const int oh = mpq_conv2d_out_h(&s), ow = mpq_conv2d_out_w(&s), K = l->c * l->k * l->k;
        const size_t nx = (size_t)l->c * l->h * l->w, ny = (size_t)l->m * oh * ow;
        const size_t bx = mpq_blocked_image_floats(l->c, l->h, l->w), by = mpq_blocked_image_floats(l->m, oh, ow);
        float *x = aalloc(nx * images * 4), *w = malloc((size_t)l->m * K * 4), *b = malloc(l->m * 4);
        float *xb = aalloc(bx * images * 4), *yb = aalloc(by * images * 4), *y1 = aalloc(by * images * 4);
        float *yc = aalloc(ny * images * 4);
        for (size_t i = 0; i < nx * images; i++) x[i] = rndf();
        for (size_t i = 0; i < (size_t)l->m * K; i++) w[i] = rndf() * 0.05f;
        for (int i = 0; i < l->m; i++) b[i] = rndf() * 0.1f;
        void *pw = aalloc(mpq_sconv_pack_weights_size(l->m, K, 1)), *cw = aalloc(mpq_sconv_cv_weights_size(l->m, K, 1));
        mpq_sconv_pack_weights(w, l->m, K, 1, pw);
        mpq_sconv_cv_pack_weights_layout(pw, mpq_sconv_cv_host_layout(), cw);
        mpq_reorder_to_blocked_f32(path, x, images, l->c, l->h, l->w, xb);
        const double macs = (double)ny * K * images;
        const int reps = (int)(4e9 / macs) + 2;
        double best[3] = {1e9, 1e9, 1e9};
        for (int r = 0; r < rounds; r++)
            for (int kind = 0; kind < 3; kind++)
                for (int i = 0; i < reps; i++) {
                    const double t0 = now();
                    if (kind == 0) mpq_sconv2d_f32_blocked(path, xb, images, &s, cw, b, MPQ_ACT_CLAMP, 0.0f, 1e30f, NULL, yb, threads);
                    else if (kind == 1)
                        for (int img = 0; img < images; img++)
                            mpq_sconv2d_f32_blocked(path, xb + img * bx, 1, &s, cw, b, MPQ_ACT_CLAMP, 0.0f, 1e30f, NULL, y1 + img * by,
                                                    threads);
                    else mpq_sconv2d_f32_cv(path, x, images, &s, cw, b, MPQ_ACT_CLAMP, 0.0f, 1e30f, NULL, yc, threads);
                    const double t = now() - t0;
                    if (t < best[kind]) best[kind] = t;
                }
        for (int k = 0; k < 3; k++) sum[k] += best[k];
        printf("%-28s %7.1f MMACs x%d  batch %8.1f us %6.1f GF/s  per-image calls %8.1f us  cv batch %8.1f us  batch/per-image %.3f  batch/cv %.3f  %s\n",
               l->name, macs / images / 1e6, images, best[0] * 1e6, 2 * macs / best[0] / 1e9, best[1] * 1e6, best[2] * 1e6,
               best[0] / best[1], best[0] / best[2], memcmp(yb, y1, by * images * 4) ? "DIFFER" : "same");
        fflush(stdout);
        free(x); free(w); free(b); free(xb); free(yb); free(y1); free(yc); free(pw); free(cw);
    }
    printf("sum of minima: batch %.1f us, per-image calls %.1f us, cv batch %.1f us (%d threads, %d images)\n", sum[0] * 1e6,
           sum[1] * 1e6, sum[2] * 1e6, threads, images);
    return 0;
}
