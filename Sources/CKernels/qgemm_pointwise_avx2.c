// INT8 1x1 stride-1 unpadded Conv straight from NCHW on AVX2 machines (no VNNI), the twin of
// qgemm_pointwise.c: out[co][p] = epilogue(sum_c x[c][p] * w[co][c]), vectors along pixels,
// no im2col and no output transpose.
//
// Without AVX-512 these convs took the im2col + AVX2 GEMM (qgemm_avx2.c) at 5-45 GMAC/s a core
// on MobileNetV2's layers (the least at K = 16-32), its GEMM core alone ~61: the im2col, the
// per-tile hadd folds and the per-lane scalar stores of the channel-major output cost as much
// as the multiply where K is small. Here:
//
// - Arithmetic: no vpdpbusd, and vpmaddubsw saturates its s16 pair sums, so both operands are
//   widened to s16 and multiplied with vpmaddwd: |u8 * s8| <= 255 * 128, so a pair sum is exact
//   in int32 and the int32 adds wrap mod 2^32 like the reference's.
// - x panel [K/2][8 pixels][2] s16: one ymm is 8 consecutive pixels of 2 consecutive channels,
//   interleaved from the 2 channel rows and zero-extended (u8 used unshifted, as in VNNI).
// - Weights: the packed groups (64 bytes = 4 k of 16 channels) are widened once per call to
//   [channel quad][K/2][4] int32, each int32 one channel's two s16 weights of a k pair: the
//   broadcasts of one pair come from at most 3 sequential streams, and the hot loop has no
//   shuffle, only loads, vpmaddwd and vpaddd.
// - Micro-tile: 6 output channels x 2 vectors of 8 pixels = 12 ymm accumulators + 2 x + a
//   weight + a product = 16 registers (3 x 3 for K <= 48). Each accumulator is 8 consecutive
//   output pixels of one channel: stored as is (a masked store or a short copy on the last
//   pixels); codes in the code range take saturating packs, 32 codes in 4 ops.
// - Epilogue: epilogue16's sequence on 8 lanes with the per-channel values broadcast
//   (qconv_channel_epilogue.h): the accumulators start at bias_i32 - za * colsum, then cvt,
//   * (a_scale * b_scale), + bias, max lo, min hi; floats round to nearest and scale where
//   out_scale > 0; codes are vcvtps2dq (nearest even = nearbyint) + zp, whose low byte is the
//   reference's (uint8_t)((int32_t)v + zp) for every v, clamped to the code range or not.
// Every output element is one lane of one tile with the whole K, so neither the tile shape
// nor the split over threads changes a bit.
//
// 7-bit weights (the packed B's pairs_fit_i16: every k pair |w0| + |w1| <= 128, qgemm_avx2.c):
// u8 x s8 pair sums fit int16, so vpmaddubsw is exact. The x panel is then u8 [K/4][8
// pixels][4] (4 channels of a pixel adjacent), each channel's 4 packed weight bytes of a group
// are broadcast straight from the packed B (no widened copy), and a quad of k costs
// vpmaddubsw + vpmaddwd by ones + vpaddd per accumulator instead of 2 vpmaddwd + 2 vpaddd; its
// micro-tile is 2 output channels x 4 vectors (UBS_CO, UBS_PP: the register of ones).
#include "qconv_channel_epilogue.h"
#include "qconv_channel_epilogue_avx2.h"
#include "qgemm_pointwise_internal.h"
#include <immintrin.h>
#include "transpose8_f32_avx2.h"
#include <stdlib.h>
#include <string.h>

#define AVX2_TARGET __attribute__((target("avx2,fma")))
#define CO 6             // most output channels per micro-tile
#define PP 4             // most 8-pixel vectors per micro-tile
// The micro-tiles (output channels x 8-pixel vectors), each R * P accumulators + P x + a weight
// + a product within the 16 ymm (4 x 3 needs 17: one accumulator went to the stack and cost
// 15-25%). One thread, codes, MobileNetV2's pointwise layers (benchmarks/int8_conv_layers.c,
// minima of 5 rounds on a shared 2-core Zen 3): 6 x 2 is 3-9% faster than 3 x 3 from K = 64
// on (fewer x loads per product), 3 x 3 10-20% faster than 6 x 2 or 5 x 2 at K = 16-32, where
// the per-channel epilogue setup, once per 24 pixels instead of 16, weighs more.
#define SMALL_K 48
#define SMALL_CO 3
#define SMALL_PP 3
#define BIG_CO 6
#define BIG_PP 2
// The vpmaddubsw form (7-bit weights) needs a register of ones for its vpmaddwd: there 6 x 2
// took 17 (clang kept an accumulator on the stack, a reload, add and store per k quad) and
// 2 x 4 takes 15 (8 accumulators + 4 x + a weight + a product + ones), each channel's epilogue
// setup and saturating store once per 32 pixels. One thread, codes, MobileNetV2's pointwise
// layers (int8_conv_layers.c, W7=1, minima alternated, s23): 0.88-0.95x of 6 x 2 / 3 x 3's time
// at K = 16-384 (16 -> 96 at 112x112 578 -> 522 us, 64 -> 384 at 14x14 82.7 -> 73.2), 1.01x
// at K = 576; the same bytes.
#define UBS_CO 2
#define UBS_PP 4
#define QUAD 4           // channels per widened-weights block
#define BLOCK_PIXELS 192 // pixels per pool unit, before balancing (a multiple of 8)

typedef struct {
    pw_job pw;
    int pairs;           // kp / 2
    const int32_t *w16;  // quad t at w16 + t * pairs * QUAD; pair i, channel 4t + r at + i * QUAD + r
    int clamp_lo, clamp_hi;  // which float clamps the epilogue applies (both, but for saturated codes)
    int saturate;            // codes saturated to 8 bits, not wrapped: the same bytes (codes_plan)
    int co_step, pp;         // the micro-tile: output channels x 8-pixel vectors
    int ubs;                 // the vpmaddubsw form (7-bit weights): u8 x panels, packed weights
} pw8_job;

// Channel quads [t0, t1) of the packed weights, widened: a 16-byte piece of a packed group is
// 4 channels x 4 k, sign-extended to 8 int32 (channel, pair) = [c0p0 c0p1 c1p0 c1p1 ...];
// one permute makes it pair 2g's 4 channels, then pair 2g+1's.
static AVX2_TARGET void widen_weights(const pw_job *j, int32_t *w16, int t0, int t1) {
    const int pairs = j->kp / 2;
    const __m256i order = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
    for (int t = t0; t < t1; t++) {
        const int8_t *src = j->bdata + (size_t)(t / 4) * (size_t)j->kp * 16 + (size_t)(t % 4) * 16;
        int32_t *dst = w16 + (size_t)t * (size_t)pairs * QUAD;
        for (int g = 0; g < j->kp / 4; g++) {
            const __m256i v = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(src + (size_t)g * 64)));
            _mm256_storeu_si256((__m256i *)(dst + (size_t)g * 8), _mm256_permutevar8x32_epi32(v, order));
        }
    }
}

// 8 bytes of channel `ch` from pixel `p` on (`lanes` of them, 0 past the pixels or channels).
static inline AVX2_TARGET __m128i load8(const pw_job *j, int ch, int p, int lanes) {
    if (ch >= j->c) return _mm_setzero_si128();
    const uint8_t *src = j->x + (size_t)ch * j->plane + (size_t)p;
    if (lanes >= 8) return _mm_loadl_epi64((const __m128i *)src);
    uint64_t v = 0;
    memcpy(&v, src, (size_t)lanes);
    return _mm_cvtsi64_si128((long long)v);
}

// x panels for pixels [p0, p0 + 8 * np): panel q at buf + q * pairs * 16, pair i at + i * 16,
// = channels 2i, 2i + 1 of pixels p0 + 8q .. + 7 as s16 [pixel][channel].
static AVX2_TARGET void pack_panels(const pw8_job *j, int p0, int np, int16_t *buf) {
    const pw_job *w = &j->pw;
    int q = 0;
    // Two panels of 16 whole pixels at a time: one 16-byte load per channel (the same panels).
    for (; q + 2 <= np && p0 + 8 * q + 16 <= w->pixels; q += 2) {
        int16_t *dst = buf + (size_t)q * (size_t)j->pairs * 16;
        const size_t panel = (size_t)j->pairs * 16;
        const uint8_t *x = w->x + (size_t)(p0 + 8 * q);
        for (int i = 0; i < j->pairs; i++) {
            const __m128i a = 2 * i < w->c ? _mm_loadu_si128((const __m128i *)(x + (size_t)(2 * i) * w->plane)) : _mm_setzero_si128();
            const __m128i b = 2 * i + 1 < w->c ? _mm_loadu_si128((const __m128i *)(x + (size_t)(2 * i + 1) * w->plane))
                                               : _mm_setzero_si128();
            _mm256_storeu_si256((__m256i *)(dst + (size_t)i * 16), _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(a, b)));
            _mm256_storeu_si256((__m256i *)(dst + panel + (size_t)i * 16), _mm256_cvtepu8_epi16(_mm_unpackhi_epi8(a, b)));
        }
    }
    for (; q < np; q++) {
        const int pq = p0 + 8 * q, lanes = w->pixels - pq < 8 ? w->pixels - pq : 8;
        int16_t *dst = buf + (size_t)q * (size_t)j->pairs * 16;
        for (int i = 0; i < j->pairs; i++) {
            const __m128i a = load8(w, 2 * i, pq, lanes), b = load8(w, 2 * i + 1, pq, lanes);
            _mm256_storeu_si256((__m256i *)(dst + (size_t)i * 16), _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(a, b)));
        }
    }
}

// The vpmaddubsw form's x panels: panel q at buf + q * kp * 8 bytes, quad i at + i * 32 =
// channels 4i .. 4i + 3 of pixels p0 + 8q .. + 7 as u8 [pixel][channel].
static AVX2_TARGET void pack_panels_u8(const pw8_job *j, int p0, int np, uint8_t *buf) {
    const pw_job *w = &j->pw;
    for (int q = 0; q < np; q++) {
        const int pq = p0 + 8 * q, lanes = w->pixels - pq < 8 ? w->pixels - pq : 8;
        uint8_t *dst = buf + (size_t)q * (size_t)w->kp * 8;
        for (int i = 0; i < w->kp / 4; i++) {
            const __m128i a = load8(w, 4 * i, pq, lanes), b = load8(w, 4 * i + 1, pq, lanes);
            const __m128i c = load8(w, 4 * i + 2, pq, lanes), d = load8(w, 4 * i + 3, pq, lanes);
            const __m128i ab = _mm_unpacklo_epi8(a, b), cd = _mm_unpacklo_epi8(c, d);
            _mm_storeu_si128((__m128i *)(dst + (size_t)i * 32), _mm_unpacklo_epi16(ab, cd));       // pixels 0-3
            _mm_storeu_si128((__m128i *)(dst + (size_t)i * 32 + 16), _mm_unpackhi_epi16(ab, cd));  // 4-7
        }
    }
}

// pack_panels_u8 for 32 pixels that all exist, in the lanes' order the 128-bit unpacks leave:
// panel q holds pixels p0 + 4q .. + 3 in its low half and p0 + 16 + 4q .. + 3 in its high half
// (no cross-lane permute). One 32-byte load per channel and 8 unpacks per quad of channels,
// where the 8-pixel form took 16 loads (with their tail tests) and 16 unpacks. Only the
// saturated codes store reads these panels: its packs put the pixels back in order for free.
static AVX2_TARGET void pack_panels_u8_split32(const pw8_job *j, int p0, uint8_t *buf) {
    const pw_job *w = &j->pw;
    const size_t panel = (size_t)w->kp * 8;
    const uint8_t *x = w->x + (size_t)p0;
    for (int i = 0; i < w->kp / 4; i++) {
        __m256i v[4];
        _Pragma("unroll") for (int r = 0; r < 4; r++) {
            const int ch = 4 * i + r;
            v[r] = ch < w->c ? _mm256_loadu_si256((const __m256i *)(x + (size_t)ch * w->plane)) : _mm256_setzero_si256();
        }
        const __m256i ab_lo = _mm256_unpacklo_epi8(v[0], v[1]), ab_hi = _mm256_unpackhi_epi8(v[0], v[1]);
        const __m256i cd_lo = _mm256_unpacklo_epi8(v[2], v[3]), cd_hi = _mm256_unpackhi_epi8(v[2], v[3]);
        uint8_t *dst = buf + (size_t)i * 32;
        _mm256_storeu_si256((__m256i *)dst, _mm256_unpacklo_epi16(ab_lo, cd_lo));                      // 0-3, 16-19
        _mm256_storeu_si256((__m256i *)(dst + panel), _mm256_unpackhi_epi16(ab_lo, cd_lo));            // 4-7, 20-23
        _mm256_storeu_si256((__m256i *)(dst + 2 * panel), _mm256_unpacklo_epi16(ab_hi, cd_hi));        // 8-11, 24-27
        _mm256_storeu_si256((__m256i *)(dst + 3 * panel), _mm256_unpackhi_epi16(ab_hi, cd_hi));        // 12-15, 28-31
    }
}

// Floats: the requantize rounding where there is one; the first `lanes` only on the last pixels.
static inline __attribute__((always_inline)) AVX2_TARGET void
store_floats(const pw_job *j, const mpq_channel8 *e, __m256 v, size_t at, int lanes) {
    v = mpq_channel8_rounded(e, v);
    if (lanes >= 8) {
        _mm256_storeu_ps(j->out + at, v);
    } else {
        mpq_store_first8(j->out + at, v, lanes);
    }
}

// Codes, any clamps: the low byte of each cvt(v) + zp, as the reference's uint8_t cast (which
// wraps where the clamps let a code leave [0, 255]).
static inline __attribute__((always_inline)) AVX2_TARGET void
store_codes_wrap(const pw_job *j, __m256 v, __m256i zp, size_t at, int lanes) {
    const __m256i c = _mm256_add_epi32(_mm256_cvtps_epi32(v), zp);
    const __m256i low = _mm256_shuffle_epi8(c, _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                                                0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1));
    const __m128i b = _mm_unpacklo_epi32(_mm256_castsi256_si128(low), _mm256_extracti128_si256(low, 1));
    if (lanes >= 8) {
        _mm_storel_epi64((__m128i *)(j->out_u8 + at), b);
    } else {
        uint8_t tmp[16];
        _mm_storeu_si128((__m128i *)tmp, b);
        memcpy(j->out_u8 + at, tmp, (size_t)lanes);
    }
}

// Codes whose clamps keep them in [0, 255] (pw8_job.saturate): the np vectors' cvt(v) + zp
// saturated to bytes, 2 packs and a permute for up to 32 pixels.
static inline __attribute__((always_inline)) AVX2_TARGET void
store_codes_saturated(const pw_job *j, const __m256 *v, int np, __m256i zp, size_t at, int pixels, int split32) {
    __m256i c[4];
    _Pragma("unroll") for (int q = 0; q < np; q++) c[q] = _mm256_add_epi32(_mm256_cvtps_epi32(v[q]), zp);
    // [q0 lanes 0-3, q1 0-3, q2 0-3, q3 0-3 | lanes 4-7 of each] as bytes, then in order; with
    // the split panels (pack_panels_u8_split32) that is already the pixels' order.
    const __m256i ab = _mm256_packs_epi32(c[0], np > 1 ? c[1] : c[0]);
    const __m256i cd = np > 2 ? _mm256_packs_epi32(c[2], np > 3 ? c[3] : c[2]) : ab;
    const __m256i packed = _mm256_packus_epi16(ab, cd);
    const __m256i b = split32 ? packed : _mm256_permutevar8x32_epi32(packed, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    uint8_t *dst = j->out_u8 + at;
    if (pixels >= 8 * np) {
        if (np == 4) _mm256_storeu_si256((__m256i *)dst, b);
        else if (np == 3) {
            _mm_storeu_si128((__m128i *)dst, _mm256_castsi256_si128(b));
            _mm_storel_epi64((__m128i *)(dst + 16), _mm256_extracti128_si256(b, 1));
        } else if (np == 2) _mm_storeu_si128((__m128i *)dst, _mm256_castsi256_si128(b));
        else _mm_storel_epi64((__m128i *)dst, _mm256_castsi256_si128(b));
    } else {
        uint8_t tmp[32];
        _mm256_storeu_si256((__m256i *)tmp, b);
        memcpy(dst, tmp, (size_t)pixels);
    }
}

// Output channels [co0, co0 + nco) x pixels [p0, p0 + 8 * np).
static inline __attribute__((always_inline)) AVX2_TARGET void
tile(const pw8_job *j, const int16_t *xp, int p0, int np, int co0, int nco, int split32) {
    const pw_job *pw = &j->pw;
    __m256i acc[CO][PP];
    _Pragma("unroll") for (int r = 0; r < nco; r++) {
        // bias_i32 - za * colsum up front (qconv_channel_epilogue.h): the same int32 sums.
        const __m256i start = _mm256_set1_epi32(mpq_channel_acc_start(pw->ep, pw->za, pw->colsum, co0 + r));
        _Pragma("unroll") for (int q = 0; q < np; q++) acc[r][q] = start;
    }
    if (j->ubs) {
        // Channel co's 4 bytes of group g sit at its panel + g * 64 + (co % 16) * 4.
        const int8_t *wb[CO];
        _Pragma("unroll") for (int r = 0; r < nco; r++)
            wb[r] = pw->bdata + (size_t)((co0 + r) / 16) * (size_t)pw->kp * 16 + (size_t)((co0 + r) % 16) * 4;
        const uint8_t *xb = (const uint8_t *)xp;
        const size_t panel_bytes = (size_t)pw->kp * 8;
        const __m256i ones = _mm256_set1_epi16(1);
        for (int g = 0; g < pw->kp / 4; g++) {
            __m256i xv[PP];
            _Pragma("unroll") for (int q = 0; q < np; q++)
                xv[q] = _mm256_loadu_si256((const __m256i *)(xb + (size_t)q * panel_bytes + (size_t)g * 32));
            _Pragma("unroll") for (int r = 0; r < nco; r++) {
                int32_t quad;
                memcpy(&quad, wb[r] + (size_t)g * 64, 4);
                const __m256i wv = _mm256_set1_epi32(quad);
                _Pragma("unroll") for (int q = 0; q < np; q++)
                    acc[r][q] = _mm256_add_epi32(acc[r][q], _mm256_madd_epi16(_mm256_maddubs_epi16(xv[q], wv), ones));
            }
        }
    } else {
        const int32_t *w[CO];
        _Pragma("unroll") for (int r = 0; r < nco; r++)
            w[r] = j->w16 + (size_t)((co0 + r) / QUAD) * (size_t)j->pairs * QUAD + (size_t)((co0 + r) % QUAD);
        const size_t panel = (size_t)j->pairs * 16;
        for (int i = 0; i < j->pairs; i++) {
            __m256i xv[PP];
            _Pragma("unroll") for (int q = 0; q < np; q++)
                xv[q] = _mm256_loadu_si256((const __m256i *)(xp + (size_t)q * panel + (size_t)i * 16));
            _Pragma("unroll") for (int r = 0; r < nco; r++) {
                const __m256i wv = _mm256_set1_epi32(w[r][(size_t)i * QUAD]);
                _Pragma("unroll") for (int q = 0; q < np; q++) acc[r][q] = _mm256_add_epi32(acc[r][q], _mm256_madd_epi16(xv[q], wv));
            }
        }
    }
    const __m256i zp = _mm256_set1_epi32(pw->out_zp);
    const int pixels = pw->pixels - p0;
    _Pragma("unroll") for (int r = 0; r < nco; r++) {
        const int co = co0 + r;
        const mpq_channel8 e = mpq_channel8_setup(pw->ep, co);
        const size_t at = (size_t)co * pw->ldo + (size_t)p0;
        __m256 v[PP];
        _Pragma("unroll") for (int q = 0; q < np; q++) v[q] = mpq_channel8_values(&e, acc[r][q], j->clamp_lo, j->clamp_hi);
        if (j->saturate) {
            store_codes_saturated(pw, v, np, zp, at, pixels, split32);
            continue;
        }
        _Pragma("unroll") for (int q = 0; q < np; q++) {
            const int lanes = pixels - 8 * q < 8 ? pixels - 8 * q : 8;
            if (pw->out_u8) store_codes_wrap(pw, v[q], zp, at + 8 * (size_t)q, lanes);
            else store_floats(pw, &e, v[q], at + 8 * (size_t)q, lanes);
        }
    }
}

#define TILE_FN(R, P) \
    static AVX2_TARGET void tile_##R##_##P(const pw8_job *j, const int16_t *xp, int p0, int co0) { tile(j, xp, p0, P, co0, R, 0); }
#define TILE_ROW(R) TILE_FN(R, 1) TILE_FN(R, 2) TILE_FN(R, 3)
TILE_ROW(1) TILE_ROW(2) TILE_ROW(3) TILE_ROW(4) TILE_ROW(5) TILE_ROW(6)
TILE_FN(1, 4) TILE_FN(2, 4)  // the vpmaddubsw form's UBS_CO x UBS_PP and its last channel
// The same on the split panels of 32 whole pixels, saturated codes only.
static AVX2_TARGET void tile_split_1(const pw8_job *j, const int16_t *xp, int p0, int co0) { tile(j, xp, p0, 4, co0, 1, 1); }
static AVX2_TARGET void tile_split_2(const pw8_job *j, const int16_t *xp, int p0, int co0) { tile(j, xp, p0, 4, co0, 2, 1); }
typedef void (*tile_fn)(const pw8_job *, const int16_t *, int, int);
#define TILE_ENTRY(R) { tile_##R##_1, tile_##R##_2, tile_##R##_3, NULL }
#define TILE_ENTRY4(R) { tile_##R##_1, tile_##R##_2, tile_##R##_3, tile_##R##_4 }
static const tile_fn tiles[CO][PP] = {TILE_ENTRY4(1), TILE_ENTRY4(2), TILE_ENTRY(3), TILE_ENTRY(4), TILE_ENTRY(5), TILE_ENTRY(6)};
_Static_assert(UBS_CO <= 2 && UBS_PP == PP, "tiles[][] has a 4-vector entry for 1 and 2 channels only");

// Pixels [p0, p1) (p0 a multiple of 8) for output channels [co0, co1) (co0 a multiple of 4):
// x packed 8 * pp pixels at a time into `buf`, then every output channel runs over them while
// they are in L1 (24 pixels of K = 576 are 27 KB as int16; 32 of them 18 KB as the 7-bit form's bytes).
static AVX2_TARGET void run_pixels(const pw8_job *j, int p0, int p1, int co0, int co1, int16_t *buf) {
    for (int p = p0; p < p1; p += 8 * j->pp) {
        const int np = (p1 - p + 7) / 8 < j->pp ? (p1 - p + 7) / 8 : j->pp;
        if (j->ubs && j->saturate && p + 32 <= j->pw.pixels && np == 4) {
            _Static_assert(UBS_PP == 4 && UBS_CO == 2, "the split panels are 4 vectors of 8 pixels, tiles of 1-2 channels");
            pack_panels_u8_split32(j, p, (uint8_t *)buf);
            for (int co = co0; co < co1; co += UBS_CO) {
                if (co1 - co >= 2) tile_split_2(j, buf, p, co);
                else tile_split_1(j, buf, p, co);
            }
            continue;
        }
        if (j->ubs) pack_panels_u8(j, p, np, (uint8_t *)buf);
        else pack_panels(j, p, np, buf);
        for (int co = co0; co < co1; co += j->co_step) {
            const int nco = co1 - co < j->co_step ? co1 - co : j->co_step;
            tiles[nco - 1][np - 1](j, buf, p, co);
        }
    }
}

// Codes whose clamps keep every code in [0, 255] (the runtime's requantizing epilogues clamp
// to exactly the code range) need no wrapping: saturating packs give the same bytes, 4 ops for
// 32 codes instead of 4 per 8. The clamps saturation already does are dropped as in
// mpq_codes_clamp_plan, but the max stays wherever the min does: min(NaN, hi) is hi, and the
// reference's max first makes NaN lo.
static void codes_plan(pw8_job *j) {
    const pw_job *pw = &j->pw;
    if (!pw->out_u8) return;
    const float lo = nearbyintf(pw->ep->clamp_lo) + (float)pw->out_zp, hi = nearbyintf(pw->ep->clamp_hi) + (float)pw->out_zp;
    if (!(lo >= 0.0f && hi <= 255.0f)) return;  // a code can wrap (or a clamp is NaN): the general store
    const mpq_codes_clamps p = mpq_codes_clamp_plan(pw->ep, pw->out_zp, pw->n);
    j->saturate = 1;
    j->clamp_hi = p.need_hi;
    j->clamp_lo = p.need_lo || p.need_hi;
}

typedef struct {
    const pw8_job *job;
    int32_t *w16;
    int16_t *bufs;
    size_t buf_elems;
    int chunk_pixels, chunks, co_parts, co_tiles, quads, widen_tasks;  // units = pixel chunks x channel parts
} pw8_split;

static void widen_task(void *arg, int t) {
    const pw8_split *s = (const pw8_split *)arg;
    widen_weights(&s->job->pw, s->w16, s->quads * t / s->widen_tasks, s->quads * (t + 1) / s->widen_tasks);
}

static void run_unit(void *arg, int u, int t) {
    const pw8_split *s = (const pw8_split *)arg;
    const pw_job *pw = &s->job->pw;
    const int c = u / s->co_parts, part = u % s->co_parts;
    const int p0 = c * s->chunk_pixels, p1 = p0 + s->chunk_pixels < pw->pixels ? p0 + s->chunk_pixels : pw->pixels;
    // Whole channel quads per part, so the tiles start where one thread's would.
    const int step = s->job->co_step;
    const int co0 = s->co_tiles * part / s->co_parts * step, co1 = s->co_tiles * (part + 1) / s->co_parts * step;
    run_pixels(s->job, p0, p1, co0, co1 < pw->n ? co1 : pw->n, s->bufs + (size_t)t * s->buf_elems);
}

int mpq_pointwise_conv_avx2(const mpq_gemm_job *g, const uint8_t *x, size_t plane, int threads) {
    pw8_job j = {{x, plane, g->k, (g->k + 3) / 4 * 4, g->n, g->m, g->bdata, g->colsum, g->za, g->ep, g->out, g->out_u8,
                  g->out_zp, (size_t)g->ldo},
                 (g->k + 3) / 4 * 2, NULL, 1, 1, 0, 0, 0, g->b_pairs_fit_i16};
    if (g->kp != j.pw.kp || !g->out_channel_major || g->c || j.pw.pixels < 1 || j.pw.n < 1) return -1;
    codes_plan(&j);
    j.co_step = j.ubs ? UBS_CO : j.pw.c <= SMALL_K ? SMALL_CO : BIG_CO;
    j.pp = j.ubs ? UBS_PP : j.pw.c <= SMALL_K ? SMALL_PP : BIG_PP;
    if (threads < 1) threads = 1;
    if (threads > MPQ_POOL_MAX) threads = MPQ_POOL_MAX;
    pw8_split s;
    s.job = &j;
    s.quads = (j.pw.n + QUAD - 1) / QUAD;
    s.co_tiles = (j.pw.n + j.co_step - 1) / j.co_step;
    // Chunks of about BLOCK_PIXELS, evened out (a 14x14 plane is 2 x 104, not 192 + 4).
    s.chunks = (j.pw.pixels + BLOCK_PIXELS - 1) / BLOCK_PIXELS;
    s.chunk_pixels = ((j.pw.pixels + s.chunks - 1) / s.chunks + 7) / 8 * 8;
    s.chunks = (j.pw.pixels + s.chunk_pixels - 1) / s.chunk_pixels;
    // Fewer pixel chunks than threads split the output channels too, so one image still uses
    // every core; each part packs its own copy of the chunk's x panels. (Until s25 from fewer
    // than two chunks per thread: a 14x14 plane, 2 chunks, then ran 4 units packing each chunk
    // twice; one chunk per thread is 0.85-0.95x of that time on MobileNetV2's 14x14 layers at
    // two threads, the projections most, where packing is most of the work.)
    s.co_parts = 1;
    if (threads > 1 && s.chunks < threads) {
        s.co_parts = (2 * threads + s.chunks - 1) / s.chunks;
        if (s.co_parts > s.co_tiles) s.co_parts = s.co_tiles;
    }
    const int units = s.chunks * s.co_parts;
    if (threads > units) threads = units;
    // The vpmaddubsw form reads the packed weights as they are: no widened copy.
    const size_t w_elems = j.ubs ? 0 : (size_t)s.quads * (size_t)j.pairs * QUAD;  // a multiple of 8: pairs is even
    s.buf_elems = (size_t)j.pairs * 16 * PP;
    int32_t *mem = (int32_t *)aligned_alloc(64, ((w_elems * 4 + (size_t)threads * s.buf_elems * 2) + 63) / 64 * 64);
    if (!mem) return -1;
    s.w16 = mem;
    s.bufs = (int16_t *)(mem + w_elems);
    j.w16 = s.w16;
    s.widen_tasks = threads < s.quads ? threads : s.quads;
    if (j.ubs) {
        // nothing to widen
    } else if (s.widen_tasks > 1 && w_elems >= 16384) {
        mpq_pool_run(s.widen_tasks, widen_task, &s);
    } else {
        widen_weights(&j.pw, s.w16, 0, s.quads);
    }
    // Contiguous runs of units per thread (mpq_run_ranges): neighbouring chunks share cache
    // lines of every output channel's row.
    mpq_run_ranges(threads, units, run_unit, &s);
    free(mem);
    return 0;
}
