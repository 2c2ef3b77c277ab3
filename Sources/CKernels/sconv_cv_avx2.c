// The channel-vector FP32 Conv (sconv_cv.c, docs/fp32-gemm.md "Channel-vector tiles on AVX2";
// s21) on AVX2 + FMA, a whole part at a time: the driver's part is up to 64 output channels
// (4 vectors of 16; 8 for planes of 1-3 pixels) x n output pixels. The AVX-512 tile holds 4
// vectors x 6 pixels in 24 zmm; with 16 ymm a vector (2 ymm) x up to 6 pixels is what fits
// (12 accumulators, per k 2 weight loads, up to 6 broadcasts, 12 FMAs). Run over the whole of
// K per few pixels, that streamed each vector's weights once per 6 pixels (9.4 MB per pass
// for ResNet-18's 512-channel 7x7 layers), so here K goes in blocks of CV2_KC: one vector's
// weights for a block are contiguous (8 KiB, in L1; read in place from weights packed
// MPQ_SCONV_CV_SLICED, the AVX2 host's layout since s24, or copied out of rows) and used by
// every pixel chunk of the part, the chunks' partial sums kept in a thread buffer between blocks. Floats are stored
// and reloaded exactly, so every output is still fmadd(w, x, acc) in k order from +0 on the
// same values: the AVX-512 tile's and the reference's bits. After the last block: bias where
// it is not 0, the clamp (max(lo, v) then min(hi, v): NaN and -0 kept, as the other tiles), an
// 8x8 transpose per 8 channels, and the chunk's consecutive pixels stored per channel (NCHW).
//
// Why on AVX2: the direct path puts pixels in the lanes, so a 7x7 plane computes 64 lanes for
// 49 pixels and strided or padded planes carry junk columns; ResNet-18's 7x7 and stride-2
// layers ran at 0.63-0.78x of ORT's one-thread rate there (benchmarks/README.md, s21).
#include "sgemm_internal.h"
#include <immintrin.h>
#include "transpose8_f32_avx2.h"
#include <stdlib.h>

#define CV2_KC MPQ_SCONV_CV_KC  // k per block in the part kernel (the sliced layout's)

#define CV2_TARGET __attribute__((target("avx2,fma")))
#define AI inline __attribute__((always_inline))


// acc[h][p] += w(k) * x(p, k) for k in [k0, k1): the 16 channels whose weights are
// w[k * wstride + 0..15] (lanes 8h..8h+7 in acc[h]) x P pixels at px[p] + offsets[k].
static CV2_TARGET AI void accumulate(int k0, int k1, const float *w, size_t wstride, const float *const *px,
                                     const int32_t *offsets, __m256 acc[2][6], const int P) {
    w += (size_t)k0 * wstride;
    for (int k = k0; k < k1; k++, w += wstride) {
        const ptrdiff_t o = offsets[k];
        const __m256 w0 = _mm256_loadu_ps(w), w1 = _mm256_loadu_ps(w + 8);
        _Pragma("unroll") for (int p = 0; p < P; p++) {
            const __m256 xb = _mm256_broadcast_ss(px[p] + o);
            acc[0][p] = _mm256_fmadd_ps(w0, xb, acc[0][p]);
            acc[1][p] = _mm256_fmadd_ps(w1, xb, acc[1][p]);
        }
    }
}

// The epilogue on 8 channels' finished sums (acc[p]: pixel p, channel c in lane c) and their
// store to channel rows [0, rows) of y (rows <= 8), P consecutive pixels per row: bias where it
// is not 0 (NaN included, as mpq_conv_epilogue_f32), the clamp (max(lo, v) then min(hi, v): NaN
// and -0 kept, as the other tiles), an 8x8 transpose, plain stores.
static CV2_TARGET AI void finish8(__m256 *acc, float *y, size_t plane, int rows, const float *bias,
                                  const mpq_sgemm_tile_epilogue *ep, const int P) {
    if (ep && bias) {
        const __m256 b = _mm256_maskload_ps(bias, mpq_first_lanes8(rows));
        const __m256 nz = _mm256_cmp_ps(b, _mm256_setzero_ps(), _CMP_NEQ_UQ);
        _Pragma("unroll") for (int p = 0; p < P; p++) acc[p] = _mm256_blendv_ps(acc[p], _mm256_add_ps(acc[p], b), nz);
    }
    if (ep && ep->clamp) {
        const __m256 lo = _mm256_set1_ps(ep->lo), hi = _mm256_set1_ps(ep->hi);
        _Pragma("unroll") for (int p = 0; p < P; p++) acc[p] = _mm256_min_ps(hi, _mm256_max_ps(lo, acc[p]));
    }
    __m256 t[8];
    _Pragma("unroll") for (int p = 0; p < 8; p++) t[p] = p < P ? acc[p] : _mm256_setzero_ps();
    mpq_transpose8_f32(t);
    for (int c = 0; c < rows; c++) mpq_store_first8(y + (size_t)c * plane, t[c], P);
}

// The epilogue and store of a 16-channel vector's sums to channel rows [0, rows) (rows <= 16).
static CV2_TARGET AI void finish(__m256 acc[2][6], float *y, size_t plane, int rows, const float *bias,
                                 const mpq_sgemm_tile_epilogue *ep, const int P) {
    _Pragma("unroll") for (int h = 0; h < 2; h++) {
        const int r = rows - 8 * h;
        if (r <= 0) break;
        finish8(acc[h], y + (size_t)(8 * h) * plane, plane, r < 8 ? r : 8, bias ? bias + 8 * h : NULL, ep, P);
    }
}

// One K block [k0, k1) of a pixel chunk in the part kernel below: the sums so far come from
// `partial` ([P][16]; +0 for the first block) and go back there, or, after the last block,
// through the epilogue to y. Floats stored and reloaded exactly, so each output is still the
// one FMA chain in k order from +0.
static CV2_TARGET AI void chunk_block(int k0, int k1, int kc, const float *w, size_t wstride, const float *const *px,
                                      const int32_t *offsets, float *partial, float *y, size_t plane, int rows,
                                      const float *bias, const mpq_sgemm_tile_epilogue *ep, const int P) {
    __m256 acc[2][6];
    _Pragma("unroll") for (int p = 0; p < P; p++) {
        acc[0][p] = k0 ? _mm256_loadu_ps(partial + 16 * p) : _mm256_setzero_ps();
        acc[1][p] = k0 ? _mm256_loadu_ps(partial + 16 * p + 8) : _mm256_setzero_ps();
    }
    accumulate(k0, k1, w, wstride, px, offsets, acc, P);
    if (k1 < kc) {
        _Pragma("unroll") for (int p = 0; p < P; p++) {
            _mm256_storeu_ps(partial + 16 * p, acc[0][p]);
            _mm256_storeu_ps(partial + 16 * p + 8, acc[1][p]);
        }
        return;
    }
    finish(acc, y, plane, rows, bias, ep, P);
}

#define CHUNK(P)                                                                                                      \
    static CV2_TARGET void chunk_##P(int k0, int k1, int kc, const float *w, size_t wstride, const float *const *px,   \
                                     const int32_t *offsets, float *partial, float *y, size_t plane, int rows,        \
                                     const float *bias, const mpq_sgemm_tile_epilogue *ep) {                          \
        chunk_block(k0, k1, kc, w, wstride, px, offsets, partial, y, plane, rows, bias, ep, P);                        \
    }
CHUNK(1)
CHUNK(2)
CHUNK(3)
CHUNK(4)
CHUNK(5)
CHUNK(6)
typedef void (*chunk_fn)(int, int, int, const float *, size_t, const float *const *, const int32_t *, float *, float *,
                         size_t, int, const float *, const mpq_sgemm_tile_epilogue *);
static const chunk_fn chunks_by_p[6] = {chunk_1, chunk_2, chunk_3, chunk_4, chunk_5, chunk_6};

// A part whose channels end 1-8 past a multiple of 16 (the detector's 24-channel layers; M =
// 40, 56, ...): its last full vector and the 1-8 live rows after it as one 24-channel tile, 3
// ymm x up to 3 pixels (9 accumulators; per k 3 weight loads, up to 3 broadcasts, 9 FMAs).
// Alone, the last rows took a whole 16-channel vector, half its FMAs wasted (the detector's
// 16->24 3x3/2 ran at 0.99x of the direct path; now 0.87x). Tried and slower (s22): 8
// channels x 12 pixels (clang hoisted the 12 broadcasts and spilled them) and 3 ymm x 4
// pixels (16 registers, one accumulator spilled: 1.4x the direct path). Same FMA chain per
// output, so the same bits. `w` and `w8`: the two vectors' slices; `partial`: [P][24].
static CV2_TARGET AI void tri_block(int k0, int k1, int kc, const float *w, const float *w8, const float *const *px,
                                    const int32_t *offsets, float *partial, float *y, size_t plane, int rows,
                                    const float *bias, const mpq_sgemm_tile_epilogue *ep, const int P) {
    __m256 acc[3][3];
    _Pragma("unroll") for (int p = 0; p < P; p++) _Pragma("unroll") for (int h = 0; h < 3; h++)
        acc[h][p] = k0 ? _mm256_loadu_ps(partial + 24 * p + 8 * h) : _mm256_setzero_ps();
    const float *wk = w + (size_t)k0 * 16, *wk8 = w8 + (size_t)k0 * 16;
    for (int k = k0; k < k1; k++, wk += 16, wk8 += 16) {
        const ptrdiff_t o = offsets[k];
        const __m256 a = _mm256_loadu_ps(wk), b = _mm256_loadu_ps(wk + 8), c = _mm256_loadu_ps(wk8);
        _Pragma("unroll") for (int p = 0; p < P; p++) {
            const __m256 xb = _mm256_broadcast_ss(px[p] + o);
            acc[0][p] = _mm256_fmadd_ps(a, xb, acc[0][p]);
            acc[1][p] = _mm256_fmadd_ps(b, xb, acc[1][p]);
            acc[2][p] = _mm256_fmadd_ps(c, xb, acc[2][p]);
        }
    }
    if (k1 < kc) {
        _Pragma("unroll") for (int p = 0; p < P; p++) _Pragma("unroll") for (int h = 0; h < 3; h++)
            _mm256_storeu_ps(partial + 24 * p + 8 * h, acc[h][p]);
        return;
    }
    _Pragma("unroll") for (int h = 0; h < 3; h++) {
        const int r = rows - 8 * h < 8 ? rows - 8 * h : 8;
        finish8(acc[h], y + (size_t)(8 * h) * plane, plane, r, bias ? bias + 8 * h : NULL, ep, P);
    }
}

#define TRI(P)                                                                                                        \
    static CV2_TARGET void tri_##P(int k0, int k1, int kc, const float *w, const float *w8, const float *const *px,   \
                                   const int32_t *offsets, float *partial, float *y, size_t plane, int rows,          \
                                   const float *bias, const mpq_sgemm_tile_epilogue *ep) {                            \
        tri_block(k0, k1, kc, w, w8, px, offsets, partial, y, plane, rows, bias, ep, P);                              \
    }
TRI(1)
TRI(2)
TRI(3)
typedef void (*tri_fn)(int, int, int, const float *, const float *, const float *const *, const int32_t *, float *,
                       float *, size_t, int, const float *, const mpq_sgemm_tile_epilogue *);
static const tri_fn tris_by_p[3] = {tri_1, tri_2, tri_3};

// The vectors' weights for k in [k0, k1), contiguous per vector: slices + v * CV2_KC * 16 holds
// [k - k0][16]. Read row by row (each packed row holds every vector of the block), so the
// copy streams the block's weights in order: copied vector by vector, each read one line of
// every 256-byte row, and ResNet-18's 512-channel 7x7 layer, whose 9.4 MB of weights come from
// L3 or memory, ran at 0.7x of its 28x28 layers' rate.
static CV2_TARGET void copy_slices(const float *w, int kc, int nv, int k0, int k1, float *slices) {
    const int na = nv < 4 ? nv : 4, nb = nv - na;
    for (int k = k0; k < k1; k++) {
        const float *row = w + (size_t)k * 16 * (size_t)na;
        for (int v = 0; v < na; v++) {
            float *d = slices + ((size_t)v * CV2_KC + (size_t)(k - k0)) * 16;
            _mm256_storeu_ps(d, _mm256_loadu_ps(row + 16 * v));
            _mm256_storeu_ps(d + 8, _mm256_loadu_ps(row + 16 * v + 8));
        }
        const float *row1 = w + (size_t)kc * 64 + (size_t)k * 16 * (size_t)nb;
        for (int v = 0; v < nb; v++) {
            float *d = slices + ((size_t)(na + v) * CV2_KC + (size_t)(k - k0)) * 16;
            _mm256_storeu_ps(d, _mm256_loadu_ps(row1 + 16 * v));
            _mm256_storeu_ps(d + 8, _mm256_loadu_ps(row1 + 16 * v + 8));
        }
    }
}

// Vector v's slice [kb][16] of the K block from k0 in sliced weights.
static inline const float *sliced_slice(const float *w, int kc, int nv, int k0, int v) {
    size_t stride;
    return mpq_sconv_cv_vector_block(w, kc, nv, v, k0, 1, &stride);
}

CV2_TARGET int mpq_sconv_cv_part_avx2(int kc, const float *w, int nv, int sliced, const float *x, const int32_t *offsets,
                                      const int32_t *pix, int n, float *y, size_t plane, int rows,
                                      const mpq_sgemm_tile_epilogue *ep) {
    const int chunks = (n + 5) / 6, vectors = (rows + 15) / 16 < nv ? (rows + 15) / 16 : nv;
    const size_t per_vector = (size_t)chunks * 6 * 16;  // partial sums of one vector's chunks
    // The thread's buffer, kept between calls.
    static _Thread_local float *buf;
    static _Thread_local size_t cap;
    float *partial = mpq_sconv_grown(&buf, &cap, (size_t)vectors * per_vector + (sliced ? 0 : (size_t)nv * CV2_KC * 16));
    if (!partial) return -1;
    float *slices = partial + (size_t)vectors * per_vector;
    // K blocks of CV2_KC outermost: the block's weights (8 KiB a vector) are read in place
    // (sliced) or copied once (rows) and used by every pixel chunk of the part, instead of
    // streaming the whole of K per chunk.
    for (int k0 = 0; k0 < kc; k0 += CV2_KC) {
        const int k1 = kc - k0 < CV2_KC ? kc : k0 + CV2_KC;
        if (!sliced) copy_slices(w, kc, nv, k0, k1, slices);
        for (int v = 0; v < vectors; v++) {
            const int r = rows - 16 * v;
            const float *slice = sliced ? sliced_slice(w, kc, nv, k0, v) : slices + (size_t)v * CV2_KC * 16;
            const float *bias = ep && ep->bias ? ep->bias + 16 * v : NULL;
            float *yv = y + (size_t)(16 * v) * plane, *pv = partial + (size_t)v * per_vector;
            if (v + 2 == vectors && r - 16 <= 8) {
                // This vector and the next one's <= 8 rows as 24-channel tiles of up to 3 pixels:
                // [3][24] floats a chunk; ceil(n / 3) chunks of 72 fit the two vectors' shares
                // of `partial` (2 ceil(n / 6) chunks of 96).
                const int tris = (n + 2) / 3;
                for (int c = 0, p0 = 0; c < tris; c++) {
                    const int p1 = (int)((long)n * (c + 1) / tris);
                    const float *px[3];
                    for (int p = p0; p < p1; p++) px[p - p0] = x + pix[p];
                    const float *next = sliced ? sliced_slice(w, kc, nv, k0, v + 1) : slice + (size_t)CV2_KC * 16;
                    tris_by_p[p1 - p0 - 1](k0, k1, kc, slice - (size_t)k0 * 16, next - (size_t)k0 * 16,
                                           px, offsets, pv + (size_t)c * 72, yv + p0, plane, r, bias, ep);
                    p0 = p1;
                }
                break;
            }
            for (int c = 0, p0 = 0; c < chunks; c++) {
                const int p1 = (int)((long)n * (c + 1) / chunks);
                const float *px[6];
                for (int p = p0; p < p1; p++) px[p - p0] = x + pix[p];
                chunks_by_p[p1 - p0 - 1](k0, k1, kc, slice - (size_t)k0 * 16, 16, px, offsets, pv + (size_t)c * 6 * 16,
                                         yv + p0, plane, r < 16 ? r : 16, bias, ep);
                p0 = p1;
            }
        }
    }
    return 0;
}
