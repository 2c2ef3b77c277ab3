// AVX2 depthwise INT8 conv (docs/depthwise.md, "AVX2"). Per channel, the plane is first
// written as int16 (x - za) into a zero-padded copy, its columns split into `stride_w`
// phases (column q of the padded row goes to phase q % sw at q / sw): every tap of a block of
// 16 output pixels is then one contiguous 16-lane load, whatever the stride, dilation or
// padding, and no pixel takes a scalar path. Taps go two at a time through vpmaddwd (the two
// taps' int16 values interleaved against the pair of weights): exact int32 sums, as the
// reference's, since |x - za| <= 255 and |w| <= 128. The epilogue is the reference's float
// arithmetic in the same order. Channels split over the kernel pool in contiguous ranges.
#include "depthwise_padded.h"
#include "qconv_channel_epilogue_avx2.h"
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#define AVX2_TARGET __attribute__((target("avx2")))
#define BLOCK MPQ_DW_PADDED_BLOCK  // output pixels per block: one 16-lane int16 load per tap

// One padded row, not yet split into phases: t[q] = x[ih][q - pad_left] - za inside the
// row, 0 elsewhere, for q in [0, n) (n a multiple of 16). The row is zeroed with vector
// stores first, then widened 16 bytes at a time, the lanes past the row's end masked to 0:
// 7x7 and 14x14 planes (rows narrower than a vector) spent more on scalar edge stores than
// on their taps. `readable` bytes from `row` on lie inside the input; a last vector that
// would read past them goes through a copy. Stores may reach 15 elements past n: the
// caller's buffer has room, and the next row rewrites them.
static AVX2_TARGET void widen_row(const uint8_t *row, int W, size_t readable, int pl, int32_t za, int16_t *t, int n) {
    const __m256i zav = _mm256_set1_epi16((short)za), zero = _mm256_setzero_si256();
    const __m256i lanes = _mm256_setr_epi16(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for (int q = 0; q < n; q += 16) _mm256_storeu_si256((__m256i *)(t + q), zero);
    for (int iw = 0; iw < W && pl + iw < n; iw += 16) {
        __m128i bytes;
        if ((size_t)iw + 16 <= readable) {
            bytes = _mm_loadu_si128((const __m128i *)(row + iw));
        } else {
            uint8_t tmp[16] = {0};
            memcpy(tmp, row + iw, (size_t)(W - iw < 16 ? W - iw : 16));
            bytes = _mm_loadu_si128((const __m128i *)tmp);
        }
        __m256i v = _mm256_sub_epi16(_mm256_cvtepu8_epi16(bytes), zav);
        if (W - iw < 16) v = _mm256_and_si256(v, _mm256_cmpgt_epi16(_mm256_set1_epi16((short)(W - iw)), lanes));
        _mm256_storeu_si256((__m256i *)(t + pl + iw), v);
    }
}

// Column q of the padded row t goes to phase q % sw, index q / sw.
static AVX2_TARGET void split_phases(const int16_t *t, int sw, int len, int16_t *dst) {
    if (sw == 2) {
        // Each 16-lane load: even lanes to phase 0, odd lanes to phase 1.
        const __m256i gather = _mm256_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15,
                                                0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15);
        for (int j = 0; j < len; j += 8) {
            __m256i v = _mm256_shuffle_epi8(_mm256_loadu_si256((const __m256i *)(t + 2 * j)), gather);
            v = _mm256_permute4x64_epi64(v, 0xD8);  // [evens 0-3, evens 4-7, odds 0-3, odds 4-7]
            _mm_storeu_si128((__m128i *)(dst + j), _mm256_castsi256_si128(v));
            _mm_storeu_si128((__m128i *)(dst + len + j), _mm256_extracti128_si256(v, 1));
        }
        return;
    }
    for (int p = 0; p < sw; p++)
        for (int j = 0; j < len; j++) dst[(size_t)p * len + j] = t[(size_t)j * sw + p];
}

static AVX2_TARGET void pad_plane(const uint8_t *plane, const mpq_conv2d_shape *s, const mpq_dw_padded *g,
                                  int32_t za, int16_t *buf, int16_t *scratch) {
    const int sw = s->stride_w, n = sw * g->len;
    for (int r = 0; r < g->rows; r++) {
        int16_t *dst = buf + (size_t)r * g->row_stride;
        const int ih = r - s->pad_top;
        if (ih < 0 || ih >= s->height) {
            for (size_t q = 0; q < g->row_stride; q += 16) _mm256_storeu_si256((__m256i *)(dst + q), _mm256_setzero_si256());
            continue;
        }
        const uint8_t *row = plane + (size_t)ih * (size_t)s->width;
        const size_t readable = (size_t)(s->height - ih) * (size_t)s->width;
        if (sw == 1) {
            widen_row(row, s->width, readable, s->pad_left, za, dst, n);
        } else {
            widen_row(row, s->width, readable, s->pad_left, za, scratch, n);
            split_phases(scratch, sw, g->len, dst);
        }
    }
}

// The reference's epilogue for channel c: the int32 bias added to the sums (the pointwise
// kernel starts its sums at it instead), then qconv_channel_epilogue_avx2.h's sequence.
typedef struct {
    mpq_channel8 e;
    int add_bias_i32;
    __m256i bias_i32;
} channel_epilogue;

static inline AVX2_TARGET __m256 epilogue8(__m256i acc, const channel_epilogue *ce) {
    if (ce->add_bias_i32) acc = _mm256_add_epi32(acc, ce->bias_i32);
    return mpq_channel8_rounded(&ce->e, mpq_channel8_values(&ce->e, acc, 1, 1));
}

// The int32 sums of 16 output pixels from `b` (a block's first pixel in the padded plane):
// `a` gets pixels 0-3 and 8-11, `e` 4-7 and 12-15 (the unpacks work per 128-bit lane).
// Inlined with `pairs` a constant (3x3: 5) the taps' offsets and weights stay in registers.
static inline __attribute__((always_inline)) AVX2_TARGET void block_sums(const int16_t *b, const size_t *off,
                                                                         const __m256i *wpair, int pairs,
                                                                         __m256i *a, __m256i *e) {
    __m256i sa = _mm256_setzero_si256(), se = _mm256_setzero_si256();
    for (int p = 0; p < pairs; p++) {
        const __m256i v0 = _mm256_loadu_si256((const __m256i *)(b + off[2 * p]));
        const __m256i v1 = _mm256_loadu_si256((const __m256i *)(b + off[2 * p + 1]));
        sa = _mm256_add_epi32(sa, _mm256_madd_epi16(_mm256_unpacklo_epi16(v0, v1), wpair[p]));
        se = _mm256_add_epi32(se, _mm256_madd_epi16(_mm256_unpackhi_epi16(v0, v1), wpair[p]));
    }
    *a = sa;
    *e = se;
}

// Two output rows of up to 8 pixels each in one block (planes 8 or fewer wide, 7x7: a
// 16-pixel block of one row left 9 lanes idle): lanes 0-7 read from `b`, lanes 8-15 from
// `b + next` (the next output row). Then `a` holds row 0's pixels 0-3 and row 1's 0-3, `e`
// their pixels 4-7, so the same permutes give row 0 and row 1.
static inline __attribute__((always_inline)) AVX2_TARGET void two_row_sums(const int16_t *b, size_t next, const size_t *off,
                                                                           const __m256i *wpair, int pairs, __m256i *a,
                                                                           __m256i *e) {
    __m256i sa = _mm256_setzero_si256(), se = _mm256_setzero_si256();
    for (int p = 0; p < pairs; p++) {
        const int16_t *p0 = b + off[2 * p], *p1 = b + off[2 * p + 1];
        const __m256i v0 = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)p0)),
                                                   _mm_loadu_si128((const __m128i *)(p0 + next)), 1);
        const __m256i v1 = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)p1)),
                                                   _mm_loadu_si128((const __m128i *)(p1 + next)), 1);
        sa = _mm256_add_epi32(sa, _mm256_madd_epi16(_mm256_unpacklo_epi16(v0, v1), wpair[p]));
        se = _mm256_add_epi32(se, _mm256_madd_epi16(_mm256_unpackhi_epi16(v0, v1), wpair[p]));
    }
    *a = sa;
    *e = se;
}

typedef struct {
    const uint8_t *x;
    const mpq_conv2d_shape *s;
    const int8_t *w;
    const mpq_epilogue *ep;
    float *out;
    uint8_t *out_u8;
    int32_t out_zp;
    int OH, OW, chunk;
    mpq_dw_padded g;
} dw_job;

static AVX2_TARGET void run_channel(const dw_job *j, int c, int16_t *buf, int16_t *scratch) {
    const mpq_conv2d_shape *s = j->s;
    const mpq_epilogue *ep = j->ep;
    const int KH = s->kernel_h, KW = s->kernel_w, taps = KH * KW, pairs = (taps + 1) / 2;
    const int OH = j->OH, OW = j->OW;
    const mpq_dw_padded *g = &j->g;
    pad_plane(j->x + (size_t)c * s->height * s->width, s, g, ep->a_zero_point, buf, scratch);
    // The weight pairs (t, t+1) as vpmaddwd's int16 pairs (an odd last tap pairs with weight 0);
    // the taps' offsets are the call's (g->off).
    const size_t *off = g->off;
    __m256i wpair[64];
    const int8_t *wc = j->w + (size_t)c * taps;
    for (int p = 0; p < pairs; p++) {
        const int16_t w0 = wc[2 * p], w1 = 2 * p + 1 < taps ? wc[2 * p + 1] : 0;
        wpair[p] = _mm256_set1_epi32((int32_t)((uint32_t)(uint16_t)w0 | ((uint32_t)(uint16_t)w1 << 16)));
    }
    const channel_epilogue ce = {mpq_channel8_setup(ep, c), ep->bias_i32 != NULL,
                                 _mm256_set1_epi32(ep->bias_i32 ? ep->bias_i32[c] : 0)};
    const __m256i zp = _mm256_set1_epi32(j->out_zp);
    float *const out = j->out;
    uint8_t *const out_u8 = j->out_u8;
    int oh = 0;
    if (OW <= BLOCK / 2) {
        const size_t next = (size_t)s->stride_h * g->row_stride;
        for (; oh + 2 <= OH; oh += 2) {
            __m256i a, e;
            const int16_t *row = buf + (size_t)oh * next;
            if (pairs == 5) two_row_sums(row, next, off, wpair, 5, &a, &e);
            else two_row_sums(row, next, off, wpair, pairs, &a, &e);
            const __m256 f[2] = {epilogue8(_mm256_permute2x128_si256(a, e, 0x20), &ce),
                                 epilogue8(_mm256_permute2x128_si256(a, e, 0x31), &ce)};
            for (int r = 0; r < 2; r++) {
                const size_t at = ((size_t)c * OH + oh + r) * OW;
                if (out_u8) {
                    const __m256i q = _mm256_add_epi32(_mm256_cvtps_epi32(f[r]), zp);
                    const __m128i w16 = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
                    uint8_t tmp[16];
                    _mm_storeu_si128((__m128i *)tmp, _mm_packus_epi16(w16, w16));
                    memcpy(out_u8 + at, tmp, (size_t)OW);
                } else {
                    float tmp[8];
                    _mm256_storeu_ps(tmp, f[r]);
                    memcpy(out + at, tmp, (size_t)OW * sizeof(float));
                }
            }
        }
    }
    for (; oh < OH; oh++) {
        const int16_t *row = buf + (size_t)oh * s->stride_h * g->row_stride;
        const size_t at = ((size_t)c * OH + oh) * OW;
        for (int ow = 0; ow < OW; ow += BLOCK) {
            __m256i a, e;
            if (pairs == 5) block_sums(row + ow, off, wpair, 5, &a, &e);
            else block_sums(row + ow, off, wpair, pairs, &a, &e);
            const __m256 f0 = epilogue8(_mm256_permute2x128_si256(a, e, 0x20), &ce);
            const __m256 f1 = epilogue8(_mm256_permute2x128_si256(a, e, 0x31), &ce);
            const int n = OW - ow < BLOCK ? OW - ow : BLOCK;
            if (out_u8) {
                // Rounded, clamped q - zp: exact in int32; + zp lies in [0, 255].
                const __m256i i0 = _mm256_add_epi32(_mm256_cvtps_epi32(f0), zp), i1 = _mm256_add_epi32(_mm256_cvtps_epi32(f1), zp);
                const __m256i w16 = _mm256_permute4x64_epi64(_mm256_packs_epi32(i0, i1), 0xD8);
                const __m128i bytes = _mm256_castsi256_si128(_mm256_permute4x64_epi64(_mm256_packus_epi16(w16, w16), 0x08));
                if (n == BLOCK) _mm_storeu_si128((__m128i *)(out_u8 + at + ow), bytes);
                else {
                    uint8_t tmp[BLOCK];
                    _mm_storeu_si128((__m128i *)tmp, bytes);
                    memcpy(out_u8 + at + ow, tmp, (size_t)n);
                }
            } else if (n == BLOCK) {
                _mm256_storeu_ps(out + at + ow, f0);
                _mm256_storeu_ps(out + at + ow + 8, f1);
            } else {
                float tmp[BLOCK];
                _mm256_storeu_ps(tmp, f0);
                _mm256_storeu_ps(tmp + 8, f1);
                memcpy(out + at + ow, tmp, (size_t)n * sizeof(float));
            }
        }
    }
}

static void channels_unit(void *arg, int u, int task) {
    (void)task;
    const dw_job *j = (const dw_job *)arg;
    const int C = j->s->channels, c0 = u * j->chunk, c1 = c0 + j->chunk < C ? c0 + j->chunk : C;
    // The padded plane, then one row before phase splitting, each with room for widen_row's
    // 16-lane stores past its end.
    const size_t plane = j->g.plane, need = plane + 16 + j->g.row_stride + 16;
    int16_t *buf = (int16_t *)mpq_dw_padded_scratch(need * sizeof(int16_t));
    if (!buf) {
        mpq_depthwise_reference_channels(j->x, j->s, j->w, j->ep, j->out, j->out_u8, j->out_zp, c0, c1);  // no scratch
        return;
    }
    for (int c = c0; c < c1; c++) run_channel(j, c, buf, buf + plane + 16);
}

void mpq_depthwise_avx2_threads(const uint8_t *x, const mpq_conv2d_shape *s, const int8_t *w, const mpq_epilogue *ep,
                                float *out, uint8_t *out_u8, int32_t out_zp, int threads) {
    const int OH = mpq_conv2d_out_h(s), OW = mpq_conv2d_out_w(s), C = s->channels;
    // More than 128 taps (64 pairs) is no depthwise kernel anyone exports: the reference.
    if (s->kernel_h * s->kernel_w > 128) {
        mpq_depthwise_reference(x, s, w, ep, out, out_u8, out_zp);
        return;
    }
    dw_job j = {x, s, w, ep, out, out_u8, out_zp, OH, OW, C};
    mpq_dw_padded_plan(s, OH, OW, 2 * ((s->kernel_h * s->kernel_w + 1) / 2), &j.g);
    if (threads > 1 && C > 1) {
        // About 16 contiguous channel ranges per thread, as the VBMI kernel's.
        const int units = mpq_int8_dw_units_per_thread() * threads;
        j.chunk = (C + units - 1) / units;
        mpq_run_ranges(threads, (C + j.chunk - 1) / j.chunk, channels_unit, &j);
    } else {
        channels_unit(&j, 0, 0);
    }
}
