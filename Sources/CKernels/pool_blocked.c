// MaxPool and AveragePool on channel-blocked images ([N][C/16][H][W][16], the layout of the
// FP32 image chains' blocked Convs, docs/fp32-blocked-layout.md): a Conv -> MaxPool -> Conv
// run (ResNet's stem) keeps the layout instead of reordering out to NCHW and back around the
// pool. With 16 channels in the lanes every tap is one whole-vector load: no stride-2 lane
// permutes, no edge masks along W, no W-pass scratch.
//
// Same bits as the NCHW kernels (pool.c, pool_reference.c): per output, each valid row's taps
// fold along W in tap order (`v > acc ? v : acc`, or `acc + v`), those row results fold along
// H in tap order, an average divides once by count_h[oh] * count_w[ow]; an empty W or H range
// gives -inf (max) or 0 (average) as there. Lanes past `channels` in the last block are +0.
#include "pool_internal.h"
#include <immintrin.h>
#include <math.h>

#define AVX512_TARGET __attribute__((target("avx512f")))

typedef struct blocked_pool_job blocked_pool_job;
struct blocked_pool_job {
    void (*row)(const blocked_pool_job *, size_t plane, int oh);  // the reference, AVX-512 or AVX2 row
    const mpq_pool2d *p;
    int is_max, blocks, tail;  // blocks per image; lanes used in the last block (16 when C % 16 == 0)
    const float *x;
    float *y;
};

/// Where output row `oh` of block plane `plane` reads and writes, and its live lanes (each row
/// form's first lines).
typedef struct {
    const float *in;  // the plane's input
    float *out;       // the row's output
    int lanes;        // lanes below C (16 but in the last block)
    long first_h;     // the first window row's input row (may be negative)
} row_frame;

static inline row_frame frame_of(const blocked_pool_job *j, size_t plane, int oh) {
    const mpq_pool2d *p = j->p;
    row_frame f = {j->x + plane * (size_t)p->in_h * p->in_w * 16, j->y + (plane * (size_t)p->out_h + (size_t)oh) * p->out_w * 16,
                   (int)(plane % (size_t)j->blocks) == j->blocks - 1 ? j->tail : 16, (long)oh * p->stride_h - p->pad_top};
    return f;
}

/// The first tap vector (column lo_w) of window row t of output (oh, ow) in the vector rows.
static inline const float *first_tap(const mpq_pool2d *p, const row_frame *f, int ow, int t) {
    const long first_w = (long)ow * p->stride_w - p->pad_left;
    return f->in + ((size_t)(f->first_h + (long)t * p->dilation_h) * p->in_w + (first_w + (long)p->lo_w[ow] * p->dilation_w)) * 16;
}

/// Output row `oh` of block plane `plane`, lane by lane: the reference.
static void row_reference(const blocked_pool_job *j, size_t plane, int oh) {
    const mpq_pool2d *p = j->p;
    const row_frame f = frame_of(j, plane, oh);
    const float empty = j->is_max ? -INFINITY : 0.0f;
    const int lo_h = p->lo_h[oh], hi_h = p->hi_h[oh];
    for (int ow = 0; ow < p->out_w; ow++) {
        const int lo_w = p->lo_w[ow], hi_w = p->hi_w[ow];
        const long first_w = (long)ow * p->stride_w - p->pad_left;
        for (int l = 0; l < 16; l++) {
            float acc = empty;
            for (int t = lo_h; t < hi_h; t++) {
                const float *row = f.in + (size_t)(f.first_h + (long)t * p->dilation_h) * p->in_w * 16 + l;
                float r = empty;
                if (hi_w > lo_w) {
                    r = row[(first_w + (long)lo_w * p->dilation_w) * 16];
                    for (int u = lo_w + 1; u < hi_w; u++) {
                        const float v = row[(first_w + (long)u * p->dilation_w) * 16];
                        r = j->is_max ? (v > r ? v : r) : r + v;
                    }
                }
                acc = t == lo_h ? r : (j->is_max ? (r > acc ? r : acc) : acc + r);
            }
            if (!j->is_max) acc = acc / (p->count_h[oh] * p->count_w[ow]);
            f.out[(size_t)ow * 16 + l] = l < f.lanes ? acc : 0.0f;
        }
    }
}

/// Whether output row oh's windows are 3 x 3 with all three rows inside the input (once per
/// row), and then whether outputs ow..ow+3 have all three columns inside too: both vector forms
/// run such outputs four at a time. lo_w and hi_w do not grow along W, so the first output's lo
/// and the last one's hi bound all four.
static inline int whole_3x3_rows(const mpq_pool2d *p, int oh) {
    return p->kernel_h == 3 && p->kernel_w == 3 && p->lo_h[oh] == 0 && p->hi_h[oh] == 3;
}

static inline int four_whole_3x3(const mpq_pool2d *p, int rows_whole, int ow) {
    return rows_whole && ow + 4 <= p->out_w && p->lo_w[ow] == 0 && p->hi_w[ow + 3] == 3;
}

/// The same row, 16 lanes per step: `_mm512_max_ps(v, r)` is `v > r ? v : r` per lane.
/// `is_max` a constant per form; outputs whose window is 3 x 3 taps inside the input (ResNet's
/// stem pool, all but its edges) run four at a time, each fold chain in tap order, so four
/// chains overlap: the generic loop (one output at a time, is_max and the tap bounds tested at
/// every step) ran resnet_digits' 16-channel 112x112 -> 56x56 pool in 30.7 us on one thread,
/// this form in 16.9 (ResNet-18's 64 channels 129.9 -> 69.2; benchmarks/fp32_blocked_pool.c).
static AVX512_TARGET inline __attribute__((always_inline)) __m512 fold512(__m512 acc, __m512 v, const int is_max) {
    return is_max ? _mm512_max_ps(v, acc) : _mm512_add_ps(acc, v);
}

/// Window rows t0..t0+2 of one output whose taps are all inside: row results in tap order
/// along W, folded along H in tap order (the reference's order).
static AVX512_TARGET inline __attribute__((always_inline)) __m512 window3x3_512(const float *tap, long row, long step_w,
                                                                                  const int is_max) {
    __m512 acc = _mm512_undefined_ps();
    for (int t = 0; t < 3; t++) {
        const float *q = tap + t * row;
        __m512 r = _mm512_loadu_ps(q);
        r = fold512(r, _mm512_loadu_ps(q + step_w), is_max);
        r = fold512(r, _mm512_loadu_ps(q + 2 * step_w), is_max);
        acc = t == 0 ? r : fold512(acc, r, is_max);
    }
    return acc;
}

static AVX512_TARGET inline __attribute__((always_inline)) void row_avx512_as(const blocked_pool_job *j, size_t plane, int oh,
                                                                              const int is_max) {
    const mpq_pool2d *p = j->p;
    const row_frame f = frame_of(j, plane, oh);
    const __mmask16 keep = (__mmask16)(f.lanes >= 16 ? 0xFFFF : (1u << f.lanes) - 1u);
    const __m512 empty = _mm512_set1_ps(is_max ? -INFINITY : 0.0f);
    const int lo_h = p->lo_h[oh], hi_h = p->hi_h[oh];
    const long step_w = (long)p->dilation_w * 16, row = (long)p->dilation_h * p->in_w * 16;
    const int rows_whole = whole_3x3_rows(p, oh);
    for (int ow = 0; ow < p->out_w;) {
        if (four_whole_3x3(p, rows_whole, ow)) {
            __m512 acc[4];
            for (int u = 0; u < 4; u++) acc[u] = window3x3_512(first_tap(p, &f, ow + u, 0), row, step_w, is_max);
            for (int u = 0; u < 4; u++) {
                if (!is_max) acc[u] = _mm512_div_ps(acc[u], _mm512_set1_ps(p->count_h[oh] * p->count_w[ow + u]));
                _mm512_storeu_ps(f.out + (size_t)(ow + u) * 16, _mm512_maskz_mov_ps(keep, acc[u]));
            }
            ow += 4;
            continue;
        }
        const int lo_w = p->lo_w[ow], hi_w = p->hi_w[ow];
        __m512 acc = empty;
        for (int t = lo_h; t < hi_h; t++) {
            const float *tap = first_tap(p, &f, ow, t);
            __m512 r = empty;
            if (hi_w > lo_w) {
                r = _mm512_loadu_ps(tap);
                for (int u = lo_w + 1; u < hi_w; u++) {
                    tap += step_w;
                    r = fold512(r, _mm512_loadu_ps(tap), is_max);
                }
            }
            acc = t == lo_h ? r : fold512(acc, r, is_max);
        }
        if (!is_max) acc = _mm512_div_ps(acc, _mm512_set1_ps(p->count_h[oh] * p->count_w[ow]));
        _mm512_storeu_ps(f.out + (size_t)ow * 16, _mm512_maskz_mov_ps(keep, acc));
        ow++;
    }
}

static AVX512_TARGET void row_avx512(const blocked_pool_job *j, size_t plane, int oh) {
    if (j->is_max)
        row_avx512_as(j, plane, oh, 1);
    else
        row_avx512_as(j, plane, oh, 0);
}

#define AVX2_TARGET __attribute__((target("avx2")))

/// The same row on AVX2, each 16-lane vector as two halves of 8: `_mm256_max_ps(v, r)` is
/// `v > r ? v : r` per lane, as the AVX-512 form's. `is_max` a constant per form, and a window
/// row of 3 taps (ResNet's 3x3 max pool) folded without a loop: the generic loop, which tested
/// is_max and the taps' bounds at every step, ran resnet_digits' 16-channel 112x112 -> 56x56 pool
/// in 41 us (one thread), ~5 loads' time per tap.
static AVX2_TARGET inline __attribute__((always_inline)) __m256 fold_avx2(__m256 acc, __m256 v, const int is_max) {
    return is_max ? _mm256_max_ps(v, acc) : _mm256_add_ps(acc, v);
}

/// One 8-lane half of a whole 3 x 3 window, in the reference's order (as window3x3_512).
static AVX2_TARGET inline __attribute__((always_inline)) __m256 window3x3_avx2(const float *tap, long row, long step_w,
                                                                                 const int is_max) {
    __m256 acc = _mm256_undefined_ps();
    for (int t = 0; t < 3; t++) {
        const float *q = tap + t * row;
        __m256 r = _mm256_loadu_ps(q);
        r = fold_avx2(r, _mm256_loadu_ps(q + step_w), is_max);
        r = fold_avx2(r, _mm256_loadu_ps(q + 2 * step_w), is_max);
        acc = t == 0 ? r : fold_avx2(acc, r, is_max);
    }
    return acc;
}

static AVX2_TARGET inline __attribute__((always_inline)) void row_avx2_as(const blocked_pool_job *j, size_t plane, int oh,
                                                                          const int is_max) {
    const mpq_pool2d *p = j->p;
    const row_frame f = frame_of(j, plane, oh);
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256 keep[2] = {_mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(f.lanes), lane)),
                            _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(f.lanes - 8), lane))};
    const __m256 empty = _mm256_set1_ps(is_max ? -INFINITY : 0.0f);
    const int lo_h = p->lo_h[oh], hi_h = p->hi_h[oh];
    const long step_w = (long)p->dilation_w * 16, row = (long)p->dilation_h * p->in_w * 16;
    const int rows_whole = whole_3x3_rows(p, oh);
    for (int ow = 0; ow < p->out_w; ow++) {
        // Four outputs with whole 3 x 3 windows, as the AVX-512 form (s37, the same pool on one
        // thread: 27.5 -> 21.1 us).
        if (four_whole_3x3(p, rows_whole, ow)) {
            for (int h = 0; h < 2; h++) {
                __m256 acc4[4];
                for (int u = 0; u < 4; u++) acc4[u] = window3x3_avx2(first_tap(p, &f, ow + u, 0) + 8 * h, row, step_w, is_max);
                for (int u = 0; u < 4; u++) {
                    if (!is_max) acc4[u] = _mm256_div_ps(acc4[u], _mm256_set1_ps(p->count_h[oh] * p->count_w[ow + u]));
                    _mm256_storeu_ps(f.out + (size_t)(ow + u) * 16 + 8 * h, _mm256_and_ps(acc4[u], keep[h]));
                }
            }
            ow += 3;  // and the loop's ++
            continue;
        }
        const int lo_w = p->lo_w[ow], hi_w = p->hi_w[ow], three = hi_w - lo_w == 3;
        __m256 acc[2] = {empty, empty};
        for (int t = lo_h; t < hi_h; t++) {
            const float *tap = first_tap(p, &f, ow, t);
            __m256 r[2] = {empty, empty};
            if (three) {
                for (int h = 0; h < 2; h++) {
                    r[h] = _mm256_loadu_ps(tap + 8 * h);
                    r[h] = fold_avx2(r[h], _mm256_loadu_ps(tap + step_w + 8 * h), is_max);
                    r[h] = fold_avx2(r[h], _mm256_loadu_ps(tap + 2 * step_w + 8 * h), is_max);
                }
            } else if (hi_w > lo_w) {
                r[0] = _mm256_loadu_ps(tap);
                r[1] = _mm256_loadu_ps(tap + 8);
                for (int u = lo_w + 1; u < hi_w; u++) {
                    tap += step_w;
                    for (int h = 0; h < 2; h++) r[h] = fold_avx2(r[h], _mm256_loadu_ps(tap + 8 * h), is_max);
                }
            }
            for (int h = 0; h < 2; h++) acc[h] = t == lo_h ? r[h] : fold_avx2(acc[h], r[h], is_max);
        }
        for (int h = 0; h < 2; h++) {
            if (!is_max) acc[h] = _mm256_div_ps(acc[h], _mm256_set1_ps(p->count_h[oh] * p->count_w[ow]));
            _mm256_storeu_ps(f.out + (size_t)ow * 16 + 8 * h, _mm256_and_ps(acc[h], keep[h]));
        }
    }
}

static AVX2_TARGET void row_avx2(const blocked_pool_job *j, size_t plane, int oh) {
    if (j->is_max)
        row_avx2_as(j, plane, oh, 1);
    else
        row_avx2_as(j, plane, oh, 0);
}

static void row_unit(void *arg, int unit, int task) {
    (void)task;
    const blocked_pool_job *j = arg;
    j->row(j, (size_t)unit / (size_t)j->p->out_h, unit % j->p->out_h);
}

int mpq_pool2d_f32_blocked(mpq_kernel_path path, int is_max, const mpq_pool2d *p, int channels, const float *x, float *y,
                           int threads) {
    if (!p || !x || !y || channels <= 0) return -1;
    const int blocks = (channels + 15) / 16;
    if (p->planes % (size_t)blocks != 0) return -1;
    if (p->planes == 0 || p->out_h <= 0 || p->out_w <= 0) return 0;
    if (p->planes * (size_t)p->out_h > (size_t)INT32_MAX) return -1;
    const mpq_kernel_path k = mpq_resolve_kernel_path(path);
    blocked_pool_job j = {k == MPQ_PATH_VNNI ? row_avx512 : k == MPQ_PATH_AVX2 ? row_avx2 : row_reference, p, is_max != 0, blocks,
                          channels - (blocks - 1) * 16, x, y};
    mpq_run_ranges(threads < 1 ? 1 : threads, (int)(p->planes * (size_t)p->out_h), row_unit, &j);
    return 0;
}
