// AVX-512 micro-tile of the FP32 Conv GEMM: up to 6 rows (output channels) x 4 vectors
// of 16 pixels = 24 zmm accumulators, plus 4 column-panel loads and one broadcast weight
// per k: 10 loads per 24 FMAs. One instantiation per (rows, vectors) so the accumulator
// array lives in registers. Each lane is fmadd(w, x, acc) in k order from +0: the
// reference's fmaf chain, bit for bit.
#include "sgemm_internal.h"
#include <immintrin.h>

#define AVX512_TARGET __attribute__((target("avx512f")))
#define MR MPQ_SGEMM_MR

// The compressing store of mpq_sgemm_tile_epilogue: the `valid` lanes of v, in order, at
// row + place. Compress in a register, then a plain masked store (vcompressps to memory is
// slow on Zen 4).
static inline __attribute__((always_inline)) AVX512_TARGET void
mpq_sgemm_compress_store(float *row, uint16_t valid, int32_t place, __m512 v) {
    const int n = __builtin_popcount(valid);
    _mm512_mask_storeu_ps(row + place, (__mmask16)((1u << n) - 1u), _mm512_maskz_compress_ps((__mmask16)valid, v));
}

static inline AVX512_TARGET __mmask16 lanes(int cols) {
    return cols >= 16 ? (__mmask16)0xFFFF : cols <= 0 ? (__mmask16)0 : (__mmask16)((1u << cols) - 1u);
}

// The end of every tile, packed or direct: `ep` (NULL: none) on the registers, then the
// masked store. max(lo, v) and min(hi, v) in this operand order return v when v is NaN, and
// keep -0 against a 0 bound: the clamp of mpq_conv_epilogue_f32.
static inline __attribute__((always_inline)) AVX512_TARGET void
finish(__m512 acc[MR][4], int mr, int nv, const __mmask16 mask[4], const mpq_sgemm_tile_epilogue *ep, float *c,
       int ldc) {
    if (ep) {
        const __m512 lo = _mm512_set1_ps(ep->lo), hi = _mm512_set1_ps(ep->hi);
        _Pragma("unroll") for (int i = 0; i < mr; i++) {
            if (ep->bias && ep->bias[i] != 0.0f) {
                const __m512 bias = _mm512_set1_ps(ep->bias[i]);
                _Pragma("unroll") for (int q = 0; q < nv; q++) acc[i][q] = _mm512_add_ps(acc[i][q], bias);
            }
            if (ep->clamp)
                _Pragma("unroll") for (int q = 0; q < nv; q++) acc[i][q] = _mm512_min_ps(hi, _mm512_max_ps(lo, acc[i][q]));
        }
    }
    if (ep && ep->valid) {
        _Pragma("unroll") for (int i = 0; i < mr; i++)
            _Pragma("unroll") for (int q = 0; q < nv; q++)
                mpq_sgemm_compress_store(c + (size_t)i * (size_t)ldc, ep->valid[q], ep->place[q], acc[i][q]);
        return;
    }
    _Pragma("unroll") for (int i = 0; i < mr; i++)
        _Pragma("unroll") for (int q = 0; q < nv; q++)
            _mm512_mask_storeu_ps(c + (size_t)i * (size_t)ldc + 16 * q, mask[q], acc[i][q]);
}

static inline __attribute__((always_inline)) AVX512_TARGET void
tile(int kc, const float *a, const float *b, float *c, int ldc, int mr, int nv, int nc, int accumulate,
     const mpq_sgemm_tile_epilogue *ep) {
    __m512 acc[MR][4];
    __mmask16 mask[4];
    _Pragma("unroll") for (int q = 0; q < nv; q++) mask[q] = lanes(nc - 16 * q);
    _Pragma("unroll") for (int i = 0; i < mr; i++)
        _Pragma("unroll") for (int q = 0; q < nv; q++)
            acc[i][q] = accumulate ? _mm512_maskz_loadu_ps(mask[q], c + (size_t)i * (size_t)ldc + 16 * q) : _mm512_setzero_ps();
    const int w = 16 * nv;
    for (int k = 0; k < kc; k++) {
        __m512 bv[4];
        _Pragma("unroll") for (int q = 0; q < nv; q++) bv[q] = _mm512_loadu_ps(b + 16 * q);
        _Pragma("unroll") for (int i = 0; i < mr; i++) {
            const __m512 av = _mm512_set1_ps(a[i]);
            _Pragma("unroll") for (int q = 0; q < nv; q++) acc[i][q] = _mm512_fmadd_ps(av, bv[q], acc[i][q]);
        }
        a += MR;
        b += w;
    }
    finish(acc, mr, nv, mask, ep, c, ldc);
}

#define TILE_FN(R, V) \
    static AVX512_TARGET void tile_##R##_##V(int kc, const float *a, const float *b, float *c, int ldc, int nc, int acc, \
                                             const mpq_sgemm_tile_epilogue *ep) { \
        tile(kc, a, b, c, ldc, R, V, nc, acc, ep); \
    }
#define TILE_ROW(R) TILE_FN(R, 1) TILE_FN(R, 2) TILE_FN(R, 3) TILE_FN(R, 4)
TILE_ROW(1) TILE_ROW(2) TILE_ROW(3) TILE_ROW(4) TILE_ROW(5) TILE_ROW(6)

typedef void (*tile_fn)(int, const float *, const float *, float *, int, int, int, const mpq_sgemm_tile_epilogue *);
#define TILE_ENTRY(R) { tile_##R##_1, tile_##R##_2, tile_##R##_3, tile_##R##_4 }
static const tile_fn tiles[MR][4] = {
    TILE_ENTRY(1), TILE_ENTRY(2), TILE_ENTRY(3), TILE_ENTRY(4), TILE_ENTRY(5), TILE_ENTRY(6),
};

void mpq_sgemm_tile_avx512(int kc, const float *a, const float *b, int nv, float *c, int ldc,
                           int mr, int nc, int accumulate, const mpq_sgemm_tile_epilogue *ep) {
    tiles[mr - 1][nv - 1](kc, a, b, c, ldc, nc, accumulate, ep);
}

// d[i] = src[2 * i] for i < count: the stride-2 taps of a packed row (a 7x7 stride-2
// stem spends most of its packing here). Two loads and one two-source permute per 16;
// the tail too, with masked loads (they read no further than src[2 (count - 1)]): a
// scalar tail took half of a 32-wide row and all of a 16-wide one, 23% of a 64x64
// stride-2 Conv.
AVX512_TARGET void mpq_sconv_gather2_avx512(float *d, const float *src, int count) {
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    int i = 0;
    // The second load reads src[2i + 16 .. 2i + 31]; the last needed is src[2(count-1)].
    for (; i + 16 <= count - 1; i += 16) {
        const __m512 lo = _mm512_loadu_ps(src + 2 * i), hi = _mm512_loadu_ps(src + 2 * i + 16);
        _mm512_storeu_ps(d + i, _mm512_permutex2var_ps(lo, even, hi));
    }
    if (i < count) {
        const int n = count - i, span = 2 * n - 1;  // outputs left (1..16), source floats they read
        const __m512 lo = _mm512_maskz_loadu_ps(lanes(span), src + 2 * i);
        const __m512 hi = _mm512_maskz_loadu_ps(lanes(span - 16), src + 2 * i + 16);
        _mm512_mask_storeu_ps(d + i, lanes(n), _mm512_permutex2var_ps(lo, even, hi));
    }
}

// The direct path's tile (sgemm_conv_direct.c): the same 6 x 4 zmm tile and FMA chain,
// row k of b read at b + offsets[k] (a tap of the zero-padded image) instead of from a
// packed panel; masked loads, so lanes past nc are never read.
static inline __attribute__((always_inline)) AVX512_TARGET void
direct_tile(int kc, const float *a, const float *b, const int32_t *offsets, float *c, int ldc, int mr, int nv, int nc,
            const mpq_sgemm_tile_epilogue *ep) {
    __m512 acc[MR][4];
    __mmask16 mask[4];
    _Pragma("unroll") for (int q = 0; q < nv; q++) mask[q] = lanes(nc - 16 * q);
    _Pragma("unroll") for (int i = 0; i < mr; i++)
        _Pragma("unroll") for (int q = 0; q < nv; q++) acc[i][q] = _mm512_setzero_ps();
    for (int k = 0; k < kc; k++) {
        const float *bk = b + offsets[k];
        __m512 bv[4];
        _Pragma("unroll") for (int q = 0; q < nv; q++) bv[q] = _mm512_maskz_loadu_ps(mask[q], bk + 16 * q);
        _Pragma("unroll") for (int i = 0; i < mr; i++) {
            const __m512 av = _mm512_set1_ps(a[i]);
            _Pragma("unroll") for (int q = 0; q < nv; q++) acc[i][q] = _mm512_fmadd_ps(av, bv[q], acc[i][q]);
        }
        a += MR;
    }
    finish(acc, mr, nv, mask, ep, c, ldc);
}

#define DIRECT_FN(R, V) \
    static AVX512_TARGET void direct_##R##_##V(int kc, const float *a, const float *b, const int32_t *off, float *c, \
                                               int ldc, int nc, const mpq_sgemm_tile_epilogue *ep) { \
        direct_tile(kc, a, b, off, c, ldc, R, V, nc, ep); \
    }
#define DIRECT_ROW(R) DIRECT_FN(R, 1) DIRECT_FN(R, 2) DIRECT_FN(R, 3) DIRECT_FN(R, 4)
DIRECT_ROW(1) DIRECT_ROW(2) DIRECT_ROW(3) DIRECT_ROW(4) DIRECT_ROW(5) DIRECT_ROW(6)

typedef void (*direct_fn)(int, const float *, const float *, const int32_t *, float *, int, int,
                          const mpq_sgemm_tile_epilogue *);
#define DIRECT_ENTRY(R) { direct_##R##_1, direct_##R##_2, direct_##R##_3, direct_##R##_4 }
static const direct_fn directs[MR][4] = {
    DIRECT_ENTRY(1), DIRECT_ENTRY(2), DIRECT_ENTRY(3), DIRECT_ENTRY(4), DIRECT_ENTRY(5), DIRECT_ENTRY(6),
};

void mpq_sgemm_direct_tile_avx512(int kc, const float *a, const float *b, const int32_t *offsets, int nv,
                                  float *c, int ldc, int mr, int nc, const mpq_sgemm_tile_epilogue *ep) {
    directs[mr - 1][nv - 1](kc, a, b, offsets, c, ldc, nc, ep);
}
