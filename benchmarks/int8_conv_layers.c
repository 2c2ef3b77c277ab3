// One-thread timing of mpq's INT8 conv kernels (mpq_qconv2d_u8s8, mpq_depthwise_conv_u8s8_u8) on the
// bench models' layer shapes, codes output, random data; prints the minimum of REPS calls and a
// checksum of the output bytes (equal checksums across two builds: the same bytes).
//     benchmarks/int8_conv_ab.sh BASE_COMMIT [REPS] [ROUNDS]   (builds and alternates both)
//     [W7=1] [AB=1] int8_conv_layers [REPS] [NAME_FILTER or ""] [THREADS]   (W7: 7-bit weights, [-64, 64];
//     AB: the indirect AVX2 Conv off and on, interleaved)
#include "mpq_kernels.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <stdint.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static uint64_t st = 88172645463325252ull;
static uint32_t rnd(void) { st ^= st << 13; st ^= st >> 7; st ^= st << 17; return (uint32_t)st; }

typedef struct { const char *name; int c, h, w, n, k, s, pad, dw; } L;
static const L layers[] = {
    {"mbv2 pw 16->96 112", 16, 112, 112, 96, 1, 1, 0, 0},
    {"mbv2 pw 32->16 112", 32, 112, 112, 16, 1, 1, 0, 0},
    {"mbv2 pw 96->24 56", 96, 56, 56, 24, 1, 1, 0, 0},
    {"mbv2 pw 24->144 56", 24, 56, 56, 144, 1, 1, 0, 0},
    {"mbv2 pw 144->24 56", 144, 56, 56, 24, 1, 1, 0, 0},
    {"mbv2 pw 32->192 28", 32, 28, 28, 192, 1, 1, 0, 0},
    {"mbv2 pw 192->32 28", 192, 28, 28, 32, 1, 1, 0, 0},
    {"mbv2 pw 64->384 14", 64, 14, 14, 384, 1, 1, 0, 0},
    {"mbv2 pw 384->64 14", 384, 14, 14, 64, 1, 1, 0, 0},
    {"mbv2 pw 96->576 14", 96, 14, 14, 576, 1, 1, 0, 0},
    {"mbv2 pw 576->96 14", 576, 14, 14, 96, 1, 1, 0, 0},
    {"mbv2 pw 160->960 7", 160, 7, 7, 960, 1, 1, 0, 0},
    {"mbv2 pw 960->160 7", 960, 7, 7, 160, 1, 1, 0, 0},
    {"mbv2 pw 320->1280 7", 320, 7, 7, 1280, 1, 1, 0, 0},
    {"mbv2 stem 3->32 3x3/2 224", 3, 224, 224, 32, 3, 2, 1, 0},
    {"mbv2 dw 32 112", 32, 112, 112, 32, 3, 1, 1, 1},
    {"mbv2 dw 96 112/2", 96, 112, 112, 96, 3, 2, 1, 1},
    {"mbv2 dw 144 56", 144, 56, 56, 144, 3, 1, 1, 1},
    {"mbv2 dw 144 56/2", 144, 56, 56, 144, 3, 2, 1, 1},
    {"mbv2 dw 192 28", 192, 28, 28, 192, 3, 1, 1, 1},
    {"mbv2 dw 384 14", 384, 14, 14, 384, 3, 1, 1, 1},
    {"mbv2 dw 576 14", 576, 14, 14, 576, 3, 1, 1, 1},
    {"mbv2 dw 960 7", 960, 7, 7, 960, 3, 1, 1, 1},
    {"rn18 stem 3->64 7x7/2 224", 3, 224, 224, 64, 7, 2, 3, 0},
    {"rn18 64->64 3x3 56", 64, 56, 56, 64, 3, 1, 1, 0},
    {"rn18 64->128 3x3/2 56", 64, 56, 56, 128, 3, 2, 1, 0},
    {"rn18 128->128 3x3 28", 128, 28, 28, 128, 3, 1, 1, 0},
    {"rn18 128->256 3x3/2 28", 128, 28, 28, 256, 3, 2, 1, 0},
    {"rn18 256->256 3x3 14", 256, 14, 14, 256, 3, 1, 1, 0},
    {"rn18 256->512 3x3/2 14", 256, 14, 14, 512, 3, 2, 1, 0},
    {"rn18 512->512 3x3 7", 512, 7, 7, 512, 3, 1, 1, 0},
    {"rn18 256->512 1x1/2 14", 256, 14, 14, 512, 1, 2, 0, 0},
    {"rn18 64->128 1x1/2 56", 64, 56, 56, 128, 1, 2, 0, 0},
    {"rn18 128->256 1x1/2 28", 128, 28, 28, 256, 1, 2, 0, 0},
    {"digits 16->16 3x3 56", 16, 56, 56, 16, 3, 1, 1, 0},
    {"digits 16->32 3x3/2 56", 16, 56, 56, 32, 3, 2, 1, 0},
    {"digits 32->32 3x3 28", 32, 28, 28, 32, 3, 1, 1, 0},
    {"digits 32->64 3x3/2 28", 32, 28, 28, 64, 3, 2, 1, 0},
    {"digits 64->64 3x3 14", 64, 14, 14, 64, 3, 1, 1, 0},
    {"digits 64->128 3x3/2 14", 64, 14, 14, 128, 3, 2, 1, 0},
    {"digits 128->128 3x3 7", 128, 7, 7, 128, 3, 1, 1, 0},
    {"det 3->16 3x3 64", 3, 64, 64, 16, 3, 1, 1, 0},
    {"det 16->24 3x3/2 64", 16, 64, 64, 24, 3, 2, 1, 0},
    {"det 24->32 3x3/2 32", 24, 32, 32, 32, 3, 2, 1, 0},
    {"det 32->32 3x3 16", 32, 16, 16, 32, 3, 1, 1, 0},
    {"det 32->48 3x3/2 16", 32, 16, 16, 48, 3, 2, 1, 0},
    {"det 48->48 3x3 8", 48, 8, 8, 48, 3, 1, 1, 0},
    {"det 112->64 3x3 8", 112, 8, 8, 64, 3, 1, 1, 0},
    {"det 64->64 3x3 4", 64, 4, 4, 64, 3, 1, 1, 0},
};

int main(int argc, char **argv) {
    const int reps = argc > 1 ? atoi(argv[1]) : 30;
    const char *only = argc > 2 && *argv[2] ? argv[2] : NULL;
    const int threads = argc > 3 ? atoi(argv[3]) : 1;  // 1: the kernels alone; 2: the batch-1 split
    for (size_t li = 0; li < sizeof layers / sizeof layers[0]; li++) {
        const L *l = &layers[li];
        if (only && !strstr(l->name, only)) continue;
        mpq_conv2d_shape s = {l->c, l->h, l->w, l->k, l->k, l->pad, l->pad, l->pad, l->pad, l->s, l->s, 1, 1, l->dw ? l->c : 1};
        const int oh = mpq_conv2d_out_h(&s), ow = mpq_conv2d_out_w(&s);
        const int cg = l->dw ? 1 : l->c, kk = cg * l->k * l->k, n = l->n;
        uint8_t *x = malloc((size_t)l->c * l->h * l->w);
        for (size_t i = 0; i < (size_t)l->c * l->h * l->w; i++) x[i] = rnd();
        int8_t *w = malloc((size_t)n * kk);
        for (size_t i = 0; i < (size_t)n * kk; i++) w[i] = getenv("W7") ? (int8_t)(rnd() % 129 - 64) : (int8_t)(rnd() % 255 - 127);
        float *mult = malloc(n * sizeof(float));
        int32_t *bias = malloc(n * sizeof(int32_t));
        for (int i = 0; i < n; i++) { mult[i] = 0.0002f + (rnd() % 100) * 1e-6f; bias[i] = (int32_t)(rnd() % 20000) - 10000; }
        mpq_epilogue ep = {.a_zero_point = 7, .a_scale = 1, .b_scale = mult, .bias = NULL, .clamp_lo = -3, .clamp_hi = 252,
                           .bias_i32 = bias, .out_scale = 0.05f};
        uint8_t *out = malloc((size_t)n * oh * ow);
        void *packed = NULL;
        if (!l->dw) { packed = aligned_alloc(64, (mpq_pack_b_s8_size(n, kk) + 63) / 64 * 64); mpq_pack_b_s8(w, n, kk, kk, packed); }
        const int khwc = !l->dw && cg >= 16 && l->k > 1;
        // AB=1: every rep runs the layer with the indirect AVX2 Conv off and on
        // (mpq_set_int8_avx2_indirect) back to back; prints both minima and their ratio (the
        // host's noise hits both alike).
        const int ab = getenv("AB") ? atoi(getenv("AB")) : 0;
        double best = 1e9, best_ab[2] = {1e9, 1e9};
        for (int r = 0; ab && !l->dw && r < reps; r++) {
            for (int v = 0; v < 2; v++) {
                mpq_set_int8_avx2_indirect(v ? ab : 0);
                double t0 = now();
                mpq_qconv2d_u8s8(MPQ_PATH_VNNI, x, &s, 0, khwc, 7, packed, &ep, NULL, out, 3, threads);
                double t = now() - t0;
                if (t < best_ab[v]) best_ab[v] = t;
            }
        }
        if (ab && !l->dw) printf("%-28s AB off %9.1f us, mode %d %9.1f us: %.3f  (%s)\n", l->name, best_ab[0] * 1e6, ab,
                                 best_ab[1] * 1e6, best_ab[1] / best_ab[0], mpq_last_engine());
        for (int r = 0; r < reps; r++) {
            double t0 = now();
            int rc = l->dw ? mpq_depthwise_conv_u8s8_u8_threads(MPQ_PATH_VNNI, x, &s, w, &ep, out, 3, threads)
                           : mpq_qconv2d_u8s8(MPQ_PATH_VNNI, x, &s, 0, khwc, 7, packed, &ep, NULL, out, 3, threads);
            double t = now() - t0;
            if (rc) { printf("%s: rc %d\n", l->name, rc); break; }
            if (t < best) best = t;
        }
        unsigned sum = 0;
        for (size_t i = 0; i < (size_t)n * oh * ow; i++) sum = sum * 31 + out[i];
        const double macs = (double)n * oh * ow * kk;
        const char *engine = mpq_last_engine();
        printf("%-28s %9.1f us %7.1f GMAC/s  out %08x  %s\n", l->name, best * 1e6, macs / best / 1e9, sum, engine ? engine : "?");
        free(x); free(w); free(mult); free(bias); free(out); free(packed);
    }
    return 0;
}
