// INT8 stride-1/2 Conv with no im2col (implicit GEMM; docs/int8-conv.md, "Implicit 3x3").
//
// The blocked im2col path copies every input byte KH * KW times into [pixels][K] rows,
// multiplies them by the weight panels and transposes every 16 x 16 output tile back to
// channel-major. For a conv on a large plane (ResNet's 3x3 at 56 x 56) the copy, its
// 16 x 16 byte transposes and the output transposes cost a quarter of the GEMM. Here the
// input is copied once, padded, into [C/4][Hp][Wp][4] (4 consecutive channels of a pixel in
// one 32-bit lane), and the vectors run along pixels as in qgemm_pointwise.c: 16 consecutive
// "virtual" pixels v = oh * Wp + ow (output positions on the padded width) of tap (kh, kw)
// are one 64-byte load at v + kh * dh * Wp + kw * dw, the u8 operand of vpdpbusd for 4
// channels; the s8 operand is one output channel's 4 weights of that tap broadcast from the
// (kh, kw, c) packed weights (4 consecutive k = 4 channels of one tap, since C % 4 == 0).
// Stride 2 splits the padded plane into its 4 phases (even/odd rows x even/odd columns, each
// Hq x Wq): a tap then reads one phase at a unit-stride offset, so the same loads serve.
// Each accumulator is 16 virtual pixels of one output channel; lanes on the padded columns
// (ow >= OW) or past the last row are computed and dropped, the rest stored channel-major
// by one masked store per output row they touch. Waste: (Wq - OW) / Wq of the lanes, so
// the driver takes this path only on wide planes.
// Micro-tile: 6 output channels x 4 pixel panels = 24 zmm accumulators; per group of 4 k,
// 4 x loads + 6 weight broadcasts feed 24 vpdpbusd (the channel-major im2col tile: 17 loads
// per 16). Integer sums are exact and the epilogue is epilogue16's sequence with per-channel
// values broadcast, so the bytes equal the im2col + GEMM path's for any split.
#include "mpq_internal.h"
#include "qconv_channel_epilogue.h"
#include <immintrin.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define VNNI_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))
#define CO 6
#define PP 4
#define SLACK_PIXELS 64  // reads of dropped lanes past the last plane stay inside the buffer

typedef struct {
    const uint8_t *x;        // the group's first channel plane (NCHW)
    int c4, H, W, Hp, Wp, pt, pl;
    int S, Hq, Wq;           // stride; each phase plane Hq x Wq (Wq: the virtual row width)
    uint8_t zp;
    uint8_t *xi;             // [c4][S][S][Hq][Wq][4], then SLACK_PIXELS * 4 bytes
    int taps, KW;
    int *tap_off;            // virtual-pixel offset of each tap (kh, kw order)
    int OH, OW, vend;        // vend = last virtual pixel + 1
    int n, kp;
    const int8_t *bdata;
    const int32_t *colsum;
    int32_t za;
    const mpq_epilogue *ep;
    float *out;
    uint8_t *out_u8;
    int32_t out_zp;
    size_t ldo;
    // The split: 64-pixel groups x output-channel parts.
    int groups, co_parts, pack_tasks;
} ic_job;

// 16 bytes of one channel row for the lanes of phase b: bytes w0, w0+S, ... (S = 1 or 2)
// of `src`, lanes past `lanes` zero. Stride 2 loads 32 bytes and keeps the even ones
// (vpmovwb truncates each 16-bit pair to its low byte).
static inline __attribute__((always_inline)) VNNI_TARGET __m128i load_phase(const uint8_t *src, int S, int lanes) {
    if (S == 1) return _mm_maskz_loadu_epi8(lanes >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << lanes) - 1u), src);
    const int bytes = 2 * lanes - 1;  // the last lane's byte is the last one needed
    const __mmask32 m = bytes >= 32 ? (__mmask32)0xFFFFFFFFu : (__mmask32)((1u << bytes) - 1u);
    return _mm256_cvtepi16_epi8(_mm256_maskz_loadu_epi8(m, src));
}

// Channel group cq of the padded interleaved copy, phase by phase: phase (a, b), row r,
// column c holds padded pixel (S r + a, S c + b); pad rows and columns (and positions past
// the padded plane) hold the zero point.
static VNNI_TARGET void pack_group(const ic_job *j, int cq) {
    const size_t plane = (size_t)j->H * (size_t)j->W, qplane = (size_t)j->Hq * (size_t)j->Wq;
    const uint32_t z4 = 0x01010101u * j->zp;
    const int S = j->S;
    for (int a = 0; a < S; a++)
        for (int b = 0; b < S; b++) {
            uint32_t *dst = (uint32_t *)(void *)(j->xi + (((size_t)cq * (size_t)(S * S) + (size_t)(a * S + b)) * qplane) * 4);
            // Columns c of this phase inside the image: iw = S c + b - pl in [0, W).
            int c_lo = j->pl - b > 0 ? (j->pl - b + S - 1) / S : 0;
            int c_hi = (j->W - 1 + j->pl - b) >= 0 ? (j->W - 1 + j->pl - b) / S + 1 : 0;
            if (c_hi > j->Wq) c_hi = j->Wq;
            if (c_lo > c_hi) c_lo = c_hi;
            for (int r = 0; r < j->Hq; r++) {
                uint32_t *row = dst + (size_t)r * (size_t)j->Wq;
                const int ih = S * r + a - j->pt;
                if (ih < 0 || ih >= j->H) {
                    for (int i = 0; i < j->Wq; i++) row[i] = z4;
                    continue;
                }
                for (int i = 0; i < c_lo; i++) row[i] = z4;
                for (int i = c_hi; i < j->Wq; i++) row[i] = z4;
                const uint8_t *src = j->x + (size_t)(4 * cq) * plane + (size_t)ih * (size_t)j->W;
                for (int c0 = c_lo; c0 < c_hi; c0 += 16) {
                    const int lanes = c_hi - c0 < 16 ? c_hi - c0 : 16;
                    const __mmask16 m = lanes >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << lanes) - 1u);
                    const uint8_t *at = src + (S * c0 + b - j->pl);
                    __m128i r4[4];
                    for (int i = 0; i < 4; i++) r4[i] = load_phase(at + (size_t)i * plane, S, lanes);
                    const __m128i lo01 = _mm_unpacklo_epi8(r4[0], r4[1]), hi01 = _mm_unpackhi_epi8(r4[0], r4[1]);
                    const __m128i lo23 = _mm_unpacklo_epi8(r4[2], r4[3]), hi23 = _mm_unpackhi_epi8(r4[2], r4[3]);
                    const __m512i v = _mm512_inserti64x4(
                        _mm512_castsi256_si512(_mm256_set_m128i(_mm_unpackhi_epi16(lo01, lo23), _mm_unpacklo_epi16(lo01, lo23))),
                        _mm256_set_m128i(_mm_unpackhi_epi16(hi01, hi23), _mm_unpacklo_epi16(hi01, hi23)), 1);
                    _mm512_mask_storeu_epi32(row + c0, m, v);
                }
            }
        }
}

static void pack_task(void *arg, int t) {
    const ic_job *j = (const ic_job *)arg;
    const int c0 = j->c4 * t / j->pack_tasks, c1 = j->c4 * (t + 1) / j->pack_tasks;
    for (int cq = c0; cq < c1; cq++) pack_group(j, cq);
}

// Where the 16 lanes of virtual pixels [v0, v0 + 16) go: one masked store per output row
// they touch, `off` the output index of lane 0 on that row's line (lane l at off + l).
typedef struct {
    int count;
    __mmask16 mask[4];  // padded rows of 6+ pixels: 16 lanes touch at most 4
    ptrdiff_t off[4];
} lane_rows;

static lane_rows rows_of(const ic_job *j, int v0) {
    lane_rows r = {0, {0, 0, 0, 0}, {0, 0, 0, 0}};
    for (int l0 = 0; l0 < 16;) {
        const int v = v0 + l0, oh = v / j->Wq, ow = v % j->Wq;
        const int run = j->Wq - ow < 16 - l0 ? j->Wq - ow : 16 - l0;  // lanes left on this virtual row
        if (oh >= j->OH || v >= j->vend) break;
        if (ow < j->OW) {
            int valid = j->OW - ow < run ? j->OW - ow : run;
            r.mask[r.count] = (__mmask16)(((1u << valid) - 1u) << l0);
            r.off[r.count] = (ptrdiff_t)oh * j->OW + ow - l0;
            r.count++;
        }
        l0 += run;
    }
    return r;
}

static inline __attribute__((always_inline)) VNNI_TARGET void
tile(const ic_job *j, int v0, int np, int co0, int nco) {
    __m512i acc[CO][PP];
    const int8_t *w[CO];
    _Pragma("unroll") for (int r = 0; r < nco; r++) {
        const int co = co0 + r;
        w[r] = j->bdata + (size_t)(co / 16) * (size_t)j->kp * 16 + (size_t)(co % 16) * 4;
        // bias_i32 - za * colsum up front (qconv_channel_epilogue.h): the same int32 sums.
        const __m512i start = _mm512_set1_epi32(mpq_channel_acc_start(j->ep, j->za, j->colsum, co));
        _Pragma("unroll") for (int q = 0; q < np; q++) acc[r][q] = start;
    }
    const size_t cstride = (size_t)(j->S * j->S) * (size_t)j->Hq * (size_t)j->Wq * 4;
    int g = 0;  // packed k group: tap t, channels 4cq..4cq+3 = (kh, kw, c) order
    for (int t = 0; t < j->taps; t++) {
        const uint8_t *xt = j->xi + ((size_t)v0 + (size_t)j->tap_off[t]) * 4;
        for (int cq = 0; cq < j->c4; cq++, g++) {
            const uint8_t *xc = xt + (size_t)cq * cstride;
            __m512i xv[PP];
            _Pragma("unroll") for (int q = 0; q < np; q++) xv[q] = _mm512_loadu_si512((const void *)(xc + (size_t)q * 64));
            _Pragma("unroll") for (int r = 0; r < nco; r++) {
                int32_t w4;
                memcpy(&w4, w[r] + (size_t)g * 64, 4);
                const __m512i wv = _mm512_set1_epi32(w4);
                _Pragma("unroll") for (int q = 0; q < np; q++) acc[r][q] = _mm512_dpbusd_epi32(acc[r][q], xv[q], wv);
            }
        }
    }
    lane_rows rows[PP];
    _Pragma("unroll") for (int q = 0; q < np; q++) rows[q] = rows_of(j, v0 + 16 * q);
    const __m512i zp = _mm512_set1_epi32(j->out_zp);
    _Pragma("unroll") for (int r = 0; r < nco; r++) {
        const int co = co0 + r;
        const mpq_channel_epilogue e = mpq_channel_epilogue_setup(j->ep, co);
        _Pragma("unroll") for (int q = 0; q < np; q++) {
            const __m512 v = mpq_channel_values(&e, acc[r][q]);
            // Lane 0 of a row's store may sit before the channel's first pixel (masked off):
            // the address is formed in integers and only masked lanes are touched.
            const uintptr_t chan = (uintptr_t)co * j->ldo;
            if (j->out_u8) {
                const __m128i c8 = mpq_channel_codes(v, zp);
                for (int i = 0; i < rows[q].count; i++)
                    _mm_mask_storeu_epi8((void *)((uintptr_t)j->out_u8 + chan + (uintptr_t)rows[q].off[i]), rows[q].mask[i], c8);
            } else {
                const __m512 f = mpq_channel_floats(&e, v);
                for (int i = 0; i < rows[q].count; i++)
                    _mm512_mask_storeu_ps((void *)((uintptr_t)j->out + (chan + (uintptr_t)rows[q].off[i]) * sizeof(float)),
                                          rows[q].mask[i], f);
            }
        }
    }
}

#define TILE_FN(R, P) \
    static VNNI_TARGET void tile_##R##_##P(const ic_job *j, int v0, int co0) { tile(j, v0, P, co0, R); }
#define TILE_ROW(R) TILE_FN(R, 1) TILE_FN(R, 2) TILE_FN(R, 3) TILE_FN(R, 4)
TILE_ROW(1) TILE_ROW(2) TILE_ROW(3) TILE_ROW(4) TILE_ROW(5) TILE_ROW(6)
typedef void (*tile_fn)(const ic_job *, int, int);
#define TILE_ENTRY(R) { tile_##R##_1, tile_##R##_2, tile_##R##_3, tile_##R##_4 }
static const tile_fn tiles[CO][PP] = {
    TILE_ENTRY(1), TILE_ENTRY(2), TILE_ENTRY(3), TILE_ENTRY(4), TILE_ENTRY(5), TILE_ENTRY(6),
};

// Unit u: 64 virtual pixels (one group) x one part of the output channels, in whole
// 6-channel tiles, so a part's tiles are one thread's tiles.
static void run_unit(const ic_job *j, int u) {
    // Part-major: a thread's contiguous range (mpq_run_ranges) is whole channel parts where
    // the channels are split (small planes): output rows and weights of its own.
    const int grp = u % j->groups, part = u / j->groups;
    const int v0 = grp * 16 * PP;
    const int np = (j->vend - v0 + 15) / 16 < PP ? (j->vend - v0 + 15) / 16 : PP;
    const int ntiles = (j->n + CO - 1) / CO;
    const int co0 = ntiles * part / j->co_parts * CO, co1t = ntiles * (part + 1) / j->co_parts * CO;
    const int co1 = co1t < j->n ? co1t : j->n;
    for (int co = co0; co < co1; co += CO) {
        const int nco = co1 - co < CO ? co1 - co : CO;
        tiles[nco - 1][np - 1](j, v0, co);
    }
}

static void run_task_unit(void *arg, int u, int t) {
    (void)t;
    run_unit((const ic_job *)arg, u);
}

int mpq_implicit_conv_vnni(const mpq_gemm_job *g, const uint8_t *x, const mpq_conv2d_shape *s, int grp, uint8_t zp,
                           int threads) {
    const int cg = s->group > 0 ? s->channels / s->group : 0;
    const int S = s->stride_h;
    if (cg < 4 || cg % 4 || (S != 1 && S != 2) || s->stride_w != S || !g->out_channel_major || g->c || g->kp != g->k ||
        g->k != cg * s->kernel_h * s->kernel_w || s->kernel_h * s->kernel_w > 64)
        return -1;
    ic_job j;
    j.c4 = cg / 4; j.H = s->height; j.W = s->width;
    j.pt = s->pad_top; j.pl = s->pad_left;
    j.Hp = s->pad_top + s->height + s->pad_bottom;
    j.Wp = s->pad_left + s->width + s->pad_right;
    j.S = S; j.Hq = (j.Hp + S - 1) / S; j.Wq = (j.Wp + S - 1) / S;
    j.OH = mpq_conv2d_out_h(s); j.OW = mpq_conv2d_out_w(s);
    if (j.OH <= 0 || j.OW <= 0 || j.Wq < 6) return -1;
    j.zp = zp;
    j.x = x + (size_t)grp * (size_t)cg * (size_t)j.H * (size_t)j.W;
    j.taps = s->kernel_h * s->kernel_w; j.KW = s->kernel_w;
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
    j.n = g->n; j.kp = g->kp; j.bdata = g->bdata; j.colsum = g->colsum; j.za = g->za; j.ep = g->ep;
    j.out = g->out; j.out_u8 = g->out_u8; j.out_zp = g->out_zp; j.ldo = (size_t)g->ldo;
    const size_t xi_bytes = (size_t)j.c4 * (size_t)(S * S) * (size_t)j.Hq * (size_t)j.Wq * 4 + SLACK_PIXELS * 4;
    j.xi = (uint8_t *)malloc(xi_bytes);
    if (!j.xi) return -1;
    memset(j.xi + xi_bytes - SLACK_PIXELS * 4, zp, SLACK_PIXELS * 4);
    if (threads < 1) threads = 1;
    if (threads > MPQ_POOL_MAX) threads = MPQ_POOL_MAX;
    j.pack_tasks = threads < j.c4 ? threads : j.c4;
    if (j.pack_tasks > 1) mpq_pool_run(j.pack_tasks, pack_task, &j);
    else pack_task(&j, 0);
    j.groups = (j.vend + 16 * PP - 1) / (16 * PP);
    // Few pixel groups (a small plane): split the output channels too, so every core has
    // several claims and a slow core's share can move to the other.
    const int ntiles = (j.n + CO - 1) / CO;
    j.co_parts = 1;
    if (threads > 1 && j.groups < 8 * threads) {
        j.co_parts = (8 * threads + j.groups - 1) / j.groups;
        if (j.co_parts > ntiles) j.co_parts = ntiles;
    }
    const int units = j.groups * j.co_parts;
    if (threads > units) threads = units;
    // Each thread a contiguous run of units (mpq_run_ranges): neighbouring pixel groups share
    // cache lines of every output channel's row.
    mpq_run_ranges(threads, units, run_task_unit, &j);
    free(j.xi);
    return 0;
}

int mpq_qconv2d_u8s8_implicit(mpq_kernel_path path, const uint8_t *x, const mpq_conv2d_shape *s, int g, int khwc,
                              uint8_t x_zero_point, const void *packed, const mpq_epilogue *ep, float *out,
                              uint8_t *out_u8, uint8_t out_zero_point, int threads) {
    const int oh_n = mpq_conv2d_out_h(s), ow_n = mpq_conv2d_out_w(s);
    if (!x || oh_n <= 0 || ow_n <= 0 || g < 0 || g >= s->group || !packed || !ep || !khwc) return -1;
    const mpq_kernel_path resolved = mpq_resolve_kernel_path(path);
    if ((resolved != MPQ_PATH_VNNI && resolved != MPQ_PATH_AVX2) || ep->a_zero_point != (int32_t)x_zero_point) return -1;
    const int k = s->channels / s->group * s->kernel_h * s->kernel_w, m = oh_n * ow_n;
    mpq_gemm_job job;
    mpq_epilogue codes;
    if (mpq_gemm_epilogue_job(&job, m, ((const mpq_packed_b_header *)packed)->n, k, x, k, packed, ep, out, out_u8, m,
                              out_zero_point, 1, &codes))
        return -1;
    return resolved == MPQ_PATH_AVX2 ? mpq_implicit_conv_avx2(&job, x, s, g, x_zero_point, threads)
                                     : mpq_implicit_conv_vnni(&job, x, s, g, x_zero_point, threads);
}
