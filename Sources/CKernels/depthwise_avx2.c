// AVX2 depthwise INT8 conv: 8 output pixels of one row at a time, exact int32
// (u8 - za and s8 widened to int32, vpmulld), for stride_w 1 and 2 where every
// tap of the 8 pixels lies inside the row; border pixels, other strides and
// row tails take the scalar pixel below (the reference's arithmetic).
#include "mpq_internal.h"
#include <immintrin.h>

#define AVX2_TARGET __attribute__((target("avx2")))

static int32_t pixel(const uint8_t *plane, const mpq_conv2d_shape *s, const int8_t *wc,
                     int32_t za, int oh, int ow) {
    int32_t acc = 0;
    for (int kh = 0; kh < s->kernel_h; kh++) {
        int ih = oh * s->stride_h - s->pad_top + kh * s->dilation_h;
        if (ih < 0 || ih >= s->height) continue;  // padding taps add (za - za) * w = 0
        for (int kw = 0; kw < s->kernel_w; kw++) {
            int iw = ow * s->stride_w - s->pad_left + kw * s->dilation_w;
            if (iw < 0 || iw >= s->width) continue;
            acc += ((int32_t)plane[(size_t)ih * (size_t)s->width + (size_t)iw] - za) *
                   (int32_t)wc[kh * s->kernel_w + kw];
        }
    }
    return acc;
}

// Loads the 8 pixels iw, iw+sw, ..., iw+7*sw (sw = 1 or 2) as int32.
static inline AVX2_TARGET __m256i load8(const uint8_t *p, int sw) {
    if (sw == 1) return _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p));
    const __m128i even = _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, -1, -1, -1, -1, -1, -1, -1, -1);
    return _mm256_cvtepu8_epi32(_mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)p), even));
}

AVX2_TARGET void mpq_depthwise_avx2(const uint8_t *x, const mpq_conv2d_shape *s, const int8_t *w,
                                    const mpq_epilogue *ep, float *out, uint8_t *out_u8, int32_t out_zp) {
    const int OH = mpq_conv2d_out_h(s), OW = mpq_conv2d_out_w(s);
    const int H = s->height, W = s->width, KH = s->kernel_h, KW = s->kernel_w;
    const int sw = s->stride_w, dw = s->dilation_w, pl = s->pad_left;
    const int32_t za = ep->a_zero_point;
    const int simd = (sw == 1 || sw == 2);
    // Bytes a block's loads touch past its first tap: 8 for stride 1, 16 for 2.
    const int load_bytes = sw == 1 ? 8 : 16;
    const __m256i zav = _mm256_set1_epi32(za);
    const __m256 lo = _mm256_set1_ps(ep->clamp_lo), hi = _mm256_set1_ps(ep->clamp_hi);
    for (int c = 0; c < s->channels; c++) {
        const uint8_t *plane = x + (size_t)c * (size_t)H * (size_t)W;
        const int8_t *wc = w + (size_t)c * (size_t)KH * (size_t)KW;
        const float bc = ep->bias ? ep->bias[c] : 0.0f;
        const float sc = ep->a_scale * ep->b_scale[c];
        const __m256 scale = _mm256_set1_ps(sc), bias = _mm256_set1_ps(bc);
        const __m256i bias_i32 = _mm256_set1_epi32(ep->bias_i32 ? ep->bias_i32[c] : 0);
        for (int oh = 0; oh < OH; oh++) {
            const size_t row = ((size_t)c * (size_t)OH + (size_t)oh) * (size_t)OW;
            float *orow = out_u8 ? NULL : out + row;
            uint8_t *crow = out_u8 ? out_u8 + row : NULL;
            int ow = 0;
            while (ow < OW) {
                // A block may start up to 7 pixels back (re-writing pixels already
                // done, with identical bits) so row tails need not go scalar.
                int start = -1;
                for (int b = ow; simd && b >= 0 && b > ow - 8; b--) {
                    int first = b * sw - pl;                        // first tap of the block
                    int last = first + (KW - 1) * dw + 7 * sw;      // last tap used
                    int end = first + (KW - 1) * dw + load_bytes;   // one past the last byte loaded
                    if (b + 8 <= OW && first >= 0 && last < W && end <= W) { start = b; break; }
                }
                if (start >= 0) {
                    const int first = start * sw - pl;
                    __m256i acc = _mm256_setzero_si256();
                    for (int kh = 0; kh < KH; kh++) {
                        int ih = oh * s->stride_h - s->pad_top + kh * s->dilation_h;
                        if (ih < 0 || ih >= H) continue;
                        const uint8_t *src = plane + (size_t)ih * (size_t)W + (size_t)first;
                        for (int kw = 0; kw < KW; kw++) {
                            __m256i a = _mm256_sub_epi32(load8(src + kw * dw, sw), zav);
                            acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(a, _mm256_set1_epi32(wc[kh * KW + kw])));
                        }
                    }
                    if (ep->bias_i32) acc = _mm256_add_epi32(acc, bias_i32);
                    __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(acc), scale);
                    if (ep->bias) v = _mm256_add_ps(v, bias);
                    v = _mm256_min_ps(_mm256_max_ps(v, lo), hi);
                    if (ep->out_scale > 0)
                        v = _mm256_add_ps(_mm256_mul_ps(_mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC),
                                                        _mm256_set1_ps(ep->out_scale)), _mm256_setzero_ps());
                    if (crow) {
                        float res[8];
                        _mm256_storeu_ps(res, v);
                        for (int l = 0; l < 8; l++) crow[start + l] = mpq_code_u8(res[l], out_zp);
                    } else {
                        _mm256_storeu_ps(orow + start, v);
                    }
                    ow = start + 8;
                } else {
                    float r = mpq_epilogue_scalar(pixel(plane, s, wc, za, oh, ow), ep->bias_i32, ep->a_scale,
                                                  ep->b_scale[c], ep->bias, c, ep->clamp_lo, ep->clamp_hi, ep->out_scale);
                    if (crow) crow[ow] = mpq_code_u8(r, out_zp);
                    else orow[ow] = r;
                    ow++;
                }
            }
        }
    }
}
