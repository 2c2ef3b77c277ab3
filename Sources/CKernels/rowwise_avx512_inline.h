#ifndef MPQ_ROWWISE_AVX512_INLINE_H
#define MPQ_ROWWISE_AVX512_INLINE_H
// The 16-lane forms of rowwise_avx2_inline.h's exp and erf: the very same operations per lane
// (same constants, same FMAs in the same order, the same NaN and clamp behaviour), so a lane
// gives the 8-lane kernels' bits. AVX-512F only (the bitwise steps are integer ops: vandnps on
// zmm would need AVX-512DQ). Include after <immintrin.h>; callers compile with MPQ_AVX512F.
#include <immintrin.h>

#define MPQ_AVX512F __attribute__((target("avx512f")))

// e^t for t <= 0 (and NaN): below -86.5 the result is 0, never subnormal (exp_nonpositive8).
MPQ_AVX512F static inline __m512 exp_nonpositive16(__m512 t) {
    const __m512 lowest = _mm512_set1_ps(-86.5f);
    __m512 tc = _mm512_max_ps(lowest, t);  // NaN t stays NaN (max returns its second operand)
    __m512 n = _mm512_roundscale_ps(_mm512_fmadd_ps(tc, _mm512_set1_ps(1.44269504088896341f), _mm512_set1_ps(0.5f)),
                                    _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), tc);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 z = _mm512_mul_ps(r, r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_add_ps(_mm512_fmadd_ps(p, z, r), _mm512_set1_ps(1.0f));
    __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    __m512 v = _mm512_mul_ps(p, _mm512_castsi512_ps(e));
    // t < -86.5 -> +0 (the 8-lane andnot of the compare mask)
    return _mm512_maskz_mov_ps(~_mm512_cmp_ps_mask(t, lowest, _CMP_LT_OQ), v);
}

// erf on 16 lanes (erf8's polynomials and branches).
MPQ_AVX512F static inline __m512 erf16(__m512 x) {
    const __m512i sign = _mm512_set1_epi32((int)0x80000000u);
    const __m512i xi = _mm512_castps_si512(x);
    __m512 t = _mm512_castsi512_ps(_mm512_andnot_si512(sign, xi));
    __m512 s = _mm512_mul_ps(x, x);
    // |x| <= 0.921875: x + x * P(x^2)
    __m512 p = _mm512_set1_ps(-6.008650525e-04f);
    p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(4.996994976e-03f));
    p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(-2.676948532e-02f));
    p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(1.128190458e-01f));
    p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(-3.761250377e-01f));
    p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(1.283791512e-01f));
    __m512 small = _mm512_fmadd_ps(p, x, x);
    // otherwise: 1 - exp(Q(|x|)), |x| clamped to 3.925 (erf is 1 in float beyond)
    __m512 tc = _mm512_min_ps(t, _mm512_set1_ps(3.925f));
    __m512 q = _mm512_set1_ps(1.635537842e-06f);
    q = _mm512_fmadd_ps(q, tc, _mm512_set1_ps(-4.599255044e-05f));
    q = _mm512_fmadd_ps(q, tc, _mm512_set1_ps(5.959674600e-04f));
    q = _mm512_fmadd_ps(q, tc, _mm512_set1_ps(-4.754320253e-03f));
    q = _mm512_fmadd_ps(q, tc, _mm512_set1_ps(2.640229836e-02f));
    q = _mm512_fmadd_ps(q, tc, _mm512_set1_ps(-1.100401580e-01f));
    q = _mm512_fmadd_ps(q, tc, _mm512_set1_ps(-6.318756342e-01f));
    q = _mm512_fmadd_ps(q, tc, _mm512_set1_ps(-1.130200267e+00f));
    q = _mm512_fmadd_ps(q, tc, _mm512_set1_ps(3.109346726e-04f));
    __m512 big = _mm512_sub_ps(_mm512_set1_ps(1.0f), exp_nonpositive16(q));
    big = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(big), _mm512_and_si512(xi, sign)));
    const __mmask16 isBig = _mm512_cmp_ps_mask(t, _mm512_set1_ps(0.921875f), _CMP_GT_OQ);  // NaN: false -> small (NaN)
    return _mm512_mask_blend_ps(isBig, small, big);
}

#endif
