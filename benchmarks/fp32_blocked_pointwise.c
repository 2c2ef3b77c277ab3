// MobileNetV2's 1x1 FP32 Convs in the channel-blocked layout (mpq_sconv2d_f32_blocked, what its
// chains run), IMAGES images over THREADS threads, bias (+ Relu6 on the expand layers), random
// data. Prints per layer the minimum wall time of ROUNDS x REPS calls, GFLOP/s and a checksum
// of the output bits (equal checksums: equal bytes). Two ways to see a layer as the model does
// at batch 1, where every layer's weights are used once per run (docs/fp32-blocked-layout.md
// "s30"):
//   WCOPIES=N  N copies of the packed weights, a different one each call: with N x the weights
//              past the 1 MiB L2 they come from L3, the input stays in L2 (what the previous
//              layer left there);
//   COLD=MiB   that much memory written before each call: weights and input from L3/DRAM.
// Kernel switches read once from the environment (MPQ_FP32_BK_*) give A/Bs in one build.
//     [WCOPIES=16] fp32_blocked_pointwise ROUNDS REPS THREADS IMAGES [LAYER-INDEX]
#include "mpq_kernels.h"
#include "mpq_sgemm.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double wall(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static uint64_t st = 88172645463325252ull;
static float rndf(void) { st ^= st << 13; st ^= st >> 7; st ^= st << 17; return (float)((st >> 40) & 0xFFFF) / 32768.0f - 1.0f; }
static void *aalloc(size_t bytes) { return aligned_alloc(64, (bytes + 63) / 64 * 64); }

typedef struct { int c, h, m, relu; } L;
static const L layers[] = {{16, 112, 96, 1}, {32, 112, 16, 0}, {96, 56, 24, 0}, {24, 56, 144, 1}, {144, 56, 24, 0},
                           {144, 28, 32, 0}, {32, 28, 192, 1}, {192, 28, 32, 0}, {192, 14, 64, 0}, {64, 14, 384, 1},
                           {384, 14, 64, 0}, {384, 14, 96, 0}, {96, 14, 576, 1}, {576, 14, 96, 0}, {576, 7, 160, 0},
                           {160, 7, 960, 1}, {960, 7, 160, 0}, {960, 7, 320, 0}, {320, 7, 1280, 1}};

int main(int argc, char **argv) {
    const int rounds = argc > 1 ? atoi(argv[1]) : 3, reps = argc > 2 ? atoi(argv[2]) : 20;
    const int threads = argc > 3 ? atoi(argv[3]) : 1, images = argc > 4 ? atoi(argv[4]) : 1;
    const int only = argc > 5 ? atoi(argv[5]) : -1;
    const mpq_kernel_path path = MPQ_PATH_VNNI;  // resolves to the host's best path
    double total = 0;
    // COLD=MiB: write that much memory before every call, as a model's other layers do between
    // two runs of this one (its weights and input then come from DRAM or L3, not L2).
    const size_t cold_n = getenv("COLD") ? (size_t)atoi(getenv("COLD")) << 18 : 0;
    const int cold = cold_n > 0;
    float *evict = cold ? calloc(cold_n, sizeof(float)) : NULL;
    for (int li = 0; li < (int)(sizeof layers / sizeof *layers); li++) {
        if (only >= 0 && li != only) continue;
        const L *l = &layers[li];
        mpq_conv2d_shape s = {l->c, l->h, l->h, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 1};
        const size_t bx = mpq_blocked_image_floats(l->c, l->h, l->h), by = mpq_blocked_image_floats(l->m, l->h, l->h);
        float *x = aalloc((size_t)images * l->c * l->h * l->h * 4), *xb = aalloc(images * bx * 4), *yb = aalloc(images * by * 4);
        float *w = malloc((size_t)l->m * l->c * 4), *b = malloc(l->m * 4);
        for (size_t q = 0; q < (size_t)images * l->c * l->h * l->h; q++) x[q] = rndf();
        for (size_t q = 0; q < (size_t)l->m * l->c; q++) w[q] = rndf() * 0.1f;
        for (int q = 0; q < l->m; q++) b[q] = rndf() * 0.1f;
        // WCOPIES=N: N copies of the packed weights, one per call in turn, so each call finds
        // its weights in L3 (out of L2 once N copies outgrow it) and its input in L2, as a
        // model's layer does at batch 1.
        const int copies = getenv("WCOPIES") ? atoi(getenv("WCOPIES")) : 1;
        const size_t cw_bytes = (mpq_sconv_cv_weights_size(l->m, l->c, 1) + 63) / 64 * 64;
        void *pw = aalloc(mpq_sconv_pack_weights_size(l->m, l->c, 1));
        char *cws = aalloc(cw_bytes * copies);
        mpq_sconv_pack_weights(w, l->m, l->c, 1, pw);
        for (int q = 0; q < copies; q++) mpq_sconv_cv_pack_weights_layout(pw, mpq_sconv_cv_host_layout(), cws + q * cw_bytes);
        mpq_reorder_to_blocked_f32(path, x, images, l->c, l->h, l->h, xb);
        double best = 1e9;
        for (int r = 0; r < rounds * reps; r++) {
            if (cold) for (size_t q = 0; q < cold_n; q += 16) evict[q] += 1.0f;  // weights and input out of L1-L3
            const double t0 = wall();
            const void *cw = cws + (size_t)(r % copies) * cw_bytes;
            if (mpq_sconv2d_f32_blocked(path, xb, images, &s, cw, b, MPQ_ACT_CLAMP, l->relu ? 0.0f : -1e30f,
                                        l->relu ? 6.0f : 1e30f, NULL, yb, threads) != 0) {
                fprintf(stderr, "layer %d failed\n", li);
                return 1;
            }
            const double t = wall() - t0;
            if (t < best) best = t;
        }
        uint32_t sum = 0;
        const uint32_t *u = (const uint32_t *)yb;
        for (size_t q = 0; q < images * by; q++) sum = sum * 31u + u[q];
        const double flops = 2.0 * images * l->m * l->c * l->h * l->h;
        total += best;
        printf("pw%-2d %4d->%-4d %3dx%-3d %8.1f us %6.1f GF/s  %08x\n", li, l->c, l->m, l->h, l->h, best * 1e6, flops / best / 1e9, sum);
        free(x); free(xb); free(yb); free(w); free(b); free(pw); free(cws);
    }
    printf("total %.1f us (%d images, %d threads)\n", total * 1e6, images, threads);
    return 0;
}
