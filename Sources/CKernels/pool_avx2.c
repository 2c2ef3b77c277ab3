// AVX2 forms of the 2-D pooling kernels (run by the AVX2 path), pool_avx512.c's structure
// without its masks: full vectors where every lane's taps lie inside the row (the loads then
// stay inside it), everything else (window edges, tails) the reference's scalar code. On an
// AVX2-only host these ran scalar: ResNet-18's 3x3/2 stem MaxPool took 1.3 ms (FP32) and
// 1.7 ms (codes) at batch 1, 4-5% of the run.
// Each output still combines its taps in the reference's order (W pass, then H pass):
// - `_mm256_max_ps(v, acc)` is `v > acc ? v : acc` lane by lane (NaN and -0 as the scalar);
// - `_mm256_add_ps(acc, v)` is `acc + v`.
// Codes: max is exact in any order, so strided windows take the H pass first (as the AVX-512
// kernel does), and the W pass then runs on out_h rows.
#include "pool_internal.h"
#include <immintrin.h>
#include <math.h>

#define AVX2_TARGET __attribute__((target("avx2")))

// MARK: - float

/// 8 taps at row[base], row[base + s], ... (s = 1 or 2); stride 2 reads base .. base + 15.
static inline AVX2_TARGET __m256 taps8(const float *p, int s) {
    if (s == 1) return _mm256_loadu_ps(p);
    const __m256 a = _mm256_loadu_ps(p), b = _mm256_loadu_ps(p + 8);
    // [a0 a2 b0 b2 | a4 a6 b4 b6] -> [a0 a2 a4 a6 b0 b2 b4 b6]
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0x88)), 0xD8));
}

/// Output o's window by the reference's scalar loop.
static inline float wpass_one_f32(const mpq_pool2d *p, const float *row, int o, int is_max) {
    const int lo = p->lo_w[o], hi = p->hi_w[o];
    if (hi <= lo) return is_max ? -INFINITY : 0.0f;
    const long first = (long)o * p->stride_w - p->pad_left;
    float acc = row[first + (long)lo * p->dilation_w];
    for (int t = lo + 1; t < hi; t++) {
        const float v = row[first + (long)t * p->dilation_w];
        acc = is_max ? (v > acc ? v : acc) : acc + v;
    }
    return acc;
}

/// The end of the run of `lanes`-output blocks from f0 (within [f0, f1)) whose loads all stay
/// inside the row: a block starting at b reads up to input (b + lanes - 1) * s - pad_left +
/// (kernel_w - 1) * d, plus one more with stride 2 (its loads take every other element).
static inline int vector_end(const mpq_pool2d *p, int f0, int f1, int lanes) {
    const int s = p->stride_w, extra = s == 2 ? 1 : 0;
    int b = f0;
    while (b + lanes <= f1 && (long)(b + lanes - 1) * s - p->pad_left + (long)(p->kernel_w - 1) * p->dilation_w + extra < p->in_w)
        b += lanes;
    return b;
}

/// taps8 whose last element (stride 2: one past the 8th tap) is not read: the row's backed-up
/// last vector, whose plain loads could leave the tensor.
static inline __attribute__((always_inline)) AVX2_TARGET __m256 taps8_last(const float *p, int s) {
    if (s == 1) return _mm256_loadu_ps(p);
    const __m256 a = _mm256_loadu_ps(p);
    const __m256 b = _mm256_maskload_ps(p + 8, _mm256_setr_epi32(-1, -1, -1, -1, -1, -1, -1, 0));
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0x88)), 0xD8));
}

// Outputs o..o+7 of a row whose taps all lie inside it.
static inline __attribute__((always_inline)) AVX2_TARGET void wpass8_f32(const mpq_pool2d *p, const float *row, float *out, int is_max, int o, int last) {
    const int s = p->stride_w, d = p->dilation_w;
    const float *base = row + ((long)o * s - p->pad_left);
    __m256 acc = last ? taps8_last(base, s) : taps8(base, s);
    for (int t = 1; t < p->kernel_w; t++) {
        const __m256 v = last ? taps8_last(base + (long)t * d, s) : taps8(base + (long)t * d, s);
        acc = is_max ? _mm256_max_ps(v, acc) : _mm256_add_ps(acc, v);
    }
    _mm256_storeu_ps(out + o, acc);
}

// `tail_end` > vend: the full outputs left after the vectors, [vend, tail_end), as one more
// vector backed up to end at tail_end (rewriting some outputs with the same values: each
// output's taps in the same order), as the codes' W pass does; they had gone one at a time
// through the lo/hi tables.
static AVX2_TARGET void wpass_f32(const mpq_pool2d *p, const float *row, float *out, int is_max, int f0, int vend,
                                  int tail_end) {
    int o = 0;
    for (; o < f0; o++) out[o] = wpass_one_f32(p, row, o, is_max);
    for (; o < vend; o += 8) wpass8_f32(p, row, out, is_max, o, 0);
    if (tail_end > o && tail_end - 8 >= f0) {
        wpass8_f32(p, row, out, is_max, tail_end - 8, 1);
        o = tail_end;
    }
    for (; o < p->out_w; o++) out[o] = wpass_one_f32(p, row, o, is_max);
}

// Columns j..j+7 of output row `first`'s window (taps [lo, hi)) over the W-reduced rows.
static inline __attribute__((always_inline)) AVX2_TARGET void hpass8_f32(const mpq_pool2d *p, const float *rows, int w, long first,
                                                                          int lo, int hi, int j, float *dst, int is_max) {
    __m256 acc = _mm256_loadu_ps(rows + (size_t)(first + (long)lo * p->dilation_h) * w + j);
    for (int t = lo + 1; t < hi; t++) {
        const __m256 v = _mm256_loadu_ps(rows + (size_t)(first + (long)t * p->dilation_h) * w + j);
        acc = is_max ? _mm256_max_ps(v, acc) : _mm256_add_ps(acc, v);
    }
    _mm256_storeu_ps(dst + j, acc);
}

static AVX2_TARGET void hpass_f32(const mpq_pool2d *p, const float *rows, float *out, int is_max) {
    const int w = p->out_w;
    for (int o = 0; o < p->out_h; o++) {
        float *dst = out + (size_t)o * w;
        const int lo = p->lo_h[o], hi = p->hi_h[o];
        if (hi <= lo) {
            for (int j = 0; j < w; j++) dst[j] = is_max ? -INFINITY : 0.0f;
            continue;
        }
        const long first = (long)o * p->stride_h - p->pad_top;
        const float *r0 = rows + (size_t)(first + (long)lo * p->dilation_h) * w;
        int j = 0;
        for (; j + 8 <= w; j += 8) hpass8_f32(p, rows, w, first, lo, hi, j, dst, is_max);
        if (j < w && w >= 8) {
            // The last 8 columns as one more vector (columns before j rewritten with the same values).
            hpass8_f32(p, rows, w, first, lo, hi, w - 8, dst, is_max);
            j = w;
        }
        for (; j < w; j++) {
            float acc = r0[j];
            for (int t = lo + 1; t < hi; t++) {
                const float v = rows[(size_t)(first + (long)t * p->dilation_h) * w + j];
                acc = is_max ? (v > acc ? v : acc) : acc + v;
            }
            dst[j] = acc;
        }
    }
}

static AVX2_TARGET void pool_f32(const mpq_pool2d *p, const float *x, float *y, size_t p0, size_t p1, float *scratch,
                                 int is_max) {
    const size_t in_plane = (size_t)p->in_h * p->in_w, out_plane = (size_t)p->out_h * p->out_w;
    int f0, f1;
    mpq_pool_full_range(p, &f0, &f1);
    const int vectors = p->stride_w == 1 || p->stride_w == 2;
    const int vend = vectors ? vector_end(p, f0, f1, 8) : f0, tail_end = vectors ? f1 : 0;
    for (size_t c = p0; c < p1; c++) {
        const float *src = x + c * in_plane;
        float *dst = y + c * out_plane;
        for (int r = 0; r < p->in_h; r++)
            wpass_f32(p, src + (size_t)r * p->in_w, scratch + (size_t)r * p->out_w, is_max, f0, vend, tail_end);
        hpass_f32(p, scratch, dst, is_max);
        if (is_max) continue;
        for (int oh = 0; oh < p->out_h; oh++) {
            float *row = dst + (size_t)oh * p->out_w;
            for (int ow = 0; ow < p->out_w; ow++) row[ow] = row[ow] / (p->count_h[oh] * p->count_w[ow]);
        }
    }
}

AVX2_TARGET void mpq_maxpool2d_f32_avx2(const mpq_pool2d *p, const float *x, float *y, size_t p0, size_t p1, float *scratch) {
    pool_f32(p, x, y, p0, p1, scratch, 1);
}

AVX2_TARGET void mpq_avgpool2d_f32_avx2(const mpq_pool2d *p, const float *x, float *y, size_t p0, size_t p1, float *scratch) {
    pool_f32(p, x, y, p0, p1, scratch, 0);
}

// MARK: - uint8 codes

static inline uint8_t wpass_one_u8(const mpq_pool2d *p, const uint8_t *row, int o) {
    const int lo = p->lo_w[o], hi = p->hi_w[o];
    if (hi <= lo) return 0;
    const long first = (long)o * p->stride_w - p->pad_left;
    uint8_t acc = row[first + (long)lo * p->dilation_w];
    for (int t = lo + 1; t < hi; t++) {
        const uint8_t v = row[first + (long)t * p->dilation_w];
        acc = v > acc ? v : acc;
    }
    return acc;
}

/// 16 taps at p, p + s, ... as 16-bit lanes (s = 2: the even bytes of 32).
static inline AVX2_TARGET __m256i taps16_u8(const uint8_t *p, int s) {
    if (s == 1) return _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)p));
    return _mm256_and_si256(_mm256_loadu_si256((const __m256i *)p), _mm256_set1_epi16(0x00FF));
}

// Outputs o..o+15 of a row whose taps all lie inside it (16-bit lanes, one store).
static inline __attribute__((always_inline)) AVX2_TARGET void wpass16_u8(const mpq_pool2d *p, const uint8_t *row, uint8_t *out, int o) {
    const int s = p->stride_w, d = p->dilation_w;
    const uint8_t *base = row + ((long)o * s - p->pad_left);
    __m256i acc = taps16_u8(base, s);
    for (int t = 1; t < p->kernel_w; t++) acc = _mm256_max_epu16(acc, taps16_u8(base + (long)t * d, s));
    // 16-bit lanes to bytes: [lane0 x2 | lane1 x2], then the two lanes' first halves.
    const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi16(acc, acc), 0xD8);
    _mm_storeu_si128((__m128i *)(out + o), _mm256_castsi256_si128(packed));
}

// `tail_end` > vend: the full outputs [vend, tail_end) are written by one more vector backed up
// to end at tail_end (rewriting some outputs with the same bytes), which may read one byte past
// the row's last tap at stride 2: only for rows with readable bytes after them (the scratch).
// The tails had gone one output at a time, each through the lo/hi tables: on ResNet-18's
// 112x112 max pool 7 of 56 outputs per row, and as many scalar columns in the H pass, most of
// its time.
static AVX2_TARGET void wpass_u8(const mpq_pool2d *p, const uint8_t *row, uint8_t *out, int f0, int vend, int tail_end) {
    int o = 0;
    for (; o < f0; o++) out[o] = wpass_one_u8(p, row, o);
    for (; o < vend; o += 16) wpass16_u8(p, row, out, o);
    if (tail_end > o && tail_end - 16 >= f0) {
        wpass16_u8(p, row, out, tail_end - 16);
        o = tail_end;
    }
    for (; o < p->out_w; o++) out[o] = wpass_one_u8(p, row, o);
}

// Columns j..j+31 of output row `first`'s window (taps [lo, hi)), maxed.
static inline __attribute__((always_inline)) AVX2_TARGET void hmax32_u8(const mpq_pool2d *p, const uint8_t *rows, int w, long first,
                                                                         int lo, int hi, int j, uint8_t *dst) {
    __m256i acc = _mm256_loadu_si256((const __m256i *)(rows + (size_t)(first + (long)lo * p->dilation_h) * w + j));
    for (int t = lo + 1; t < hi; t++)
        acc = _mm256_max_epu8(acc, _mm256_loadu_si256((const __m256i *)(rows + (size_t)(first + (long)t * p->dilation_h) * w + j)));
    _mm256_storeu_si256((__m256i *)(dst + j), acc);
}

/// The rows [lo, hi) of the window of output row o, maxed over the full width into `dst`
/// (w bytes); the window must not be empty.
static AVX2_TARGET void hmax_u8(const mpq_pool2d *p, const uint8_t *rows, int w, int o, uint8_t *dst) {
    const int lo = p->lo_h[o], hi = p->hi_h[o];
    const long first = (long)o * p->stride_h - p->pad_top;
    const uint8_t *r0 = rows + (size_t)(first + (long)lo * p->dilation_h) * w;
    int j = 0;
    for (; j + 32 <= w; j += 32) hmax32_u8(p, rows, w, first, lo, hi, j, dst);
    if (j < w && w >= 32) {
        // The last 32 columns as one more vector (columns before j rewritten with the same bytes).
        hmax32_u8(p, rows, w, first, lo, hi, w - 32, dst);
        j = w;
    }
    for (; j < w; j++) {
        uint8_t acc = r0[j];
        for (int t = lo + 1; t < hi; t++) {
            const uint8_t v = rows[(size_t)(first + (long)t * p->dilation_h) * w + j];
            acc = v > acc ? v : acc;
        }
        dst[j] = acc;
    }
}

AVX2_TARGET void mpq_maxpool2d_u8_avx2(const mpq_pool2d *p, const uint8_t *x, uint8_t *y, size_t p0, size_t p1, uint8_t *scratch) {
    const size_t in_plane = (size_t)p->in_h * p->in_w, out_plane = (size_t)p->out_h * p->out_w;
    int f0, f1;
    mpq_pool_full_range(p, &f0, &f1);
    const int vend = p->stride_w == 1 || p->stride_w == 2 ? vector_end(p, f0, f1, 16) : f0;
    const int h_first = p->out_h < p->in_h && (size_t)p->in_w <= mpq_pool_scratch(p, 1);  // the row fits the scratch
    // The W pass's backed-up last vector: at stride 1 its loads end at its last tap, so on any
    // row; at stride 2 on the scratch row only (the pool task allocates 64 bytes past it).
    const int tail_in_tensor = p->stride_w == 1 ? f1 : 0;
    const int tail_on_scratch = p->stride_w == 1 || p->stride_w == 2 ? f1 : 0;
    for (size_t c = p0; c < p1; c++) {
        const uint8_t *src = x + c * in_plane;
        uint8_t *dst = y + c * out_plane;
        if (h_first) {
            for (int o = 0; o < p->out_h; o++) {
                uint8_t *out = dst + (size_t)o * p->out_w;
                if (p->hi_h[o] <= p->lo_h[o]) {  // no tap: code 0, as the reference's empty maximum
                    for (int j = 0; j < p->out_w; j++) out[j] = 0;
                    continue;
                }
                hmax_u8(p, src, p->in_w, o, scratch);
                wpass_u8(p, scratch, out, f0, vend, tail_on_scratch);
            }
            continue;
        }
        for (int r = 0; r < p->in_h; r++)
            wpass_u8(p, src + (size_t)r * p->in_w, scratch + (size_t)r * p->out_w, f0, vend, tail_in_tensor);
        for (int o = 0; o < p->out_h; o++) {
            uint8_t *out = dst + (size_t)o * p->out_w;
            if (p->hi_h[o] <= p->lo_h[o]) {
                for (int j = 0; j < p->out_w; j++) out[j] = 0;
                continue;
            }
            hmax_u8(p, scratch, p->out_w, o, out);
        }
    }
}
