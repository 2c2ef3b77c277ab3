// INT8 stride-1/2 Conv with no im2col on AVX2 machines (no VNNI): the twin of
// qgemm_conv_implicit.c (docs/int8-conv.md, "Implicit 3x3"; s23).
//
// On AVX2 every non-pointwise Conv took the im2col + AVX2 GEMM; on ResNet-18's 64-channel 3x3
// at 56x56 the im2col was 17% of the layer (perf, one thread) and the GEMM region alone ran at
// ONNX Runtime's rate (ORT's NHWC QLinearConv reads its input through an indirection buffer,
// no copy). Here, as in the VNNI kernel, the input is copied once, padded, into
// [C/4][S][S][Hq][Wq][4] (4 consecutive channels of a pixel in one 32-bit lane; stride 2 as its
// 4 phase planes), and the vectors run along "virtual" pixels v = oh * Wq + ow: 8 of them of
// tap (kh, kw) are one 32-byte load at v + the tap's offset, the u8 operand of vpmaddubsw for 4
// channels; the s8 operand is one output channel's 4 weights of the tap broadcast from the
// (kh, kw, c) packed weights. Lanes on the padded columns (ow >= OW) or past the last row are
// computed and dropped.
//
// Where the packed B's pairs fit int16 (pairs_fit_i16: 7-bit weights, qgemm_avx2.c) vpmaddubsw
// cannot saturate and a k quad is vpmaddubsw + vpmaddwd by ones + vpaddd, the pointwise twin's
// 7-bit form. With 8-bit weights the widening form: the copy holds channel pairs as int16
// ([C/2][S][S][Hq][Wq][2], the same 4-byte lanes), the weights are widened once per call into
// int32 pairs per output channel, and a k pair is vpmaddwd + vpaddd (exact: |u8 * s8| pair sums
// fit int32), the pointwise twin's 8-bit form.
// Micro-tile: 2 output channels x 4 vectors of 8 virtual pixels (8 accumulators + 4 x + a
// weight + a product + ones = 15 ymm; qgemm_pointwise_avx2.c measured 2 x 4 against 6 x 2).
// The epilogue is the reference's float sequence per lane with the per-channel values
// broadcast (qconv_channel_epilogue_avx2.h, both clamps), codes are the low byte of
// cvt(v) + zp (the reference's uint8_t cast): the bytes equal the im2col path's for any split.
#include "mpq_internal.h"
#include "qconv_channel_epilogue.h"
#include "qconv_channel_epilogue_avx2.h"
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#define AVX2_TARGET __attribute__((target("avx2,fma")))
#define CO 2             // output channels per micro-tile
#define PP 4             // 8-pixel vectors per micro-tile
#define GROUP (8 * PP)   // virtual pixels per unit
#define SLACK_PIXELS 64  // reads of dropped lanes past the last plane stay inside the buffer

typedef struct {
    const uint8_t *x;        // the group's first channel plane (NCHW)
    int H, W, pt, pl;
    int S, Hq, Wq;           // stride; each phase plane Hq x Wq (Wq: the virtual row width)
    uint8_t zp;
    uint8_t *xi;             // [cl][S][S][Hq][Wq][4 bytes], then SLACK_PIXELS * 4 bytes (then w16)
    int taps;
    const int *tap_off;      // virtual-pixel offset of each tap (kh, kw order)
    int OH, OW, vend;        // vend = last virtual pixel + 1
    const mpq_gemm_job *g;   // weights (bdata, kp, n), colsum, za, epilogue and output
    int groups, co_parts, pack_tasks;  // units = pixel groups x output-channel parts
    int wide;                // 8-bit weights: int16 channel pairs, vpmaddwd (see above)
    int cl;                  // lanes of 4 bytes per pixel: C/4 quads (u8) or C/2 pairs (int16)
    const int32_t *w16;      // wide: channel co's weight pair i at w16[co * (k / 2) + i]
} ic2_job;

// 8 bytes of one channel row for the lanes of one phase: bytes at src, src + S, ...
// (S = 1 or 2), lanes past `lanes` zero. `room`: bytes readable from src in this row.
static inline __attribute__((always_inline)) AVX2_TARGET __m128i load_phase8(const uint8_t *src, int S, int lanes, int room) {
    if (S == 1) {
        if (lanes >= 8) return _mm_loadl_epi64((const __m128i *)src);
        uint64_t v = 0;
        memcpy(&v, src, (size_t)lanes);
        return _mm_cvtsi64_si128((long long)v);
    }
    __m128i v;
    if (room >= 16) {
        v = _mm_loadu_si128((const __m128i *)src);
    } else {
        uint8_t t[16] = {0};
        memcpy(t, src, (size_t)(2 * lanes - 1 < room ? 2 * lanes - 1 : room));
        v = _mm_loadu_si128((const __m128i *)t);
    }
    // Even bytes to the low 8; lanes past `lanes` cleared.
    v = _mm_shuffle_epi8(v, _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, -1, -1, -1, -1, -1, -1, -1, -1));
    if (lanes < 8) v = _mm_and_si128(v, _mm_cmpgt_epi8(_mm_set1_epi8((char)lanes), _mm_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)));
    return v;
}

// Lane group c of the padded interleaved copy, phase by phase (the VNNI kernel's pack_group, 8
// columns at a time): phase (a, b), row r, column c holds padded pixel (S r + a, S c + b) as one
// 4-byte lane, channels 4c..4c+3 as bytes or, in the widening form, channels 2c, 2c+1 as
// zero-extended int16; pad rows and columns hold the zero point.
static AVX2_TARGET void pack_lanes(const ic2_job *j, int c) {
    const size_t plane = (size_t)j->H * (size_t)j->W, qplane = (size_t)j->Hq * (size_t)j->Wq;
    const uint32_t z = (j->wide ? 0x00010001u : 0x01010101u) * j->zp;
    const int S = j->S, per = j->wide ? 2 : 4;  // channels per lane
    for (int a = 0; a < S; a++)
        for (int b = 0; b < S; b++) {
            uint32_t *dst = (uint32_t *)(void *)(j->xi + (((size_t)c * (size_t)(S * S) + (size_t)(a * S + b)) * qplane) * 4);
            // Columns of this phase inside the image: iw = S col + b - pl in [0, W).
            int c_lo = j->pl - b > 0 ? (j->pl - b + S - 1) / S : 0;
            int c_hi = (j->W - 1 + j->pl - b) >= 0 ? (j->W - 1 + j->pl - b) / S + 1 : 0;
            if (c_hi > j->Wq) c_hi = j->Wq;
            if (c_lo > c_hi) c_lo = c_hi;
            for (int r = 0; r < j->Hq; r++) {
                uint32_t *row = dst + (size_t)r * (size_t)j->Wq;
                const int ih = S * r + a - j->pt;
                if (ih < 0 || ih >= j->H) {
                    for (int i = 0; i < j->Wq; i++) row[i] = z;
                    continue;
                }
                for (int i = 0; i < c_lo; i++) row[i] = z;
                for (int i = c_hi; i < j->Wq; i++) row[i] = z;
                const uint8_t *src = j->x + (size_t)(per * c) * plane + (size_t)ih * (size_t)j->W;
                for (int c0 = c_lo; c0 < c_hi; c0 += 8) {
                    const int lanes = c_hi - c0 < 8 ? c_hi - c0 : 8;
                    const int col = S * c0 + b - j->pl, room = j->W - col;
                    __m128i p03, p47;  // pixels 0-3 and 4-7, a 4-byte lane each
                    if (j->wide) {
                        const __m128i r0 = load_phase8(src + col, S, lanes, room), r1 = load_phase8(src + plane + col, S, lanes, room);
                        const __m256i v = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(r0, r1));
                        p03 = _mm256_castsi256_si128(v);
                        p47 = _mm256_extracti128_si256(v, 1);
                    } else {
                        __m128i r4[4];
                        for (int i = 0; i < 4; i++) r4[i] = load_phase8(src + (size_t)i * plane + col, S, lanes, room);
                        const __m128i c01 = _mm_unpacklo_epi8(r4[0], r4[1]), c23 = _mm_unpacklo_epi8(r4[2], r4[3]);
                        p03 = _mm_unpacklo_epi16(c01, c23);
                        p47 = _mm_unpackhi_epi16(c01, c23);
                    }
                    if (lanes == 8) {
                        _mm_storeu_si128((__m128i *)(row + c0), p03);
                        _mm_storeu_si128((__m128i *)(row + c0 + 4), p47);
                    } else {
                        uint32_t t[8];
                        _mm_storeu_si128((__m128i *)t, p03);
                        _mm_storeu_si128((__m128i *)(t + 4), p47);
                        memcpy(row + c0, t, (size_t)lanes * 4);
                    }
                }
            }
        }
}

static void pack_task(void *arg, int t) {
    const ic2_job *j = (const ic2_job *)arg;
    const int c0 = j->cl * t / j->pack_tasks, c1 = j->cl * (t + 1) / j->pack_tasks;
    for (int c = c0; c < c1; c++) pack_lanes(j, c);
}

// Runs BODY once per output row that the 8 lanes from virtual pixel v0 touch, with `lane` (the
// first lane on that row), `count` (its lanes inside the output) and `at` (the output index of
// `lane`); lanes on the padded columns or past the last row are skipped.
#define FOR_ROWS(j, v0, BODY)                                                                   \
    for (int l0_ = 0; l0_ < 8;) {                                                              \
        const int v_ = (v0) + l0_, oh_ = v_ / (j)->Wq, ow_ = v_ % (j)->Wq;                     \
        const int run_ = (j)->Wq - ow_ < 8 - l0_ ? (j)->Wq - ow_ : 8 - l0_;                   \
        if (oh_ >= (j)->OH || v_ >= (j)->vend) break;                                          \
        if (ow_ < (j)->OW) {                                                                   \
            const int lane = l0_, count = (j)->OW - ow_ < run_ ? (j)->OW - ow_ : run_;         \
            const size_t at = (size_t)oh_ * (size_t)(j)->OW + (size_t)ow_;                     \
            BODY                                                                               \
        }                                                                                      \
        l0_ += run_;                                                                           \
    }

// Runs BODY once per (tap, lane group) of the padded copy, in the packed weights' k order, with
// `i` (the group's index: a weight quad for u8 lanes, a weight pair for int16 ones) and xv[0..np)
// (the group's lanes of the tile's 8-pixel vectors from virtual pixel v0).
#define FOR_LANE_GROUPS(j, v0, np, BODY)                                                                          \
    do {                                                                                                          \
        const size_t cstride_ = (size_t)((j)->S * (j)->S) * (size_t)(j)->Hq * (size_t)(j)->Wq * 4;               \
        int i = 0;                                                                                                \
        for (int t_ = 0; t_ < (j)->taps; t_++) {                                                                  \
            const uint8_t *xt_ = (j)->xi + ((size_t)(v0) + (size_t)(j)->tap_off[t_]) * 4;                        \
            for (int c_ = 0; c_ < (j)->cl; c_++, i++) {                                                           \
                const uint8_t *xc_ = xt_ + (size_t)c_ * cstride_;                                                 \
                __m256i xv[PP];                                                                                   \
                _Pragma("unroll") for (int q = 0; q < (np); q++)                                                  \
                    xv[q] = _mm256_loadu_si256((const __m256i *)(xc_ + (size_t)q * 32));                           \
                BODY                                                                                              \
            }                                                                                                     \
        }                                                                                                         \
    } while (0)

static inline __attribute__((always_inline)) AVX2_TARGET void
tile(const ic2_job *j, int v0, int np, int co0, int nco) {
    __m256i acc[CO][PP];
    _Pragma("unroll") for (int r = 0; r < nco; r++) {
        // bias_i32 - za * colsum up front (qconv_channel_epilogue.h): the same int32 sums.
        const __m256i start = _mm256_set1_epi32(mpq_channel_acc_start(j->g->ep, j->g->za, j->g->colsum, co0 + r));
        _Pragma("unroll") for (int q = 0; q < np; q++) acc[r][q] = start;
    }
    if (j->wide) {
        // Channel pairs: 8 pixels x (c, c + 1) int16 per load, the pair's weights one int32
        // (weight pair i: tap t, channels 2cp, 2cp + 1).
        const int32_t *w2[CO];
        _Pragma("unroll") for (int r = 0; r < nco; r++) w2[r] = j->w16 + (size_t)(co0 + r) * (size_t)(j->g->kp / 2);
        FOR_LANE_GROUPS(j, v0, np, {
            _Pragma("unroll") for (int r = 0; r < nco; r++) {
                const __m256i wv = _mm256_set1_epi32(w2[r][i]);
                _Pragma("unroll") for (int q = 0; q < np; q++) acc[r][q] = _mm256_add_epi32(acc[r][q], _mm256_madd_epi16(xv[q], wv));
            }
        });
    } else {
        // u8 quads against the packed weights' 4-byte groups (group i: tap t, channels
        // 4cq..4cq+3 = (kh, kw, c) order), 16 output channels per 64-byte row.
        const __m256i ones = _mm256_set1_epi16(1);
        const int8_t *w[CO];
        _Pragma("unroll") for (int r = 0; r < nco; r++) {
            const int co = co0 + r;
            w[r] = j->g->bdata + (size_t)(co / 16) * (size_t)j->g->kp * 16 + (size_t)(co % 16) * 4;
        }
        FOR_LANE_GROUPS(j, v0, np, {
            _Pragma("unroll") for (int r = 0; r < nco; r++) {
                int32_t w4;
                memcpy(&w4, w[r] + (size_t)i * 64, 4);
                const __m256i wv = _mm256_set1_epi32(w4);
                _Pragma("unroll") for (int q = 0; q < np; q++)
                    acc[r][q] = _mm256_add_epi32(acc[r][q], _mm256_madd_epi16(_mm256_maddubs_epi16(xv[q], wv), ones));
            }
        });
    }
    const __m256i zp = _mm256_set1_epi32(j->g->out_zp);
    const __m256i low_bytes = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                               0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
    _Pragma("unroll") for (int r = 0; r < nco; r++) {
        const int co = co0 + r;
        const mpq_channel8 e = mpq_channel8_setup(j->g->ep, co);
        _Pragma("unroll") for (int q = 0; q < np; q++) {
            const __m256 v = mpq_channel8_values(&e, acc[r][q], 1, 1);
            const int vq = v0 + 8 * q;
            if (j->g->out_u8) {
                // The low byte of cvt(v) + zp per lane: the reference's (uint8_t) cast.
                const __m256i c = _mm256_shuffle_epi8(_mm256_add_epi32(_mm256_cvtps_epi32(v), zp), low_bytes);
                uint8_t b8[8];
                _mm_storel_epi64((__m128i *)b8, _mm_unpacklo_epi32(_mm256_castsi256_si128(c), _mm256_extracti128_si256(c, 1)));
                uint8_t *o = j->g->out_u8 + (size_t)co * (size_t)j->g->ldo;
                FOR_ROWS(j, vq, {
                    if (count == 8) memcpy(o + at, b8, 8);
                    else memcpy(o + at, b8 + lane, (size_t)count);
                })
            } else {
                float f8[8];
                _mm256_storeu_ps(f8, mpq_channel8_rounded(&e, v));
                float *o = j->g->out + (size_t)co * (size_t)j->g->ldo;
                FOR_ROWS(j, vq, { memcpy(o + at, f8 + lane, (size_t)count * sizeof(float)); })
            }
        }
    }
}

#define TILE_FN(R, P) \
    static AVX2_TARGET void tile_##R##_##P(const ic2_job *j, int v0, int co0) { tile(j, v0, P, co0, R); }
#define TILE_ROW(R) TILE_FN(R, 1) TILE_FN(R, 2) TILE_FN(R, 3) TILE_FN(R, 4)
TILE_ROW(1) TILE_ROW(2)
typedef void (*tile_fn)(const ic2_job *, int, int);
#define TILE_ENTRY(R) { tile_##R##_1, tile_##R##_2, tile_##R##_3, tile_##R##_4 }
static const tile_fn tiles[CO][PP] = {TILE_ENTRY(1), TILE_ENTRY(2)};

// Unit u: GROUP virtual pixels x one part of the output channels (whole tiles).
static void run_unit(void *arg, int u, int t) {
    (void)t;
    const ic2_job *j = (const ic2_job *)arg;
    const int grp = u % j->groups, part = u / j->groups;
    const int v0 = grp * GROUP;
    const int np = (j->vend - v0 + 7) / 8 < PP ? (j->vend - v0 + 7) / 8 : PP;
    const int ntiles = (j->g->n + CO - 1) / CO;
    const int co0 = ntiles * part / j->co_parts * CO, co1t = ntiles * (part + 1) / j->co_parts * CO;
    const int co1 = co1t < j->g->n ? co1t : j->g->n;
    for (int co = co0; co < co1; co += CO) {
        const int nco = co1 - co < CO ? co1 - co : CO;
        tiles[nco - 1][np - 1](j, v0, co);
    }
}

int mpq_implicit_conv_avx2(const mpq_gemm_job *g, const uint8_t *x, const mpq_conv2d_shape *s, int grp, uint8_t zp,
                           int threads) {
    const int cg = s->group > 0 ? s->channels / s->group : 0;
    const int S = s->stride_h;
    if (cg < 4 || cg % 4 || (S != 1 && S != 2) || s->stride_w != S || !g->out_channel_major || g->c ||
        g->kp != g->k || g->k != cg * s->kernel_h * s->kernel_w || s->kernel_h * s->kernel_w > 64)
        return -1;
    ic2_job j;
    j.wide = !g->b_pairs_fit_i16;
    j.cl = j.wide ? cg / 2 : cg / 4;
    j.H = s->height; j.W = s->width;
    j.pt = s->pad_top; j.pl = s->pad_left;
    const int Hp = s->pad_top + s->height + s->pad_bottom, Wp = s->pad_left + s->width + s->pad_right;
    j.S = S; j.Hq = (Hp + S - 1) / S; j.Wq = (Wp + S - 1) / S;
    j.OH = mpq_conv2d_out_h(s); j.OW = mpq_conv2d_out_w(s);
    if (j.OH <= 0 || j.OW <= 0 || j.Wq < 6 || j.OW > j.Wq) return -1;
    j.zp = zp;
    j.x = x + (size_t)grp * (size_t)cg * (size_t)j.H * (size_t)j.W;
    j.taps = s->kernel_h * s->kernel_w;
    // Tap (kh, kw) reads padded (S oh + kh dh, S ow + kw dw): phase ((kh dh) % S, (kw dw) % S)
    // at row oh + kh dh / S, column ow + kw dw / S, i.e. virtual pixel v plus this offset.
    int tap_off[64];
    for (int kh = 0; kh < s->kernel_h; kh++)
        for (int kw = 0; kw < s->kernel_w; kw++) {
            const int dy = kh * s->dilation_h, dx = kw * s->dilation_w;
            tap_off[kh * s->kernel_w + kw] = ((dy % S) * S + dx % S) * j.Hq * j.Wq + dy / S * j.Wq + dx / S;
        }
    j.tap_off = tap_off;
    j.vend = (j.OH - 1) * j.Wq + j.OW;
    j.g = g;
    const size_t xi_bytes = (size_t)j.cl * (size_t)(S * S) * (size_t)j.Hq * (size_t)j.Wq * 4 + SLACK_PIXELS * 4;
    const size_t w_elems = j.wide ? (size_t)g->n * (size_t)(g->kp / 2) : 0;
    j.xi = (uint8_t *)malloc(xi_bytes + w_elems * 4);
    if (!j.xi) return -1;
    memset(j.xi + xi_bytes - SLACK_PIXELS * 4, 0, SLACK_PIXELS * 4);  // read by dropped lanes only
    if (j.wide) {
        // Each channel's weight pairs as int32 (two int16), in k order: group g's 4 bytes of
        // channel co at bdata + (co / 16) kp 16 + g 64 + (co % 16) 4.
        int32_t *w16 = (int32_t *)(void *)(j.xi + xi_bytes);
        for (int co = 0; co < g->n; co++)
            for (int k = 0; k < g->kp; k += 2) {
                const int8_t *q = g->bdata + (size_t)(co / 16) * (size_t)g->kp * 16 + (size_t)(k / 4) * 64 + (size_t)(co % 16) * 4 + (k % 4);
                w16[(size_t)co * (size_t)(g->kp / 2) + (size_t)(k / 2)] = (int32_t)(((uint32_t)(uint16_t)(int16_t)q[1] << 16) | (uint16_t)(int16_t)q[0]);
            }
        j.w16 = w16;
    }
    if (threads < 1) threads = 1;
    if (threads > MPQ_POOL_MAX) threads = MPQ_POOL_MAX;
    j.pack_tasks = threads < j.cl ? threads : j.cl;
    if (j.pack_tasks > 1) mpq_pool_run(j.pack_tasks, pack_task, &j);
    else pack_task(&j, 0);
    j.groups = (j.vend + GROUP - 1) / GROUP;
    // Few pixel groups (a small plane): split the output channels too, so every core has
    // several claims (the VNNI kernel's rule).
    const int ntiles = (g->n + CO - 1) / CO;
    j.co_parts = 1;
    if (threads > 1 && j.groups < 8 * threads) {
        j.co_parts = (8 * threads + j.groups - 1) / j.groups;
        if (j.co_parts > ntiles) j.co_parts = ntiles;
    }
    const int units = j.groups * j.co_parts;
    if (threads > units) threads = units;
    mpq_run_ranges(threads, units, run_unit, &j);
    free(j.xi);
    return 0;
}
