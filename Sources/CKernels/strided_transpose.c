// mpq_strided_copy's transposing case (strided_internal.h): 4-byte elements whose last output
// dim reads the source with a stride while another output dim reads it contiguously. MiniLM's
// key Transpose, perm (0, 2, 3, 1): [B, L, H, D] -> [B, H, D, L], is one [D x L] transpose
// per batch and head. Element by element (copy_row in strided_copy.c) each output row of L
// gathers from L cache lines: 32 us per layer at batch 1, 270 at batch 16 (s38, `mpq
// profile`). Here 16 x 16 tiles go through registers: 16 contiguous (masked) loads, one
// in-register transpose (mpq_transpose16_f32), 16 contiguous (masked) stores. Data movement
// only, so the bytes are the element loop's.
#include <stdatomic.h>
#include "mpq_internal.h"
#include "strided_internal.h"
#include "transpose16_f32_avx512.h"

#define AVX512_TARGET __attribute__((target("avx512f")))

// Output (i, j), i < nc <= 16 along the contiguous dim, j < nl along the last dim:
// src[i + j * s_last] -> dst[i * d_c + j].
AVX512_TARGET static void transpose_band(const float *src, ptrdiff_t s_last, size_t nc, size_t nl, float *dst,
                                         ptrdiff_t d_c) {
    const __mmask16 mc = nc >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << nc) - 1);
    for (size_t j0 = 0; j0 < nl; j0 += 16) {
        const size_t w = nl - j0 < 16 ? nl - j0 : 16;
        __m512 r[16];
        for (size_t jj = 0; jj < 16; jj++)
            r[jj] = jj < w ? _mm512_maskz_loadu_ps(mc, src + (ptrdiff_t)(j0 + jj) * s_last) : _mm512_setzero_ps();
        mpq_transpose16_f32(r);
        const __mmask16 mw = w >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << w) - 1);
        for (size_t i = 0; i < nc; i++) _mm512_mask_storeu_ps(dst + (ptrdiff_t)i * d_c + j0, mw, r[i]);
    }
}

// Unit u: one index of the outer dims (all but c and the last, odometer order) and one band of
// 16 along c; source and destination offsets by division.
static void run_unit(const strided_transpose_job *t, size_t u) {
    const strided_job *j = t->job;
    const int r = j->rank, c = t->c;
    const size_t band = u % t->bands;
    size_t rest = u / t->bands;
    ptrdiff_t src = j->offset, dst = 0;
    for (int d = r - 2; d >= 0; d--) {
        if (d == c) continue;
        const size_t i = rest % j->dims[d];
        rest /= j->dims[d];
        src += (ptrdiff_t)i * j->strides[d];
        dst += (ptrdiff_t)i * t->dst_strides[d];
    }
    const size_t i0 = band * 16, nc = j->dims[c] - i0 < 16 ? j->dims[c] - i0 : 16;
    src += (ptrdiff_t)i0;  // strides[c] == 1
    dst += (ptrdiff_t)i0 * t->dst_strides[c];
    transpose_band((const float *)j->src + src, j->strides[r - 1], nc, j->dims[r - 1], (float *)j->dst + dst,
                   t->dst_strides[c]);
}

static void transpose_task(void *arg, int tid) {
    (void)tid;
    strided_transpose_job *t = arg;
    size_t lo, hi;
    while (mpq_claim_run(&t->next, t->chunk, t->units, &lo, &hi))
        for (size_t u = lo; u < hi; u++) run_unit(t, u);
}

int mpq_strided_transpose_dim(const strided_job *j) {
    static _Atomic long env = -1;
    if (j->elem != 4 || j->rank < 2 || !mpq_env_long_once("MPQ_STRIDED_TILED", 1, &env)) return -1;
    if (!__builtin_cpu_supports("avx512f")) return -1;
    const int last = j->rank - 1;
    if (j->strides[last] == 1 || j->dims[last] < 8) return -1;
    for (int d = last - 1; d >= 0; d--)
        if (j->strides[d] == 1 && j->dims[d] >= 8) return d;
    return -1;
}

void mpq_strided_transpose(const strided_job *j, int c, int threads) {
    strided_transpose_job t = {.job = j, .c = c, .bands = (j->dims[c] + 15) / 16};
    ptrdiff_t s = 1;
    for (int d = j->rank - 1; d >= 0; d--) {
        t.dst_strides[d] = s;
        s *= (ptrdiff_t)j->dims[d];
    }
    t.units = t.bands;
    for (int d = 0; d < j->rank - 1; d++)
        if (d != c) t.units *= j->dims[d];
    if (threads > (int)t.units) threads = (int)t.units;
    if (threads < 2) {
        for (size_t u = 0; u < t.units; u++) run_unit(&t, u);
        return;
    }
    const size_t per = 4 * (size_t)threads;
    t.chunk = (t.units + per - 1) / per;
    atomic_init(&t.next, 0);
    mpq_pool_run(threads, transpose_task, &t);
}
