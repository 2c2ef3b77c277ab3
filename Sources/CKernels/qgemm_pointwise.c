// INT8 1x1 stride-1 unpadded Conv straight from NCHW, no im2col and no transpose
// (docs/int8-conv.md, "Pointwise"): out[co][p] = epilogue(sum_c x[c][p] * w[co][c]).
//
// The im2col path turns the [C][pixels] plane into [pixels][C] rows, multiplies them by
// the weight panels, and transposes every 16 x 16 output tile back to channel-major. With
// K = C of 16 to 144 (MobileNetV2's expand and project convs) the transpose and epilogue
// cost as much as the multiply. Here the vectors run along pixels instead: 16 pixels of
// 4 consecutive channels make one vpdpbusd u8 operand (x panel [C/4][16][4], interleaved
// from 4 channel rows), the s8 operand is one output channel's 4 weights broadcast
// (straight from the packed weights, whose 64-byte groups hold 4 k of 16 channels), and
// each accumulator is 16 consecutive output pixels of one channel: stored as is.
// Micro-tile: 6 output channels x 4 pixel panels (64 pixels) = 24 zmm accumulators.
// The epilogue is epilogue16's sequence with per-channel values broadcast instead of
// loaded per lane: the same float ops on the same values, so the same bits.
#include "qconv_channel_epilogue.h"
#include "qgemm_pointwise_internal.h"
#include <immintrin.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define VNNI_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))
#define CO 6
#define PP 4
#define BLOCK_PIXELS 256

// x panel for pixels [p0, p0 + 16 * np): panel q at buf + q * kp * 16, group kq at + kq * 64,
// lane l's 4 bytes = channels 4kq..4kq+3 of pixel p0 + 16q + l (0 past the channels or pixels).
VNNI_TARGET void mpq_pw_pack_panels(const pw_job *j, int p0, int np, uint8_t *buf) {
    for (int q = 0; q < np; q++) {
        const int pq = p0 + 16 * q, lanes = j->pixels - pq < 16 ? j->pixels - pq : 16;
        const __mmask16 m = lanes >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << lanes) - 1u);
        uint8_t *dst = buf + (size_t)q * (size_t)j->kp * 16;
        for (int kq = 0; kq < j->kp / 4; kq++) {
            __m128i r[4];
            for (int i = 0; i < 4; i++) {
                const int ch = 4 * kq + i;
                r[i] = ch < j->c ? _mm_maskz_loadu_epi8(m, j->x + (size_t)ch * j->plane + (size_t)pq) : _mm_setzero_si128();
            }
            const __m128i a = _mm_unpacklo_epi8(r[0], r[1]), b = _mm_unpackhi_epi8(r[0], r[1]);
            const __m128i c = _mm_unpacklo_epi8(r[2], r[3]), d = _mm_unpackhi_epi8(r[2], r[3]);
            _mm_storeu_si128((__m128i *)(dst + (size_t)kq * 64), _mm_unpacklo_epi16(a, c));
            _mm_storeu_si128((__m128i *)(dst + (size_t)kq * 64 + 16), _mm_unpackhi_epi16(a, c));
            _mm_storeu_si128((__m128i *)(dst + (size_t)kq * 64 + 32), _mm_unpacklo_epi16(b, d));
            _mm_storeu_si128((__m128i *)(dst + (size_t)kq * 64 + 48), _mm_unpackhi_epi16(b, d));
        }
    }
}

static inline __attribute__((always_inline)) VNNI_TARGET void
tile(const pw_job *j, const uint8_t *xp, int p0, int np, int co0, int nco) {
    __m512i acc[CO][PP];
    const int8_t *w[CO];
    _Pragma("unroll") for (int r = 0; r < nco; r++) {
        const int co = co0 + r;
        w[r] = j->bdata + (size_t)(co / 16) * (size_t)j->kp * 16 + (size_t)(co % 16) * 4;
        // bias_i32 - za * colsum up front (qconv_channel_epilogue.h): the same int32 sums.
        const __m512i start = _mm512_set1_epi32(mpq_channel_acc_start(j->ep, j->za, j->colsum, co));
        _Pragma("unroll") for (int q = 0; q < np; q++) acc[r][q] = start;
    }
    const int groups = j->kp / 4;
    for (int g = 0; g < groups; g++) {
        __m512i xv[PP];
        _Pragma("unroll") for (int q = 0; q < np; q++)
            xv[q] = _mm512_loadu_si512((const void *)(xp + (size_t)q * (size_t)j->kp * 16 + (size_t)g * 64));
        _Pragma("unroll") for (int r = 0; r < nco; r++) {
            int32_t w4;
            memcpy(&w4, w[r] + (size_t)g * 64, 4);
            const __m512i wv = _mm512_set1_epi32(w4);
            _Pragma("unroll") for (int q = 0; q < np; q++) acc[r][q] = _mm512_dpbusd_epi32(acc[r][q], xv[q], wv);
        }
    }
    const __m512i zp = _mm512_set1_epi32(j->out_zp);
    _Pragma("unroll") for (int r = 0; r < nco; r++) {
        const int co = co0 + r;
        const mpq_channel_epilogue e = mpq_channel_epilogue_setup(j->ep, co);
        _Pragma("unroll") for (int q = 0; q < np; q++) {
            const int pq = p0 + 16 * q, lanes = j->pixels - pq < 16 ? j->pixels - pq : 16;
            const __mmask16 m = lanes >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << lanes) - 1u);
            const __m512 v = mpq_channel_values(&e, acc[r][q]);
            const size_t at = (size_t)co * j->ldo + (size_t)pq;
            if (j->out_u8) _mm_mask_storeu_epi8(j->out_u8 + at, m, mpq_channel_codes(v, zp));
            else _mm512_mask_storeu_ps(j->out + at, m, mpq_channel_floats(&e, v));
        }
    }
}

#define TILE_FN(R, P) \
    static VNNI_TARGET void tile_##R##_##P(const pw_job *j, const uint8_t *xp, int p0, int co0) { tile(j, xp, p0, P, co0, R); }
#define TILE_ROW(R) TILE_FN(R, 1) TILE_FN(R, 2) TILE_FN(R, 3) TILE_FN(R, 4)
TILE_ROW(1) TILE_ROW(2) TILE_ROW(3) TILE_ROW(4) TILE_ROW(5) TILE_ROW(6)
typedef void (*tile_fn)(const pw_job *, const uint8_t *, int, int);
#define TILE_ENTRY(R) { tile_##R##_1, tile_##R##_2, tile_##R##_3, tile_##R##_4 }
static const tile_fn tiles[CO][PP] = {
    TILE_ENTRY(1), TILE_ENTRY(2), TILE_ENTRY(3), TILE_ENTRY(4), TILE_ENTRY(5), TILE_ENTRY(6),
};

// Pixels [p0, p1) (p0 a multiple of 64) for output channels [co0, co1): x packed 64 pixels
// at a time into `buf` (4 panels), then the output channels run over them while in L1.
VNNI_TARGET void mpq_pw_run_pixels(const pw_job *j, int p0, int p1, int co0, int co1, uint8_t *buf) {
    for (int p = p0; p < p1; p += 16 * PP) {
        const int np = (p1 - p + 15) / 16 < PP ? (p1 - p + 15) / 16 : PP;
        mpq_pw_pack_panels(j, p, np, buf);
        for (int co = co0; co < co1; co += CO) {
            const int nco = co1 - co < CO ? co1 - co : CO;
            tiles[nco - 1][np - 1](j, buf, p, co);
        }
    }
}

typedef struct {
    const pw_job *job;
    uint8_t *bufs;
    size_t buf_bytes;
    int chunks, co_parts;  // units = pixel chunks x output-channel parts
    _Atomic int next;
} pw_split;

static void pw_task(void *arg, int t) {
    pw_split *s = (pw_split *)arg;
    uint8_t *buf = s->bufs + (size_t)t * s->buf_bytes;
    for (;;) {
        const int u = atomic_fetch_add_explicit(&s->next, 1, memory_order_relaxed);
        if (u >= s->chunks * s->co_parts) return;
        const int c = u / s->co_parts, part = u % s->co_parts;
        const int p0 = c * BLOCK_PIXELS, p1 = p0 + BLOCK_PIXELS < s->job->pixels ? p0 + BLOCK_PIXELS : s->job->pixels;
        // Output channels in whole 6-channel tiles, so a part's tiles are the same as one
        // thread's: the split changes no bit.
        const int tiles = (s->job->n + CO - 1) / CO;
        const int co0 = tiles * part / s->co_parts * CO, co1 = tiles * (part + 1) / s->co_parts * CO;
        mpq_pw_run_pixels(s->job, p0, p1, co0, co1 < s->job->n ? co1 : s->job->n, buf);
    }
}

int mpq_pointwise_conv_vnni(const mpq_gemm_job *g, const uint8_t *x, size_t plane, int threads) {
    pw_job j = {x, plane, g->k, (g->k + 3) / 4 * 4, g->n, g->m, g->bdata, g->colsum, g->za, g->ep,
                g->out, g->out_u8, g->out_zp, (size_t)g->ldo};
    if (g->kp != j.kp || !g->out_channel_major || g->c) return -1;
    // Codes (the runtime's INT8 chains) take the 64-pixel block kernel: one pack per block,
    // a 64-byte store per channel (qgemm_pointwise_blocks.c); floats stay on the panels.
    if (j.out_u8 && mpq_pw_blocks_enabled()) return mpq_pw_blocks_run(&j, threads);
    pw_split s;
    s.job = &j;
    s.chunks = (j.pixels + BLOCK_PIXELS - 1) / BLOCK_PIXELS;
    // Few pixel chunks (a 14x14 plane is one) split the output channels too, so one image
    // still uses every core; each part packs its own copy of the chunk's x panels.
    const int tiles = (j.n + CO - 1) / CO;
    s.co_parts = 1;
    if (threads > 1 && s.chunks < 2 * threads) {
        s.co_parts = (2 * threads + s.chunks - 1) / s.chunks;
        if (s.co_parts > tiles) s.co_parts = tiles;
    }
    if (threads > s.chunks * s.co_parts) threads = s.chunks * s.co_parts;
    if (threads > MPQ_POOL_MAX) threads = MPQ_POOL_MAX;
    if (threads < 1) threads = 1;
    s.buf_bytes = (size_t)j.kp * 16 * PP;
    s.bufs = (uint8_t *)malloc(s.buf_bytes * (size_t)threads);
    if (!s.bufs) return -1;
    atomic_init(&s.next, 0);
    if (threads > 1) mpq_pool_run(threads, pw_task, &s);
    else pw_task(&s, 0);
    free(s.bufs);
    return 0;
}
