// AVX-512 VNNI INT8 GEMM. vpdpbusd multiplies u8 x s8 in groups of 4 into int32
// with no intermediate saturation, so it is exact and matches the reference.
//
// Micro-tile: MR = 6 rows x NP = 4 packed panels (64 columns) = 24 zmm
// accumulators + 4 B registers + 1 broadcast A, inside the 32 zmm registers.
// Per group of 4 k: 4 B loads and 6 A broadcasts feed 24 vpdpbusd.
// Channel-major (NCHW) output uses 16 x 16 tiles transposed in registers instead.
// Loop order: 64-column panel outside, rows inside, full K inside the tile, so
// the epilogue runs on registers and the B panel (64 * K bytes) stays in L1/L2
// while every row block of A streams past it.
#include "mpq_internal.h"
#include <immintrin.h>
#include "transpose16_f32_avx512.h"
#include <string.h>

#define VNNI_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))
#define MR 6
#define NP 4

// Reads 4 bytes of A at k..k+3, zero-filling past K (packed B is zero there too).
static inline uint32_t load_a4(const uint8_t *p, int avail) {
    uint32_t v = 0;
    memcpy(&v, p, avail >= 4 ? 4 : (size_t)avail);
    return v;
}

static inline VNNI_TARGET __mmask16 col_mask(int cols) {
    return cols >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << cols) - 1u);
}

/// The fused epilogue on 16 lanes of int32 sums (zero-point correction already subtracted):
/// + int32 bias, x scale, + float bias, clamp, then the optional requantize rounding. One
/// copy for the row-major tiles and the channel-major 16 x 16 tiles, so both round alike.
/// `codes`: the caller converts with vcvtps2dq, which rounds to nearest even itself, so the
/// rounding step (nearbyint, * 1, + 0) is skipped: the same codes (qconv_channel_epilogue.h).
static inline __attribute__((always_inline)) VNNI_TARGET __m512
epilogue16(const mpq_epilogue *ep, __m512i sum, __m512 s, __m512 bias, __m512i bias_i32, __m512 lo, __m512 hi, int codes) {
    if (ep->bias_i32) sum = _mm512_add_epi32(sum, bias_i32);
    __m512 x = _mm512_mul_ps(_mm512_cvtepi32_ps(sum), s);
    if (ep->bias) x = _mm512_add_ps(x, bias);
    x = _mm512_min_ps(_mm512_max_ps(x, lo), hi);
    if (ep->out_scale > 0 && !codes)
        x = _mm512_add_ps(_mm512_mul_ps(_mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC),
                                        _mm512_set1_ps(ep->out_scale)), _mm512_setzero_ps());
    return x;
}

/// What the epilogue of one 16-column panel needs, loaded once per tile: the zero-point
/// correction za * colsum and the per-column scales, biases and clamp.
typedef struct {
    int col, cols;
    __mmask16 mask;
    __m512i corr, bias_i32;
    __m512 s, bias, lo, hi;
} panel_epilogue;

static inline __attribute__((always_inline)) VNNI_TARGET panel_epilogue panel_setup(const mpq_gemm_job *j, int col) {
    panel_epilogue e;
    e.col = col;
    e.cols = j->n - col;
    e.mask = col_mask(e.cols);
    e.corr = _mm512_mullo_epi32(_mm512_set1_epi32(j->za), _mm512_loadu_si512((const void *)(j->colsum + col)));
    e.s = e.bias = e.lo = e.hi = _mm512_setzero_ps();
    e.bias_i32 = _mm512_setzero_si512();
    const mpq_epilogue *ep = j->ep;
    if (!j->c) {
        e.s = _mm512_mul_ps(_mm512_set1_ps(ep->a_scale), _mm512_maskz_loadu_ps(e.mask, ep->b_scale + col));
        e.bias = ep->bias ? _mm512_maskz_loadu_ps(e.mask, ep->bias + col) : _mm512_setzero_ps();
        e.bias_i32 = ep->bias_i32 ? _mm512_maskz_loadu_epi32(e.mask, ep->bias_i32 + col) : _mm512_setzero_si512();
        e.lo = _mm512_set1_ps(ep->clamp_lo);
        e.hi = _mm512_set1_ps(ep->clamp_hi);
    }
    return e;
}

/// Row m of one panel from its 16 raw int32 sums: int32 out, or the epilogue then floats or
/// codes, row-major or (one lane per channel row) channel-major.
static inline __attribute__((always_inline)) VNNI_TARGET void
store_row(const mpq_gemm_job *j, const panel_epilogue *e, int m, __m512i acc) {
    const int col = e->col, cols = e->cols;
    const __mmask16 mask = e->mask;
    if (j->c) {
        _mm512_mask_storeu_epi32(j->c + (size_t)m * (size_t)j->ldc + col, mask, _mm512_sub_epi32(acc, e->corr));
        return;
    }
    const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    __m512 v = epilogue16(j->ep, _mm512_sub_epi32(acc, e->corr), e->s, e->bias, e->bias_i32, e->lo, e->hi, j->out_u8 != NULL);
    if (j->out_u8) {
        __m128i codes = _mm512_cvtusepi32_epi8(_mm512_add_epi32(_mm512_cvtps_epi32(v), _mm512_set1_epi32(j->out_zp)));
        if (j->out_channel_major) {
            uint8_t tmp[16];
            _mm_storeu_si128((__m128i *)tmp, codes);
            for (int l = 0; l < cols && l < 16; l++) j->out_u8[(size_t)(col + l) * (size_t)j->ldo + (size_t)m] = tmp[l];
        } else {
            _mm_mask_storeu_epi8(j->out_u8 + (size_t)m * (size_t)j->ldo + col, mask, codes);
        }
    } else if (j->out_channel_major) {
        // One float per channel row: a scatter; the epilogue is 1/K of the work.
        _mm512_mask_i32scatter_ps(j->out + (size_t)col * (size_t)j->ldo + (size_t)m, mask,
                                  _mm512_mullo_epi32(_mm512_set1_epi32(j->ldo), lanes), v, 4);
    } else {
        _mm512_mask_storeu_ps(j->out + (size_t)m * (size_t)j->ldo + col, mask, v);
    }
}

static inline __attribute__((always_inline)) VNNI_TARGET void
tile(const mpq_gemm_job *j, int m0, int mr, int p0, int np) {
    __m512i acc[MR][NP];
    const uint8_t *ar[MR];
    const int8_t *bp[NP];
    _Pragma("unroll") for (int i = 0; i < mr; i++) {
        ar[i] = j->a + (size_t)(m0 + i) * (size_t)j->lda;
        _Pragma("unroll") for (int q = 0; q < np; q++) acc[i][q] = _mm512_setzero_si512();
    }
    _Pragma("unroll") for (int q = 0; q < np; q++) bp[q] = j->bdata + (size_t)(p0 + q) * (size_t)j->kp * 16;

    const int groups = j->k / 4;
    for (int g = 0; g < groups; g++) {
        __m512i b[NP];
        _Pragma("unroll") for (int q = 0; q < np; q++) b[q] = _mm512_loadu_si512((const void *)(bp[q] + (size_t)g * 64));
        _Pragma("unroll") for (int i = 0; i < mr; i++) {
            int32_t a4;
            memcpy(&a4, ar[i] + (size_t)g * 4, 4);
            __m512i av = _mm512_set1_epi32(a4);
            _Pragma("unroll") for (int q = 0; q < np; q++) acc[i][q] = _mm512_dpbusd_epi32(acc[i][q], av, b[q]);
        }
    }
    if (j->k % 4) {
        __m512i b[NP];
        _Pragma("unroll") for (int q = 0; q < np; q++) b[q] = _mm512_loadu_si512((const void *)(bp[q] + (size_t)groups * 64));
        _Pragma("unroll") for (int i = 0; i < mr; i++) {
            __m512i av = _mm512_set1_epi32((int32_t)load_a4(ar[i] + (size_t)groups * 4, j->k % 4));
            _Pragma("unroll") for (int q = 0; q < np; q++) acc[i][q] = _mm512_dpbusd_epi32(acc[i][q], av, b[q]);
        }
    }

    _Pragma("unroll") for (int q = 0; q < np; q++) {
        const int col = (p0 + q) * 16;
        if (col >= j->n) break;
        const panel_epilogue e = panel_setup(j, col);
        _Pragma("unroll") for (int i = 0; i < mr; i++) store_row(j, &e, m0 + i, acc[i][q]);
    }
}

// One instantiation per (rows, panels) so the tile's arrays become registers.
#define TILE_FN(R, P) \
    static VNNI_TARGET void tile_##R##_##P(const mpq_gemm_job *j, int m0, int p0) { tile(j, m0, R, p0, P); }
#define TILE_ROW(R) TILE_FN(R, 1) TILE_FN(R, 2) TILE_FN(R, 3) TILE_FN(R, 4)
TILE_ROW(1) TILE_ROW(2) TILE_ROW(3) TILE_ROW(4) TILE_ROW(5) TILE_ROW(6)

typedef void (*tile_fn)(const mpq_gemm_job *, int, int);
#define TILE_ENTRY(R) { tile_##R##_1, tile_##R##_2, tile_##R##_3, tile_##R##_4 }
static const tile_fn tiles[MR][NP] = {
    TILE_ENTRY(1), TILE_ENTRY(2), TILE_ENTRY(3), TILE_ENTRY(4), TILE_ENTRY(5), TILE_ENTRY(6),
};

// The channel-major store of 16 rows x one panel from their raw int32 sums: the lane-wise
// epilogue, a 16 x 16 transpose in registers, then 16 consecutive pixels per channel.
static inline __attribute__((always_inline)) VNNI_TARGET void
store16_channel_major(const mpq_gemm_job *j, int m0, int p, const __m512i acc[16]) {
    const int col = p * 16;
    const int cols = j->n - col < 16 ? j->n - col : 16;
    const __mmask16 mask = col_mask(cols);
    const mpq_epilogue *ep = j->ep;
    const __m512i corr = _mm512_mullo_epi32(_mm512_set1_epi32(j->za), _mm512_loadu_si512((const void *)(j->colsum + col)));
    const __m512 s = _mm512_mul_ps(_mm512_set1_ps(ep->a_scale), _mm512_maskz_loadu_ps(mask, ep->b_scale + col));
    const __m512 bias = ep->bias ? _mm512_maskz_loadu_ps(mask, ep->bias + col) : _mm512_setzero_ps();
    const __m512i bias_i32 = ep->bias_i32 ? _mm512_maskz_loadu_epi32(mask, ep->bias_i32 + col) : _mm512_setzero_si512();
    const __m512 lo = _mm512_set1_ps(ep->clamp_lo), hi = _mm512_set1_ps(ep->clamp_hi);
    __m512 v[16];
    const int codes = j->out_u8 != NULL;
    _Pragma("unroll") for (int i = 0; i < 16; i++) v[i] = epilogue16(ep, _mm512_sub_epi32(acc[i], corr), s, bias, bias_i32, lo, hi, codes);
    mpq_transpose16_f32(v);
    if (j->out_u8) {
        const __m512i zp = _mm512_set1_epi32(j->out_zp);
        for (int c = 0; c < cols; c++)
            _mm_storeu_si128((__m128i *)(j->out_u8 + (size_t)(col + c) * (size_t)j->ldo + (size_t)m0),
                             _mm512_cvtusepi32_epi8(_mm512_add_epi32(_mm512_cvtps_epi32(v[c]), zp)));
        return;
    }
    for (int c = 0; c < cols; c++) _mm512_storeu_ps(j->out + (size_t)(col + c) * (size_t)j->ldo + (size_t)m0, v[c]);
}

// Channel-major (NCHW) output tile: 16 rows x one 16-column panel = 16 zmm accumulators,
// the same int32 sums and lane-wise epilogue as `tile`, then transposed in registers so
// each output channel gets 16 consecutive pixels in one store, instead of a 16-lane
// scatter per row (the scatter dominated Convs with small K, such as a 3-channel stem).
static VNNI_TARGET void tile16_channel_major(const mpq_gemm_job *j, int m0, int p) {
    __m512i acc[16];
    const uint8_t *a0 = j->a + (size_t)m0 * (size_t)j->lda;
    const int8_t *bp = j->bdata + (size_t)p * (size_t)j->kp * 16;
    _Pragma("unroll") for (int i = 0; i < 16; i++) acc[i] = _mm512_setzero_si512();
    const int groups = j->k / 4;
    for (int g = 0; g < groups; g++) {
        __m512i b = _mm512_loadu_si512((const void *)(bp + (size_t)g * 64));
        _Pragma("unroll") for (int i = 0; i < 16; i++) {
            int32_t a4;
            memcpy(&a4, a0 + (size_t)i * (size_t)j->lda + (size_t)g * 4, 4);
            acc[i] = _mm512_dpbusd_epi32(acc[i], _mm512_set1_epi32(a4), b);
        }
    }
    if (j->k % 4) {
        __m512i b = _mm512_loadu_si512((const void *)(bp + (size_t)groups * 64));
        _Pragma("unroll") for (int i = 0; i < 16; i++) {
            __m512i av = _mm512_set1_epi32((int32_t)load_a4(a0 + (size_t)i * (size_t)j->lda + (size_t)groups * 4, j->k % 4));
            acc[i] = _mm512_dpbusd_epi32(acc[i], av, b);
        }
    }
    store16_channel_major(j, m0, p, acc);
}

VNNI_TARGET void mpq_gemm_region_vnni(const mpq_gemm_job *j, int m0, int m1, int p0, int p1) {
    if (!j->c && j->out_channel_major) {
        // 16-row transposing tiles; the last < 16 rows take the scattering tiles.
        int full = m0 + (m1 - m0) / 16 * 16;
        for (int p = p0; p < p1; p++) {
            for (int m = m0; m < full; m += 16) tile16_channel_major(j, m, p);
            for (int m = full; m < m1; m += MR) {
                int mr = m1 - m < MR ? m1 - m : MR;
                tiles[mr - 1][0](j, m, p);
            }
        }
        return;
    }
    for (int p = p0; p < p1; p += NP) {
        int np = p1 - p < NP ? p1 - p : NP;
        for (int m = m0; m < m1; m += MR) {
            int mr = m1 - m < MR ? m1 - m : MR;
            tiles[mr - 1][np - 1](j, m, p);
        }
    }
}

// Rows [m0, m0 + rows) x panels [p0, p0 + np) from raw int32 sums (row r, panel q's 16
// columns at sums + r * ld + q * 16; ld a multiple of 16): the same stores and epilogue as the
// VNNI tiles, for a kernel that computes its sums elsewhere (the AMX tiles, qgemm_amx.c).
// Whole 16-row blocks of channel-major floats or codes take the transposing store.
VNNI_TARGET void mpq_gemm_store_sums_vnni(const mpq_gemm_job *j, int m0, int rows, int p0, int np,
                                          const int32_t *sums, int ld) {
    for (int q = 0; q < np; q++) {
        const int col = (p0 + q) * 16;
        if (col >= j->n) break;
        const int32_t *sq = sums + (size_t)q * 16;
        int r = 0;
        if (!j->c && j->out_channel_major) {
            for (; r + 16 <= rows; r += 16) {
                __m512i acc[16];
                _Pragma("unroll") for (int i = 0; i < 16; i++) acc[i] = _mm512_loadu_si512((const void *)(sq + (size_t)(r + i) * (size_t)ld));
                store16_channel_major(j, m0 + r, p0 + q, acc);
            }
        }
        if (r == rows) continue;
        const panel_epilogue e = panel_setup(j, col);
        for (; r < rows; r++) store_row(j, &e, m0 + r, _mm512_loadu_si512((const void *)(sq + (size_t)r * (size_t)ld)));
    }
}
