// AVX2 depthwise INT8 conv with 16 channels in the vector lanes, for small planes (docs/depthwise.md,
// "Channels in the lanes"). depthwise_avx2.c puts 16 output pixels of one channel in a vector:
// on MobileNetV2's 28x28, 14x14 and 7x7 planes its per-channel work (the padded int16 plane,
// the weight pairs, the epilogue constants, rows narrower than a vector) cost more than the
// taps: 960 channels of 7x7 ran at 1.8 GMAC/s on one core, ~1000 cycles for 49 outputs each.
// Here a block of 16 channels is copied once into a zero-padded int16 buffer P[row][col][16]
// (x - za), every tap of an output pixel is then one 16-lane load whatever the stride,
// dilation or padding, and the per-channel values (weights, scales, bias) are vectors set up
// once per block. Taps go two at a time through vpmaddwd on the two taps' values interleaved
// (exact int32 sums, as the reference's: |x - za| <= 255, |w| <= 128); the epilogue is the
// reference's float sequence per lane. Outputs collect as [pixel][16] and are written back to
// the NCHW planes at the end of the block. Blocks split over the kernel pool.
#include "depthwise_padded.h"   // mpq_dw_padded_scratch
#include <immintrin.h>
#include <string.h>

#define AVX2_TARGET __attribute__((target("avx2")))
#define LANES 16
#define MAX_PAIRS 32    // taps <= 64: 3x3, 5x5, 7x7

typedef struct {
    const uint8_t *x;
    const mpq_conv2d_shape *s;
    const int8_t *w;
    const mpq_epilogue *ep;
    float *out;
    uint8_t *out_u8;
    int32_t out_zp;
    int OH, OW, PH, PW, pairs;
    size_t off[2 * MAX_PAIRS];   // tap t's element offset in P from an output's first tap
} lanes_job;

/// P's rows and columns for `s`: what the outputs read, padding included.
static void padded_dims(const mpq_conv2d_shape *s, int OH, int OW, int *PH, int *PW) {
    *PH = (OH - 1) * s->stride_h + (s->kernel_h - 1) * s->dilation_h + 1;
    *PW = (OW - 1) * s->stride_w + (s->kernel_w - 1) * s->dilation_w + 1;
}

size_t mpq_depthwise_lanes_bytes(const mpq_conv2d_shape *s) {
    const int OH = mpq_conv2d_out_h(s), OW = mpq_conv2d_out_w(s);
    if (OH <= 0 || OW <= 0) return 0;
    int PH, PW;
    padded_dims(s, OH, OW, &PH, &PW);
    return (size_t)PH * (size_t)PW * LANES * sizeof(int16_t);
}

// The epilogue's per-lane values for channels [c0, c0 + n): lanes past n get neutral values
// whose outputs are never stored.
typedef struct {
    __m256 s[2], bias[2];
    __m256i bias_i32[2];
} lanes_epilogue;

typedef struct {
    int bias_i32, bias, rounds;
} lanes_flags;

typedef struct {
    __m256 lo, hi, out_scale;
    __m256i zp;
} lanes_consts;

typedef struct {
    const int16_t *P;
    int OH, OW, PW, sh, sw, pairs;
} lanes_plane;

static AVX2_TARGET void lanes_epilogue_setup(const mpq_epilogue *ep, int c0, int n, lanes_epilogue *e) {
    float s[LANES] = {0}, b[LANES] = {0};
    int32_t bi[LANES] = {0};
    // One loop per array, the tests outside: with them inside, clang made each a masked load
    // and a masked store (vmaskmovps, ~12 cycles on Zen 3), 8% of a 7x7 layer's time.
    for (int i = 0; i < n; i++) s[i] = ep->a_scale * ep->b_scale[c0 + i];   // the reference's float product
    if (ep->bias) memcpy(b, ep->bias + c0, (size_t)n * sizeof(float));
    if (ep->bias_i32) memcpy(bi, ep->bias_i32 + c0, (size_t)n * sizeof(int32_t));
    for (int h = 0; h < 2; h++) {
        e->s[h] = _mm256_loadu_ps(s + 8 * h);
        e->bias[h] = _mm256_loadu_ps(b + 8 * h);
        e->bias_i32[h] = _mm256_loadu_si256((const __m256i *)(bi + 8 * h));
    }
}

// mpq_epilogue_scalar's sequence on 8 lanes: + bias_i32 (wrapping), to float, * s, + bias,
// clamp (maxps/minps: the reference's ?: with NaN and -0), round and scale where requantizing.
static inline __attribute__((always_inline)) AVX2_TARGET __m256 lanes_clamped(const lanes_epilogue *e, int h, __m256i acc,
                                                                              __m256 lo, __m256 hi) {
    const __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(acc), e->s[h]);
    return _mm256_min_ps(_mm256_max_ps(v, lo), hi);
}

static inline __attribute__((always_inline)) AVX2_TARGET __m256 lanes_values(lanes_flags f, const lanes_epilogue *e, int h,
                                                                             __m256i acc, __m256 lo, __m256 hi, __m256 out_scale) {
    if (f.bias_i32) acc = _mm256_add_epi32(acc, e->bias_i32[h]);
    __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(acc), e->s[h]);
    if (f.bias) v = _mm256_add_ps(v, e->bias[h]);
    v = _mm256_min_ps(_mm256_max_ps(v, lo), hi);
    if (f.rounds)
        v = _mm256_add_ps(_mm256_mul_ps(_mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), out_scale),
                          _mm256_setzero_ps());
    return v;
}

// Channels [c0, c0 + n) of the block as int16 x - za straight into P: the padding zeroed, then
// the plane read as one row of pixels, 8 at a time: channel c's 8 codes and channel c + 8's in
// the two halves of a vector, an 8 x 8 transpose within each half gives each pixel's 16
// channels in order, stored at the pixel's place between its row's padding. Lanes of absent
// channels (n < 16) are 0. The last pixels (fewer than 8) one by one. (Until s21 the pixels went
// to a [pixel][16] buffer first and were copied into P row by row: a second pass, and for
// MobileNetV2's 96 x 112x112 stride-2 layer 0.8 MB per block where one L2 holds 0.5.)
static AVX2_TARGET void transpose_into_block(const lanes_job *j, int c0, int n, int16_t *P) {
    const mpq_conv2d_shape *s = j->s;
    const int H = s->height, W = s->width, PW = j->PW, pt = s->pad_top, pl = s->pad_left;
    // Input rows and columns that land inside P (padding can exceed what the outputs read).
    const int ih1 = H < j->PH - pt ? H : j->PH - pt;
    const int iw1 = W < PW - pl ? W : PW - pl < 0 ? 0 : PW - pl;
    const size_t row = (size_t)PW * LANES;
    for (int r = 0; r < j->PH; r++) {
        int16_t *prow = P + (size_t)r * row;
        const int ih = r - pt;
        if (ih < 0 || ih >= ih1 || iw1 <= 0) { memset(prow, 0, row * sizeof(int16_t)); continue; }
        if (pl > 0) memset(prow, 0, (size_t)pl * LANES * sizeof(int16_t));
        if (pl + iw1 < PW) memset(prow + (size_t)(pl + iw1) * LANES, 0, (size_t)(PW - pl - iw1) * LANES * sizeof(int16_t));
    }
    if (ih1 <= 0 || iw1 <= 0) return;
    const size_t HW = (size_t)H * (size_t)W, count = (size_t)ih1 * (size_t)W;  // rows past ih1 are not read
    const uint8_t *x = j->x + (size_t)c0 * HW;
    const __m256i za = _mm256_set1_epi16((short)j->ep->a_zero_point), zero = _mm256_setzero_si256();
    int16_t *const first = P + ((size_t)pt * (size_t)PW + (size_t)pl) * LANES;
    size_t p = 0;
    int ih = 0, iw = 0;
    for (; p + 8 <= count; p += 8) {
        __m256i r[8];
        for (int c = 0; c < 8; c++) {
            const __m128i lo = c < n ? _mm_loadl_epi64((const __m128i *)(x + (size_t)c * HW + p)) : _mm_setzero_si128();
            const __m128i hi = c + 8 < n ? _mm_loadl_epi64((const __m128i *)(x + (size_t)(c + 8) * HW + p)) : _mm_setzero_si128();
            __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_cvtepu8_epi16(lo)), _mm_cvtepu8_epi16(hi), 1);
            v = _mm256_sub_epi16(v, za);
            // Absent channels stay 0 (their loads were zeros, x - za is not).
            r[c] = c < n ? (c + 8 < n ? v : _mm256_blend_epi32(v, zero, 0xF0)) : zero;
        }
        // 8 x 8 int16 transpose per 128-bit half: rows = channels, columns = pixels.
        __m256i a0 = _mm256_unpacklo_epi16(r[0], r[1]), a1 = _mm256_unpackhi_epi16(r[0], r[1]);
        __m256i a2 = _mm256_unpacklo_epi16(r[2], r[3]), a3 = _mm256_unpackhi_epi16(r[2], r[3]);
        __m256i a4 = _mm256_unpacklo_epi16(r[4], r[5]), a5 = _mm256_unpackhi_epi16(r[4], r[5]);
        __m256i a6 = _mm256_unpacklo_epi16(r[6], r[7]), a7 = _mm256_unpackhi_epi16(r[6], r[7]);
        __m256i b0 = _mm256_unpacklo_epi32(a0, a2), b1 = _mm256_unpackhi_epi32(a0, a2);
        __m256i b2 = _mm256_unpacklo_epi32(a1, a3), b3 = _mm256_unpackhi_epi32(a1, a3);
        __m256i b4 = _mm256_unpacklo_epi32(a4, a6), b5 = _mm256_unpackhi_epi32(a4, a6);
        __m256i b6 = _mm256_unpacklo_epi32(a5, a7), b7 = _mm256_unpackhi_epi32(a5, a7);
        const __m256i px[8] = {_mm256_unpacklo_epi64(b0, b4), _mm256_unpackhi_epi64(b0, b4), _mm256_unpacklo_epi64(b1, b5),
                               _mm256_unpackhi_epi64(b1, b5), _mm256_unpacklo_epi64(b2, b6), _mm256_unpackhi_epi64(b2, b6),
                               _mm256_unpacklo_epi64(b3, b7), _mm256_unpackhi_epi64(b3, b7)};
        if (iw + 8 <= iw1) {  // all eight in one row, inside P
            int16_t *d = first + ((size_t)ih * (size_t)PW + (size_t)iw) * LANES;
            for (int q = 0; q < 8; q++) _mm256_storeu_si256((__m256i *)(d + (size_t)q * LANES), px[q]);
            if ((iw += 8) == W) iw = 0, ih++;
            continue;
        }
        for (int q = 0; q < 8; q++) {
            if (iw < iw1) _mm256_storeu_si256((__m256i *)(first + ((size_t)ih * (size_t)PW + (size_t)iw) * LANES), px[q]);
            if (++iw == W) iw = 0, ih++;
        }
    }
    for (; p < count; p++) {
        ih = (int)(p / (size_t)W), iw = (int)(p % (size_t)W);
        if (iw >= iw1) continue;
        int16_t *d = first + ((size_t)ih * (size_t)PW + (size_t)iw) * LANES;
        for (int c = 0; c < LANES; c++) d[c] = c < n ? (int16_t)((int32_t)x[(size_t)c * HW + p] - j->ep->a_zero_point) : 0;
    }
}

// The 16 x 16 byte transpose of rows [pixel][16 channels] (T, 16 pixels) into each channel's
// 16 consecutive output codes.
static AVX2_TARGET void transpose_out16(const uint8_t *T, uint8_t *const *dst, int n) {
    __m128i r[16];
    for (int i = 0; i < 16; i++) r[i] = _mm_loadu_si128((const __m128i *)(T + (size_t)i * LANES));
    for (int round = 0; round < 4; round++) {
        __m128i t[16];
        for (int i = 0; i < 8; i++) {
            t[2 * i] = _mm_unpacklo_epi8(r[i], r[i + 8]);
            t[2 * i + 1] = _mm_unpackhi_epi8(r[i], r[i + 8]);
        }
        for (int i = 0; i < 16; i++) r[i] = t[i];
    }
    for (int c = 0; c < n; c++) _mm_storeu_si128((__m128i *)dst[c], r[c]);
}

// The int32 sums of one output pixel's 16 channels in the unpacks' lane order: sa holds channels
// 0-3 and 8-11, se 4-7 and 12-15.
static inline __attribute__((always_inline)) AVX2_TARGET void pixel_sums_split(const int16_t *b, const size_t *off, const __m256i *wlo,
                                                                               const __m256i *whi, int pairs, __m256i *sa, __m256i *se) {
    __m256i a = _mm256_setzero_si256(), e = _mm256_setzero_si256();
    for (int p = 0; p < pairs; p++) {
        const __m256i v0 = _mm256_loadu_si256((const __m256i *)(b + off[2 * p]));
        const __m256i v1 = _mm256_loadu_si256((const __m256i *)(b + off[2 * p + 1]));
        a = _mm256_add_epi32(a, _mm256_madd_epi16(_mm256_unpacklo_epi16(v0, v1), wlo[p]));
        e = _mm256_add_epi32(e, _mm256_madd_epi16(_mm256_unpackhi_epi16(v0, v1), whi[p]));
    }
    *sa = a;
    *se = e;
}

// The same sums in channel order (a0: 0-7, a1: 8-15).
static inline __attribute__((always_inline)) AVX2_TARGET void pixel_sums(const int16_t *b, const size_t *off, const __m256i *wlo,
                                                                         const __m256i *whi, int pairs, __m256i *a0, __m256i *a1) {
    __m256i sa, se;
    pixel_sums_split(b, off, wlo, whi, pairs, &sa, &se);
    *a0 = _mm256_permute2x128_si256(sa, se, 0x20);
    *a1 = _mm256_permute2x128_si256(sa, se, 0x31);
}

// The block's weight pairs and tap offsets copied into the caller's locals: the pixel loops'
// stores to T are uint8_t, which may alias anything read through a pointer, so they read only
// locals (clang reloaded these after every pixel's store when they were read in place).
static inline __attribute__((always_inline)) AVX2_TARGET void local_taps(int pairs, const __m256i *wlo_in, const __m256i *whi_in,
                                                                         const size_t *off_in, __m256i *wlo, __m256i *whi, size_t *off) {
    for (int p = 0; p < pairs; p++) {
        wlo[p] = wlo_in[p], whi[p] = whi_in[p];
        off[2 * p] = off_in[2 * p], off[2 * p + 1] = off_in[2 * p + 1];
    }
}


// The codes of one pixel's split sums on the split epilogue vectors (index 0: sa's channels,
// 1: se's): int32 bias, * scale, clamp, vcvtps2dq, + zp. packs_epi32(sa, se) puts the
// channels back in order (0-7 in the low lane, 8-15 in the high one).
static inline __attribute__((always_inline)) AVX2_TARGET __m256i codes16(const lanes_epilogue *e, const lanes_consts *k,
                                                                          __m256i sa, __m256i se) {
    const __m256 fa = lanes_clamped(e, 0, _mm256_add_epi32(sa, e->bias_i32[0]), k->lo, k->hi);
    const __m256 fe = lanes_clamped(e, 1, _mm256_add_epi32(se, e->bias_i32[1]), k->lo, k->hi);
    return _mm256_packs_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(fa), k->zp), _mm256_add_epi32(_mm256_cvtps_epi32(fe), k->zp));
}

// The runtime's codes epilogue (int32 bias, out_scale 1): the sums kept in the unpacks' lane
// order (the epilogue's vectors permuted to match, once per block), two pixels per step
// sharing one byte pack, one permute and one 32-byte store.
static AVX2_TARGET void pixels_codes_int_bias(const lanes_plane *g_in, const size_t *off_in, const __m256i *wlo_in,
                                              const __m256i *whi_in, const lanes_epilogue *ep_in, const lanes_consts *kp,
                                              uint8_t *T) {
    const lanes_plane g = *g_in;
    const lanes_consts k = *kp;
    lanes_epilogue e;   // [0]: channels 0-3, 8-11; [1]: 4-7, 12-15
    e.s[0] = _mm256_permute2f128_ps(ep_in->s[0], ep_in->s[1], 0x20);
    e.s[1] = _mm256_permute2f128_ps(ep_in->s[0], ep_in->s[1], 0x31);
    e.bias[0] = e.bias[1] = _mm256_setzero_ps();
    e.bias_i32[0] = _mm256_permute2x128_si256(ep_in->bias_i32[0], ep_in->bias_i32[1], 0x20);
    e.bias_i32[1] = _mm256_permute2x128_si256(ep_in->bias_i32[0], ep_in->bias_i32[1], 0x31);
    __m256i wlo[MAX_PAIRS], whi[MAX_PAIRS];
    size_t off[2 * MAX_PAIRS];
    local_taps(g.pairs, wlo_in, whi_in, off_in, wlo, whi, off);
    for (int oh = 0; oh < g.OH; oh++) {
        const int16_t *row = g.P + (size_t)oh * g.sh * g.PW * LANES;
        uint8_t *t = T + (size_t)oh * g.OW * LANES;
        int ow = 0;
        for (; ow + 2 <= g.OW; ow += 2) {
            const int16_t *b0 = row + (size_t)ow * g.sw * LANES, *b1 = b0 + (size_t)g.sw * LANES;
            __m256i sa0, se0, sa1, se1;
            if (g.pairs == 5) {   // 3x3: offsets and weights in registers
                pixel_sums_split(b0, off, wlo, whi, 5, &sa0, &se0);
                pixel_sums_split(b1, off, wlo, whi, 5, &sa1, &se1);
            } else {
                pixel_sums_split(b0, off, wlo, whi, g.pairs, &sa0, &se0);
                pixel_sums_split(b1, off, wlo, whi, g.pairs, &sa1, &se1);
            }
            // Two pixels' int16 codes: [p0 0-7 | p0 8-15] and [p1 0-7 | p1 8-15]; saturated to
            // bytes [p0 0-7, p1 0-7 | p0 8-15, p1 8-15], then qwords 0, 2, 1, 3.
            const __m256i w0 = codes16(&e, &k, sa0, se0), w1 = codes16(&e, &k, sa1, se1);
            _mm256_storeu_si256((__m256i *)(t + (size_t)ow * LANES), _mm256_permute4x64_epi64(_mm256_packus_epi16(w0, w1), 0xD8));
        }
        if (ow < g.OW) {
            __m256i sa, se;
            pixel_sums_split(row + (size_t)ow * g.sw * LANES, off, wlo, whi, g.pairs, &sa, &se);
            const __m256i w = codes16(&e, &k, sa, se);
            _mm_storeu_si128((__m128i *)(t + (size_t)ow * LANES),
                             _mm256_castsi256_si128(_mm256_permute4x64_epi64(_mm256_packus_epi16(w, w), 0x08)));
        }
    }
}

// The pixels' 16-channel values into T ([pixel][16] codes or floats), any epilogue: its flags
// read once per block.
static AVX2_TARGET void pixels_general(const lanes_plane *g_in, const size_t *off_in, const __m256i *wlo_in,
                                       const __m256i *whi_in, const lanes_epilogue *ep_in, const lanes_consts *kp,
                                       lanes_flags f, int codes, uint8_t *T) {
    // Locals only, as local_taps says: the epilogue's vectors too.
    const lanes_epilogue el = *ep_in;
    const lanes_consts kl = *kp;
    const lanes_epilogue *e = &el;
    const lanes_consts *k = &kl;
    const lanes_plane gl = *g_in;
    const lanes_plane *g = &gl;
    __m256i wlo[MAX_PAIRS], whi[MAX_PAIRS];
    size_t off[2 * MAX_PAIRS];
    local_taps(g->pairs, wlo_in, whi_in, off_in, wlo, whi, off);
    float *Tf = (float *)T;
    for (int oh = 0; oh < g->OH; oh++) {
        const int16_t *row = g->P + (size_t)oh * g->sh * g->PW * LANES;
        for (int ow = 0; ow < g->OW; ow++) {
            const int16_t *b = row + (size_t)ow * g->sw * LANES;
            __m256i a0, a1;
            if (g->pairs == 5) pixel_sums(b, off, wlo, whi, 5, &a0, &a1);   // 3x3: offsets and weights in registers
            else pixel_sums(b, off, wlo, whi, g->pairs, &a0, &a1);
            const size_t px = (size_t)oh * g->OW + (size_t)ow;
            const __m256 f0 = lanes_values(f, e, 0, a0, k->lo, k->hi, k->out_scale);
            const __m256 f1 = lanes_values(f, e, 1, a1, k->lo, k->hi, k->out_scale);
            if (codes) {
                // Rounded, clamped q - zp: exact in int32; + zp lies in [0, 255].
                const __m256i i0 = _mm256_add_epi32(_mm256_cvtps_epi32(f0), k->zp), i1 = _mm256_add_epi32(_mm256_cvtps_epi32(f1), k->zp);
                const __m256i w16 = _mm256_permute4x64_epi64(_mm256_packs_epi32(i0, i1), 0xD8);
                _mm_storeu_si128((__m128i *)(T + px * LANES),
                                 _mm256_castsi256_si128(_mm256_permute4x64_epi64(_mm256_packus_epi16(w16, w16), 0x08)));
            } else {
                _mm256_storeu_ps(Tf + px * LANES, f0);
                _mm256_storeu_ps(Tf + px * LANES + 8, f1);
            }
        }
    }
}

static AVX2_TARGET void run_block(const lanes_job *j, int c0, int16_t *P, uint8_t *T) {
    const mpq_conv2d_shape *s = j->s;
    const mpq_epilogue *ep = j->ep;
    const int C = s->channels, n = C - c0 < LANES ? C - c0 : LANES, taps = s->kernel_h * s->kernel_w;
    const int OH = j->OH, OW = j->OW, PW = j->PW, pairs = j->pairs;
    transpose_into_block(j, c0, n, P);
    // Weight pairs in the unpacks' lane order: unpacklo_epi16(v_t, v_t1) holds channels 0-3
    // (low 128 bits) and 8-11 (high) as (tap t, tap t+1) pairs, unpackhi 4-7 and 12-15.
    // The block's weights first as [channel][tap] int16, zero past n channels and past the
    // taps (an odd last tap's pair), then each pair's lanes without tests (the per-element
    // tests made this setup cost more than a 7x7 plane's taps).
    int16_t wt[LANES][2 * MAX_PAIRS] = {{0}};
    for (int c = 0; c < n; c++)
        for (int t = 0; t < taps; t++) wt[c][t] = j->w[(size_t)(c0 + c) * taps + t];
    __m256i wlo[MAX_PAIRS], whi[MAX_PAIRS];
    for (int p = 0; p < pairs; p++) {
        int16_t lo[LANES], hi[LANES];
        for (int i = 0; i < 8; i++) {
            const int cl = (i < 4 ? i : i + 4), ch = cl + 4;
            lo[2 * i] = wt[cl][2 * p], lo[2 * i + 1] = wt[cl][2 * p + 1];
            hi[2 * i] = wt[ch][2 * p], hi[2 * i + 1] = wt[ch][2 * p + 1];
        }
        wlo[p] = _mm256_loadu_si256((const __m256i *)lo);
        whi[p] = _mm256_loadu_si256((const __m256i *)hi);
    }
    lanes_epilogue e;
    lanes_epilogue_setup(ep, c0, n, &e);
    const lanes_flags f = {ep->bias_i32 != NULL, ep->bias != NULL, ep->out_scale > 0};
    const lanes_consts k = {_mm256_set1_ps(ep->clamp_lo), _mm256_set1_ps(ep->clamp_hi), _mm256_set1_ps(ep->out_scale),
                            _mm256_set1_epi32(j->out_zp)};
    const lanes_plane g = {P, OH, OW, PW, s->stride_h, s->stride_w, pairs};
    // Codes of the runtime's requantizing epilogue (int32 bias, no float bias, out_scale 1):
    // nearbyint(v) * 1 + 0 is an integer-valued float whose vcvtps2dq is nearbyint(v)'s, so
    // vcvtps2dq of the clamped v (round half to even, MXCSR's default) is the same int32.
    if (j->out_u8 && f.bias_i32 && !f.bias && ep->out_scale == 1.0f) pixels_codes_int_bias(&g, j->off, wlo, whi, &e, &k, T);
    else pixels_general(&g, j->off, wlo, whi, &e, &k, f, j->out_u8 != NULL, T);
    // [pixel][16] back to the channels' planes: codes 16 pixels at a time through a byte
    // transpose, the rest (and floats) one by one.
    const size_t OP = (size_t)OH * (size_t)OW;
    const float *Tf = (const float *)T;
    size_t px0 = 0;
    if (j->out_u8) {
        uint8_t *dst[LANES];
        for (; px0 + 16 <= OP; px0 += 16) {
            for (int c = 0; c < n; c++) dst[c] = j->out_u8 + (size_t)(c0 + c) * OP + px0;
            transpose_out16(T + px0 * LANES, dst, n);
        }
    }
    for (int c = 0; c < n; c++) {
        if (j->out_u8) {
            uint8_t *o = j->out_u8 + (size_t)(c0 + c) * OP;
            for (size_t px = px0; px < OP; px++) o[px] = T[px * LANES + (size_t)c];
        } else {
            float *o = j->out + (size_t)(c0 + c) * OP;
            for (size_t px = 0; px < OP; px++) o[px] = Tf[px * LANES + (size_t)c];
        }
    }
}

static void block_unit(void *arg, int u, int task) {
    (void)task;
    const lanes_job *j = (const lanes_job *)arg;
    const size_t pbytes = ((size_t)j->PH * (size_t)j->PW * LANES * sizeof(int16_t) + 63) / 64 * 64;
    const size_t tbytes = (size_t)j->OH * (size_t)j->OW * LANES * (j->out_u8 ? 1 : sizeof(float));
    uint8_t *buf = (uint8_t *)mpq_dw_padded_scratch(pbytes + tbytes);
    if (!buf) {
        // No scratch: the reference on this block's channels.
        const int c0 = u * LANES, c1 = j->s->channels - c0 < LANES ? j->s->channels : c0 + LANES;
        mpq_depthwise_reference_channels(j->x, j->s, j->w, j->ep, j->out, j->out_u8, j->out_zp, c0, c1);
        return;
    }
    run_block(j, u * LANES, (int16_t *)buf, buf + pbytes);
}

int mpq_depthwise_lanes_avx2_threads(const uint8_t *x, const mpq_conv2d_shape *s, const int8_t *w, const mpq_epilogue *ep,
                                     float *out, uint8_t *out_u8, int32_t out_zp, int threads) {
    const int taps = s->kernel_h * s->kernel_w;
    if (taps > 2 * MAX_PAIRS) return -1;
    lanes_job j = {x, s, w, ep, out, out_u8, out_zp, mpq_conv2d_out_h(s), mpq_conv2d_out_w(s), 0, 0, (taps + 1) / 2, {0}};
    if (j.OH <= 0 || j.OW <= 0) return -1;
    padded_dims(s, j.OH, j.OW, &j.PH, &j.PW);
    for (int t = 0; t < 2 * j.pairs; t++) {
        const int tt = t < taps ? t : taps - 1;   // an odd last tap pairs with itself, weight 0
        j.off[t] = ((size_t)(tt / s->kernel_w) * s->dilation_h * (size_t)j.PW + (size_t)(tt % s->kernel_w) * s->dilation_w) * LANES;
    }
    const int blocks = (s->channels + LANES - 1) / LANES;
    if (threads > 1 && blocks > 1) mpq_run_ranges(threads, blocks, block_unit, &j);
    else for (int u = 0; u < blocks; u++) block_unit(&j, u, 0);
    return 0;
}
