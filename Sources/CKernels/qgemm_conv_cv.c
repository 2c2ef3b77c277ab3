// INT8 Conv on small planes with output channels in the vector lanes (channel-vector tiles;
// docs/int8-conv.md, "Channel-vector tiles"). The INT8 twin of sconv_cv*.c.
//
// The pixel-vector kernels (implicit, pointwise) put 16 output pixels of one channel in a
// vector: a 7x7 plane's 49 pixels fill 64 lanes (plus the padded-width lanes), and the blocked
// im2col copies every input byte KH * KW times and transposes every output tile. Here a vector
// is 16 output channels of ONE pixel, so a 49-pixel plane has no junk lanes, the way ONNX
// Runtime's NHWC QLinearConv (MLAS u8s8) runs it:
//
// - The group's input is copied once into a padded channels-last buffer xh[Hp][Wp][C] (16 x 16
//   byte transposes; pad pixels hold the input zero point, as the im2col's pad taps did).
// - With (kh, kw, c) packed weights and C % 4 == 0, packed k group g = (tap t, channels
//   4cq..4cq+3), and its 64 bytes for a 16-channel panel ([16 oc][4 k]) are the s8 operand of
//   vpdpbusd as they lie. The u8 operand is a 4-byte broadcast of the pixel's 4 input channels
//   of that tap: xh at the pixel's window origin + the tap's offset + 4cq (one contiguous run of
//   C bytes per tap: no im2col).
// - Micro-tile NV = 4 panels (64 output channels) x NP = 6 pixels: 24 zmm accumulators, per k
//   group 4 weight loads + 6 broadcasts feed 24 vpdpbusd. The pixels of a tile are consecutive
//   output pixels (row crossings included: each has its own window origin).
// - Epilogue per vector with per-channel values as vectors (the same float ops per lane as
//   qconv_channel_epilogue.h / epilogue16), codes or floats into a per-task [pixel][64] buffer;
//   then 16 x 16 transposes write the unit's pixels channel-major (NCHW).
//
// Integer sums are exact (vpdpbusd adds mod 2^32, as the reference wraps) and the epilogue is
// the same sequence, so the bytes equal the im2col + GEMM path's for every split.
// mpq_qconv2d_u8s8_cv on MPQ_PATH_REFERENCE runs the scalar form of the same algorithm.
#include "im2col_transpose.h"
#include "mpq_internal.h"
#include "qconv_channel_epilogue.h"
#include <immintrin.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define VNNI_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))
#define NV 4       // 16-channel panels per tile
#define NP 6       // output pixels per tile
#define CHUNK 96   // most output pixels of one unit (its [pixel][64] buffer: 24 KB of floats)
#define MAX_TAPS 64

typedef struct {
    const uint8_t *x;  // the group's first channel plane (NCHW)
    int C, H, W, Hp, Wp, pt, pl, sh, sw;
    uint8_t zp;
    uint8_t *xh;  // [Hp][Wp][C]
    int taps, c4;
    int toff[MAX_TAPS];  // byte offset of tap (kh, kw) from a pixel's window origin
    int OH, OW, P;
    int n, kp, panels;
    const int8_t *bdata;
    const int32_t *colsum;
    int32_t za;
    const mpq_epilogue *ep;
    float *out;
    uint8_t *out_u8;
    int32_t out_zp;
    size_t ldo;
    int chunks, pgroups, pack_tasks;
    // A strided or padded 1x1 kernel (ResNet's downsample): xh holds only the sampled pixels,
    // [OH][OW][C] (Hp = OH, Wp = OW, unit strides), read from the image at these strides.
    int sub, sub_sh, sub_sw;
    uint8_t *scratch;  // per task: CHUNK x 64 floats
} cv_job;

#define SCRATCH_BYTES ((size_t)CHUNK * 64 * sizeof(float))

// Whether the shape is one this path takes (both the SIMD and the scalar form).
static int cv_shape_ok(const mpq_conv2d_shape *s, int khwc) {
    const int cg = s->group > 0 ? s->channels / s->group : 0, taps = s->kernel_h * s->kernel_w;
    // (kh, kw, c) weights, or a 1x1 kernel (both orders are the same).
    if (!(khwc || taps == 1) || cg < 4 || cg % 4 || taps > MAX_TAPS || s->stride_h < 1 || s->stride_w < 1) return 0;
    const long hp = (long)s->pad_top + s->height + s->pad_bottom, wp = (long)s->pad_left + s->width + s->pad_right;
    return mpq_conv2d_out_h(s) > 0 && mpq_conv2d_out_w(s) > 0 && hp * wp * cg < INT32_MAX;
}

static int cv_setup(cv_job *j, const mpq_gemm_job *g, const uint8_t *x, const mpq_conv2d_shape *s, int grp, uint8_t zp) {
    const int cg = s->channels / s->group;
    if (!g->out_channel_major || g->c || g->kp != g->k || g->k != cg * s->kernel_h * s->kernel_w) return -1;
    j->C = cg; j->H = s->height; j->W = s->width;
    j->pt = s->pad_top; j->pl = s->pad_left;
    j->Hp = s->pad_top + s->height + s->pad_bottom;
    j->Wp = s->pad_left + s->width + s->pad_right;
    j->sh = s->stride_h; j->sw = s->stride_w;
    j->zp = zp;
    j->x = x + (size_t)grp * (size_t)cg * (size_t)j->H * (size_t)j->W;
    j->taps = s->kernel_h * s->kernel_w; j->c4 = cg / 4;
    for (int kh = 0; kh < s->kernel_h; kh++)
        for (int kw = 0; kw < s->kernel_w; kw++)
            j->toff[kh * s->kernel_w + kw] = (kh * s->dilation_h * j->Wp + kw * s->dilation_w) * cg;
    j->OH = mpq_conv2d_out_h(s); j->OW = mpq_conv2d_out_w(s); j->P = j->OH * j->OW;
    j->n = g->n; j->kp = g->kp; j->panels = (g->n + 15) / 16;
    j->bdata = g->bdata; j->colsum = g->colsum; j->za = g->za; j->ep = g->ep;
    j->out = g->out; j->out_u8 = g->out_u8; j->out_zp = g->out_zp; j->ldo = (size_t)g->ldo;
    j->xh = NULL; j->scratch = NULL; j->sub = 0;
    return 0;
}

// Byte offset in xh of output pixel p's window origin.
static inline size_t origin(const cv_job *j, int p) {
    const int oh = p / j->OW, ow = p % j->OW;
    return ((size_t)oh * (size_t)j->sh * (size_t)j->Wp + (size_t)ow * (size_t)j->sw) * (size_t)j->C;
}

// MARK: - Scalar form (MPQ_PATH_REFERENCE): the same copy, sums and epilogue, one value at a time.

static void pack_scalar(const cv_job *j) {
    memset(j->xh, j->zp, (size_t)j->Hp * (size_t)j->Wp * (size_t)j->C);
    const size_t plane = (size_t)j->H * (size_t)j->W;
    for (int c = 0; c < j->C; c++)
        for (int ih = 0; ih < j->H; ih++)
            for (int iw = 0; iw < j->W; iw++)
                j->xh[((size_t)(ih + j->pt) * (size_t)j->Wp + (size_t)(iw + j->pl)) * (size_t)j->C + (size_t)c] =
                    j->x[(size_t)c * plane + (size_t)ih * (size_t)j->W + (size_t)iw];
}

static void run_scalar(const cv_job *j) {
    const mpq_epilogue *ep = j->ep;
    for (int co = 0; co < j->n; co++) {
        const int8_t *wp = j->bdata + (size_t)(co / 16) * (size_t)j->kp * 16 + (size_t)(co % 16) * 4;
        for (int p = 0; p < j->P; p++) {
            const uint8_t *xo = j->xh + origin(j, p);
            uint32_t acc = 0;
            int k = 0;  // (kh, kw, c) order, as packed
            for (int t = 0; t < j->taps; t++)
                for (int c = 0; c < j->C; c++, k++)
                    acc += (uint32_t)((int32_t)xo[j->toff[t] + c] * (int32_t)wp[(size_t)(k / 4) * 64 + (size_t)(k % 4)]);
            acc -= (uint32_t)j->za * (uint32_t)j->colsum[co];
            const float v = mpq_epilogue_scalar((int32_t)acc, ep->bias_i32, ep->a_scale, ep->b_scale[co], ep->bias, co,
                                                ep->clamp_lo, ep->clamp_hi, ep->out_scale);
            const size_t at = (size_t)co * j->ldo + (size_t)p;
            if (j->out_u8) j->out_u8[at] = mpq_code_u8(v, j->out_zp);
            else j->out[at] = v;
        }
    }
}

// MARK: - AVX-512 VNNI

// Input rows [r0, r1) (with their left and right padding) into xh: 16 pixels (crossing rows)
// x 16 channels per byte transpose.
static VNNI_TARGET void pack_rows(const cv_job *j, int r0, int r1) {
    const size_t plane = (size_t)j->H * (size_t)j->W, C = (size_t)j->C;
    for (int r = r0; r < r1; r++) {
        uint8_t *row = j->xh + (size_t)(r + j->pt) * (size_t)j->Wp * C;
        memset(row, j->zp, (size_t)j->pl * C);
        memset(row + (size_t)(j->pl + j->W) * C, j->zp, (size_t)(j->Wp - j->pl - j->W) * C);
    }
    const int p1 = r1 * j->W;
    for (int p0 = r0 * j->W; p0 < p1; p0 += 16) {
        const int np = p1 - p0 < 16 ? p1 - p0 : 16;
        const __mmask16 pm = (__mmask16)((1u << np) - 1u);
        size_t dst[16];
        for (int i = 0; i < np; i++) {
            const int p = p0 + i, ih = p / j->W, iw = p % j->W;
            dst[i] = ((size_t)(ih + j->pt) * (size_t)j->Wp + (size_t)(iw + j->pl)) * C;
        }
        for (int c0 = 0; c0 < j->C; c0 += 16) {
            const int nc = j->C - c0 < 16 ? j->C - c0 : 16;
            __m128i a[16];
            for (int i = 0; i < 16; i++)
                a[i] = i < nc ? _mm_maskz_loadu_epi8(pm, j->x + (size_t)(c0 + i) * plane + (size_t)p0) : _mm_setzero_si128();
            uint8_t t[256];
            mpq_transpose16_store(a, t, 16);  // t[pixel * 16 + channel]
            const __mmask16 cm = (__mmask16)((1u << nc) - 1u);
            for (int i = 0; i < np; i++) _mm_mask_storeu_epi8(j->xh + dst[i] + (size_t)c0, cm, _mm_loadu_si128((const __m128i *)(t + 16 * i)));
        }
    }
}

// 16 bytes row[iw0 + i * S] for i < n (zero point where iw is outside [0, W)): one masked
// load where the run is inside the row and S is 1 or 2, else one byte at a time.
static inline __attribute__((always_inline)) VNNI_TARGET __m128i sample16(const uint8_t *row, int W, int iw0, int S, int n,
                                                                          uint8_t zp) {
    const int last = iw0 + (n - 1) * S;
    if (iw0 >= 0 && last < W && S <= 2) {
        if (S == 1) return _mm_maskz_loadu_epi8((__mmask16)((1u << n) - 1u), row + iw0);
        const int bytes = 2 * n - 1;  // stride 2: the even bytes of 2n - 1 (vpmovwb keeps each word's low byte)
        const __mmask32 m = bytes >= 32 ? (__mmask32)0xFFFFFFFFu : (__mmask32)((1u << bytes) - 1u);
        return _mm256_cvtepi16_epi8(_mm256_maskz_loadu_epi8(m, row + iw0));
    }
    uint8_t b[16] = {0};
    for (int i = 0; i < n; i++) {
        const int iw = iw0 + i * S;
        b[i] = iw >= 0 && iw < W ? row[iw] : zp;
    }
    return _mm_loadu_si128((const __m128i *)b);
}

// Output rows [r0, r1) of the subsampled copy: pixel (oh, ow) = image (oh sh - pt, ow sw - pl)
// or the zero point, 16 pixels x 16 channels per transpose. A 1x1 stride-2 conv reads a
// quarter of its input: copying the whole padded image cost more than its K = C MACs.
static VNNI_TARGET void pack_sub_rows(const cv_job *j, int r0, int r1) {
    const size_t plane = (size_t)j->H * (size_t)j->W, C = (size_t)j->C;
    for (int oh = r0; oh < r1; oh++) {
        uint8_t *row = j->xh + (size_t)oh * (size_t)j->OW * C;
        const int ih = oh * j->sub_sh - j->pt;
        if (ih < 0 || ih >= j->H) { memset(row, j->zp, (size_t)j->OW * C); continue; }
        for (int ow0 = 0; ow0 < j->OW; ow0 += 16) {
            const int np = j->OW - ow0 < 16 ? j->OW - ow0 : 16;
            const int iw0 = ow0 * j->sub_sw - j->pl;
            for (int c0 = 0; c0 < j->C; c0 += 16) {
                const int nc = j->C - c0 < 16 ? j->C - c0 : 16;
                __m128i a[16];
                for (int i = 0; i < 16; i++)
                    a[i] = i < nc ? sample16(j->x + (size_t)(c0 + i) * plane + (size_t)ih * (size_t)j->W, j->W, iw0, j->sub_sw, np, j->zp)
                                  : _mm_setzero_si128();
                uint8_t t[256];
                mpq_transpose16_store(a, t, 16);  // t[pixel * 16 + channel]
                const __mmask16 cm = (__mmask16)((1u << nc) - 1u);
                for (int i = 0; i < np; i++)
                    _mm_mask_storeu_epi8(row + (size_t)(ow0 + i) * C + (size_t)c0, cm, _mm_loadu_si128((const __m128i *)(t + 16 * i)));
            }
        }
    }
}

static void pack_task(void *arg, int t) {
    const cv_job *j = (const cv_job *)arg;
    if (j->sub) {
        pack_sub_rows(j, j->OH * t / j->pack_tasks, j->OH * (t + 1) / j->pack_tasks);
        return;
    }
    const int r0 = j->H * t / j->pack_tasks, r1 = j->H * (t + 1) / j->pack_tasks;
    const size_t rowb = (size_t)j->Wp * (size_t)j->C;
    // The pad rows above and below the image: task 0 and the last task.
    if (t == 0) memset(j->xh, j->zp, (size_t)j->pt * rowb);
    if (t == j->pack_tasks - 1) memset(j->xh + (size_t)(j->pt + j->H) * rowb, j->zp, (size_t)(j->Hp - j->pt - j->H) * rowb);
    pack_rows(j, r0, r1);
}

// Pixels [p0, p0 + np) x panels [pan0, pan0 + nv): the epilogue's codes (16 bytes) or floats
// (64 bytes) of panel v, pixel q at buf + (q * 64 + v * 16) elements.
static inline __attribute__((always_inline)) VNNI_TARGET void tile(const cv_job *j, int p0, int np, int pan0, int nv,
                                                                  void *buf) {
    const uint8_t *xp[NP];
    _Pragma("unroll") for (int q = 0; q < np; q++) xp[q] = j->xh + origin(j, p0 + q);
    const int8_t *wb[NV];
    __m512i acc[NV][NP];
    const mpq_epilogue *ep = j->ep;
    _Pragma("unroll") for (int v = 0; v < nv; v++) {
        const int co = (pan0 + v) * 16;
        wb[v] = j->bdata + (size_t)(pan0 + v) * (size_t)j->kp * 16;
        // bias_i32 - za * colsum as the start (qconv_channel_epilogue.h): the same int32 sums.
        const __mmask16 m = j->n - co >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (j->n - co)) - 1u);
        __m512i start = _mm512_sub_epi32(_mm512_setzero_si512(),
                                         _mm512_mullo_epi32(_mm512_set1_epi32(j->za), _mm512_maskz_loadu_epi32(m, j->colsum + co)));
        if (ep->bias_i32) start = _mm512_add_epi32(start, _mm512_maskz_loadu_epi32(m, ep->bias_i32 + co));
        _Pragma("unroll") for (int q = 0; q < np; q++) acc[v][q] = start;
    }
    int g = 0;
    for (int t = 0; t < j->taps; t++) {
        const int o = j->toff[t];
        for (int cq = 0; cq < j->c4; cq++, g++) {
            __m512i wv[NV];
            _Pragma("unroll") for (int v = 0; v < nv; v++) wv[v] = _mm512_loadu_si512((const void *)(wb[v] + (size_t)g * 64));
            _Pragma("unroll") for (int q = 0; q < np; q++) {
                int32_t x4;
                memcpy(&x4, xp[q] + o + 4 * cq, 4);
                const __m512i xv = _mm512_set1_epi32(x4);
                _Pragma("unroll") for (int v = 0; v < nv; v++) acc[v][q] = _mm512_dpbusd_epi32(acc[v][q], xv, wv[v]);
            }
        }
    }
    const __m512 lo = _mm512_set1_ps(ep->clamp_lo), hi = _mm512_set1_ps(ep->clamp_hi);
    const __m512 out_scale = _mm512_set1_ps(ep->out_scale);
    const __m512i zp = _mm512_set1_epi32(j->out_zp);
    _Pragma("unroll") for (int v = 0; v < nv; v++) {
        const int co = (pan0 + v) * 16;
        // epilogue16's sequence, per-channel values loaded as vectors (channels past n: 0).
        const mpq_lane_channels ch = mpq_lane_channels_load(ep, co, j->n);
        const __m512 s = ch.scale, bias = ch.bias;
        _Pragma("unroll") for (int q = 0; q < np; q++) {
            __m512 x = _mm512_mul_ps(_mm512_cvtepi32_ps(acc[v][q]), s);
            if (ep->bias) x = _mm512_add_ps(x, bias);
            x = _mm512_min_ps(_mm512_max_ps(x, lo), hi);
            if (j->out_u8) {
                // cvtps rounds to nearest even (qconv_channel_epilogue.h, mpq_channel_codes).
                _mm_storeu_si128((__m128i *)((uint8_t *)buf + q * 64 + v * 16),
                                 _mm512_cvtusepi32_epi8(_mm512_add_epi32(_mm512_cvtps_epi32(x), zp)));
            } else {
                if (ep->out_scale > 0)
                    x = _mm512_add_ps(_mm512_mul_ps(_mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), out_scale),
                                      _mm512_setzero_ps());
                _mm512_storeu_ps((float *)buf + q * 64 + v * 16, x);
            }
        }
    }
}

#define TILE_FN(V, P) \
    static VNNI_TARGET void tile_##V##_##P(const cv_job *j, int p0, int pan0, void *buf) { tile(j, p0, P, pan0, V, buf); }
#define TILE_ROW(V) TILE_FN(V, 1) TILE_FN(V, 2) TILE_FN(V, 3) TILE_FN(V, 4) TILE_FN(V, 5) TILE_FN(V, 6)
TILE_ROW(1) TILE_ROW(2) TILE_ROW(3) TILE_ROW(4)
typedef void (*tile_fn)(const cv_job *, int, int, void *);
#define TILE_ENTRY(V) { tile_##V##_1, tile_##V##_2, tile_##V##_3, tile_##V##_4, tile_##V##_5, tile_##V##_6 }
static const tile_fn tiles[NV][NP] = { TILE_ENTRY(1), TILE_ENTRY(2), TILE_ENTRY(3), TILE_ENTRY(4) };

// The unit's [pixel][64] buffer, pixels [c0, c1), out channel-major: 16 pixels x 16 channels
// per transpose for codes; floats (only when a float output is asked for) one by one.
static VNNI_TARGET void store_unit(const cv_job *j, int c0, int c1, int pan0, int nv, const void *buf) {
    for (int v = 0; v < nv; v++) {
        const int co = (pan0 + v) * 16, nco = j->n - co < 16 ? j->n - co : 16;
        for (int pb = c0; pb < c1; pb += 16) {
            const int npx = c1 - pb < 16 ? c1 - pb : 16;
            if (!j->out_u8) {
                const float *f = (const float *)buf + (size_t)(pb - c0) * 64 + (size_t)v * 16;
                for (int c = 0; c < nco; c++)
                    for (int i = 0; i < npx; i++) j->out[(size_t)(co + c) * j->ldo + (size_t)(pb + i)] = f[(size_t)i * 64 + (size_t)c];
                continue;
            }
            __m128i a[16];
            for (int i = 0; i < 16; i++)
                a[i] = i < npx ? _mm_loadu_si128((const __m128i *)((const uint8_t *)buf + (size_t)(pb - c0 + i) * 64 + (size_t)v * 16))
                               : _mm_setzero_si128();
            uint8_t t[256];
            mpq_transpose16_store(a, t, 16);  // t[channel * 16 + pixel]
            const __mmask16 pm = npx >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << npx) - 1u);
            for (int c = 0; c < nco; c++)
                _mm_mask_storeu_epi8(j->out_u8 + (size_t)(co + c) * j->ldo + (size_t)pb, pm, _mm_loadu_si128((const __m128i *)(t + 16 * c)));
        }
    }
}

// Unit u: one chunk of output pixels x one group of NV panels.
static VNNI_TARGET void run_unit(const cv_job *j, int u, void *buf) {
    const int chunk = u % j->chunks, pg = u / j->chunks;
    const int c0 = (int)((long)j->P * chunk / j->chunks), c1 = (int)((long)j->P * (chunk + 1) / j->chunks);
    const int pan0 = pg * NV, nv = j->panels - pan0 < NV ? j->panels - pan0 : NV;
    const int len = c1 - c0, ntiles = (len + NP - 1) / NP;
    for (int i = 0; i < ntiles; i++) {  // tiles of about equal size: 49 pixels are 4 x 6 + 5 x 5
        const int a = c0 + len * i / ntiles, b = c0 + len * (i + 1) / ntiles;
        tiles[nv - 1][b - a - 1](j, a, pan0, (uint8_t *)buf + (size_t)(a - c0) * 64 * (j->out_u8 ? 1 : sizeof(float)));
    }
    store_unit(j, c0, c1, pan0, nv, buf);
}

static void run_task_unit(void *arg, int u, int t) {
    cv_job *j = (cv_job *)arg;
    run_unit(j, u, j->scratch + (size_t)t * SCRATCH_BYTES);
}

static int run_vnni(cv_job *j, int threads) {
    if (threads < 1) threads = 1;
    if (threads > MPQ_POOL_MAX) threads = MPQ_POOL_MAX;
    j->pack_tasks = threads;
    // Small copies stay on one core: under 16 KB (the detector's 8x8 and 4x4 planes). From 16
    // KB the copy splits by rows (s14-int8b1, was 64 KB): at batch 1 on two cores (C harness,
    // min of 200, alternated 3x) MobileNetV2's 960->160 1x1 on 7x7 (47 KB) 29-31 -> 23-27 us,
    // resnet_digits' 32->64 3x3/2 into 14x14 17.7 -> 13.2, ResNet-18's 128->256 1x1/2 26-27 ->
    // 25, the other layers unchanged.
    if ((size_t)j->Hp * (size_t)j->Wp * (size_t)j->C < 16 * 1024) j->pack_tasks = 1;
    if (j->pack_tasks > (j->sub ? j->OH : j->H)) j->pack_tasks = j->sub ? j->OH : j->H;
    if (j->pack_tasks > 1) mpq_pool_run(j->pack_tasks, pack_task, j);
    else pack_task(j, 0);
    j->pgroups = (j->panels + NV - 1) / NV;
    j->chunks = (j->P + CHUNK - 1) / CHUNK;
    // Few units (one panel group on a small plane): smaller chunks, so every core has several
    // claims and a slow core's share can move to the other.
    const int want = 4 * threads;
    if (threads > 1 && j->chunks * j->pgroups < want) {
        int c = (want + j->pgroups - 1) / j->pgroups, most = (j->P + NP - 1) / NP;
        j->chunks = c < most ? c : most;
    }
    const int units = j->chunks * j->pgroups;
    if (threads > units) threads = units;
    j->scratch = (uint8_t *)malloc((size_t)threads * SCRATCH_BYTES);
    if (!j->scratch) return -1;
    // Each thread a contiguous run of units (mpq_run_ranges): neighbouring pixel chunks share
    // cache lines of every output channel's row.
    mpq_run_ranges(threads, units, run_task_unit, j);
    free(j->scratch);
    return 0;
}

int mpq_cv_conv_vnni(const mpq_gemm_job *g, const uint8_t *x, const mpq_conv2d_shape *s, int grp, uint8_t zp,
                     int khwc, int threads) {
    cv_job j;
    if (!cv_shape_ok(s, khwc) || cv_setup(&j, g, x, s, grp, zp)) return -1;
    if (j.taps == 1 && (j.sh > 1 || j.sw > 1 || j.Hp != j.H || j.Wp != j.W)) {
        // Only the sampled pixels: xh is then the [OH][OW][C] image of a unit-stride 1x1 conv.
        j.sub = 1; j.sub_sh = j.sh; j.sub_sw = j.sw;
        j.Hp = j.OH; j.Wp = j.OW; j.sh = j.sw = 1;
    }
    j.xh = (uint8_t *)malloc((size_t)j.Hp * (size_t)j.Wp * (size_t)j.C + 64);
    if (!j.xh) return -1;
    const int rc = run_vnni(&j, threads);
    free(j.xh);
    return rc;
}

int mpq_qconv2d_cv_applies(const mpq_conv2d_shape *s, int khwc) { return s && cv_shape_ok(s, khwc); }

int mpq_qconv2d_u8s8_cv(mpq_kernel_path path, const uint8_t *x, const mpq_conv2d_shape *s, int g, int khwc,
                        uint8_t x_zero_point, const void *packed, const mpq_epilogue *ep, float *out, uint8_t *out_u8,
                        uint8_t out_zero_point, int threads) {
    if (!x || !s || g < 0 || g >= s->group || !packed || !ep || !cv_shape_ok(s, khwc)) return -1;
    const mpq_kernel_path p = mpq_resolve_kernel_path(path);
    if (path != MPQ_PATH_REFERENCE && p != MPQ_PATH_VNNI) return -1;
    if (ep->a_zero_point != (int32_t)x_zero_point) return -1;
    const int k = s->channels / s->group * s->kernel_h * s->kernel_w, m = mpq_conv2d_out_h(s) * mpq_conv2d_out_w(s);
    mpq_gemm_job job;
    mpq_epilogue codes;
    if (mpq_gemm_epilogue_job(&job, m, ((const mpq_packed_b_header *)packed)->n, k, x, k, packed, ep, out, out_u8, m,
                              out_zero_point, 1, &codes))
        return -1;
    if (path != MPQ_PATH_REFERENCE) return mpq_cv_conv_vnni(&job, x, s, g, x_zero_point, khwc, threads);
    cv_job j;
    if (cv_setup(&j, &job, x, s, g, x_zero_point)) return -1;
    j.xh = (uint8_t *)malloc((size_t)j.Hp * (size_t)j.Wp * (size_t)j.C);
    if (!j.xh) return -1;
    pack_scalar(&j);
    run_scalar(&j);
    free(j.xh);
    return 0;
}
