// AVX2 + FMA parts of the channel-blocked FP32 Conv (sconv_blocked.c, docs/fp32-blocked-layout.md
// "s27: the blocked layout on AVX2"): the tile, the reorders NCHW <-> [C/16][H][W][16] and the
// border patch.
//
// Why: on an AVX2 host the channel-vector Conv (sconv_cv_avx2.c) pads a copy of every padded
// input and transposes every 6-pixel chunk into the output planes; on the detector's thin
// layers at batch 16 the copies alone were 11% of its one-core FP32 samples (perf, s27). In the
// blocked layout a tile reads the input in place and stores whole vectors.
//
// The tile: per 16-channel vector of the block, 2 ymm x up to 6 pixels (12 accumulators; per k
// 2 weight loads, 6 broadcasts, 12 FMAs: the part kernel's chunk; a tile's pixels in even groups
// of up to 6), over the whole of K with the sums in registers (the blocked driver's planes are small and its weights under 1 MiB a chain,
// ImageChain.largeWeights, so a vector's weights stay in L2). Every lane is fmadd(w, x, acc) in
// k order from +0 on the values the channel-vector tile reads, then the bias where it is not 0
// and the clamp as finish8 applies them: the channel-vector tile's bits. A vector's second half
// is skipped where its 8 channels are all past M (the detector's 24- and 48-channel layers);
// lanes past M are stored as +0 (the layout's padding).
//
// A half vector after a full one (the last 8 channels of 24 or 40, s28) runs with it: 3 ymm x
// up to 4 pixels (12 accumulators; per k 2 weight loads, 4 broadcasts and 12 FMAs, the third
// ymm's weights an FMA memory operand, as 16 ymm hold no more). Alone, as 1 ymm x 6 (the 2 x 6
// tile's other half), its 6 FMA chains were latency-bound (the two FMA pipes at 4 cycles need
// 8): the detector's 16 -> 24 channel layer ran at 75 GFLOP/s against 90-95 for full vectors;
// as 1 x 8 the broadcasts, one a FMA, bound it at 78 (a loop of the kernel's shape, one
// thread, against 101-102 for 2 x 6 and for this 3 x 4). A lone half vector (8 channels) runs
// 1 ymm x up to 8.
#include "sgemm_internal.h"
#include <immintrin.h>
#include "transpose8_f32_avx2.h"

#define BA_TARGET __attribute__((target("avx2,fma")))
#define AI inline __attribute__((always_inline))
#define BA_MAX_P 6        // pixels per register tile of a full vector (2 ymm each)
#define BA_HALF_MAX_P 8   // pixels per register tile of a half vector (1 ymm each; 8 pointers in registers)

// Vector v of a tile's channel-vector weights (rows or slices), read per K block through
// mpq_sconv_cv_vector_block.
typedef struct {
    const float *w;
    int kc, nv, v, sliced;
} ba_weights;

// Where a register tile's pixels are: S = 0, pixel p's window at px[p] (the general tiles); S > 0,
// at x + S p (pixel runs, below: S = 16 or 32 floats in a blocked image, 1 or 2 in NCHW planes).
// S is a constant in every instantiation, so each form compiles to its own loop.
#define BA_PIXEL(px, x, S, p) ((S) ? (x) + (S) * (p) : (px)[p])

// acc[p] (lanes 0-7) and acc[BA_MAX_P + p] (lanes 8-15, H = 2) = the chain over all k of
// w(k, lane) * x(p, k), H halves x P pixels (P <= BA_MAX_P for H = 2, BA_HALF_MAX_P for H = 1).
static BA_TARGET AI void sums(const ba_weights *b, const float *const *px, const float *x, const int32_t *offsets, __m256 *acc,
                              const int H, const int P, const int S) {
    _Pragma("unroll") for (int p = 0; p < P; p++) {
        acc[p] = _mm256_setzero_ps();
        if (H > 1) acc[BA_MAX_P + p] = _mm256_setzero_ps();
    }
    for (int k0 = 0; k0 < b->kc; k0 += MPQ_SCONV_CV_KC) {
        const int k1 = b->kc - k0 < MPQ_SCONV_CV_KC ? b->kc : k0 + MPQ_SCONV_CV_KC;
        size_t stride;
        const float *wk = mpq_sconv_cv_vector_block(b->w, b->kc, b->nv, b->v, k0, b->sliced, &stride);
        for (int k = k0; k < k1; k++, wk += stride) {
            const ptrdiff_t o = offsets[k];
            const __m256 w0 = _mm256_loadu_ps(wk);
            const __m256 w1 = H > 1 ? _mm256_loadu_ps(wk + 8) : w0;
            _Pragma("unroll") for (int p = 0; p < P; p++) {
                const __m256 xb = _mm256_broadcast_ss(BA_PIXEL(px, x, S, p) + o);
                acc[p] = _mm256_fmadd_ps(w0, xb, acc[p]);
                if (H > 1) acc[BA_MAX_P + p] = _mm256_fmadd_ps(w1, xb, acc[BA_MAX_P + p]);
            }
        }
    }
}

// Bias (where not 0, NaN included) and clamp on 8 channels' sums, as finish8 does; lanes at or
// past `live` zeroed; stored to y + 16 p.
static BA_TARGET AI void finish_half(__m256 *acc, float *y, int live, const float *bias, const mpq_sgemm_tile_epilogue *ep,
                                     const int P) {
    const __m256i keep = mpq_first_lanes8(live);
    if (ep && bias) {
        const __m256 bv = _mm256_maskload_ps(bias, keep);
        const __m256 nz = _mm256_cmp_ps(bv, _mm256_setzero_ps(), _CMP_NEQ_UQ);
        _Pragma("unroll") for (int p = 0; p < P; p++) acc[p] = _mm256_blendv_ps(acc[p], _mm256_add_ps(acc[p], bv), nz);
    }
    if (ep && ep->clamp) {
        const __m256 lo = _mm256_set1_ps(ep->lo), hi = _mm256_set1_ps(ep->hi);
        _Pragma("unroll") for (int p = 0; p < P; p++) acc[p] = _mm256_min_ps(hi, _mm256_max_ps(lo, acc[p]));
    }
    if (live < 8) {
        const __m256 m = _mm256_castsi256_ps(keep);
        _Pragma("unroll") for (int p = 0; p < P; p++) acc[p] = _mm256_and_ps(acc[p], m);
    }
    _Pragma("unroll") for (int p = 0; p < P; p++) _mm256_storeu_ps(y + 16 * p, acc[p]);
}

// acc = fmadd(*w, x, acc) with w an FMA memory operand: the pair tile's 16th ymm (the
// compiler otherwise keeps the third weights in a register and spills an accumulator).
static BA_TARGET AI __m256 fmadd_mem(const float *w, __m256 x, __m256 acc) {
    __asm__("vfmadd231ps %[w], %[x], %[acc]" : [acc] "+x"(acc) : [x] "x"(x), [w] "m"(*(const __m256_u *)w));
    return acc;
}

// Full vector b0 and half vector b1 (its next) x P <= 4 pixels: acc[p] and acc[4 + p] b0's
// halves, acc[8 + p] b1's first half; each lane's chain as sums() runs it.
static BA_TARGET AI void pair_sums(const ba_weights *b0, const ba_weights *b1, const float *const *px, const float *x,
                                   const int32_t *offsets, __m256 *acc, const int P, const int S) {
    _Pragma("unroll") for (int i = 0; i < 12; i++) acc[i] = _mm256_setzero_ps();
    for (int k0 = 0; k0 < b0->kc; k0 += MPQ_SCONV_CV_KC) {
        const int k1 = b0->kc - k0 < MPQ_SCONV_CV_KC ? b0->kc : k0 + MPQ_SCONV_CV_KC;
        size_t s0, s1;
        const float *w0k = mpq_sconv_cv_vector_block(b0->w, b0->kc, b0->nv, b0->v, k0, b0->sliced, &s0);
        const float *w1k = mpq_sconv_cv_vector_block(b1->w, b1->kc, b1->nv, b1->v, k0, b1->sliced, &s1);
        // Pointers in locals and the k loop on a pointer: 16 general registers hold them all
        // (indexed, the compiler reloaded px[1..3] every k).
        const float *x0 = BA_PIXEL(px, x, S, 0), *x1 = P > 1 ? BA_PIXEL(px, x, S, 1) : x0;
        const float *x2 = P > 2 ? BA_PIXEL(px, x, S, 2) : x0, *x3 = P > 3 ? BA_PIXEL(px, x, S, 3) : x0;
        for (const int32_t *ok = offsets + k0, *oe = offsets + k1; ok < oe; ok++, w0k += s0, w1k += s1) {
            const ptrdiff_t o = *ok;
            const __m256 w0 = _mm256_loadu_ps(w0k), w1 = _mm256_loadu_ps(w0k + 8);
            _Pragma("unroll") for (int p = 0; p < P; p++) {
                const __m256 xb = _mm256_broadcast_ss((S ? x0 + S * p : p == 0 ? x0 : p == 1 ? x1 : p == 2 ? x2 : x3) + o);
                acc[p] = _mm256_fmadd_ps(w0, xb, acc[p]);
                acc[4 + p] = _mm256_fmadd_ps(w1, xb, acc[4 + p]);
                acc[8 + p] = fmadd_mem(w1k, xb, acc[8 + p]);
            }
        }
    }
}

// Vector v (full) and v + 1 (`live1` <= 8 channels below M) x P <= 4 pixels, stored at y and
// y + vstride.
static BA_TARGET AI void pair_tile(const ba_weights *b0, const ba_weights *b1, const float *const *px, const float *x,
                                   const int32_t *offsets, float *y, size_t vstride, int live1, const float *bias,
                                   const mpq_sgemm_tile_epilogue *ep, const int P, const int S) {
    __m256 acc[12];
    pair_sums(b0, b1, px, x, offsets, acc, P, S);
    finish_half(acc, y, 8, bias, ep, P);
    finish_half(acc + 4, y + 8, 8, bias ? bias + 8 : NULL, ep, P);
    float *y1 = y + vstride;
    finish_half(acc + 8, y1, live1, bias ? bias + 16 : NULL, ep, P);
    const __m256 zero = _mm256_setzero_ps();
    _Pragma("unroll") for (int p = 0; p < P; p++) _mm256_storeu_ps(y1 + 16 * p + 8, zero);
}

typedef void (*pair_tile_fn)(const ba_weights *, const ba_weights *, const float *const *, const int32_t *, float *, size_t,
                             int, const float *, const mpq_sgemm_tile_epilogue *);
#define BA_PAIR_FN(P)                                                                                               \
    static BA_TARGET void pair_tile_##P(const ba_weights *b0, const ba_weights *b1, const float *const *px,            \
                                        const int32_t *offsets, float *y, size_t vstride, int live1, const float *bias, \
                                        const mpq_sgemm_tile_epilogue *ep) {                                        \
        pair_tile(b0, b1, px, NULL, offsets, y, vstride, live1, bias, ep, P, 0);                                    \
    }
BA_PAIR_FN(1)
BA_PAIR_FN(2)
BA_PAIR_FN(3)
BA_PAIR_FN(4)
#define BA_PAIR_MAX_P 4
static const pair_tile_fn pair_tiles[BA_PAIR_MAX_P] = {pair_tile_1, pair_tile_2, pair_tile_3, pair_tile_4};

// A full vector v (channels 16 v .. 16 v + 15, `live` > 8 of them below M) x P pixels.
static BA_TARGET AI void vector_tile(const ba_weights *b, const float *const *px, const float *x, const int32_t *offsets,
                                     float *y, int live, const float *bias, const mpq_sgemm_tile_epilogue *ep, const int P,
                                     const int S) {
    __m256 acc[2 * BA_MAX_P];
    sums(b, px, x, offsets, acc, 2, P, S);
    finish_half(acc, y, 8, bias, ep, P);
    finish_half(acc + BA_MAX_P, y + 8, live - 8, bias ? bias + 8 : NULL, ep, P);
}

// A half vector (`live` <= 8 channels below M) x P pixels; lanes 8-15 stored as +0.
static BA_TARGET AI void half_tile(const ba_weights *b, const float *const *px, const float *x, const int32_t *offsets,
                                   float *y, int live, const float *bias, const mpq_sgemm_tile_epilogue *ep, const int P,
                                   const int S) {
    __m256 acc[BA_HALF_MAX_P];
    sums(b, px, x, offsets, acc, 1, P, S);
    finish_half(acc, y, live, bias, ep, P);
    const __m256 zero = _mm256_setzero_ps();
    _Pragma("unroll") for (int p = 0; p < P; p++) _mm256_storeu_ps(y + 16 * p + 8, zero);
}

typedef void (*vector_tile_fn)(const ba_weights *, const float *const *, const int32_t *, float *, int, const float *,
                               const mpq_sgemm_tile_epilogue *);
#define BA_FN(KIND, P)                                                                                                \
    static BA_TARGET void KIND##_##P(const ba_weights *b, const float *const *px, const int32_t *offsets, float *y,      \
                                     int live, const float *bias, const mpq_sgemm_tile_epilogue *ep) {                \
        KIND(b, px, NULL, offsets, y, live, bias, ep, P, 0);                                                          \
    }
BA_FN(vector_tile, 1)
BA_FN(vector_tile, 2)
BA_FN(vector_tile, 3)
BA_FN(vector_tile, 4)
BA_FN(vector_tile, 5)
BA_FN(vector_tile, 6)
BA_FN(half_tile, 1)
BA_FN(half_tile, 2)
BA_FN(half_tile, 3)
BA_FN(half_tile, 4)
BA_FN(half_tile, 5)
BA_FN(half_tile, 6)
BA_FN(half_tile, 7)
BA_FN(half_tile, 8)
static const vector_tile_fn vector_tiles[BA_MAX_P] = {vector_tile_1, vector_tile_2, vector_tile_3,
                                                      vector_tile_4, vector_tile_5, vector_tile_6};
static const vector_tile_fn half_tiles[BA_HALF_MAX_P] = {half_tile_1, half_tile_2, half_tile_3, half_tile_4,
                                                         half_tile_5, half_tile_6, half_tile_7, half_tile_8};

// Vector v of the tiles at[0..count), or v and the half vector after it (the block's last) as
// pairs; returns the vectors done (1 or 2). Each tile's pixels in even register tiles: up to 6
// for a full vector, 8 for a lone half vector, 4 for a pair.
static int vector_over_tiles(int kc, const float *w, int nv, int v, int sliced, const mpq_blocked_tile_at *at, int count,
                             float *y, size_t vstride, int rows, const mpq_sgemm_tile_epilogue *ep) {
    const ba_weights b = {w, kc, nv, v, sliced}, b1 = {w, kc, nv, v + 1, sliced};
    const int live = rows - 16 * v < 16 ? rows - 16 * v : 16, half = live <= 8;
    const int pair = v + 2 == nv && mpq_sconv_blocked_ends_in_half(rows);
    const float *bias = ep && ep->bias ? ep->bias + 16 * v : NULL;
    float *yv = y + (size_t)v * vstride;
    const int most = pair ? BA_PAIR_MAX_P : half ? BA_HALF_MAX_P : BA_MAX_P;
    for (int t = 0; t < count; t++) {
        const int np = at[t].np, groups = (np + most - 1) / most;
        const float *px[MPQ_SCONV_BLOCKED_AVX2_MAX_NP];
        for (int p = 0; p < np; p++) px[p] = at[t].x + at[t].pix[p];
        float *yt = yv + at[t].y;
        for (int g = 0, p0 = 0; g < groups; g++) {
            const int p1 = np * (g + 1) / groups, n = p1 - p0;
            if (pair)
                pair_tiles[n - 1](&b, &b1, px + p0, at[t].offsets, yt + 16 * (size_t)p0, vstride, rows - 16 * (v + 1), bias, ep);
            else
                (half ? half_tiles : vector_tiles)[n - 1](&b, px + p0, at[t].offsets, yt + 16 * (size_t)p0, live, bias, ep);
            p0 = p1;
        }
    }
    return pair ? 2 : 1;
}

// Vector-major over the tiles (s28): a vector's weights, K x 64 bytes, are read for every tile
// before the next vector's. Tile-major, each 6-pixel tile streamed all the block's weights:
// resnet_digits' 128-channel 7x7 layers (590 KB of weights, more than this core's L2) from L3
// once per tile, and 32-channel layers' 36 KB through L1 once per tile.
void mpq_sconv_blocked_tiles_avx2(int kc, const float *w, int nv, int sliced, const mpq_blocked_tile_at *at, int count,
                                  float *y, size_t vstride, int rows, const mpq_sgemm_tile_epilogue *ep) {
    for (int v = 0; v < nv;) v += vector_over_tiles(kc, w, nv, v, sliced, at, count, y, vstride, rows, ep);
}

// --- Runs of pixels in a row (s30) ---
//
// The general tiles above take a descriptor per tile (a pointer per pixel) and run one call
// per register tile. Pixels in a run, consecutive output pixels of one row that read the image
// in place (a 1x1 stride-1 Conv's whole chunk; a windowed Conv's interior pixels in row mode;
// a row of an NCHW input's padded planes), sit a fixed `step` floats apart in the input (16 or
// 32 blocked, 1 or 2 in NCHW planes, by the stride across), so a register tile needs one
// pointer, and each vector runs over all the runs in one call. At K = 16-32 (MobileNetV2's 16 -> 96 layer at 112x112, one core) the frame had
// taken 28% of the samples (bk_tile_at, bk_chunk_at, the pointers' set-up) and the layer ran at
// 49 GFLOP/s. Every lane is the same chain (k in order from +0 at x + offsets[k], then the bias
// and the clamp as finish_half): the general tiles' bits.

// The run tiles: the general tiles' bodies with pixels S floats apart (BA_PIXEL), one signature
// for the three kinds (b1 and vstride serve the pair only).
static BA_TARGET AI void run_full(const ba_weights *b, const ba_weights *b1, const float *x, const int32_t *offsets, float *y,
                                  size_t vstride, int live, const float *bias, const mpq_sgemm_tile_epilogue *ep, const int P,
                                  const int S) {
    (void)b1, (void)vstride;
    vector_tile(b, NULL, x, offsets, y, live, bias, ep, P, S);
}
static BA_TARGET AI void run_half(const ba_weights *b, const ba_weights *b1, const float *x, const int32_t *offsets, float *y,
                                  size_t vstride, int live, const float *bias, const mpq_sgemm_tile_epilogue *ep, const int P,
                                  const int S) {
    (void)b1, (void)vstride;
    half_tile(b, NULL, x, offsets, y, live, bias, ep, P, S);
}
static BA_TARGET AI void run_pair(const ba_weights *b, const ba_weights *b1, const float *x, const int32_t *offsets, float *y,
                                  size_t vstride, int live1, const float *bias, const mpq_sgemm_tile_epilogue *ep, const int P,
                                  const int S) {
    pair_tile(b, b1, NULL, x, offsets, y, vstride, live1, bias, ep, P, S);
}

typedef void (*run_fn)(const ba_weights *, const ba_weights *, const float *, const int32_t *, float *, size_t, int, const float *,
                       const mpq_sgemm_tile_epilogue *);
#define BA_RUN_FN(KIND, P, S)                                                                                                    \
    static BA_TARGET void run_##KIND##_##P##_##S(const ba_weights *b, const ba_weights *b1, const float *x, const int32_t *o,   \
                                                 float *y, size_t vstride, int live, const float *bias,                         \
                                                 const mpq_sgemm_tile_epilogue *ep) {                                           \
        run_##KIND(b, b1, x, o, y, vstride, live, bias, ep, P, S);                                                               \
    }
#define BA_RUN_FNS(S)                                                                                                            \
    BA_RUN_FN(full, 1, S) BA_RUN_FN(full, 2, S) BA_RUN_FN(full, 3, S) BA_RUN_FN(full, 4, S) BA_RUN_FN(full, 5, S)               \
    BA_RUN_FN(full, 6, S) BA_RUN_FN(half, 1, S) BA_RUN_FN(half, 2, S) BA_RUN_FN(half, 3, S) BA_RUN_FN(half, 4, S)               \
    BA_RUN_FN(half, 5, S) BA_RUN_FN(half, 6, S) BA_RUN_FN(half, 7, S) BA_RUN_FN(half, 8, S) BA_RUN_FN(pair, 1, S)               \
    BA_RUN_FN(pair, 2, S) BA_RUN_FN(pair, 3, S) BA_RUN_FN(pair, 4, S)                                                           \
    static const run_fn run_fulls_##S[BA_MAX_P] = {run_full_1_##S, run_full_2_##S, run_full_3_##S,                             \
                                                   run_full_4_##S, run_full_5_##S, run_full_6_##S};                            \
    static const run_fn run_halves_##S[BA_HALF_MAX_P] = {run_half_1_##S, run_half_2_##S, run_half_3_##S, run_half_4_##S,       \
                                                         run_half_5_##S, run_half_6_##S, run_half_7_##S, run_half_8_##S};      \
    static const run_fn run_pairs_##S[BA_PAIR_MAX_P] = {run_pair_1_##S, run_pair_2_##S, run_pair_3_##S, run_pair_4_##S};
BA_RUN_FNS(16)  // blocked input, stride 1
BA_RUN_FNS(32)  // blocked input, stride 2
BA_RUN_FNS(1)   // NCHW planes, stride 1
BA_RUN_FNS(2)   // NCHW planes, stride 2

void mpq_sconv_blocked_pixel_runs_avx2(int kc, const float *w, int nv, int sliced, const mpq_blocked_pixel_run *runs, int count,
                                       const int32_t *offsets, int step, size_t vstride, int rows, const mpq_sgemm_tile_epilogue *ep) {
    for (int v = 0; v < nv;) {
        const ba_weights b = {w, kc, nv, v, sliced}, b1 = {w, kc, nv, v + 1, sliced};
        const int live = rows - 16 * v < 16 ? rows - 16 * v : 16, half = live <= 8;
        const int pair = v + 2 == nv && mpq_sconv_blocked_ends_in_half(rows);
        const float *bias = ep && ep->bias ? ep->bias + 16 * v : NULL;
        const int most = pair ? BA_PAIR_MAX_P : half ? BA_HALF_MAX_P : BA_MAX_P;
        const run_fn *fulls = step == 16 ? run_fulls_16 : step == 32 ? run_fulls_32 : step == 1 ? run_fulls_1 : run_fulls_2;
        const run_fn *halves = step == 16 ? run_halves_16 : step == 32 ? run_halves_32 : step == 1 ? run_halves_1 : run_halves_2;
        const run_fn *pairs = step == 16 ? run_pairs_16 : step == 32 ? run_pairs_32 : step == 1 ? run_pairs_1 : run_pairs_2;
        const run_fn *fns = pair ? pairs : half ? halves : fulls;
        for (int r = 0; r < count; r++) {
            const int n = runs[r].n, groups = (n + most - 1) / most;
            float *yv = runs[r].y + (size_t)v * vstride;
            for (int g = 0, p0 = 0; g < groups; g++) {
                const int p1 = (int)((long)n * (g + 1) / groups);
                fns[p1 - p0 - 1](&b, &b1, runs[r].x + (size_t)step * (size_t)p0, offsets, yv + 16 * (size_t)p0, vstride,
                                 pair ? rows - 16 * (v + 1) : live, bias, ep);
                p0 = p1;
            }
        }
        v += pair ? 2 : 1;
    }
}

// The blocked tile's contract (sgemm_internal.h): nv vectors x np pixels (np up to
// MPQ_SCONV_BLOCKED_AVX2_MAX_NP), y[v * vstride + 16 p + lane]: one tile of the above.
static void blocked_tile(int kc, const float *w, int nv, const float *x, const int32_t *offsets, const int32_t *pix, int np,
                         float *y, size_t vstride, int rows, const mpq_sgemm_tile_epilogue *ep, int sliced) {
    mpq_blocked_tile_at at = {x, offsets, {0}, np, 0};
    for (int p = 0; p < np; p++) at.pix[p] = pix[p];
    mpq_sconv_blocked_tiles_avx2(kc, w, nv, sliced, &at, 1, y, vstride, rows, ep);
}

void mpq_sconv_blocked_tile_avx2(int kc, const float *w, int nv, const float *x, const int32_t *offsets, const int32_t *pix,
                                 int np, float *y, size_t vstride, int rows, const mpq_sgemm_tile_epilogue *ep) {
    blocked_tile(kc, w, nv, x, offsets, pix, np, y, vstride, rows, ep, 0);
}

void mpq_sconv_blocked_tile_avx2_sliced(int kc, const float *w, int nv, const float *x, const int32_t *offsets,
                                        const int32_t *pix, int np, float *y, size_t vstride, int rows,
                                        const mpq_sgemm_tile_epilogue *ep) {
    blocked_tile(kc, w, nv, x, offsets, pix, np, y, vstride, rows, ep, 1);
}

// One image [C][hw] -> [ceil(C / 16)][hw][16], lanes past C zero: per 8 channels x 8 pixels one
// register transpose (loads masked at the plane's end), stored as 8 half vectors.
BA_TARGET void mpq_reorder_to_blocked_f32_avx2(const float *x, int channels, size_t hw, float *y) {
    for (int cb = 0; cb < (channels + 15) / 16; cb++)
        for (int h = 0; h < 2; h++) {
            const int c0 = 16 * cb + 8 * h, nc = channels - c0 < 8 ? channels - c0 : 8;
            float *yc = y + (size_t)16 * cb * hw + 8 * h;
            if (nc <= 0) {
                for (size_t p = 0; p < hw; p++) _mm256_storeu_ps(yc + 16 * p, _mm256_setzero_ps());
                continue;
            }
            const float *xc = x + (size_t)c0 * hw;
            for (size_t p = 0; p < hw; p += 8) {
                const int np = hw - p < 8 ? (int)(hw - p) : 8;
                const __m256i m = mpq_first_lanes8(np);
                __m256 r[8];
                _Pragma("unroll") for (int i = 0; i < 8; i++)
                    r[i] = i < nc ? (np == 8 ? _mm256_loadu_ps(xc + (size_t)i * hw + p) : _mm256_maskload_ps(xc + (size_t)i * hw + p, m))
                                  : _mm256_setzero_ps();
                mpq_transpose8_f32(r);
                for (int i = 0; i < np; i++) _mm256_storeu_ps(yc + (p + (size_t)i) * 16, r[i]);
            }
        }
}

// One image [ceil(C / 16)][hw][16] -> [C][hw] (lanes past C dropped).
BA_TARGET void mpq_reorder_from_blocked_f32_avx2(const float *x, int channels, size_t hw, float *y) {
    for (int cb = 0; cb < (channels + 15) / 16; cb++)
        for (int h = 0; h < 2; h++) {
            const int c0 = 16 * cb + 8 * h, nc = channels - c0 < 8 ? channels - c0 : 8;
            if (nc <= 0) continue;
            const float *xc = x + (size_t)16 * cb * hw + 8 * h;
            float *yc = y + (size_t)c0 * hw;
            for (size_t p = 0; p < hw; p += 8) {
                const int np = hw - p < 8 ? (int)(hw - p) : 8;
                __m256 r[8];
                _Pragma("unroll") for (int i = 0; i < 8; i++)
                    r[i] = i < np ? _mm256_loadu_ps(xc + (p + (size_t)i) * 16) : _mm256_setzero_ps();
                mpq_transpose8_f32(r);
                for (int i = 0; i < nc; i++) mpq_store_first8(yc + (size_t)i * hw + p, r[i], np);
            }
        }
}

// Border tiles' patch (sconv_blocked.c): as mpq_sconv_blocked_patch_avx512, 2 ymm a vector.
BA_TARGET void mpq_sconv_blocked_patch_avx2(const float *x, int cbs, int H, int W, int ih0, int iw0, int ph, int pw, int pwc,
                                            float *d) {
    const __m256 zero = _mm256_setzero_ps();
    for (int cb = 0; cb < cbs; cb++)
        for (int r = 0; r < ph; r++) {
            const int ih = ih0 + r;
            float *dr = d + ((size_t)cb * ph + r) * (size_t)pwc * 16;
            if (ih < 0 || ih >= H) {
                for (int q = 0; q < pw; q++) {
                    _mm256_storeu_ps(dr + 16 * q, zero);
                    _mm256_storeu_ps(dr + 16 * q + 8, zero);
                }
                continue;
            }
            const float *xr = x + (((size_t)cb * H + ih) * (size_t)W) * 16;
            for (int q = 0; q < pw; q++) {
                const int iw = iw0 + q, in = iw >= 0 && iw < W;
                _mm256_storeu_ps(dr + 16 * q, in ? _mm256_loadu_ps(xr + (size_t)iw * 16) : zero);
                _mm256_storeu_ps(dr + 16 * q + 8, in ? _mm256_loadu_ps(xr + (size_t)iw * 16 + 8) : zero);
            }
        }
}
