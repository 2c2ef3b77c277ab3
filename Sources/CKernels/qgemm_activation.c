// Steps around the INT8 activation x activation GEMM (mpq_activation_gemm.h). Plain C: the
// compiler vectorises the sums and the epilogue, and there are no overflow checks.
#pragma STDC FP_CONTRACT OFF
#include "mpq_activation_gemm.h"
#include "mpq_internal.h"
#include <math.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

void mpq_transpose_shift_u8(const uint8_t *b, int k, int n, int ldb, int8_t *bt) {
    // 8 x 8 blocks keep both sides' cache lines in use.
    for (int j0 = 0; j0 < k; j0 += 8) {
        int j1 = j0 + 8 < k ? j0 + 8 : k;
        for (int c0 = 0; c0 < n; c0 += 8) {
            int c1 = c0 + 8 < n ? c0 + 8 : n;
            for (int c = c0; c < c1; c++)
                for (int j = j0; j < j1; j++) bt[(size_t)c * k + j] = (int8_t)(b[(size_t)j * ldb + c] ^ 0x80);
        }
    }
}

void mpq_row_sums_u8(const uint8_t *a, size_t rows, int k, int32_t za, int64_t *sums) {
    for (size_t r = 0; r < rows; r++) {
        const uint8_t *p = a + r * (size_t)k;
        uint32_t s = 0;  // k <= 65792 codes of at most 255: fits in 32 bits
        for (int j = 0; j < k; j++) s += p[j];
        sums[r] = (int64_t)s - (int64_t)za * k;
    }
}

void mpq_row_correct_scale_f32_reference(const int32_t *acc, size_t rows, int n, int k, const int64_t *sums,
                                         int64_t zb, float scale, float *out) {
    const int narrow = k <= 32896;  // 2 * 255 * 128 * k < 2^31: exact in int32, the same float
    for (size_t r = 0; r < rows; r++) {
        const int32_t *a = acc + r * (size_t)n;
        float *o = out + r * (size_t)n;
        const int64_t corr = zb * sums[r];
        if (narrow) {
            const int32_t c32 = (int32_t)corr;
            for (int c = 0; c < n; c++) o[c] = (float)(a[c] - c32) * scale;
        } else {
            for (int c = 0; c < n; c++) o[c] = (float)((int64_t)a[c] - corr) * scale;
        }
    }
}

// The requantization of one corrected sum `d` (as a float): * multiplier, clamp to
// [-zp, 255 - zp] (maxps/minps semantics), round half to even, + zp.
static inline uint8_t requant_one(float d, float multiplier, uint8_t zp) {
    const float lo = 0.0f - (float)zp, hi = 255.0f - (float)zp;
    float v = d * multiplier;
    v = (v > lo) ? v : lo;
    v = (v < hi) ? v : hi;
    return (uint8_t)((int32_t)nearbyintf(v) + zp);
}

void mpq_row_correct_requant_u8_reference(const int32_t *acc, size_t rows, int n, int k, const int64_t *sums,
                                          int64_t zb, float multiplier, uint8_t zp, uint8_t *out) {
    const int narrow = k <= 32896;
    for (size_t r = 0; r < rows; r++) {
        const int32_t *a = acc + r * (size_t)n;
        uint8_t *o = out + r * (size_t)n;
        const int64_t corr = zb * sums[r];
        for (int c = 0; c < n; c++)
            o[c] = requant_one(narrow ? (float)(a[c] - (int32_t)corr) : (float)((int64_t)a[c] - corr), multiplier, zp);
    }
}

// MARK: - Vector paths (scalar references above / below, RowKernel-style dispatch)

static int use_vector_path(void) {
    return mpq_resolve_kernel_path(MPQ_PATH_AUTO) != MPQ_PATH_REFERENCE && mpq_kernel_path_available(MPQ_PATH_AVX2);
}

#if defined(__x86_64__) || defined(__i386__)
// The same int32 subtraction, int32 -> float conversion (round to nearest) and one multiply
// per element as the reference, 8 lanes at a time: the same bits.
__attribute__((target("avx2"))) static void correct_rows_avx2(const int32_t *acc, size_t rows, int n,
                                                              const int64_t *sums, int64_t zb, float scale, float *out) {
    const __m256 s = _mm256_set1_ps(scale);
    for (size_t r = 0; r < rows; r++) {
        const int32_t *a = acc + r * (size_t)n;
        float *o = out + r * (size_t)n;
        const int32_t c32 = (int32_t)(zb * sums[r]);
        const __m256i c = _mm256_set1_epi32(c32);
        int j = 0;
        for (; j + 8 <= n; j += 8) {
            __m256i v = _mm256_sub_epi32(_mm256_loadu_si256((const __m256i *)(a + j)), c);
            _mm256_storeu_ps(o + j, _mm256_mul_ps(_mm256_cvtepi32_ps(v), s));
        }
        for (; j < n; j++) o[j] = (float)(a[j] - c32) * scale;
    }
}
#endif

#if defined(__x86_64__) || defined(__i386__)
// The reference's operations 8 lanes at a time: int32 subtraction, conversion, one multiply,
// maxps/minps clamp, cvtps (round half to even under the default MXCSR), + zp, narrowed to
// bytes with saturating packs (the values are already in [0, 255]).
__attribute__((target("avx2"))) static void correct_requant_rows_avx2(const int32_t *acc, size_t rows, int n,
                                                                      const int64_t *sums, int64_t zb, float multiplier,
                                                                      uint8_t zp, uint8_t *out) {
    const __m256 m = _mm256_set1_ps(multiplier);
    const __m256 lo = _mm256_set1_ps(0.0f - (float)zp), hi = _mm256_set1_ps(255.0f - (float)zp);
    const __m256i z = _mm256_set1_epi32(zp);
    for (size_t r = 0; r < rows; r++) {
        const int32_t *a = acc + r * (size_t)n;
        uint8_t *o = out + r * (size_t)n;
        const int32_t c32 = (int32_t)(zb * sums[r]);
        const __m256i c = _mm256_set1_epi32(c32);
        int j = 0;
        for (; j + 8 <= n; j += 8) {
            __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_loadu_si256((const __m256i *)(a + j)), c)), m);
            v = _mm256_min_ps(_mm256_max_ps(v, lo), hi);
            __m256i q = _mm256_add_epi32(_mm256_cvtps_epi32(v), z);
            __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
            _mm_storel_epi64((__m128i *)(o + j), _mm_packus_epi16(w, w));
        }
        for (; j < n; j++) o[j] = requant_one((float)(a[j] - c32), multiplier, zp);
    }
}
#endif

void mpq_row_correct_requant_u8(const int32_t *acc, size_t rows, int n, int k, const int64_t *sums, int64_t zb,
                                float multiplier, uint8_t zp, uint8_t *out) {
#if defined(__x86_64__) || defined(__i386__)
    if (k <= 32896 && use_vector_path()) {
        correct_requant_rows_avx2(acc, rows, n, sums, zb, multiplier, zp, out);
        return;
    }
#endif
    mpq_row_correct_requant_u8_reference(acc, rows, n, k, sums, zb, multiplier, zp, out);
}

void mpq_row_correct_scale_f32(const int32_t *acc, size_t rows, int n, int k, const int64_t *sums, int64_t zb,
                               float scale, float *out) {
#if defined(__x86_64__) || defined(__i386__)
    if (k <= 32896 && use_vector_path()) {  // the reference's int32 side
        correct_rows_avx2(acc, rows, n, sums, zb, scale, out);
        return;
    }
#endif
    mpq_row_correct_scale_f32_reference(acc, rows, n, k, sums, zb, scale, out);
}

// MARK: - B [K][N] uint8 straight into the packed int8 operand

/// Column sums of the shifted codes: sum_j (b[j][c] - 128).
static void shifted_colsums(const uint8_t *b, int k, int n, int ldb, int32_t *colsum) {
    for (int c = 0; c < n; c++) colsum[c] = -128 * k;
    for (int j = 0; j < k; j++) {
        const uint8_t *row = b + (size_t)j * (size_t)ldb;
        for (int c = 0; c < n; c++) colsum[c] += row[c];
    }
}

/// One packed byte: column c, depth j.
static inline void put(int8_t *data, int kp, const uint8_t *b, int ldb, int j, int c) {
    data[(size_t)(c / MPQ_PACK_N) * (size_t)kp * MPQ_PACK_N + (size_t)(j / 4) * 64 + (size_t)(c % 16) * 4 + (size_t)(j % 4)] =
        (int8_t)(b[(size_t)j * (size_t)ldb + (size_t)c] ^ 0x80);
}

int mpq_pack_b_shift_u8_reference(const uint8_t *b, int k, int n, int ldb, void *packed) {
    if (n <= 0 || k <= 0 || ldb < n || !b || !packed) return -1;
    int32_t *colsum;
    int8_t *data = mpq_packed_b_start(n, k, packed, &colsum);
    const int kp = ((const mpq_packed_b_header *)packed)->k_padded;
    for (int c = 0; c < n; c++)
        for (int j = 0; j < k; j++) put(data, kp, b, ldb, j, c);
    shifted_colsums(b, k, n, ldb, colsum);
    mpq_packed_b_note_pairs(packed);
    return 0;
}

int mpq_pack_b_shift_u8(const uint8_t *b, int k, int n, int ldb, void *packed) {
#if defined(__SSE2__)
    if (n <= 0 || k <= 0 || ldb < n || !b || !packed) return -1;
    if (!use_vector_path()) return mpq_pack_b_shift_u8_reference(b, k, n, ldb, packed);
    int32_t *colsum;
    int8_t *data = mpq_packed_b_start(n, k, packed, &colsum);
    const int kp = ((const mpq_packed_b_header *)packed)->k_padded, full_n = n / 16 * 16, full_k = k / 4 * 4;
    const __m128i flip = _mm_set1_epi8((char)0x80);
    // One 64-byte group = 4 rows of B x 16 columns, interleaved so that each column's 4
    // bytes are adjacent: two rounds of byte / word unpacks (SSE2, the x86-64 baseline).
    for (int p = 0; p < full_n / 16; p++) {
        int8_t *panel = data + (size_t)p * (size_t)kp * 16;
        for (int j = 0; j < full_k; j += 4) {
            const uint8_t *src = b + (size_t)j * (size_t)ldb + (size_t)p * 16;
            __m128i r0 = _mm_xor_si128(_mm_loadu_si128((const __m128i *)src), flip);
            __m128i r1 = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(src + ldb)), flip);
            __m128i r2 = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(src + 2 * (size_t)ldb)), flip);
            __m128i r3 = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(src + 3 * (size_t)ldb)), flip);
            __m128i t0 = _mm_unpacklo_epi8(r0, r1), t1 = _mm_unpackhi_epi8(r0, r1);
            __m128i t2 = _mm_unpacklo_epi8(r2, r3), t3 = _mm_unpackhi_epi8(r2, r3);
            __m128i *dst = (__m128i *)(panel + (size_t)j * 16);
            _mm_storeu_si128(dst, _mm_unpacklo_epi16(t0, t2));      // columns 0-3
            _mm_storeu_si128(dst + 1, _mm_unpackhi_epi16(t0, t2));  // 4-7
            _mm_storeu_si128(dst + 2, _mm_unpacklo_epi16(t1, t3));  // 8-11
            _mm_storeu_si128(dst + 3, _mm_unpackhi_epi16(t1, t3));  // 12-15
        }
    }
    for (int c = 0; c < n; c++)
        for (int j = c < full_n ? full_k : 0; j < k; j++) put(data, kp, b, ldb, j, c);
    shifted_colsums(b, k, n, ldb, colsum);
    mpq_packed_b_note_pairs(packed);
    return 0;
#else
    return mpq_pack_b_shift_u8_reference(b, k, n, ldb, packed);
#endif
}
