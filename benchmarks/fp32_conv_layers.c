// One-thread (or N-thread) timing of mpq's FP32 Conv kernels on ResNet-18's layer shapes: the
// direct path (pixels in the lanes), the channel-vector path (channels in the lanes) and what
// mpq_sconv2d_f32's caller picks, one image, bias + Relu, random data. Prints the minimum of
// ROUNDS x REPS calls per kernel in microseconds, GFLOP/s, and whether both kernels gave the same
// bytes.   benchmarks/fp32_conv_ab.sh BASE ROUNDS THREADS [LAYER | seq]   (builds this against Sources/CKernels)
// Direct use: fp32_conv_layers ROUNDS THREADS [LAYER-SUBSTRING | seq | seq2]
#include "mpq_kernels.h"
#include "mpq_sgemm.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <stdint.h>
#include "harness.h"

typedef struct { const char *name; int c, h, w, m, k, s, pad; } L;
static const L layers[] = {
    {"r18.stem 3->64 7x7/2 224", 3, 224, 224, 64, 7, 2, 3},
    {"r18.l1 64->64 3x3 56", 64, 56, 56, 64, 3, 1, 1},
    {"r18.l2a 64->128 3x3/2 56", 64, 56, 56, 128, 3, 2, 1},
    {"r18.l2ds 64->128 1x1/2 56", 64, 56, 56, 128, 1, 2, 0},
    {"r18.l2b 128->128 3x3 28", 128, 28, 28, 128, 3, 1, 1},
    {"r18.l3a 128->256 3x3/2 28", 128, 28, 28, 256, 3, 2, 1},
    {"r18.l3b 256->256 3x3 14", 256, 14, 14, 256, 3, 1, 1},
    {"r18.l4a 256->512 3x3/2 14", 256, 14, 14, 512, 3, 2, 1},
    {"r18.l4b 512->512 3x3 7", 512, 7, 7, 512, 3, 1, 1},
    {"r18.l3ds 128->256 1x1/2 28", 128, 28, 28, 256, 1, 2, 0},
    {"r18.l4ds 256->512 1x1/2 14", 256, 14, 14, 512, 1, 2, 0},
    {"rd.l1 16->16 3x3 56", 16, 56, 56, 16, 3, 1, 1},
    {"rd.stem 3->16 7x7/2 64", 3, 64, 64, 16, 7, 2, 3},
    {"det.stem 3->16 3x3 64", 3, 64, 64, 16, 3, 1, 1},
    {"x.32 32->32 3x3 56", 32, 56, 56, 32, 3, 1, 1},
    {"x.48 48->48 3x3 56", 48, 56, 56, 48, 3, 1, 1},
    {"mb.stem 3->32 3x3/2 224", 3, 224, 224, 32, 3, 2, 1},
    {"det.down2 24->32 3x3/2 32", 24, 32, 32, 32, 3, 2, 1},
    {"det.c2 32->32 3x3 16", 32, 16, 16, 32, 3, 1, 1},
    {"det.c3 48->48 3x3 8", 48, 8, 8, 48, 3, 1, 1},
    {"det.c4 64->64 3x3 4", 64, 4, 4, 64, 3, 1, 1},
    {"det.fuse 112->64 3x3 8", 112, 8, 8, 64, 3, 1, 1},
    {"det.down1 16->24 3x3/2 64", 16, 64, 64, 24, 3, 2, 1},
    {"det.down3 32->48 3x3/2 16", 32, 16, 16, 48, 3, 2, 1},
    {"det.down4 48->64 3x3/2 8", 48, 8, 8, 64, 3, 2, 1},
    {"rd.stem1 1->16 7x7/2 224", 1, 224, 224, 16, 7, 2, 3},
    {"rd.l2a 16->32 3x3/2 56", 16, 56, 56, 32, 3, 2, 1},
    {"rd.l2 32->32 3x3 28", 32, 28, 28, 32, 3, 1, 1},
    {"rd.l3a 32->64 3x3/2 28", 32, 28, 28, 64, 3, 2, 1},
    {"rd.l3 64->64 3x3 14", 64, 14, 14, 64, 3, 1, 1},
    {"rd.l4a 64->128 3x3/2 14", 64, 14, 14, 128, 3, 2, 1},
    {"rd.l4 128->128 3x3 7", 128, 7, 7, 128, 3, 1, 1},
    {"rd.l2ds 16->32 1x1/2 56", 16, 56, 56, 32, 1, 2, 0},
};

// ResNet-18's 20 Convs in model order (indices into layers[]), each with its own weights, run
// one after the other as in a batch-1 inference: weights cold (46 MB in all), the pool's
// workers between layers as in a model run.
static const int sequence[] = {0, 1, 1, 1, 1, 2, 3, 4, 4, 4, 5, 9, 6, 6, 6, 7, 10, 8, 8, 8};
enum { SEQ = sizeof sequence / sizeof *sequence };

static void conv(const L *l, const mpq_conv2d_shape *s, const float *x, const void *pw, const void *cw, const float *b,
                 float *y, int threads) {
    if (mpq_sconv2d_f32_cv_preferred(MPQ_PATH_VNNI, s, l->m, 1, threads))
        mpq_sconv2d_f32_cv(MPQ_PATH_VNNI, x, 1, s, cw, b, MPQ_ACT_CLAMP, 0.0f, 1e30f, NULL, y, threads);
    else
        mpq_sconv2d_f32(MPQ_PATH_VNNI, x, 1, s, pw, b, MPQ_ACT_CLAMP, 0.0f, 1e30f, y, threads);
}

static int run_sequence(int rounds, int threads, int twice) {
    mpq_conv2d_shape s[SEQ];
    float *x[SEQ], *y[SEQ], *b[SEQ];
    void *pw[SEQ], *cw[SEQ];
    double best[SEQ];
    for (int i = 0; i < SEQ; i++) {
        const L *l = &layers[sequence[i]];
        s[i] = (mpq_conv2d_shape){l->c, l->h, l->w, l->k, l->k, l->pad, l->pad, l->pad, l->pad, l->s, l->s, 1, 1, 1};
        const int K = l->c * l->k * l->k;
        const size_t nx = (size_t)l->c * l->h * l->w, ny = (size_t)l->m * mpq_conv2d_out_h(&s[i]) * mpq_conv2d_out_w(&s[i]);
        x[i] = malloc(nx * 4);
        y[i] = malloc(ny * 4);
        b[i] = malloc(l->m * 4);
        float *w = malloc((size_t)l->m * K * 4);
        for (size_t q = 0; q < nx; q++) x[i][q] = rndf();
        for (size_t q = 0; q < (size_t)l->m * K; q++) w[q] = rndf() * 0.05f;
        for (int q = 0; q < l->m; q++) b[i][q] = rndf() * 0.1f;
        pw[i] = aligned_alloc(64, (mpq_sconv_pack_weights_size(l->m, K, 1) + 63) / 64 * 64);
        cw[i] = aligned_alloc(64, (mpq_sconv_cv_weights_size(l->m, K, 1) + 63) / 64 * 64);
        mpq_sconv_pack_weights(w, l->m, K, 1, pw[i]);
        mpq_sconv_cv_pack_weights_layout(pw[i], mpq_sconv_cv_host_layout(), cw[i]);
        free(w);
        best[i] = 1e9;
    }
    double total = 1e9;
    for (int r = 0; r < rounds * 20; r++) {
        const double t00 = now();
        for (int i = 0; i < SEQ; i++) {
            if (twice) conv(&layers[sequence[i]], &s[i], x[i], pw[i], cw[i], b[i], y[i], threads);
            const double t0 = now();
            conv(&layers[sequence[i]], &s[i], x[i], pw[i], cw[i], b[i], y[i], threads);
            const double t = now() - t0;
            if (t < best[i]) best[i] = t;
        }
        const double t = now() - t00;
        if (t < total) total = t;
    }
    double sum = 0;
    for (int i = 0; i < SEQ; i++) {
        printf("seq %2d %-28s %8.1f us\n", i, layers[sequence[i]].name, best[i] * 1e6);
        sum += best[i];
    }
    printf("seq sum of minima %.1f us, fastest whole sequence %.1f us (%d threads)\n", sum * 1e6, total * 1e6, threads);
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 3 && !strcmp(argv[3], "seq")) return run_sequence(atoi(argv[1]), atoi(argv[2]), 0);
    if (argc > 3 && !strcmp(argv[3], "seq2")) return run_sequence(atoi(argv[1]), atoi(argv[2]), 1);
    const int rounds = argc > 1 ? atoi(argv[1]) : 3, threads = argc > 2 ? atoi(argv[2]) : 1;
    const char *only = argc > 3 ? argv[3] : NULL;
    const mpq_kernel_path path = MPQ_PATH_VNNI;
    for (size_t li = 0; li < sizeof layers / sizeof *layers; li++) {
        const L *l = &layers[li];
        if (only && !strstr(l->name, only)) continue;
        mpq_conv2d_shape s = {l->c, l->h, l->w, l->k, l->k, l->pad, l->pad, l->pad, l->pad, l->s, l->s, 1, 1, 1};
        const int oh = mpq_conv2d_out_h(&s), ow = mpq_conv2d_out_w(&s), K = l->c * l->k * l->k;
        const size_t nx = (size_t)l->c * l->h * l->w, ny = (size_t)l->m * oh * ow;
        float *x = malloc(nx * 4), *w = malloc((size_t)l->m * K * 4), *b = malloc(l->m * 4);
        float *y0 = aligned_alloc(64, (ny * 4 + 63) / 64 * 64), *y1 = aligned_alloc(64, (ny * 4 + 63) / 64 * 64);
        for (size_t i = 0; i < nx; i++) x[i] = rndf();
        for (size_t i = 0; i < (size_t)l->m * K; i++) w[i] = rndf() * 0.05f;
        for (int i = 0; i < l->m; i++) b[i] = rndf() * 0.1f;
        void *pw = aligned_alloc(64, (mpq_sconv_pack_weights_size(l->m, K, 1) + 63) / 64 * 64);
        void *cw = aligned_alloc(64, (mpq_sconv_cv_weights_size(l->m, K, 1) + 63) / 64 * 64);
        mpq_sconv_pack_weights(w, l->m, K, 1, pw);
        mpq_sconv_cv_pack_weights_layout(pw, mpq_sconv_cv_host_layout(), cw);
        const double macs = (double)ny * K;
        const int reps = (int)(4e8 / macs) + 3;
        double best[2] = {1e9, 1e9};
        for (int r = 0; r < rounds; r++)
            for (int kind = 0; kind < 2; kind++)
                for (int i = 0; i < reps; i++) {
                    const double t0 = now();
                    if (kind == 0) mpq_sconv2d_f32_direct(path, x, 1, &s, pw, b, MPQ_ACT_CLAMP, 0.0f, 1e30f, y0, threads);
                    else mpq_sconv2d_f32_cv(path, x, 1, &s, cw, b, MPQ_ACT_CLAMP, 0.0f, 1e30f, NULL, y1, threads);
                    const double t = now() - t0;
                    if (t < best[kind]) best[kind] = t;
                }
        const int pick = mpq_sconv2d_f32_cv_preferred(path, &s, l->m, 1, threads);
        printf("%-28s %7.1f MMACs  direct %8.1f us %6.1f GF/s  cv %8.1f us %6.1f GF/s  picked %-6s %s\n", l->name,
               macs / 1e6, best[0] * 1e6, 2 * macs / best[0] / 1e9, best[1] * 1e6, 2 * macs / best[1] / 1e9,
               pick ? "cv" : "direct", memcmp(y0, y1, ny * 4) ? "DIFFER" : "same");
        fflush(stdout);
        free(x); free(w); free(b); free(y0); free(y1); free(pw); free(cw);
    }
    return 0;
}
