// Dispatch and the split over the kernel pool for the FP32 row kernels (mpq_rowwise.h).
// Each task takes one contiguous block of rows (or elements), so the result does not
// depend on the thread count.
#include "rowwise_internal.h"

static int use_avx2(mpq_kernel_path path) {
    return mpq_resolve_kernel_path(path) != MPQ_PATH_REFERENCE;
}

static int clamp_tasks(int threads, size_t units, size_t min_units_per_task) {
    if (threads < 1) threads = 1;
    if (threads > MPQ_POOL_MAX) threads = MPQ_POOL_MAX;
    size_t most = units / (min_units_per_task ? min_units_per_task : 1);
    if ((size_t)threads > most) threads = most < 1 ? 1 : (int)most;
    return threads;
}

static void block(size_t units, int tasks, int t, size_t *lo, size_t *hi) {
    *lo = units * (size_t)t / (size_t)tasks;
    *hi = units * (size_t)(t + 1) / (size_t)tasks;
}

typedef struct {
    int avx2, avx512, tasks;
    float *x; const float *cx;
    float *y;
    size_t rows, n;
    const float *scale, *bias;
    float epsilon;
    float *mean, *inv_std;
} row_job;

static void softmax_task(void *arg, int t) {
    const row_job *j = arg;
    size_t lo, hi;
    block(j->rows, j->tasks, t, &lo, &hi);
    if (j->avx512) mpq_softmax_rows_avx512(j->x + lo * j->n, hi - lo, j->n);
    else if (j->avx2) mpq_softmax_rows_avx2(j->x + lo * j->n, hi - lo, j->n);
    else mpq_softmax_rows_reference(j->x + lo * j->n, hi - lo, j->n);
}

void mpq_softmax_rows_f32(mpq_kernel_path path, float *x, size_t rows, size_t n, int threads) {
    row_job j = {.avx2 = use_avx2(path), .avx512 = mpq_resolve_kernel_path(path) == MPQ_PATH_VNNI, .x = x, .rows = rows, .n = n};
    j.tasks = clamp_tasks(threads, rows * n, 1 << 14);  // ~16k floats per task pays for the wake-up
    if ((size_t)j.tasks > rows) j.tasks = rows < 1 ? 1 : (int)rows;
    mpq_pool_run(j.tasks, softmax_task, &j);
}

static void erf_task(void *arg, int t) {
    const row_job *j = arg;
    size_t lo, hi;
    block(j->n, j->tasks, t, &lo, &hi);
    if (j->avx2) mpq_erf_avx2(j->cx + lo, hi - lo, j->y + lo);
    else mpq_erf_reference(j->cx + lo, hi - lo, j->y + lo);
}

void mpq_erf_f32(mpq_kernel_path path, const float *x, size_t count, float *y, int threads) {
    row_job j = {.avx2 = use_avx2(path), .cx = x, .y = y, .n = count};
    j.tasks = clamp_tasks(threads, count, 1 << 14);
    mpq_pool_run(j.tasks, erf_task, &j);
}

static void layernorm_task(void *arg, int t) {
    const row_job *j = arg;
    size_t lo, hi;
    block(j->rows, j->tasks, t, &lo, &hi);
    float *mean = j->mean ? j->mean + lo : NULL, *inv = j->inv_std ? j->inv_std + lo : NULL;
    if (j->avx2)
        mpq_layernorm_avx2(j->cx + lo * j->n, hi - lo, j->n, j->scale, j->bias, j->epsilon, j->y + lo * j->n, mean, inv);
    else
        mpq_layernorm_reference(j->cx + lo * j->n, hi - lo, j->n, j->scale, j->bias, j->epsilon, j->y + lo * j->n, mean, inv);
}

void mpq_layernorm_f32(mpq_kernel_path path, const float *x, size_t rows, size_t cols,
                       const float *scale, const float *bias, float epsilon,
                       float *y, float *mean, float *inv_std, int threads) {
    row_job j = {.avx2 = use_avx2(path), .cx = x, .y = y, .rows = rows, .n = cols, .scale = scale, .bias = bias,
                 .epsilon = epsilon, .mean = mean, .inv_std = inv_std};
    j.tasks = clamp_tasks(threads, rows * cols, 1 << 14);
    if ((size_t)j.tasks > rows) j.tasks = rows < 1 ? 1 : (int)rows;
    mpq_pool_run(j.tasks, layernorm_task, &j);
}
