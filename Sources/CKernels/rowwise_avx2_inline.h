#ifndef MPQ_ROWWISE_AVX2_INLINE_H
#define MPQ_ROWWISE_AVX2_INLINE_H
// The 8-lane exp and erf of the AVX2 row kernels, shared by rowwise_avx2.c (Softmax, Erf)
// and rowwise_fused.c (the one-pass GELU), so both run the very same operations per lane.
// Include after <immintrin.h>; callers compile with target("avx2,fma").
#include <immintrin.h>

#define MPQ_AVX2_FMA __attribute__((target("avx2,fma")))

// e^t for t <= 0 (and NaN): below -86.5 the result is 0, never subnormal.
MPQ_AVX2_FMA static inline __m256 exp_nonpositive8(__m256 t) {
    const __m256 lowest = _mm256_set1_ps(-86.5f);
    __m256 tc = _mm256_max_ps(lowest, t);  // NaN t stays NaN (maxps returns its second operand)
    __m256 n = _mm256_floor_ps(_mm256_fmadd_ps(tc, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), tc);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 z = _mm256_mul_ps(r, r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_add_ps(_mm256_fmadd_ps(p, z, r), _mm256_set1_ps(1.0f));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    __m256 v = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
    return _mm256_andnot_ps(_mm256_cmp_ps(t, lowest, _CMP_LT_OQ), v);  // t < -86.5 -> 0
}

// erf on 8 lanes; coefficients from tools/fit_erf.py (least squares in double). In halves
// (erf8 is erf8_finish_exp of erf8_start and the exp) so that erf8_block below can run them
// as separate passes over a block of vectors.
// The first half: `small` (the |x| <= 0.921875 branch, x + x * P(x^2)) and `q` (the other
// branch's exponent Q(|x|), |x| clamped to 3.925: erf is 1 in float beyond).
MPQ_AVX2_FMA static inline void erf8_start(__m256 x, __m256 *small, __m256 *q_out) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 t = _mm256_andnot_ps(sign, x);
    __m256 s = _mm256_mul_ps(x, x);
    __m256 p = _mm256_set1_ps(-6.008650525e-04f);
    p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(4.996994976e-03f));
    p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(-2.676948532e-02f));
    p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(1.128190458e-01f));
    p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(-3.761250377e-01f));
    p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(1.283791512e-01f));
    *small = _mm256_fmadd_ps(p, x, x);
    __m256 tc = _mm256_min_ps(t, _mm256_set1_ps(3.925f));
    __m256 q = _mm256_set1_ps(1.635537842e-06f);
    q = _mm256_fmadd_ps(q, tc, _mm256_set1_ps(-4.599255044e-05f));
    q = _mm256_fmadd_ps(q, tc, _mm256_set1_ps(5.959674600e-04f));
    q = _mm256_fmadd_ps(q, tc, _mm256_set1_ps(-4.754320253e-03f));
    q = _mm256_fmadd_ps(q, tc, _mm256_set1_ps(2.640229836e-02f));
    q = _mm256_fmadd_ps(q, tc, _mm256_set1_ps(-1.100401580e-01f));
    q = _mm256_fmadd_ps(q, tc, _mm256_set1_ps(-6.318756342e-01f));
    q = _mm256_fmadd_ps(q, tc, _mm256_set1_ps(-1.130200267e+00f));
    *q_out = _mm256_fmadd_ps(q, tc, _mm256_set1_ps(3.109346726e-04f));
}

// The second half from exp(q) (`e`): 1 - e with x's sign where |x| > 0.921875, else `small`.
MPQ_AVX2_FMA static inline __m256 erf8_finish_exp(__m256 x, __m256 small, __m256 e) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 t = _mm256_andnot_ps(sign, x);
    __m256 big = _mm256_sub_ps(_mm256_set1_ps(1.0f), e);
    big = _mm256_or_ps(big, _mm256_and_ps(x, sign));
    __m256 isBig = _mm256_cmp_ps(t, _mm256_set1_ps(0.921875f), _CMP_GT_OQ);  // NaN: false -> small (NaN)
    return _mm256_blendv_ps(small, big, isBig);
}

MPQ_AVX2_FMA static inline __m256 erf8(__m256 x) {
    __m256 small, q;
    erf8_start(x, &small, &q);
    return erf8_finish_exp(x, small, exp_nonpositive8(q));
}

// erf8 of MPQ_ERF8_BLOCK vectors (x[v] -> y[v], 8 floats each), in three passes over all of
// them (erf8_start, the exp, erf8_finish_exp): one vector's whole erf8 is a ~100-cycle chain
// that the out-of-order window cannot overlap enough of when vectors go one by one; a pass's
// vectors are independent and its chain short. The same operations per element, so erf8's
// bits. `y` may be `x` (each vector is read before it is written). Shared by the Erf kernel
// (rowwise_avx2.c) and the fused GELU row (rowwise_fused.c; blocks of 8 and 32 vectors ran 2-5%
// slower there than 16).
#define MPQ_ERF8_BLOCK 16
MPQ_AVX2_FMA static inline void erf8_block(const float *x, float *y) {
    _Alignas(32) float sv[MPQ_ERF8_BLOCK][8], qv[MPQ_ERF8_BLOCK][8];
    for (int v = 0; v < MPQ_ERF8_BLOCK; v++) {
        __m256 small, q;
        erf8_start(_mm256_loadu_ps(x + 8 * v), &small, &q);
        _mm256_store_ps(sv[v], small);
        _mm256_store_ps(qv[v], q);
    }
    for (int v = 0; v < MPQ_ERF8_BLOCK; v++) _mm256_store_ps(qv[v], exp_nonpositive8(_mm256_load_ps(qv[v])));
    for (int v = 0; v < MPQ_ERF8_BLOCK; v++)
        _mm256_storeu_ps(y + 8 * v, erf8_finish_exp(_mm256_loadu_ps(x + 8 * v), _mm256_load_ps(sv[v]), _mm256_load_ps(qv[v])));
}

#endif
