// Attention's three passes (Q x K^T, scale + mask + Softmax, probabilities x V) as mpq runs
// them unfused, each over all ITEMS matrices (the probabilities, ITEMS x L x L floats, go to
// memory and back twice), against the same kernels per matrix with the probabilities in a
// per-thread scratch that stays in cache. One thread. MiniLM: L 128, D 32, ITEMS 12 (batch
// 1) or 192 (batch 16). Prints the minimum over REPS and whether the outputs are the same bytes.
//     source benchmarks/ckernels_lib.sh; mkdir -p /tmp/af; ab_build - benchmarks/fp32_attention_fused.c /tmp/af
//     /tmp/af/new L D ITEMS REPS
#include <stdio.h>
#include <string.h>
#include "harness.h"
#include "mpq_fused.h"
#include "mpq_slinear.h"

int main(int argc, char **argv) {
    const int L = argc > 1 ? atoi(argv[1]) : 128, D = argc > 2 ? atoi(argv[2]) : 32;
    const int items = argc > 3 ? atoi(argv[3]) : 192, reps = argc > 4 ? atoi(argv[4]) : 10;
    const size_t qn = (size_t)items * L * D, sn = (size_t)items * L * L;
    float *q = aalloc(qn * 4), *kt = aalloc(qn * 4), *v = aalloc(qn * 4), *mask = aalloc((size_t)L * 4);
    float *s = aalloc(sn * 4), *p = aalloc(sn * 4), *o1 = aalloc(qn * 4), *o2 = aalloc(qn * 4);
    float *scratch = aalloc((size_t)L * L * 4);
    size_t *offs = malloc(sn / L * sizeof(size_t));
    for (size_t i = 0; i < qn; i++) { q[i] = rndf(); kt[i] = rndf(); v[i] = rndf(); }
    for (int i = 0; i < L; i++) mask[i] = i < L - 9 ? 0.0f : -3.4e38f;
    for (size_t r = 0; r < sn / L; r++) offs[r] = 0;
    const float scale = 5.656854f;
    double unfused = 1e9, fused = 1e9;
    for (int it = 0; it < reps; it++) {
        flush_caches();
        double t0 = now();
        for (int i = 0; i < items; i++)
            mpq_slinear_f32_rows(MPQ_PATH_AUTO, q + (size_t)i * L * D, L, D, kt + (size_t)i * D * L, D, L, L, NULL,
                                 s + (size_t)i * L * L, L, 1);
        mpq_scaled_masked_softmax_f32(MPQ_PATH_AUTO, s, sn / L, L, scale, 1, mask, offs, p, 1);
        for (int i = 0; i < items; i++)
            mpq_slinear_f32_rows(MPQ_PATH_AUTO, p + (size_t)i * L * L, L, L, v + (size_t)i * L * D, L, D, D, NULL,
                                 o1 + (size_t)i * L * D, D, 1);
        double t = now() - t0;
        if (t < unfused) unfused = t;
        flush_caches();
        t0 = now();
        for (int i = 0; i < items; i++) {
            mpq_slinear_f32_rows(MPQ_PATH_AUTO, q + (size_t)i * L * D, L, D, kt + (size_t)i * D * L, D, L, L, NULL,
                                 scratch, L, 1);
            mpq_scaled_masked_softmax_f32(MPQ_PATH_AUTO, scratch, L, L, scale, 1, mask, offs, scratch, 1);
            mpq_slinear_f32_rows(MPQ_PATH_AUTO, scratch, L, L, v + (size_t)i * L * D, L, D, D, NULL,
                                 o2 + (size_t)i * L * D, D, 1);
        }
        t = now() - t0;
        if (t < fused) fused = t;
    }
    printf("L %d D %d items %d: unfused %.3f ms, fused %.3f ms (%.2fx), outputs %s\n", L, D, items, unfused * 1e3,
           fused * 1e3, fused / unfused, memcmp(o1, o2, qn * 4) ? "DIFFER" : "same bytes");
    return 0;
}
