// AVX2 + FMA bodies of the FP32 row kernels (mpq_rowwise.h). exp is the range-reduced
// degree-6 polynomial of sigmoid.c (Cephes expf), 8 lanes at a time.
#include "rowwise_internal.h"
#include <immintrin.h>
#include "rowwise_avx2_inline.h"
#include "rowwise_avx512_inline.h"

#define AVX2 __attribute__((target("avx2,fma")))

// Loads/stores the first `k` (< 8) floats of a vector; the rest read as `fill`.
AVX2 static inline __m256i tail_mask(size_t k) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)k), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

AVX2 static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

AVX2 static inline float hmax8(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// A row's max (0 with a NaN anywhere: the caller then takes the reference's row).
AVX2 static inline int softmax_row_max(const float *p, size_t n, size_t nv, float *max) {
    __m256 mv = _mm256_set1_ps(-INFINITY);
    int nan = 0;
    for (size_t k = 0; k < nv; k += 8) {
        __m256 v = _mm256_loadu_ps(p + k);
        nan |= _mm256_movemask_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
        mv = _mm256_max_ps(mv, v);
    }
    float m = hmax8(mv);
    for (size_t k = nv; k < n; k++) { if (p[k] != p[k]) nan = 1; if (p[k] > m) m = p[k]; }
    *max = m;
    return !nan;
}

// The exps of [k, n) in 8-lane steps and the masked tail, added to the 8-lane sum `sv` in order,
// then the row scaled by 1 / sum.
AVX2 static inline void softmax_row_finish(float *p, size_t n, size_t nv, __m256i mask, size_t k, float m, __m256 sv) {
    const __m256 mb = _mm256_set1_ps(m);
    for (; k < nv; k += 8) {
        __m256 e = exp_nonpositive8(_mm256_sub_ps(_mm256_loadu_ps(p + k), mb));
        _mm256_storeu_ps(p + k, e);
        sv = _mm256_add_ps(sv, e);
    }
    if (nv < n) {
        __m256 e = exp_nonpositive8(_mm256_sub_ps(_mm256_maskload_ps(p + nv, mask), mb));
        e = _mm256_and_ps(e, _mm256_castsi256_ps(mask));
        _mm256_maskstore_ps(p + nv, mask, e);
        sv = _mm256_add_ps(sv, e);
    }
    const __m256 inv = _mm256_set1_ps(1 / hsum8(sv));
    for (size_t j = 0; j < nv; j += 8) _mm256_storeu_ps(p + j, _mm256_mul_ps(_mm256_loadu_ps(p + j), inv));
    if (nv < n) _mm256_maskstore_ps(p + nv, mask, _mm256_mul_ps(_mm256_maskload_ps(p + nv, mask), inv));
}

// Two rows' exps, sums and scaling, each row's operations those of softmax_row_finish in its
// order (so its bits), the two rows' steps interleaved: one row alone is a chain of
// dependent steps (the max's reduction, each exp's ~14 dependent operations, the sum's
// reduction, 1 / sum) that left the core waiting, ~3 cycles an element on Zen 3 at MiniLM's
// 128-wide rows (s32).
AVX2 static inline void softmax_rows_finish2(float *p0, float *p1, size_t n, size_t nv, __m256i mask, float m0, float m1) {
    const __m256 mb0 = _mm256_set1_ps(m0), mb1 = _mm256_set1_ps(m1);
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    for (size_t k = 0; k < nv; k += 8) {
        __m256 e0 = exp_nonpositive8(_mm256_sub_ps(_mm256_loadu_ps(p0 + k), mb0));
        __m256 e1 = exp_nonpositive8(_mm256_sub_ps(_mm256_loadu_ps(p1 + k), mb1));
        _mm256_storeu_ps(p0 + k, e0);
        _mm256_storeu_ps(p1 + k, e1);
        s0 = _mm256_add_ps(s0, e0);
        s1 = _mm256_add_ps(s1, e1);
    }
    if (nv < n) {
        __m256 e0 = exp_nonpositive8(_mm256_sub_ps(_mm256_maskload_ps(p0 + nv, mask), mb0));
        __m256 e1 = exp_nonpositive8(_mm256_sub_ps(_mm256_maskload_ps(p1 + nv, mask), mb1));
        e0 = _mm256_and_ps(e0, _mm256_castsi256_ps(mask));
        e1 = _mm256_and_ps(e1, _mm256_castsi256_ps(mask));
        _mm256_maskstore_ps(p0 + nv, mask, e0);
        _mm256_maskstore_ps(p1 + nv, mask, e1);
        s0 = _mm256_add_ps(s0, e0);
        s1 = _mm256_add_ps(s1, e1);
    }
    const __m256 inv0 = _mm256_set1_ps(1 / hsum8(s0)), inv1 = _mm256_set1_ps(1 / hsum8(s1));
    for (size_t j = 0; j < nv; j += 8) {
        _mm256_storeu_ps(p0 + j, _mm256_mul_ps(_mm256_loadu_ps(p0 + j), inv0));
        _mm256_storeu_ps(p1 + j, _mm256_mul_ps(_mm256_loadu_ps(p1 + j), inv1));
    }
    if (nv < n) {
        _mm256_maskstore_ps(p0 + nv, mask, _mm256_mul_ps(_mm256_maskload_ps(p0 + nv, mask), inv0));
        _mm256_maskstore_ps(p1 + nv, mask, _mm256_mul_ps(_mm256_maskload_ps(p1 + nv, mask), inv1));
    }
}

// One row: its max, then softmax_row_finish; a row with a NaN takes the reference's row (NaN
// throughout, as the reference gives).
AVX2 static inline void softmax_row_avx2(float *p, size_t n, size_t nv, __m256i mask) {
    float m;
    if (!softmax_row_max(p, n, nv, &m)) {
        mpq_softmax_rows_reference(p, 1, n);
        return;
    }
    softmax_row_finish(p, n, nv, mask, 0, m, _mm256_setzero_ps());
}

AVX2 void mpq_softmax_rows_avx2(float *x, size_t rows, size_t n) {
    const size_t nv = n & ~(size_t)7;
    const __m256i mask = tail_mask(n - nv);
    size_t r = 0;
    for (; r + 2 <= rows; r += 2) {  // in pairs (softmax_rows_finish2): the same bits as one at a time
        float *p0 = x + r * n, *p1 = p0 + n;
        float m0, m1;
        const int ok0 = softmax_row_max(p0, n, nv, &m0), ok1 = softmax_row_max(p1, n, nv, &m1);
        if (ok0 && ok1) {
            softmax_rows_finish2(p0, p1, n, nv, mask, m0, m1);
            continue;
        }
        softmax_row_avx2(p0, n, nv, mask);
        softmax_row_avx2(p1, n, nv, mask);
    }
    if (r < rows) softmax_row_avx2(x + r * n, n, nv, mask);
}

// mpq_softmax_rows_avx2 with its exps 16 lanes at a time (s12: the softmax was 5.5% of
// MiniLM's all-INT8 batch-1 samples). exp_nonpositive16 is exp_nonpositive8 lane for lane, and
// each 16-lane step adds its two 8-lane halves to the 8-lane sum in the 8-lane loop's order, so
// every row gets the AVX2 kernel's bits (the max is exact in any order).
//
// Rows in pairs, their steps interleaved, as the AVX2 kernel does (s36): one 128-wide row alone
// is chains of dependent steps (16 8-lane adds of the sum in their fixed order, each exp's ~14
// operations, the max), ~240 cycles a row on Zen 4; the max takes 16 lanes in two accumulators
// (exact in any order; a -0 / +0 tie changes no x - max).
#define AVX512 __attribute__((target("avx512f,avx2,fma")))
AVX512 static inline int softmax_row_max16(const float *p, size_t n, float *max) {
    __m512 a = _mm512_set1_ps(-INFINITY), b = a;
    __mmask16 nan = 0;
    size_t k = 0;
    for (; k + 32 <= n; k += 32) {
        const __m512 u = _mm512_loadu_ps(p + k), v = _mm512_loadu_ps(p + k + 16);
        nan |= _mm512_cmp_ps_mask(u, u, _CMP_UNORD_Q) | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
        a = _mm512_max_ps(a, u);
        b = _mm512_max_ps(b, v);
    }
    for (; k < n; k += 16) {
        const __mmask16 m = n - k >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - k)) - 1u);
        const __m512 u = _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), m, p + k);
        nan |= _mm512_cmp_ps_mask(u, u, _CMP_UNORD_Q);
        a = _mm512_max_ps(a, u);
    }
    *max = _mm512_reduce_max_ps(_mm512_max_ps(a, b));
    return nan == 0;
}

// One row alone: its max, the exps 16 lanes a step, softmax_row_finish (a row with a NaN takes
// the reference's row, as softmax_row_avx2 does).
AVX512 static inline void softmax_row_avx512(float *p, size_t n, size_t nv, __m256i mask) {
    float m;
    if (!softmax_row_max16(p, n, &m)) {
        mpq_softmax_rows_reference(p, 1, n);
        return;
    }
    const __m512 mb = _mm512_set1_ps(m);
    __m256 sv = _mm256_setzero_ps();
    size_t k = 0;
    for (; k + 16 <= nv; k += 16) {
        __m512 e = exp_nonpositive16(_mm512_sub_ps(_mm512_loadu_ps(p + k), mb));
        _mm512_storeu_ps(p + k, e);
        sv = _mm256_add_ps(sv, _mm512_castps512_ps256(e));
        sv = _mm256_add_ps(sv, _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(e), 1)));
    }
    softmax_row_finish(p, n, nv, mask, k, m, sv);
}

AVX512 void mpq_softmax_rows_avx512(float *x, size_t rows, size_t n) {
    const size_t nv = n & ~(size_t)7;
    const __m256i mask = tail_mask(n - nv);
    size_t r = 0;
    for (; r + 2 <= rows; r += 2) {
        float *p0 = x + r * n, *p1 = p0 + n;
        float m0, m1;
        const int ok0 = softmax_row_max16(p0, n, &m0), ok1 = softmax_row_max16(p1, n, &m1);
        if (!ok0 || !ok1) {
            softmax_row_avx512(p0, n, nv, mask);
            softmax_row_avx512(p1, n, nv, mask);
            continue;
        }
        const __m512 mb0 = _mm512_set1_ps(m0), mb1 = _mm512_set1_ps(m1);
        __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
        size_t k = 0;
        for (; k + 16 <= nv; k += 16) {
            const __m512 e0 = exp_nonpositive16(_mm512_sub_ps(_mm512_loadu_ps(p0 + k), mb0));
            const __m512 e1 = exp_nonpositive16(_mm512_sub_ps(_mm512_loadu_ps(p1 + k), mb1));
            _mm512_storeu_ps(p0 + k, e0);
            _mm512_storeu_ps(p1 + k, e1);
            s0 = _mm256_add_ps(s0, _mm512_castps512_ps256(e0));
            s1 = _mm256_add_ps(s1, _mm512_castps512_ps256(e1));
            s0 = _mm256_add_ps(s0, _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(e0), 1)));
            s1 = _mm256_add_ps(s1, _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(e1), 1)));
        }
        softmax_row_finish(p0, n, nv, mask, k, m0, s0);
        softmax_row_finish(p1, n, nv, mask, k, m1, s1);
    }
    if (r < rows) softmax_row_avx512(x + r * n, n, nv, mask);
}

// Blocks of vectors through erf8_block (three passes each, rowwise_avx2_inline.h), then
// single vectors and the masked tail. One thread, 196,645 floats: 274 -> 165 us with the blocks.
AVX2 void mpq_erf_avx2(const float *x, size_t count, float *y) {
    size_t i = 0;
    for (; i + 8 * MPQ_ERF8_BLOCK <= count; i += 8 * MPQ_ERF8_BLOCK) erf8_block(x + i, y + i);
    for (; i + 8 <= count; i += 8) _mm256_storeu_ps(y + i, erf8(_mm256_loadu_ps(x + i)));
    if (i < count) {
        __m256i mask = tail_mask(count - i);
        _mm256_maskstore_ps(y + i, mask, erf8(_mm256_maskload_ps(x + i, mask)));
    }
}

// A row's mean (as float) and 1 / sqrt(var + epsilon), the moments summed in double over 8
// lanes in two 4-double accumulators, then the lanes in a fixed order. `n` rows (1 or 2) at
// once: two rows' chains interleaved, each row's operations in its own order (its bits alone).
// One row's moments are two chains of 48 dependent double adds at 384 columns, which left the
// core waiting between the fused add + LayerNorm's rows (s32, as the Softmax's).
AVX2 static inline __attribute__((always_inline)) void ln_moments(const float *const p[2], int n, size_t cols, size_t nv, float epsilon,
                                   float m[2], float s[2]) {
    __m256d a0[2] = {_mm256_setzero_pd(), _mm256_setzero_pd()}, a1[2] = {_mm256_setzero_pd(), _mm256_setzero_pd()};
    for (size_t i = 0; i < nv; i += 8)
        for (int r = 0; r < n; r++) {
            a0[r] = _mm256_add_pd(a0[r], _mm256_cvtps_pd(_mm_loadu_ps(p[r] + i)));
            a1[r] = _mm256_add_pd(a1[r], _mm256_cvtps_pd(_mm_loadu_ps(p[r] + i + 4)));
        }
    double mu[2];
    __m256d mud[2];
    for (int r = 0; r < n; r++) {
        double lanes[4];
        _mm256_storeu_pd(lanes, _mm256_add_pd(a0[r], a1[r]));
        double sum = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
        for (size_t i = nv; i < cols; i++) sum += p[r][i];
        mu[r] = sum / (double)(cols ? cols : 1);
        mud[r] = _mm256_set1_pd(mu[r]);
    }
    __m256d v0[2] = {_mm256_setzero_pd(), _mm256_setzero_pd()}, v1[2] = {_mm256_setzero_pd(), _mm256_setzero_pd()};
    for (size_t i = 0; i < nv; i += 8)
        for (int r = 0; r < n; r++) {
            __m256d d0 = _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(p[r] + i)), mud[r]);
            __m256d d1 = _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(p[r] + i + 4)), mud[r]);
            v0[r] = _mm256_fmadd_pd(d0, d0, v0[r]);
            v1[r] = _mm256_fmadd_pd(d1, d1, v1[r]);
        }
    for (int r = 0; r < n; r++) {
        double lanes[4];
        _mm256_storeu_pd(lanes, _mm256_add_pd(v0[r], v1[r]));
        double var = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
        for (size_t i = nv; i < cols; i++) { double d = p[r][i] - mu[r]; var += d * d; }
        var /= (double)(cols ? cols : 1);
        m[r] = (float)mu[r];
        s[r] = (float)(1 / sqrt(var + (double)epsilon));
    }
}

// (x - m) * s * scale + bias for one row.
AVX2 static inline void ln_normalize(const float *p, float *q, size_t cols, size_t nv, const float *scale,
                                     const float *bias, float m, float s) {
    const __m256 mb = _mm256_set1_ps(m), sb = _mm256_set1_ps(s);
    for (size_t j = 0; j < nv; j += 8) {
        __m256 v = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(p + j), mb), sb);
        v = _mm256_mul_ps(v, _mm256_loadu_ps(scale + j));
        v = _mm256_add_ps(v, bias ? _mm256_loadu_ps(bias + j) : _mm256_setzero_ps());  // -0 -> +0 as the reference
        _mm256_storeu_ps(q + j, v);
    }
    for (size_t j = nv; j < cols; j++) {
        float v = (p[j] - m) * s;
        v = v * scale[j];
        q[j] = v + (bias ? bias[j] : 0.0f);
    }
}

AVX2 void mpq_layernorm_avx2(const float *x, size_t rows, size_t cols, const float *scale, const float *bias,
                             float epsilon, float *y, float *mean, float *inv_std) {
    const size_t nv = cols & ~(size_t)7;
    for (size_t r = 0; r < rows; r += 2) {
        const int n = r + 1 < rows ? 2 : 1;  // rows in pairs (ln_moments): the same bits as one at a time
        const float *p[2] = {x + r * cols, x + (r + n - 1) * cols};
        float m[2], s[2];
        if (n == 2) ln_moments(p, 2, cols, nv, epsilon, m, s);  // constant counts: the row loops unroll
        else ln_moments(p, 1, cols, nv, epsilon, m, s);
        for (int i = 0; i < n; i++) {
            if (mean) mean[r + i] = m[i];
            if (inv_std) inv_std[r + i] = s[i];
            ln_normalize(p[i], y + (r + i) * cols, cols, nv, scale, bias, m[i], s[i]);
        }
    }
}
