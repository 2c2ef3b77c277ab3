#ifndef MPQ_SCONV_CV_ACCUMULATE_H
#define MPQ_SCONV_CV_ACCUMULATE_H
// The channel-vector tile's arithmetic, shared by its NCHW store (sconv_cv_avx512.c) and the
// blocked layout's (sconv_blocked_avx512.c): one definition of the sums is what makes the two
// layouts give the same bits (FP32BlockedConvTests), whatever each does with them after.
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

/// acc[v][p] = for k in order from +0: fmadd(weights of vector v at k, px[p][offsets[k]]),
/// NV vectors of 16 output channels x NP pixels (compile-time constants at every call), pixel
/// p's window at px[p]. NV <= 4: one weights block, rows [k][16 NV] at w. NV > 4 (few pixels, so
/// more output channels per tile keep enough accumulators): a full block at w (rows of 64) and
/// the next at w + kc * 64 (rows of 16 (NV - 4)). acc is [NV][NP] flattened (acc[v * NP + p]):
/// the pixel runs' tiles (sconv_blocked_avx512.c) take more pixels than the tiles' 8.
/// With a tap list `kidx` (NV <= 4; NULL at every other call, folded away): step k reads
/// weights row kidx[k] instead of row k (sconv_blocked_skip.c: a pixel class's taps, in k
/// order, so the chain is the full one minus the skipped taps).
static inline __attribute__((always_inline, target("avx512f"))) void
mpq_sconv_cv_accumulate(int kc, const int32_t *kidx, const float *w, const float *const *px, const int32_t *offsets,
                        __m512 *acc, const int NV, const int NP) {
    const int NA = NV < 4 ? NV : 4, NB = NV - NA;
    const float *w0 = w, *w1 = w + (size_t)kc * 64;
    _Pragma("unroll") for (int v = 0; v < NV; v++)
        _Pragma("unroll") for (int p = 0; p < NP; p++) acc[v * NP + p] = _mm512_setzero_ps();
    for (int k = 0; k < kc; k++) {
        const ptrdiff_t o = offsets[k];
        const float *wk = kidx ? w0 + (size_t)kidx[k] * (size_t)(16 * NA) : w;
        __m512 wv[8];
        _Pragma("unroll") for (int v = 0; v < NA; v++) wv[v] = _mm512_load_ps(wk + 16 * v);
        _Pragma("unroll") for (int v = 0; v < NB; v++) wv[NA + v] = _mm512_load_ps(w1 + 16 * v);
        _Pragma("unroll") for (int p = 0; p < NP; p++) {
            const __m512 xb = _mm512_set1_ps(px[p][o]);
            _Pragma("unroll") for (int v = 0; v < NV; v++) acc[v * NP + p] = _mm512_fmadd_ps(wv[v], xb, acc[v * NP + p]);
        }
        w += 16 * NA;
        w1 += 16 * NB;
    }
}

/// The tiles' windows: px[p] = x + pix[p] for the NP pixels of a tile.
static inline __attribute__((always_inline)) void mpq_sconv_cv_windows(const float *x, const int32_t *pix, const float **px,
                                                                       const int NP) {
    _Pragma("unroll") for (int p = 0; p < NP; p++) px[p] = x + pix[p];
}
#endif
