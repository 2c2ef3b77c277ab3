// The channel-blocked FP32 Conv's first layer from NCHW (mpq_sconv2d_f32_blocked_from_nchw: a
// stem of few input channels writing the blocked layout) on the bench models' stems: minimum
// time of IMAGES images per call over ROUNDS rounds, and a checksum of the blocked output
// (equal checksums across two builds: the same bytes). Build it against two libraries and
// alternate the binaries for an A/B (benchmarks/ckernels_lib.sh: lib, ab_build).
//     fp32_blocked_stems [ROUNDS] [THREADS] [IMAGES] [NAME_FILTER]
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
    {"rd.stem 1->16 7x7 56", 1, 56, 56, 16, 7, 1, 3},
    {"det.stem 3->16 3x3 64", 3, 64, 64, 16, 3, 1, 1},
    {"mbv2.stem 3->32 3x3/2 224", 3, 224, 224, 32, 3, 2, 1},
    {"r18.stem 3->64 7x7/2 224", 3, 224, 224, 64, 7, 2, 3},
};

int main(int argc, char **argv) {
    const int rounds = argc > 1 ? atoi(argv[1]) : 5, threads = argc > 2 ? atoi(argv[2]) : 1;
    const int images = argc > 3 ? atoi(argv[3]) : 1;
    const char *only = argc > 4 ? argv[4] : NULL;
    for (size_t li = 0; li < sizeof layers / sizeof *layers; li++) {
        const L *l = &layers[li];
        if (only && !strstr(l->name, only)) continue;
        mpq_conv2d_shape s = {l->c, l->h, l->w, l->k, l->k, l->pad, l->pad, l->pad, l->pad, l->s, l->s, 1, 1, 1};
        const int oh = mpq_conv2d_out_h(&s), ow = mpq_conv2d_out_w(&s), K = l->c * l->k * l->k;
        const size_t nx = (size_t)l->c * l->h * l->w * images, by = mpq_blocked_image_floats(l->m, oh, ow) * images;
        float *x = aalloc(nx * 4), *w = malloc((size_t)l->m * K * 4), *b = malloc(l->m * 4), *yb = aalloc(by * 4);
        for (size_t i = 0; i < nx; i++) x[i] = rndf();
        for (size_t i = 0; i < (size_t)l->m * K; i++) w[i] = rndf() * 0.05f;
        for (int i = 0; i < l->m; i++) b[i] = rndf() * 0.1f;
        void *pw = aalloc(mpq_sconv_pack_weights_size(l->m, K, 1)), *cw = aalloc(mpq_sconv_cv_weights_size(l->m, K, 1));
        mpq_sconv_pack_weights(w, l->m, K, 1, pw);
        mpq_sconv_cv_pack_weights_layout(pw, mpq_sconv_cv_host_layout(), cw);
        const double macs = (double)l->m * oh * ow * K * images;
        const int reps = (int)(2e8 / macs) + 3;
        double best = 1e9;
        for (int r = 0; r < rounds; r++)
            for (int i = 0; i < reps; i++) {
                const double t0 = now();
                mpq_sconv2d_f32_blocked_from_nchw(MPQ_PATH_VNNI, x, images, &s, cw, b, MPQ_ACT_CLAMP, 0.0f, 1e30f, NULL, yb, threads);
                const double t = now() - t0;
                if (t < best) best = t;
            }
        uint32_t sum = 0;
        for (size_t i = 0; i < by; i++) { uint32_t u; memcpy(&u, yb + i, 4); sum = sum * 31 + u; }
        printf("%-28s x%-2d %7.1f MMACs %9.1f us %6.1f GMAC/s  out %08x\n", l->name, images, macs / 1e6, best * 1e6,
               macs / best / 1e9, sum);
        fflush(stdout);
        free(x); free(w); free(b); free(yb); free(pw); free(cw);
    }
    return 0;
}
