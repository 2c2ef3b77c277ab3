// AVX-512 forms of the 2-D pooling kernels (run by the VNNI path). The same two passes as
// pool_reference.c, taps in the same order; only the full-window outputs along W (stride 1
// or 2) and the H pass are vectorised, across outputs, so each output still combines its
// taps in order:
// - `_mm512_max_ps(v, acc)` is `v > acc ? v : acc` lane by lane (MAXPS returns its second
//   operand unless the first is greater: NaN and -0 behave as the scalar expression);
// - `_mm512_add_ps(acc, v)` is `acc + v`.
// Stride 2 along W reads 2 vectors per tap and keeps the even lanes (floats: vpermt2ps;
// codes: 16-bit lanes masked to their low byte, then narrowed).
#include "pool_internal.h"
#include <immintrin.h>
#include <math.h>

#define AVX512_TARGET __attribute__((target("avx512f,avx512bw,avx512vl")))

static inline AVX512_TARGET __mmask16 mask16(int n) { return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u); }
static inline AVX512_TARGET __mmask32 mask32(int n) { return n >= 32 ? (__mmask32)0xFFFFFFFFu : (__mmask32)((1u << n) - 1u); }
static inline AVX512_TARGET __mmask64 mask64(int n) { return n >= 64 ? (__mmask64)~0ull : (__mmask64)((1ull << n) - 1ull); }

// MARK: - float W pass

/// Element `2 * j` of the 32 floats at `src` for lanes j < n (the rest 0).
static inline AVX512_TARGET __m512 even16(const float *src, int n) {
    const __m512i idx = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const int used = 2 * n - 1;                     // elements 0 ... 2(n-1)
    __m512 lo = _mm512_maskz_loadu_ps(mask16(used), src);
    __m512 hi = _mm512_maskz_loadu_ps(mask16(used - 16 > 0 ? used - 16 : 0), src + 16);
    return _mm512_permutex2var_ps(lo, idx, hi);
}

static inline AVX512_TARGET __m512 load_taps_f32(const float *src, int stride, int n) {
    return stride == 1 ? _mm512_maskz_loadu_ps(mask16(n), src) : even16(src, n);
}

/// One input row reduced along W: full windows 16 outputs at a time, the edges as the reference.
static AVX512_TARGET void wpass_f32(const mpq_pool2d *p, const float *row, float *out, int is_max, int f0, int f1) {
    const int s = p->stride_w, d = p->dilation_w;
    for (int o = 0; o < p->out_w; o++) {
        if (o == f0 && f1 > f0 && (s == 1 || s == 2)) {
            for (int b = f0; b < f1; b += 16) {
                const int n = f1 - b < 16 ? f1 - b : 16;
                const float *base = row + ((long)b * s - p->pad_left);
                __m512 acc = load_taps_f32(base, s, n);
                for (int t = 1; t < p->kernel_w; t++) {
                    __m512 v = load_taps_f32(base + (long)t * d, s, n);
                    acc = is_max ? _mm512_max_ps(v, acc) : _mm512_add_ps(acc, v);
                }
                _mm512_mask_storeu_ps(out + b, mask16(n), acc);
            }
            o = f1 - 1;
            continue;
        }
        const int lo = p->lo_w[o], hi = p->hi_w[o];
        if (hi <= lo) { out[o] = is_max ? -INFINITY : 0.0f; continue; }
        const long first = (long)o * s - p->pad_left;
        float acc = row[first + (long)lo * d];
        for (int t = lo + 1; t < hi; t++) {
            float v = row[first + (long)t * d];
            acc = is_max ? (v > acc ? v : acc) : acc + v;
        }
        out[o] = acc;
    }
}

/// Output rows over their H taps, 16 outputs at a time.
static AVX512_TARGET void hpass_f32(const mpq_pool2d *p, const float *rows, float *out, int is_max) {
    const int w = p->out_w;
    for (int o = 0; o < p->out_h; o++) {
        float *dst = out + (size_t)o * w;
        const int lo = p->lo_h[o], hi = p->hi_h[o];
        const long first = (long)o * p->stride_h - p->pad_top;
        for (int j = 0; j < w; j += 16) {
            const __mmask16 m = mask16(w - j);
            __m512 acc;
            if (hi <= lo) {
                acc = _mm512_set1_ps(is_max ? -INFINITY : 0.0f);
            } else {
                acc = _mm512_maskz_loadu_ps(m, rows + (size_t)(first + (long)lo * p->dilation_h) * w + j);
                for (int t = lo + 1; t < hi; t++) {
                    __m512 v = _mm512_maskz_loadu_ps(m, rows + (size_t)(first + (long)t * p->dilation_h) * w + j);
                    acc = is_max ? _mm512_max_ps(v, acc) : _mm512_add_ps(acc, v);
                }
            }
            _mm512_mask_storeu_ps(dst + j, m, acc);
        }
    }
}

static AVX512_TARGET void pool_f32(const mpq_pool2d *p, const float *x, float *y, size_t p0, size_t p1, float *scratch,
                                   int is_max) {
    const size_t in_plane = (size_t)p->in_h * p->in_w, out_plane = (size_t)p->out_h * p->out_w;
    int f0, f1;
    mpq_pool_full_range(p, &f0, &f1);
    for (size_t c = p0; c < p1; c++) {
        const float *src = x + c * in_plane;
        float *dst = y + c * out_plane;
        for (int r = 0; r < p->in_h; r++) wpass_f32(p, src + (size_t)r * p->in_w, scratch + (size_t)r * p->out_w, is_max, f0, f1);
        hpass_f32(p, scratch, dst, is_max);
        if (is_max) continue;
        for (int oh = 0; oh < p->out_h; oh++) {
            float *row = dst + (size_t)oh * p->out_w;
            const __m512 ch = _mm512_set1_ps(p->count_h[oh]);
            for (int j = 0; j < p->out_w; j += 16) {
                const __mmask16 m = mask16(p->out_w - j);
                __m512 div = _mm512_mul_ps(ch, _mm512_maskz_loadu_ps(m, p->count_w + j));
                _mm512_mask_storeu_ps(row + j, m, _mm512_div_ps(_mm512_maskz_loadu_ps(m, row + j), div));
            }
        }
    }
}

AVX512_TARGET void mpq_maxpool2d_f32_avx512(const mpq_pool2d *p, const float *x, float *y, size_t p0, size_t p1, float *scratch) {
    pool_f32(p, x, y, p0, p1, scratch, 1);
}

AVX512_TARGET void mpq_avgpool2d_f32_avx512(const mpq_pool2d *p, const float *x, float *y, size_t p0, size_t p1, float *scratch) {
    pool_f32(p, x, y, p0, p1, scratch, 0);
}

// MARK: - uint8 codes

/// Byte `2 * j` of the 64 bytes at `src` for lanes j < n (n <= 32), zero-extended to 16 bits.
static inline AVX512_TARGET __m512i even32_u8(const uint8_t *src, int n) {
    __m512i v = _mm512_maskz_loadu_epi8(mask64(2 * n - 1), src);
    return _mm512_and_si512(v, _mm512_set1_epi16(0x00FF));
}

static AVX512_TARGET void wpass_u8(const mpq_pool2d *p, const uint8_t *row, uint8_t *out, int f0, int f1) {
    const int s = p->stride_w, d = p->dilation_w;
    for (int o = 0; o < p->out_w; o++) {
        if (o == f0 && f1 > f0 && (s == 1 || s == 2)) {
            if (s == 1) {
                for (int b = f0; b < f1; b += 64) {
                    const __mmask64 m = mask64(f1 - b);
                    const uint8_t *base = row + ((long)b - p->pad_left);
                    __m512i acc = _mm512_maskz_loadu_epi8(m, base);
                    for (int t = 1; t < p->kernel_w; t++)
                        acc = _mm512_max_epu8(acc, _mm512_maskz_loadu_epi8(m, base + (long)t * d));
                    _mm512_mask_storeu_epi8(out + b, m, acc);
                }
            } else {
                for (int b = f0; b < f1; b += 32) {
                    const int n = f1 - b < 32 ? f1 - b : 32;
                    const uint8_t *base = row + ((long)b * 2 - p->pad_left);
                    __m512i acc = even32_u8(base, n);
                    for (int t = 1; t < p->kernel_w; t++) acc = _mm512_max_epu16(acc, even32_u8(base + (long)t * d, n));
                    _mm256_mask_storeu_epi8(out + b, mask32(n), _mm512_cvtepi16_epi8(acc));
                }
            }
            o = f1 - 1;
            continue;
        }
        const int lo = p->lo_w[o], hi = p->hi_w[o];
        if (hi <= lo) { out[o] = 0; continue; }
        const long first = (long)o * s - p->pad_left;
        uint8_t acc = row[first + (long)lo * d];
        for (int t = lo + 1; t < hi; t++) {
            uint8_t v = row[first + (long)t * d];
            acc = v > acc ? v : acc;
        }
        out[o] = acc;
    }
}

static AVX512_TARGET void hpass_u8(const mpq_pool2d *p, const uint8_t *rows, uint8_t *out) {
    const int w = p->out_w;
    for (int o = 0; o < p->out_h; o++) {
        uint8_t *dst = out + (size_t)o * w;
        const int lo = p->lo_h[o], hi = p->hi_h[o];
        const long first = (long)o * p->stride_h - p->pad_top;
        for (int j = 0; j < w; j += 64) {
            const __mmask64 m = mask64(w - j);
            __m512i acc = _mm512_setzero_si512();
            for (int t = lo; t < hi; t++)
                acc = _mm512_max_epu8(acc, _mm512_maskz_loadu_epi8(m, rows + (size_t)(first + (long)t * p->dilation_h) * w + j));
            _mm512_mask_storeu_epi8(dst + j, m, acc);
        }
    }
}

// Max is exact in any order, so for a strided window along H the H pass can come first: it
// then reduces the out_h rows each output row reads (full input width, whole vectors) and the
// costlier W pass (stride-2 lanes extracted per tap) runs on out_h rows instead of in_h. The
// ResNet stem's 3x3/2 MaxPool on 112x112 codes: 112 -> 56 W-pass rows per plane.
static AVX512_TARGET void maxpool_u8_h_first(const mpq_pool2d *p, const uint8_t *src, uint8_t *dst, uint8_t *row, int f0, int f1) {
    const int w = p->in_w;
    for (int o = 0; o < p->out_h; o++) {
        const int lo = p->lo_h[o], hi = p->hi_h[o];
        if (hi <= lo) {  // no tap: code 0, as hpass_u8's empty maximum
            for (int j = 0; j < p->out_w; j++) dst[(size_t)o * p->out_w + j] = 0;
            continue;
        }
        const long first = (long)o * p->stride_h - p->pad_top;
        for (int j = 0; j < w; j += 64) {
            const __mmask64 m = mask64(w - j);
            __m512i acc = _mm512_maskz_loadu_epi8(m, src + (size_t)(first + (long)lo * p->dilation_h) * w + j);
            for (int t = lo + 1; t < hi; t++)
                acc = _mm512_max_epu8(acc, _mm512_maskz_loadu_epi8(m, src + (size_t)(first + (long)t * p->dilation_h) * w + j));
            _mm512_mask_storeu_epi8(row + j, m, acc);
        }
        wpass_u8(p, row, dst + (size_t)o * p->out_w, f0, f1);
    }
}

AVX512_TARGET void mpq_maxpool2d_u8_avx512(const mpq_pool2d *p, const uint8_t *x, uint8_t *y, size_t p0, size_t p1, uint8_t *scratch) {
    const size_t in_plane = (size_t)p->in_h * p->in_w, out_plane = (size_t)p->out_h * p->out_w;
    int f0, f1;
    mpq_pool_full_range(p, &f0, &f1);
    if (p->out_h < p->in_h && (size_t)p->in_w <= mpq_pool_scratch(p, 1)) {  // the row fits the plane's scratch
        for (size_t c = p0; c < p1; c++) maxpool_u8_h_first(p, x + c * in_plane, y + c * out_plane, scratch, f0, f1);
        return;
    }
    for (size_t c = p0; c < p1; c++) {
        const uint8_t *src = x + c * in_plane;
        for (int r = 0; r < p->in_h; r++) wpass_u8(p, src + (size_t)r * p->in_w, scratch + (size_t)r * p->out_w, f0, f1);
        hpass_u8(p, scratch, y + c * out_plane);
    }
}
