// Fused transformer row chains (mpq_fused.h). Each row is staged in `y` (in cache), the
// row kernel of mpq_rowwise.h runs on it, and the elementwise steps are the unfused ops'
// own IEEE operations: one rounding each, in the same order, never contracted into an FMA,
// so the result is the unfused graph's bit for bit.
#pragma STDC FP_CONTRACT OFF
#include "rowwise_internal.h"
#include "mpq_fused.h"
#include <immintrin.h>
#include <stdatomic.h>
#include <stdlib.h>
#include "rowwise_avx2_inline.h"
#include "rowwise_avx512_inline.h"

#define AVX2 __attribute__((target("avx2")))

static int fused_use_avx2(mpq_kernel_path path) { return mpq_resolve_kernel_path(path) != MPQ_PATH_REFERENCE; }
// The VNNI path implies AVX-512F (as the other AVX-512 loops on it).
static int fused_use_avx512(mpq_kernel_path path) { return mpq_resolve_kernel_path(path) == MPQ_PATH_VNNI; }

// Tasks for `rows` rows of `cols`: about 16k floats per task pays for the pool's wake-up.
static int fused_tasks(int threads, size_t rows, size_t cols) {
    if (threads < 1) threads = 1;
    if (threads > MPQ_POOL_MAX) threads = MPQ_POOL_MAX;
    size_t most = rows * cols / (1 << 14);
    if ((size_t)threads > most) threads = most < 1 ? 1 : (int)most;
    if ((size_t)threads > rows) threads = rows < 1 ? 1 : (int)rows;
    return threads;
}

typedef struct {
    int avx2, avx512, tasks, divide;
    const float *x, *bias, *residual, *mask, *scale, *beta;
    const size_t *mask_offsets;
    size_t rows, cols;
    float a, b, c, epsilon;
    float *y;
    // GELU or Softmax written as uint8 codes (mpq_bias_gelu_u8, mpq_scaled_masked_softmax_u8):
    // each row staged in a task's float buffer, then quantized by mpq_quantize_u8 on `qpath`
    // into `codes`.
    uint8_t *codes;
    mpq_kernel_path qpath;
    float qscale;
    uint8_t qzp;
    size_t chunk;         // rows per claim
    _Atomic size_t next;  // the first row nobody has claimed yet
} fused_job;

// Rows are claimed in runs of `chunk` from one counter, about 4 claims per task, instead of
// one fixed block per task: the calling thread starts at once and takes more rows while a
// pool worker wakes up, and a core that another process slows down holds up less. Every row
// is computed the same way by whoever claims it, so the output does not depend on the split.
static void fused_start(fused_job *j) {
    size_t per = 4 * (size_t)(j->tasks > 0 ? j->tasks : 1);
    j->chunk = (j->rows + per - 1) / per;
    if (j->chunk < 1) j->chunk = 1;
    atomic_init(&j->next, 0);
}

static int fused_claim(fused_job *j, size_t *lo, size_t *hi) { return mpq_claim_run(&j->next, j->chunk, j->rows, lo, hi); }

// MARK: - bias + GELU

// One GELU vector in a single pass: h = x (+ bias), d = h / div, e = erf(d) (erf8, the Erf
// kernel's own lanes), y = (h * (e + add)) * mul: the operations of the unfused Div -> Erf
// (mpq_erf_avx2) -> Add -> Mul -> Mul in the same order, so the same bits. The row's last
// whole vectors run it (gelu_row_avx2 below); the last < 8 elements take scalar steps around a
// zero-padded erf8, as mpq_erf_avx2's masked tail does.
MPQ_AVX2_FMA static inline __m256 gelu8(__m256 h, __m256 d, __m256 a, __m256 m) {
    __m256 e = _mm256_add_ps(erf8(_mm256_div_ps(h, d)), a);
    return _mm256_mul_ps(_mm256_mul_ps(h, e), m);
}

// The row in blocks of MPQ_ERF8_BLOCK vectors, each block in passes over all its vectors:
// d = h / div; erf8_block's three (rowwise_avx2_inline.h); the Add and two Muls. One vector's
// ops in one pass (two vectors per step, s12-s25) form a ~120-cycle chain that outgrew the
// out-of-order window: the row ran at ~5 cycles an element on Zen 3. A pass's vectors are
// independent and its chain short, so they overlap. The intermediates go through small
// buffers as floats: the same values, so the bits of gelu8 (and of the unfused ops). One
// thread, 128 x 1536 (MiniLM's FFN, benchmarks/gelu_rows.c): 330 -> 199 us with float outputs,
// 362 -> 225 with codes (the erf in one pass instead of three: 0.81x and 0.68x for 3 and 4
// passes in all).
MPQ_AVX2_FMA static void gelu_row_avx2(const float *x, const float *bias, size_t n, float div, float add, float mul,
                                       float *y) {
    const __m256 d = _mm256_set1_ps(div), a = _mm256_set1_ps(add), m = _mm256_set1_ps(mul);
    size_t j = 0;
    for (; j + 8 * MPQ_ERF8_BLOCK <= n; j += 8 * MPQ_ERF8_BLOCK) {
        _Alignas(32) float ev[MPQ_ERF8_BLOCK * 8];  // d, then erf(d) in place
        for (int v = 0; v < MPQ_ERF8_BLOCK; v++) {
            __m256 h = _mm256_loadu_ps(x + j + 8 * v);
            if (bias) h = _mm256_add_ps(h, _mm256_loadu_ps(bias + j + 8 * v));
            _mm256_store_ps(ev + 8 * v, _mm256_div_ps(h, d));
        }
        erf8_block(ev, ev);
        for (int v = 0; v < MPQ_ERF8_BLOCK; v++) {
            __m256 h = _mm256_loadu_ps(x + j + 8 * v);
            if (bias) h = _mm256_add_ps(h, _mm256_loadu_ps(bias + j + 8 * v));
            const __m256 e = _mm256_add_ps(_mm256_load_ps(ev + 8 * v), a);
            _mm256_storeu_ps(y + j + 8 * v, _mm256_mul_ps(_mm256_mul_ps(h, e), m));
        }
    }
    for (; j + 8 <= n; j += 8) {
        __m256 h = _mm256_loadu_ps(x + j);
        if (bias) h = _mm256_add_ps(h, _mm256_loadu_ps(bias + j));
        _mm256_storeu_ps(y + j, gelu8(h, d, a, m));
    }
    if (j < n) {
        float q[8] = {0}, e[8];
        for (size_t k = j; k < n; k++) { float h = bias ? x[k] + bias[k] : x[k]; q[k - j] = h / div; }
        _mm256_storeu_ps(e, erf8(_mm256_loadu_ps(q)));
        for (size_t k = j; k < n; k++) {
            float h = bias ? x[k] + bias[k] : x[k];
            float s = e[k - j] + add;
            float p = h * s;
            y[k] = p * mul;
        }
    }
}

// The same row on 16 lanes (s12: gelu_row_avx2 was 10.6% of MiniLM's all-INT8 batch-1
// samples): erf16 is erf8 lane for lane, and every other step is one IEEE operation, so each
// element gets the bits of the 8-lane row (and of the unfused ops); the tail is a masked
// vector, its lanes computed as any other.
MPQ_AVX512F static inline __m512 gelu16(__m512 h, __m512 d, __m512 a, __m512 m) {
    __m512 e = _mm512_add_ps(erf16(_mm512_div_ps(h, d)), a);
    return _mm512_mul_ps(_mm512_mul_ps(h, e), m);
}

MPQ_AVX512F static void gelu_row_avx512(const float *x, const float *bias, size_t n, float div, float add, float mul,
                                        float *y) {
    const __m512 d = _mm512_set1_ps(div), a = _mm512_set1_ps(add), m = _mm512_set1_ps(mul);
    size_t j = 0;
    for (; j + 32 <= n; j += 32) {
        __m512 h0 = _mm512_loadu_ps(x + j), h1 = _mm512_loadu_ps(x + j + 16);
        if (bias) {
            h0 = _mm512_add_ps(h0, _mm512_loadu_ps(bias + j));
            h1 = _mm512_add_ps(h1, _mm512_loadu_ps(bias + j + 16));
        }
        __m512 y0 = gelu16(h0, d, a, m), y1 = gelu16(h1, d, a, m);
        _mm512_storeu_ps(y + j, y0);
        _mm512_storeu_ps(y + j + 16, y1);
    }
    for (; j < n; j += 16) {
        const __mmask16 k = n - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - j)) - 1u);
        __m512 h = _mm512_maskz_loadu_ps(k, x + j);
        if (bias) h = _mm512_add_ps(h, _mm512_maskz_loadu_ps(k, bias + j));
        _mm512_mask_storeu_ps(y + j, k, gelu16(h, d, a, m));
    }
}

static void gelu_task(void *arg, int t) {
    fused_job *j = arg;
    (void)t;
    size_t lo, hi;
    // Writing codes: one row of floats at a time in this buffer (in L1), quantized from there.
    float *stage = NULL;
    if (j->codes) {
        stage = malloc(j->cols * sizeof(float));
        if (!stage) abort();
    }
    while (fused_claim(j, &lo, &hi))
    for (size_t r = lo; r < hi; r++) {
        const float *x = j->x + r * j->cols;
        float *y = stage ? stage : j->y + r * j->cols;
        if (j->avx512) {
            gelu_row_avx512(x, j->bias, j->cols, j->a, j->b, j->c, y);
        } else if (j->avx2) {
            gelu_row_avx2(x, j->bias, j->cols, j->a, j->b, j->c, y);
        } else {
            for (size_t k = 0; k < j->cols; k++) { float h = j->bias ? x[k] + j->bias[k] : x[k]; y[k] = h / j->a; }
            mpq_erf_reference(y, j->cols, y);
            for (size_t k = 0; k < j->cols; k++) {
                float h = j->bias ? x[k] + j->bias[k] : x[k];
                float e = y[k] + j->b;
                float p = h * e;
                y[k] = p * j->c;
            }
        }
        if (stage) mpq_quantize_u8(j->qpath, stage, j->cols, j->qscale, j->qzp, j->codes + r * j->cols);
    }
    free(stage);
}

void mpq_bias_gelu_f32(mpq_kernel_path path, const float *x, size_t rows, size_t cols, const float *bias,
                       float div, float add, float mul, float *y, int threads) {
    fused_job j = {.avx2 = fused_use_avx2(path), .avx512 = fused_use_avx512(path), .x = x, .bias = bias, .rows = rows,
                   .cols = cols, .a = div, .b = add, .c = mul, .y = y};
    j.tasks = fused_tasks(threads, rows, cols);
    fused_start(&j);
    mpq_pool_run(j.tasks, gelu_task, &j);
}

void mpq_bias_gelu_u8(mpq_kernel_path path, const float *x, size_t rows, size_t cols, const float *bias,
                      float div, float add, float mul, mpq_kernel_path quantize_path, float scale, uint8_t zero_point,
                      uint8_t *codes, int threads) {
    fused_job j = {.avx2 = fused_use_avx2(path), .avx512 = fused_use_avx512(path), .x = x, .bias = bias, .rows = rows,
                   .cols = cols, .a = div, .b = add, .c = mul, .codes = codes, .qpath = quantize_path, .qscale = scale,
                   .qzp = zero_point};
    j.tasks = fused_tasks(threads, rows, cols);
    fused_start(&j);
    mpq_pool_run(j.tasks, gelu_task, &j);
}

// MARK: - scale + mask + Softmax

AVX2 static void scale_mask_avx2(const float *x, size_t n, float scale, int divide, const float *mask, float *y) {
    const __m256 s = _mm256_set1_ps(scale);
    size_t k = 0;
    for (; k + 8 <= n; k += 8) {
        __m256 v = _mm256_loadu_ps(x + k);
        v = divide ? _mm256_div_ps(v, s) : _mm256_mul_ps(v, s);
        if (mask) v = _mm256_add_ps(v, _mm256_loadu_ps(mask + k));
        _mm256_storeu_ps(y + k, v);
    }
    for (; k < n; k++) {
        float v = divide ? x[k] / scale : x[k] * scale;
        y[k] = mask ? v + mask[k] : v;
    }
}

static void softmax_task(void *arg, int t) {
    fused_job *j = arg;
    (void)t;
    size_t lo, hi;
    // Writing codes: two rows of floats at a time in this buffer (in L1), quantized from there,
    // as gelu_task does with one.
    float *stage = NULL;
    if (j->codes) {
        stage = malloc(2 * j->cols * sizeof(float));
        if (!stage) abort();
    }
    while (fused_claim(j, &lo, &hi))
    for (size_t r0 = lo; r0 < hi; r0 += 2) {
        // Two rows at a time where the claim has them: the AVX2 row kernel interleaves a pair's
        // steps (mpq_softmax_rows_avx2), the same bits as one row at a time.
        const size_t pair = r0 + 1 < hi ? 2 : 1;
        float *y = stage ? stage : j->y + r0 * j->cols;
        for (size_t i = 0; i < pair; i++) {
            const size_t r = r0 + i;
            const float *x = j->x + r * j->cols;
            const float *mask = j->mask ? j->mask + j->mask_offsets[r] : NULL;
            float *yr = y + i * j->cols;
            if (j->avx2) {
                scale_mask_avx2(x, j->cols, j->a, j->divide, mask, yr);
            } else {
                for (size_t k = 0; k < j->cols; k++) {
                    float v = j->divide ? x[k] / j->a : x[k] * j->a;
                    yr[k] = mask ? v + mask[k] : v;
                }
            }
        }
        if (j->avx512) mpq_softmax_rows_avx512(y, pair, j->cols);
        else if (j->avx2) mpq_softmax_rows_avx2(y, pair, j->cols);
        else mpq_softmax_rows_reference(y, pair, j->cols);
        if (stage) mpq_quantize_u8(j->qpath, stage, pair * j->cols, j->qscale, j->qzp, j->codes + r0 * j->cols);
    }
    free(stage);
}

void mpq_scaled_masked_softmax_f32(mpq_kernel_path path, const float *x, size_t rows, size_t n, float scale,
                                   int divide, const float *mask, const size_t *mask_offsets, float *y, int threads) {
    fused_job j = {.avx2 = fused_use_avx2(path), .avx512 = fused_use_avx512(path), .x = x, .rows = rows, .cols = n,
                   .a = scale, .divide = divide, .mask = mask, .mask_offsets = mask_offsets, .y = y};
    j.tasks = fused_tasks(threads, rows, n);
    fused_start(&j);
    mpq_pool_run(j.tasks, softmax_task, &j);
}

void mpq_scaled_masked_softmax_u8(mpq_kernel_path path, const float *x, size_t rows, size_t n, float scale,
                                  int divide, const float *mask, const size_t *mask_offsets,
                                  mpq_kernel_path quantize_path, float qscale, uint8_t zero_point, uint8_t *codes,
                                  int threads) {
    fused_job j = {.avx2 = fused_use_avx2(path), .avx512 = fused_use_avx512(path), .x = x, .rows = rows, .cols = n,
                   .a = scale, .divide = divide, .mask = mask, .mask_offsets = mask_offsets, .codes = codes,
                   .qpath = quantize_path, .qscale = qscale, .qzp = zero_point};
    j.tasks = fused_tasks(threads, rows, n);
    fused_start(&j);
    mpq_pool_run(j.tasks, softmax_task, &j);
}

// MARK: - bias + residual + LayerNormalization

AVX2 static void add_residual_avx2(const float *x, const float *bias, const float *res, size_t n, float *y) {
    size_t k = 0;
    for (; k + 8 <= n; k += 8) {
        __m256 v = _mm256_loadu_ps(x + k);
        if (bias) v = _mm256_add_ps(v, _mm256_loadu_ps(bias + k));
        _mm256_storeu_ps(y + k, _mm256_add_ps(v, _mm256_loadu_ps(res + k)));
    }
    for (; k < n; k++) { float v = bias ? x[k] + bias[k] : x[k]; y[k] = v + res[k]; }
}

static void layernorm_task(void *arg, int t) {
    fused_job *j = arg;
    (void)t;
    size_t lo, hi;
    while (fused_claim(j, &lo, &hi))
    for (size_t r0 = lo; r0 < hi; r0 += 2) {
        // Two rows at a time where the claim has them, as softmax_task: the AVX2 row kernel
        // interleaves a pair's moments (mpq_layernorm_avx2), the same bits as one row at a time.
        const size_t pair = r0 + 1 < hi ? 2 : 1;
        float *y = j->y + r0 * j->cols;
        for (size_t i = 0; i < pair; i++) {
            const float *x = j->x + (r0 + i) * j->cols, *res = j->residual + (r0 + i) * j->cols;
            float *yr = y + i * j->cols;
            if (j->avx2) {
                add_residual_avx2(x, j->bias, res, j->cols, yr);
            } else {
                for (size_t k = 0; k < j->cols; k++) { float v = j->bias ? x[k] + j->bias[k] : x[k]; yr[k] = v + res[k]; }
            }
        }
        // The row kernels read a row fully (moments) before writing any of it, so y may be their input.
        if (j->avx2) mpq_layernorm_avx2(y, pair, j->cols, j->scale, j->beta, j->epsilon, y, NULL, NULL);
        else mpq_layernorm_reference(y, pair, j->cols, j->scale, j->beta, j->epsilon, y, NULL, NULL);
    }
}

void mpq_add_layernorm_f32(mpq_kernel_path path, const float *x, const float *bias, const float *residual,
                           size_t rows, size_t cols, const float *scale, const float *beta, float epsilon,
                           float *y, int threads) {
    fused_job j = {.avx2 = fused_use_avx2(path), .x = x, .bias = bias, .residual = residual, .rows = rows,
                   .cols = cols, .scale = scale, .beta = beta, .epsilon = epsilon, .y = y};
    j.tasks = fused_tasks(threads, rows, cols);
    fused_start(&j);
    mpq_pool_run(j.tasks, layernorm_task, &j);
}

// MARK: - bias Add

// y = x + bias per row, out of place (the caller's x stays as it was).
AVX2 static void add_bias_into_avx2(const float *x, size_t n, const float *bias, float *y) {
    size_t k = 0;
    for (; k + 8 <= n; k += 8) _mm256_storeu_ps(y + k, _mm256_add_ps(_mm256_loadu_ps(x + k), _mm256_loadu_ps(bias + k)));
    for (; k < n; k++) y[k] = x[k] + bias[k];
}

static void add_bias_into_task(void *arg, int t) {
    fused_job *j = arg;
    (void)t;
    size_t lo, hi;
    while (fused_claim(j, &lo, &hi))
    for (size_t r = lo; r < hi; r++) {
        const float *x = j->x + r * j->cols;
        float *y = j->y + r * j->cols;
        if (j->avx2) add_bias_into_avx2(x, j->cols, j->bias, y);
        else for (size_t k = 0; k < j->cols; k++) y[k] = x[k] + j->bias[k];
    }
}

void mpq_add_bias_rows_into_f32(const float *x, size_t rows, size_t cols, const float *bias, float *y, int threads) {
    // An add is exact to one rounding on every path: the AVX2 loop is only faster.
    fused_job j = {.avx2 = mpq_kernel_path_available(MPQ_PATH_AVX2), .x = x, .bias = bias, .rows = rows, .cols = cols, .y = y};
    j.tasks = fused_tasks(threads, rows, cols);
    fused_start(&j);
    mpq_pool_run(j.tasks, add_bias_into_task, &j);
}
