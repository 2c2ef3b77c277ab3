// AVX2 INT8 GEMM. vpmaddubsw (u8 x s8 -> s16 pairs) saturates, so it would not
// match the reference; instead both operands are widened to s16 and multiplied
// with vpmaddwd, whose s16 x s16 pair sums fit int32 exactly.
//
// Reads the same packed B as the VNNI path: a 64-byte group (16 columns x 4 k)
// is widened in 16-byte quarters (4 columns x 4 k -> 16 s16). A's 4 bytes are
// widened and broadcast as one 64-bit pattern, so each int32 lane holds half of
// a column's 4-k dot product; the halves are added (hadd) once, at the end.
// Micro-tile: MR = 2 rows x 16 columns = 8 ymm accumulators + 4 B + 1 A (of 16).
#include "mpq_internal.h"
#include <immintrin.h>
#include <string.h>

#define AVX2_TARGET __attribute__((target("avx2")))
#define MR 2

static inline AVX2_TARGET __m256i bcast_a4(const uint8_t *p, int avail) {
    int32_t v = 0;
    if (avail >= 4) memcpy(&v, p, 4);  // constant size: one load
    else memcpy(&v, p, (size_t)avail);
    // Broadcast-load the 4 bytes, then interleave with zero: per 128-bit lane
    // [a0 a1 a2 a3 a0 a1 a2 a3] as u16 in one shuffle (cheaper than pmovzx + broadcastq).
    return _mm256_unpacklo_epi8(_mm256_set1_epi32(v), _mm256_setzero_si256());
}

// Sums the two halves of each column: [c0 c0' c1 c1' c2 c2' c3 c3'] x2 -> c0..c7.
static inline AVX2_TARGET __m256i fold(__m256i lo4, __m256i hi4) {
    return _mm256_permute4x64_epi64(_mm256_hadd_epi32(lo4, hi4), _MM_SHUFFLE(3, 1, 2, 0));
}

// One group of 4 k for `mr` rows x 16 columns.
static inline __attribute__((always_inline)) AVX2_TARGET void
group(__m256i acc[MR][4], const int8_t *bp, const uint8_t *const *ar, int mr, int g, int avail) {
    __m256i b[4];
    _Pragma("unroll") for (int q = 0; q < 4; q++)
        b[q] = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(bp + (size_t)g * 64 + q * 16)));
    _Pragma("unroll") for (int i = 0; i < mr; i++) {
        __m256i av = bcast_a4(ar[i] + (size_t)g * 4, avail);
        _Pragma("unroll") for (int q = 0; q < 4; q++)
            acc[i][q] = _mm256_add_epi32(acc[i][q], _mm256_madd_epi16(av, b[q]));
    }
}

static inline __attribute__((always_inline)) AVX2_TARGET void
tile(const mpq_gemm_job *j, int m0, int mr, int p) {
    __m256i acc[MR][4];
    const uint8_t *ar[MR];
    _Pragma("unroll") for (int i = 0; i < mr; i++) {
        ar[i] = j->a + (size_t)(m0 + i) * (size_t)j->lda;
        _Pragma("unroll") for (int q = 0; q < 4; q++) acc[i][q] = _mm256_setzero_si256();
    }
    const int8_t *bp = j->bdata + (size_t)p * (size_t)j->kp * 16;
    // Full groups of 4 k in the hot loop, then one zero-filled tail group (B is
    // zero there too); kept apart so the hot loop has no branch or memcpy call.
    const int full = j->k / 4;
    for (int g = 0; g < full; g++) group(acc, bp, ar, mr, g, 4);
    if (j->k % 4) group(acc, bp, ar, mr, full, j->k % 4);

    const __m256i za = _mm256_set1_epi32(j->za);
    for (int h = 0; h < 2; h++) {
        int col = p * 16 + h * 8;
        int cols = j->n - col;
        if (cols <= 0) break;
        __m256i corr = _mm256_mullo_epi32(za, _mm256_loadu_si256((const __m256i *)(j->colsum + col)));
        _Pragma("unroll") for (int i = 0; i < mr; i++) {
            __m256i v = _mm256_sub_epi32(fold(acc[i][2 * h], acc[i][2 * h + 1]), corr);
            if (j->c) {
                int32_t *dst = j->c + (size_t)(m0 + i) * (size_t)j->ldc + col;
                if (cols >= 8) {
                    _mm256_storeu_si256((__m256i *)dst, v);
                } else {
                    int32_t tmp[8];
                    _mm256_storeu_si256((__m256i *)tmp, v);
                    memcpy(dst, tmp, (size_t)cols * sizeof(int32_t));
                }
                continue;
            }
            const mpq_epilogue *ep = j->ep;
            float sb[8] = {0}, bias[8] = {0}, res[8];
            int nc = cols >= 8 ? 8 : cols;
            if (ep->bias_i32) {
                int32_t bi[8] = {0};
                memcpy(bi, ep->bias_i32 + col, (size_t)nc * sizeof(int32_t));
                v = _mm256_add_epi32(v, _mm256_loadu_si256((const __m256i *)bi));
            }
            memcpy(sb, ep->b_scale + col, (size_t)nc * sizeof(float));
            if (ep->bias) memcpy(bias, ep->bias + col, (size_t)nc * sizeof(float));
            __m256 f = _mm256_mul_ps(_mm256_cvtepi32_ps(v), _mm256_mul_ps(_mm256_set1_ps(ep->a_scale), _mm256_loadu_ps(sb)));
            if (ep->bias) f = _mm256_add_ps(f, _mm256_loadu_ps(bias));
            f = _mm256_min_ps(_mm256_max_ps(f, _mm256_set1_ps(ep->clamp_lo)), _mm256_set1_ps(ep->clamp_hi));
            if (ep->out_scale > 0)
                f = _mm256_add_ps(_mm256_mul_ps(_mm256_round_ps(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC),
                                                _mm256_set1_ps(ep->out_scale)), _mm256_setzero_ps());
            if (j->out_u8) {
                _mm256_storeu_ps(res, f);
                for (int l = 0; l < nc; l++) {
                    size_t at = j->out_channel_major ? (size_t)(col + l) * (size_t)j->ldo + (size_t)(m0 + i)
                                                     : (size_t)(m0 + i) * (size_t)j->ldo + (size_t)(col + l);
                    j->out_u8[at] = mpq_code_u8(res[l], j->out_zp);
                }
                continue;
            }
            if (j->out_channel_major) {
                _mm256_storeu_ps(res, f);
                float *dst = j->out + (size_t)col * (size_t)j->ldo + (size_t)(m0 + i);
                for (int l = 0; l < nc; l++) dst[(size_t)l * (size_t)j->ldo] = res[l];
                continue;
            }
            float *dst = j->out + (size_t)(m0 + i) * (size_t)j->ldo + col;
            if (nc == 8) {
                _mm256_storeu_ps(dst, f);
            } else {
                _mm256_storeu_ps(res, f);
                memcpy(dst, res, (size_t)nc * sizeof(float));
            }
        }
    }
}

static AVX2_TARGET void tile_1(const mpq_gemm_job *j, int m0, int p) { tile(j, m0, 1, p); }
static AVX2_TARGET void tile_2(const mpq_gemm_job *j, int m0, int p) { tile(j, m0, 2, p); }

AVX2_TARGET void mpq_gemm_region_avx2(const mpq_gemm_job *j, int m0, int m1, int p0, int p1) {
    for (int p = p0; p < p1; p++) {
        int m = m0;
        for (; m + MR <= m1; m += MR) tile_2(j, m, p);
        if (m < m1) tile_1(j, m, p);
    }
}
