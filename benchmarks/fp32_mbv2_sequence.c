// MobileNetV2's FP32 convs at batch 1 in the model's order, each layer reading the previous
// one's output (so the cache state between layers is the model's: which core's L2 holds which
// planes), outside Swift: the stem and 1x1 convs through the kernel the runtime picks
// (mpq_sconv2d_f32_cv_preferred, else mpq_sconv2d_f32: the direct path), the depthwise 3x3
// through mpq_depthwise3x3_f32_lanes, the residual Adds fused into the project conv as the
// runtime fuses them (mpq_sconv2d_f32_residual; UNFUSED=1 in the environment: mpq_binary_f32 as
// a layer of its own, what `mpq profile` times), each split over
// THREADS from 256K multiply-adds as Conv.swift does (ConvOps.splitMACs,
// fp32DepthwiseSplitMACs: 128K; DW_SPLIT_MACS overrides the depthwise one). Random weights and input.
// Prints per layer the minimum wall time over RUNS runs of the whole sequence (us), the sum of
// those minima, the fastest whole run, and a checksum of every layer's output bits (equal
// checksums between two builds: equal bytes).
//     fp32_mbv2_sequence RUNS THREADS [DW_SPLIT_MACS]      (A/B of two builds: benchmarks/fp32_mbv2_sequence_ab.sh)
#include "mpq_kernels.h"
#include "mpq_pool.h"
#include "mpq_sgemm.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double wall(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static uint64_t st = 88172645463325252ull;
static float rndf(void) { st ^= st << 13; st ^= st >> 7; st ^= st << 17; return (float)((st >> 40) & 0xFFFF) / 32768.0f - 1.0f; }

enum { CONV, DW, ADD };
typedef struct {
    int kind, c, m, h, k, s;  // input channels, output channels, input plane, kernel, stride
    int relu6, add_from;      // ADD (or a CONV with `fused`): the layer whose output is the shortcut
    int fused;
    char name[32];
    void *pw, *cw;
    float *w, *b, *y;
    int oh;
} layer;

static layer L[80];
static int n_layers;

static layer *push(int kind, int c, int m, int h, int k, int s, int relu6) {
    layer *l = &L[n_layers++];
    memset(l, 0, sizeof *l);
    l->kind = kind, l->c = c, l->m = m, l->h = h, l->k = k, l->s = s, l->relu6 = relu6;
    l->oh = kind == ADD ? h : (h + 2 * (k / 2) - k) / s + 1;
    snprintf(l->name, sizeof l->name, "%s %d->%d %d%s", kind == CONV ? (k == 1 ? "pw" : "conv") : kind == DW ? "dw" : "add", c, m, h,
             s == 2 ? "/2" : "");
    l->add_from = -1;
    l->y = aligned_alloc(64, ((size_t)m * l->oh * l->oh * 4 + 63) / 64 * 64);
    if (kind == ADD) return l;
    const int kk = kind == DW ? 9 : c * k * k;
    l->w = malloc((size_t)m * kk * 4);
    l->b = malloc((size_t)m * 4);
    for (int i = 0; i < m * kk; i++) l->w[i] = rndf() * (kind == DW ? 0.3f : 1.0f / (float)c);
    for (int i = 0; i < m; i++) l->b[i] = rndf() * 0.1f;
    if (kind == CONV) {
        l->pw = aligned_alloc(64, (mpq_sconv_pack_weights_size(m, kk, 1) + 63) / 64 * 64);
        mpq_sconv_pack_weights(l->w, m, kk, 1, l->pw);
        l->cw = aligned_alloc(64, (mpq_sconv_cv_weights_size(m, kk, 1) + 63) / 64 * 64);
        mpq_sconv_cv_pack_weights_layout(l->pw, mpq_sconv_cv_host_layout(), l->cw);
    }
    return l;
}

static void build(void) {
    int h = 224, c = 32;
    push(CONV, 3, 32, h, 3, 2, 1);
    h = 112;
    push(DW, 32, 32, h, 3, 1, 1);
    push(CONV, 32, 16, h, 1, 1, 0);
    c = 16;
    static const int cfg[][4] = {{6, 24, 2, 2}, {6, 32, 3, 2}, {6, 64, 4, 2}, {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
    for (int g = 0; g < 6; g++)
        for (int i = 0; i < cfg[g][2]; i++) {
            const int s = i == 0 ? cfg[g][3] : 1, e = c * cfg[g][0], out = cfg[g][1];
            const int block_in = n_layers - 1;
            push(CONV, c, e, h, 1, 1, 1);
            push(DW, e, e, h, 3, s, 1);
            h = (h + 2 - 3) / s + 1;
            push(CONV, e, out, h, 1, 1, 0);
            if (s == 1 && c == out) {
                if (getenv("UNFUSED") && atoi(getenv("UNFUSED"))) push(ADD, out, out, h, 1, 1, 0)->add_from = block_in;
                else L[n_layers - 1].add_from = block_in, L[n_layers - 1].fused = 1;
            }
            c = out;
        }
    push(CONV, 320, 1280, h, 1, 1, 1);
}

static void run_layer(layer *l, const float *x, int threads, long dw_split) {
    mpq_conv2d_shape s = {.channels = l->c, .height = l->h, .width = l->h, .kernel_h = l->k, .kernel_w = l->k,
                          .pad_top = l->k / 2, .pad_left = l->k / 2, .pad_bottom = l->k / 2, .pad_right = l->k / 2,
                          .stride_h = l->s, .stride_w = l->s, .dilation_h = 1, .dilation_w = 1, .group = 1};
    const long macs = (long)l->m * l->oh * l->oh * (l->kind == DW ? 9 : l->c * l->k * l->k);
    if (l->kind == ADD) {
        const size_t n = (size_t)l->m * l->oh * l->oh;
        mpq_binary_f32(MPQ_PATH_VNNI, 0, 0, x, L[l->add_from].y, n, l->y, n >= (64u << 10) ? threads : 1);
        return;
    }
    if (l->kind == DW) {
        s.group = l->c;
        if (mpq_depthwise3x3_f32_lanes(MPQ_PATH_VNNI, x, &s, l->w, l->b, MPQ_ACT_CLAMP, 0, 6, l->y, macs >= dw_split ? threads : 1))
            abort();
        return;
    }
    const int t = macs >= (1L << 18) ? threads : 1;
    const mpq_activation act = l->relu6 ? MPQ_ACT_CLAMP : MPQ_ACT_NONE;
    int rc;
    const mpq_sconv_residual res = {l->fused ? L[l->add_from].y : NULL, 0, 0};
    if (mpq_sconv2d_f32_cv_preferred(MPQ_PATH_VNNI, &s, l->m, 1, t))
        rc = mpq_sconv2d_f32_cv(MPQ_PATH_VNNI, x, 1, &s, l->cw, l->b, act, 0, 6, l->fused ? &res : NULL, l->y, t);
    else
        rc = mpq_sconv2d_f32_residual(MPQ_PATH_VNNI, x, 1, &s, l->pw, l->b, act, 0, 6, l->fused ? &res : NULL, l->y, t);
    if (rc) abort();
}

int main(int argc, char **argv) {
    const int runs = argc > 1 ? atoi(argv[1]) : 50, threads = argc > 2 ? atoi(argv[2]) : 2;
    const long dw_split = argc > 3 ? atol(argv[3]) : 1L << 17;
    const int warm = getenv("WARM") && atoi(getenv("WARM"));
    build();
    const size_t nin = (size_t)3 * 224 * 224;
    float *x = aligned_alloc(64, nin * 4);
    for (size_t i = 0; i < nin; i++) x[i] = rndf();
    double best[80], best_run = 1e9;
    for (int i = 0; i < n_layers; i++) best[i] = 1e9;
    for (int r = 0; r < runs; r++) {
        const double r0 = wall();
        const float *in = x;
        for (int i = 0; i < n_layers; i++) {
            if (warm) run_layer(&L[i], in, threads, dw_split);  // WARM=1: each layer once untimed first (its input then in both cores' caches)
            const double t0 = wall();
            run_layer(&L[i], in, threads, dw_split);
            const double t = wall() - t0;
            if (t < best[i]) best[i] = t;
            in = L[i].y;
        }
        const double rt = wall() - r0;
        if (rt < best_run) best_run = rt;
    }
    double sum = 0;
    for (int i = 0; i < n_layers; i++) {
        const layer *l = &L[i];
        uint32_t h = 0;
        const size_t n = (size_t)l->m * l->oh * l->oh;
        for (size_t q = 0; q < n; q++) {
            uint32_t u;
            memcpy(&u, l->y + q, 4);
            h = h * 31 + u;
        }
        printf("%2d %-22s %8.1f us  %08x\n", i, l->name, best[i] * 1e6, h);
        sum += best[i];
    }
    printf("sum of minima %.1f us, fastest run %.1f us\n", sum * 1e6, best_run * 1e6);
    return 0;
}
