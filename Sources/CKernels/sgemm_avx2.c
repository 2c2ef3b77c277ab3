// AVX2 + FMA micro-tile of the FP32 Conv GEMM, on the same packed layout as the AVX-512
// one: the 6 x (16 * nv) tile is done as nv sub-tiles of 6 rows x 16 pixels (12 ymm
// accumulators, 2 column loads, 1 broadcast: 15 of the 16 ymm registers), each over the
// whole k-block. Each lane is fmadd(w, x, acc) in k order from +0: the reference's bits.
#include "sgemm_internal.h"
#include <immintrin.h>
#include <string.h>
#include "transpose8_f32_avx2.h"

#define AVX2_TARGET __attribute__((target("avx2,fma")))
#define MR MPQ_SGEMM_MR

// `ep` (NULL: none) on a sub-tile's registers, packed or direct. Operand order as in
// sgemm_avx512.c: NaN and -0 kept, as mpq_conv_epilogue_f32 does.
static inline __attribute__((always_inline)) AVX2_TARGET void
apply_epilogue(__m256 acc[MR][2], int mr, const mpq_sgemm_tile_epilogue *ep) {
    if (!ep) return;
    const __m256 lo = _mm256_set1_ps(ep->lo), hi = _mm256_set1_ps(ep->hi);
    _Pragma("unroll") for (int i = 0; i < mr; i++) {
        if (ep->bias && ep->bias[i] != 0.0f) {
            const __m256 bias = _mm256_set1_ps(ep->bias[i]);
            acc[i][0] = _mm256_add_ps(acc[i][0], bias);
            acc[i][1] = _mm256_add_ps(acc[i][1], bias);
        }
        if (ep->clamp) {
            acc[i][0] = _mm256_min_ps(hi, _mm256_max_ps(lo, acc[i][0]));
            acc[i][1] = _mm256_min_ps(hi, _mm256_max_ps(lo, acc[i][1]));
        }
    }
}

static inline __attribute__((always_inline)) AVX2_TARGET void
sub_tile(int kc, const float *a, const float *b, int w, float *c, int ldc, int mr, int nc, int accumulate,
         const mpq_sgemm_tile_epilogue *ep) {
    __m256 acc[MR][2];
    float tmp[MR][16];
    if (accumulate && nc < 16) {
        for (int i = 0; i < mr; i++) memcpy(tmp[i], c + (size_t)i * (size_t)ldc, (size_t)nc * sizeof(float));
    }
    _Pragma("unroll") for (int i = 0; i < mr; i++) {
        if (!accumulate) {
            acc[i][0] = acc[i][1] = _mm256_setzero_ps();
        } else {
            const float *src = nc < 16 ? tmp[i] : c + (size_t)i * (size_t)ldc;
            acc[i][0] = _mm256_loadu_ps(src);
            acc[i][1] = _mm256_loadu_ps(src + 8);
        }
    }
    for (int k = 0; k < kc; k++) {
        const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
        _Pragma("unroll") for (int i = 0; i < mr; i++) {
            const __m256 av = _mm256_broadcast_ss(a + i);
            acc[i][0] = _mm256_fmadd_ps(av, b0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(av, b1, acc[i][1]);
        }
        a += MR;
        b += w;
    }
    apply_epilogue(acc, mr, ep);
    _Pragma("unroll") for (int i = 0; i < mr; i++) {
        float *dst = nc < 16 ? tmp[i] : c + (size_t)i * (size_t)ldc;
        _mm256_storeu_ps(dst, acc[i][0]);
        _mm256_storeu_ps(dst + 8, acc[i][1]);
    }
    if (nc < 16) {
        for (int i = 0; i < mr; i++) memcpy(c + (size_t)i * (size_t)ldc, tmp[i], (size_t)nc * sizeof(float));
    }
}

#define SUB_FN(R) \
    static AVX2_TARGET void sub_##R(int kc, const float *a, const float *b, int w, float *c, int ldc, int nc, int acc, \
                                    const mpq_sgemm_tile_epilogue *ep) { \
        sub_tile(kc, a, b, w, c, ldc, R, nc, acc, ep); \
    }
SUB_FN(1) SUB_FN(2) SUB_FN(3) SUB_FN(4) SUB_FN(5) SUB_FN(6)

typedef void (*sub_fn)(int, const float *, const float *, int, float *, int, int, int, const mpq_sgemm_tile_epilogue *);
static const sub_fn subs[MR] = {sub_1, sub_2, sub_3, sub_4, sub_5, sub_6};

void mpq_sgemm_tile_avx2(int kc, const float *a, const float *b, int nv, float *c, int ldc,
                         int mr, int nc, int accumulate, const mpq_sgemm_tile_epilogue *ep) {
    const int w = 16 * nv;
    for (int q = 0; q < nv && 16 * q < nc; q++) {
        const int cols = nc - 16 * q < 16 ? nc - 16 * q : 16;
        subs[mr - 1](kc, a, b + 16 * q, w, c + 16 * q, ldc, cols, accumulate, ep);
    }
}

// The direct path's tile (sgemm_conv_direct.c): 6 rows x 16 pixels per sub-tile as above,
// row k of b read at b + offsets[k]. A whole sub-tile (16 pixels) loads and stores plain
// vectors; a partial one through masks, so lanes past nc are never read. The masks cost more
// than their two loads: with them live the 16 ymm registers do not hold the loop (clang
// reloaded a mask from the stack every k), and vmaskmovps is slower than vmovups on Zen 3.
static inline __attribute__((always_inline)) AVX2_TARGET void
direct_sub(int kc, const float *a, const float *b, const int32_t *offsets, float *c, int ldc, int mr, int nc,
           const mpq_sgemm_tile_epilogue *ep, int full, int accumulate) {
    __m256i m0 = _mm256_set1_epi32(-1), m1 = m0;
    if (!full) {
        const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(nc), idx);
        m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(nc - 8), idx);
    }
    __m256 acc[MR][2];
    _Pragma("unroll") for (int i = 0; i < mr; i++) {
        const float *src = c + (size_t)i * (size_t)ldc;
        if (!accumulate) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
        else if (full) acc[i][0] = _mm256_loadu_ps(src), acc[i][1] = _mm256_loadu_ps(src + 8);
        else acc[i][0] = _mm256_maskload_ps(src, m0), acc[i][1] = _mm256_maskload_ps(src + 8, m1);
    }
    for (int k = 0; k < kc; k++) {
        const float *bk = b + offsets[k];
        __m256 b0, b1;
        if (full) {
            b0 = _mm256_loadu_ps(bk);
            b1 = _mm256_loadu_ps(bk + 8);
        } else {
            b0 = _mm256_maskload_ps(bk, m0);
            b1 = _mm256_maskload_ps(bk + 8, m1);
        }
        _Pragma("unroll") for (int i = 0; i < mr; i++) {
            const __m256 av = _mm256_broadcast_ss(a + i);
            acc[i][0] = _mm256_fmadd_ps(av, b0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(av, b1, acc[i][1]);
        }
        a += MR;
    }
    apply_epilogue(acc, mr, ep);
    _Pragma("unroll") for (int i = 0; i < mr; i++) {
        float *dst = c + (size_t)i * (size_t)ldc;
        if (full) {
            _mm256_storeu_ps(dst, acc[i][0]);
            _mm256_storeu_ps(dst + 8, acc[i][1]);
        } else {  // plain stores of the first nc lanes: vmaskmovps to memory is slow on Zen 3
            mpq_store_first8(dst, acc[i][0], nc);
            if (nc > 8) mpq_store_first8(dst + 8, acc[i][1], nc - 8);
        }
    }
}

#define DIRECT_SUB_FN(R) \
    static AVX2_TARGET void direct_sub_##R(int kc, const float *a, const float *b, const int32_t *off, float *c, int ldc, \
                                           int nc, const mpq_sgemm_tile_epilogue *ep, int acc) { \
        if (nc == 16 && !acc) direct_sub(kc, a, b, off, c, ldc, R, 16, ep, 1, 0); \
        else if (nc == 16) direct_sub(kc, a, b, off, c, ldc, R, 16, ep, 1, 1); \
        else if (!acc) direct_sub(kc, a, b, off, c, ldc, R, nc, ep, 0, 0); \
        else direct_sub(kc, a, b, off, c, ldc, R, nc, ep, 0, 1); \
    }
DIRECT_SUB_FN(1) DIRECT_SUB_FN(2) DIRECT_SUB_FN(3) DIRECT_SUB_FN(4) DIRECT_SUB_FN(5) DIRECT_SUB_FN(6)

typedef void (*direct_sub_fn)(int, const float *, const float *, const int32_t *, float *, int, int,
                              const mpq_sgemm_tile_epilogue *, int);
static const direct_sub_fn direct_subs[MR] = {direct_sub_1, direct_sub_2, direct_sub_3,
                                              direct_sub_4, direct_sub_5, direct_sub_6};

void mpq_sgemm_direct_tile_avx2(int kc, const float *a, const float *b, const int32_t *offsets, int nv,
                                float *c, int ldc, int mr, int nc, const mpq_sgemm_tile_epilogue *ep) {
    for (int q = 0; q < nv && 16 * q < nc; q++) {
        const int cols = nc - 16 * q < 16 ? nc - 16 * q : 16;
        direct_subs[mr - 1](kc, a, b + 16 * q, offsets, c + 16 * q, ldc, cols, ep, 0);
    }
}

// The direct tile over a part's weight panels, for one column tile (nc <= 64), blocked as
//   panel groups of PANEL_GROUP panels (their K block is 8 x 128 x 6 floats = 24 KiB, in L2)
//     K blocks of K_BLOCK
//       16-column sub-tiles (one sub-tile's K block of the image, <= 8 KiB, stays in L1)
//         the group's panels: one 6 x 16 sub-tile each, reading that block again from L1.
// One panel at a time over its whole K (mpq_sgemm_direct_tile_avx2) read every sub-tile's image
// rows from L2 again for each panel, 64 scattered bytes per k beside the FMAs: 68-72 GF/s of
// the ~93 an FMA loop reaches on one Zen 3 core, against 76-83 blocked (ResNet-18's 3x3 layers).
// A K block ends with the accumulators stored to c and the next one starts from them: a
// float stored and reloaded is the same float, so every output is still one FMA chain in k
// order from +0, and the epilogue runs after the last block, as in the one-panel tile.
#define K_BLOCK 128
#define PANEL_GROUP 8

void mpq_sgemm_direct_panels_avx2(int kc, const float *a, size_t panel_stride, const float *b, const int32_t *offsets,
                                  int nv, float *c, int ldc, int mr, int nc, const mpq_sgemm_tile_epilogue *ep) {
    const int panels = (mr + MR - 1) / MR;
    for (int g0 = 0; g0 < panels; g0 += PANEL_GROUP) {
        const int g1 = g0 + PANEL_GROUP < panels ? g0 + PANEL_GROUP : panels;
        for (int k0 = 0; k0 < kc; k0 += K_BLOCK) {
            const int n = kc - k0 < K_BLOCK ? kc - k0 : K_BLOCK, last = k0 + n == kc;
            for (int q = 0; q < nv && 16 * q < nc; q++) {
                const int cols = nc - 16 * q < 16 ? nc - 16 * q : 16;
                for (int p = g0; p < g1; p++) {
                    const int rows = mr - p * MR < MR ? mr - p * MR : MR;
                    mpq_sgemm_tile_epilogue e = {0};  // the panel's rows' bias
                    if (ep) e = *ep, e.bias = ep->bias ? ep->bias + p * MR : NULL;
                    direct_subs[rows - 1](n, a + (size_t)p * panel_stride + (size_t)k0 * MR, b + 16 * q, offsets + k0,
                                          c + (size_t)p * MR * (size_t)ldc + 16 * q, ldc, cols, last && ep ? &e : NULL, k0 > 0);
                }
            }
        }
    }
}
