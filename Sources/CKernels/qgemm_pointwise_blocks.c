// INT8 1x1 stride-1 Conv to uint8 codes, 64 pixels at a time (docs/int8-conv.md, "Pointwise
// blocks"): the panel kernel's sums (qgemm_pointwise.c) with a cheaper pack and store.
//
// The panel kernel packs x with 128-bit unpacks, 16 pixels at a time, and stores each output
// vector (16 pixels of one channel) by vpmovusdb (2 uops) + a 16-byte store. Here 4 channel
// rows of 64 pixels are 4 zmm loads and 8 zmm unpacks; unpack works inside 128-bit lanes, so
// vector j holds pixels 16L + 4j .. 16L + 4j + 3 in lane L, not 16 consecutive pixels. The
// four accumulators of one output channel (vectors j = 0..3) are then narrowed by
// packssdw(acc0, acc1), packssdw(acc2, acc3) and packuswb, which interleave per 128-bit lane
// in exactly the inverse order: lane L of the result is pixels 16L .. 16L + 15, so the 64 codes
// are in pixel order with no permute and go out in one 64-byte store.
//
// Bytes: the int32 sums are the panel kernel's (same start value, same products, exact mod
// 2^32); the floats are epilogue16's per-channel sequence (convert, * a_scale * b_scale[co],
// + bias, max lo, min hi); vcvtps2dq rounds to nearest even as the other kernels rely on. The
// 16- and 8-bit saturations equal the unsigned saturation of the other kernels because a code
// q - zp lies in [-zp, 255 - zp] (mpq_code_u8's contract). A clamp is dropped only where the
// saturation does the same thing (mpq_codes_clamp_plan, qconv_channel_epilogue.h).
#include "qconv_channel_epilogue.h"
#include "im2col_transpose.h"
#include "qgemm_pointwise_internal.h"
#include <immintrin.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define VNNI_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))
#define CO 6
#define BLOCK 64

// Which float clamps the codes need (qconv_channel_epilogue.h: the saturation of the packs
// does what a clamp at the code range does).
typedef mpq_codes_clamps clamp_plan;

static clamp_plan plan_clamps(const pw_job *j) { return mpq_codes_clamp_plan(j->ep, j->out_zp, j->n); }

// x block for pixels [p0, p0 + 64): group kq at buf + kq * 256, vector j at + j * 64; lane L,
// dword i of vector j = channels 4kq..4kq+3 of pixel p0 + 16L + 4j + i (0 past the channels
// or the `valid` pixels).
static VNNI_TARGET void pack_block(const pw_job *j, int p0, int valid, uint8_t *buf) {
    const __mmask64 m = valid >= BLOCK ? ~(__mmask64)0 : (((__mmask64)1 << valid) - 1);
    for (int kq = 0; kq < j->kp / 4; kq++) {
        __m512i r[4];
        for (int i = 0; i < 4; i++) {
            const int ch = 4 * kq + i;
            r[i] = ch < j->c ? _mm512_maskz_loadu_epi8(m, j->x + (size_t)ch * j->plane + (size_t)p0) : _mm512_setzero_si512();
        }
        const __m512i a = _mm512_unpacklo_epi8(r[0], r[1]), b = _mm512_unpackhi_epi8(r[0], r[1]);
        const __m512i c = _mm512_unpacklo_epi8(r[2], r[3]), d = _mm512_unpackhi_epi8(r[2], r[3]);
        uint8_t *dst = buf + (size_t)kq * 256;
        _mm512_storeu_si512((void *)dst, _mm512_unpacklo_epi16(a, c));
        _mm512_storeu_si512((void *)(dst + 64), _mm512_unpackhi_epi16(a, c));
        _mm512_storeu_si512((void *)(dst + 128), _mm512_unpacklo_epi16(b, d));
        _mm512_storeu_si512((void *)(dst + 192), _mm512_unpackhi_epi16(b, d));
    }
}

static inline __attribute__((always_inline)) VNNI_TARGET void
tile(const pw_job *j, clamp_plan cp, const uint8_t *xp, int p0, __mmask64 m, int co0, int nco) {
    __m512i acc[CO][4];
    const int8_t *w[CO];
    _Pragma("unroll") for (int r = 0; r < nco; r++) {
        const int co = co0 + r;
        w[r] = j->bdata + (size_t)(co / 16) * (size_t)j->kp * 16 + (size_t)(co % 16) * 4;
        const __m512i start = _mm512_set1_epi32(mpq_channel_acc_start(j->ep, j->za, j->colsum, co));
        _Pragma("unroll") for (int q = 0; q < 4; q++) acc[r][q] = start;
    }
    const int groups = j->kp / 4;
    for (int g = 0; g < groups; g++) {
        __m512i xv[4];
        _Pragma("unroll") for (int q = 0; q < 4; q++) xv[q] = _mm512_loadu_si512((const void *)(xp + (size_t)g * 256 + (size_t)q * 64));
        _Pragma("unroll") for (int r = 0; r < nco; r++) {
            int32_t w4;
            memcpy(&w4, w[r] + (size_t)g * 64, 4);
            const __m512i wv = _mm512_set1_epi32(w4);
            _Pragma("unroll") for (int q = 0; q < 4; q++) acc[r][q] = _mm512_dpbusd_epi32(acc[r][q], xv[q], wv);
        }
    }
    const __m512i zp16 = _mm512_set1_epi16((short)j->out_zp);
    _Pragma("unroll") for (int r = 0; r < nco; r++) {
        const int co = co0 + r;
        const mpq_channel_epilogue e = mpq_channel_epilogue_setup(j->ep, co);
        __m512i q32[4];
        _Pragma("unroll") for (int q = 0; q < 4; q++) {
            __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(acc[r][q]), e.s);
            if (e.has_bias) v = _mm512_add_ps(v, e.bias);
            if (cp.need_lo) v = _mm512_max_ps(v, e.lo);
            if (cp.need_hi) v = _mm512_min_ps(v, e.hi);
            q32[q] = _mm512_cvtps_epi32(v);
        }
        // q - zp fits 16 bits once saturated; the saturating add keeps a saturated value at
        // the rail, then packuswb saturates to the code range: pixels in order (see the top).
        // A zero point of 0 (ReLU6 outputs) skips the adds: adding 0 changes nothing.
        __m512i lo = _mm512_packs_epi32(q32[0], q32[1]), hi = _mm512_packs_epi32(q32[2], q32[3]);
        if (j->out_zp) {
            lo = _mm512_adds_epi16(lo, zp16);
            hi = _mm512_adds_epi16(hi, zp16);
        }
        _mm512_mask_storeu_epi8(j->out_u8 + (size_t)co * j->ldo + (size_t)p0, m, _mm512_packus_epi16(lo, hi));
    }
}

#define TILE_FN(R) \
    static VNNI_TARGET void tile_##R(const pw_job *j, clamp_plan cp, const uint8_t *xp, int p0, __mmask64 m, int co0) { \
        tile(j, cp, xp, p0, m, co0, R); \
    }
TILE_FN(1) TILE_FN(2) TILE_FN(3) TILE_FN(4) TILE_FN(5) TILE_FN(6)
typedef void (*tile_fn)(const pw_job *, clamp_plan, const uint8_t *, int, __mmask64, int);
static const tile_fn tiles[CO] = {tile_1, tile_2, tile_3, tile_4, tile_5, tile_6};

// MARK: - Tails of 16 pixels or fewer: output channels in the lanes
//
// A 14x14 plane is 3 blocks + 4 pixels. On pixel vectors those 4 pixels cost a whole 16-lane
// panel per output channel, and with 6 accumulators per K loop (one panel) the tile waits on
// vpdpbusd's latency: 11% of a 576->96 layer's time for 2% of its pixels. Here a vector is 16
// output channels of one pixel (qgemm_conv_cv.c's tile, on the panel-packed x): the packed
// weights' 64-byte groups ([16 oc][4 k]) are the s8 operand as they lie, the u8 operand is one
// pixel's 4 channels broadcast. Codes go to a [panel][16 pixels][16 channels] scratch, then one
// 16 x 16 transpose per panel writes them channel-major.
#define TV 4  // channel panels per tail tile
#define TP 6  // pixels per tail tile

static inline __attribute__((always_inline)) VNNI_TARGET void
tail_tile(const pw_job *j, clamp_plan cp, const uint8_t *xb, int l0, int npx, int P0, int nv, uint8_t *codes) {
    __m512i acc[TV][TP];
    _Pragma("unroll") for (int v = 0; v < nv; v++) {
        int32_t start[16];
        for (int l = 0; l < 16; l++) {
            const int co = 16 * (P0 + v) + l;
            start[l] = co < j->n ? mpq_channel_acc_start(j->ep, j->za, j->colsum, co) : 0;
        }
        const __m512i sv = _mm512_loadu_si512((const void *)start);
        _Pragma("unroll") for (int p = 0; p < npx; p++) acc[v][p] = sv;
    }
    const int8_t *wb = j->bdata + (size_t)P0 * (size_t)j->kp * 16;
    const uint8_t *xq = xb + (size_t)l0 * 4;
    for (int g = 0; g < j->kp / 4; g++) {
        __m512i wv[TV];
        _Pragma("unroll") for (int v = 0; v < nv; v++)
            wv[v] = _mm512_loadu_si512((const void *)(wb + (size_t)v * (size_t)j->kp * 16 + (size_t)g * 64));
        _Pragma("unroll") for (int p = 0; p < npx; p++) {
            int32_t x4;
            memcpy(&x4, xq + (size_t)g * 64 + (size_t)p * 4, 4);
            const __m512i xv = _mm512_set1_epi32(x4);
            _Pragma("unroll") for (int v = 0; v < nv; v++) acc[v][p] = _mm512_dpbusd_epi32(acc[v][p], xv, wv[v]);
        }
    }
    const mpq_epilogue *ep = j->ep;
    const __m512i zp = _mm512_set1_epi32(j->out_zp), zero = _mm512_setzero_si512();
    const __m512 lo = _mm512_set1_ps(ep->clamp_lo), hi = _mm512_set1_ps(ep->clamp_hi);
    _Pragma("unroll") for (int v = 0; v < nv; v++) {
        const int c0 = 16 * (P0 + v);
        // Per lane the same float product a_scale * b_scale[co] and the same ops as the block tile.
        const mpq_lane_channels ch = mpq_lane_channels_load(ep, c0, j->n);
        const __m512 sc = ch.scale, bias = ch.bias;
        _Pragma("unroll") for (int p = 0; p < npx; p++) {
            __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(acc[v][p]), sc);
            if (ep->bias) f = _mm512_add_ps(f, bias);
            if (cp.need_lo) f = _mm512_max_ps(f, lo);
            if (cp.need_hi) f = _mm512_min_ps(f, hi);
            // Saturate as the block tile's packs do: below 0 -> 0, above 255 -> 255.
            const __m512i q = _mm512_max_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(f), zp), zero);
            _mm_storeu_si128((__m128i *)(codes + (size_t)(P0 + v) * 256 + (size_t)(l0 + p) * 16), _mm512_cvtusepi32_epi8(q));
        }
    }
}

#define TAIL_FN(V, P) \
    static VNNI_TARGET void tail_##V##_##P(const pw_job *j, clamp_plan cp, const uint8_t *xb, int l0, int P0, uint8_t *codes) { \
        tail_tile(j, cp, xb, l0, P, P0, V, codes); \
    }
#define TAIL_ROW(V) TAIL_FN(V, 1) TAIL_FN(V, 2) TAIL_FN(V, 3) TAIL_FN(V, 4) TAIL_FN(V, 5) TAIL_FN(V, 6)
TAIL_ROW(1) TAIL_ROW(2) TAIL_ROW(3) TAIL_ROW(4)
typedef void (*tail_fn)(const pw_job *, clamp_plan, const uint8_t *, int, int, uint8_t *);
#define TAIL_ENTRY(V) { tail_##V##_1, tail_##V##_2, tail_##V##_3, tail_##V##_4, tail_##V##_5, tail_##V##_6 }
static const tail_fn tails[TV][TP] = {TAIL_ENTRY(1), TAIL_ENTRY(2), TAIL_ENTRY(3), TAIL_ENTRY(4)};

// Pixels [p0, p0 + valid) (valid <= 16), output channels [co0, co1): whole 16-channel panels
// are computed, only [co0, co1) stored. `buf` holds the x panel, then the codes scratch.
static VNNI_TARGET void run_tail(const pw_job *j, clamp_plan cp, int p0, int valid, int co0, int co1, uint8_t *buf) {
    mpq_pw_pack_panels(j, p0, 1, buf);
    uint8_t *codes = buf + (size_t)j->kp * 16;
    const int P0 = co0 / 16, P1 = (co1 + 15) / 16;
    for (int l = 0; l < valid; l += TP) {
        const int npx = valid - l < TP ? valid - l : TP;
        for (int P = P0; P < P1; P += TV) tails[(P1 - P < TV ? P1 - P : TV) - 1][npx - 1](j, cp, buf, l, P, codes);
    }
    const __mmask16 pm = (__mmask16)((1u << valid) - 1u);
    for (int P = P0; P < P1; P++) {
        __m128i a[16];
        for (int l = 0; l < 16; l++) a[l] = _mm_loadu_si128((const __m128i *)(codes + (size_t)P * 256 + (size_t)l * 16));
        uint8_t t[256];
        mpq_transpose16_store(a, t, 16);  // t[channel * 16 + pixel]
        for (int c = 16 * P < co0 ? co0 : 16 * P; c < 16 * P + 16 && c < co1; c++)
            _mm_mask_storeu_epi8(j->out_u8 + (size_t)c * j->ldo + (size_t)p0, pm, _mm_loadu_si128((const __m128i *)(t + (size_t)(c - 16 * P) * 16)));
    }
}

// One block (pixels [p0, p0 + 64) clipped to the plane) for output channels [co0, co1). A
// tail of 16 pixels or fewer takes the channel-vector tail above; 17-48 pixels the panel
// kernel (16-pixel panels; the same bytes); more, a block with its last lanes masked.
static VNNI_TARGET void run_block(const pw_job *j, clamp_plan cp, int p0, int co0, int co1, uint8_t *buf) {
    const int valid = j->pixels - p0 < BLOCK ? j->pixels - p0 : BLOCK;
    if (valid <= 16) {
        run_tail(j, cp, p0, valid, co0, co1, buf);
        return;
    }
    if (valid <= BLOCK - 16) {
        mpq_pw_run_pixels(j, p0, p0 + valid, co0, co1, buf);
        return;
    }
    pack_block(j, p0, valid, buf);
    const __mmask64 m = valid >= BLOCK ? ~(__mmask64)0 : (((__mmask64)1 << valid) - 1);
    for (int co = co0; co < co1; co += CO) tiles[(co1 - co < CO ? co1 - co : CO) - 1](j, cp, buf, p0, m, co);
}

typedef struct {
    const pw_job *job;
    clamp_plan cp;
    uint8_t *bufs;
    size_t buf_bytes;
    int co_parts;  // units = blocks x output-channel parts
} blocks_split;

static void blocks_unit(void *arg, int u, int t) {
    blocks_split *s = (blocks_split *)arg;
    const pw_job *j = s->job;
    const int tiles_n = (j->n + CO - 1) / CO;
    // Part-major: with the channels split too (small planes), a thread's contiguous range is
    // whole channel parts, i.e. output rows and weights of its own.
    const int blocks = (j->pixels + BLOCK - 1) / BLOCK;
    const int b = u % blocks, part = u / blocks;
    const int co0 = tiles_n * part / s->co_parts * CO, co1 = tiles_n * (part + 1) / s->co_parts * CO;
    run_block(j, s->cp, b * BLOCK, co0, co1 < j->n ? co1 : j->n, s->bufs + (size_t)t * s->buf_bytes);
}

int mpq_pw_blocks_run(const pw_job *j, int threads) {
    blocks_split s;
    s.job = j;
    s.cp = plan_clamps(j);
    const int blocks = (j->pixels + BLOCK - 1) / BLOCK;
    // A small plane (14x14: 4 blocks) also splits the output channels, so that every thread
    // gets about 4 units to claim; each part packs its own copy of its block (K x 64 bytes,
    // 4 zmm unpack steps per 4 channels: cheap next to the block's K x N x 64 MACs).
    const int tiles_n = (j->n + CO - 1) / CO;
    s.co_parts = 1;
    if (threads > 1 && blocks < 4 * threads) {
        s.co_parts = (4 * threads + blocks - 1) / blocks;
        if (s.co_parts > tiles_n) s.co_parts = tiles_n;
    }
    const int units = blocks * s.co_parts;
    if (threads > units) threads = units;
    if (threads > MPQ_POOL_MAX) threads = MPQ_POOL_MAX;
    if (threads < 1) threads = 1;
    // x (a block, or the tail's panel) and the tail's codes scratch (256 bytes per panel),
    // whole cache lines per task.
    s.buf_bytes = (MPQ_PW_PANEL_BYTES(j->kp) + (size_t)(j->n + 15) / 16 * 256 + 63) / 64 * 64;
    s.bufs = (uint8_t *)aligned_alloc(64, s.buf_bytes * (size_t)threads);
    if (!s.bufs) return -1;
    // Each thread a contiguous run of blocks (mpq_run_ranges): neighbouring blocks share
    // cache lines of every output channel's row.
    mpq_run_ranges(threads, units, blocks_unit, &s);
    free(s.bufs);
    return 0;
}

// -1: not set (the environment decides); 0 off; 1 on.
static _Atomic int blocks_mode = -1;

int mpq_set_int8_pointwise_blocks(int mode) {
    return atomic_exchange_explicit(&blocks_mode, mode < 0 ? -1 : mode != 0, memory_order_relaxed);
}

int mpq_pw_blocks_enabled(void) {
    const int m = atomic_load_explicit(&blocks_mode, memory_order_relaxed);
    if (m >= 0) return m;
    static _Atomic long env = -1;
    return mpq_env_long_once("MPQ_INT8_POINTWISE_BLOCKS", 1, &env) != 0;
}
