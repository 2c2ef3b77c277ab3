// Same-shape Add/Mul (+ Relu) on floats and on uint8 codes (mpq_pool.h): the scalar
// references, and the entry points that pick the path and split the elements over the
// kernel pool in 64-element-aligned blocks (each element is computed alone, so any split
// gives the same bits).
#include "pool_internal.h"
#include <math.h>

void mpq_binary_f32_reference(int multiply, int relu, const float *a, const float *b, size_t count, float *y) {
    for (size_t i = 0; i < count; i++) {
        float r = multiply ? a[i] * b[i] : a[i] + b[i];
        if (relu) r = r < 0.0f ? 0.0f : r;
        y[i] = r;
    }
}

void mpq_binary_u8_reference(int multiply, int relu, const uint8_t *a, float scale_a, uint8_t zp_a, const uint8_t *b,
                             float scale_b, uint8_t zp_b, size_t count, float scale, uint8_t zp, uint8_t *y) {
    float ta[256], tb[256];
    mpq_grid_table(scale_a, zp_a, ta);
    mpq_grid_table(scale_b, zp_b, tb);
    const float lo = 0.0f - (float)zp, hi = 255.0f - (float)zp;
    for (size_t i = 0; i < count; i++) {
        float r = multiply ? ta[a[i]] * tb[b[i]] : ta[a[i]] + tb[b[i]];
        if (relu) r = r < 0.0f ? 0.0f : r;
        float v = r / scale;
        v = (v > lo) ? v : lo;
        v = (v < hi) ? v : hi;
        y[i] = mpq_code_u8(nearbyintf(v), zp);
    }
}

typedef struct {
    mpq_kernel_path path;  // resolved
    int multiply, relu, tasks, codes;
    size_t count;
    const void *a, *b;
    void *y;
    float scale_a, scale_b, scale;
    uint8_t zp_a, zp_b, zp;
} binary_call;

static void binary_task(void *arg, int task) {
    const binary_call *c = arg;
    size_t i0, i1;
    mpq_block64_range(c->count, task, c->tasks, &i0, &i1);
    if (i0 >= i1) return;
    if (c->codes) {
        const uint8_t *a = (const uint8_t *)c->a + i0, *b = (const uint8_t *)c->b + i0;
        uint8_t *y = (uint8_t *)c->y + i0;
        (c->path == MPQ_PATH_VNNI ? mpq_binary_u8_avx512 : c->path == MPQ_PATH_AVX2 ? mpq_binary_u8_avx2 : mpq_binary_u8_reference)(
            c->multiply, c->relu, a, c->scale_a, c->zp_a, b, c->scale_b,
                                                                   c->zp_b, i1 - i0, c->scale, c->zp, y);
    } else {
        (c->path == MPQ_PATH_VNNI ? mpq_binary_f32_avx512 : c->path == MPQ_PATH_AVX2 ? mpq_binary_f32_avx2 : mpq_binary_f32_reference)(
            c->multiply, c->relu, (const float *)c->a + i0,
                                                                     (const float *)c->b + i0, i1 - i0, (float *)c->y + i0);
    }
}

static void run_binary(binary_call *c, int threads) {
    if (c->count == 0) return;
    c->tasks = mpq_block64_tasks(c->count, threads);
    mpq_pool_run(c->tasks, binary_task, c);
}

void mpq_binary_f32(mpq_kernel_path path, int multiply, int relu, const float *a, const float *b,
                    size_t count, float *y, int threads) {
    binary_call c = {.path = mpq_resolve_kernel_path(path), .multiply = multiply, .relu = relu,
                     .codes = 0, .count = count, .a = a, .b = b, .y = y};
    run_binary(&c, threads);
}

void mpq_binary_u8(mpq_kernel_path path, int multiply, int relu, const uint8_t *a, float scale_a, uint8_t zp_a,
                   const uint8_t *b, float scale_b, uint8_t zp_b, size_t count, float scale, uint8_t zp,
                   uint8_t *y, int threads) {
    binary_call c = {.path = mpq_resolve_kernel_path(path), .multiply = multiply, .relu = relu,
                     .codes = 1, .count = count, .a = a, .b = b, .y = y, .scale_a = scale_a, .scale_b = scale_b,
                     .scale = scale, .zp_a = zp_a, .zp_b = zp_b, .zp = zp};
    run_binary(&c, threads);
}

typedef void (*lookup_fn)(const uint8_t *, size_t, const uint8_t *, uint8_t *);

typedef struct {
    const uint8_t *x, *table;
    uint8_t *y;
    size_t count;
    int tasks;
    lookup_fn fn;
} lookup_call;

static void lookup_task(void *arg, int task) {
    const lookup_call *c = arg;
    size_t i0, i1;
    mpq_block64_range(c->count, task, c->tasks, &i0, &i1);
    if (i0 >= i1) return;
    c->fn(c->x + i0, i1 - i0, c->table, c->y + i0);
}

void mpq_lookup_u8_threads(const uint8_t *x, size_t count, const uint8_t *table, uint8_t *y, int threads) {
    if (count == 0) return;
    const int tasks = mpq_block64_tasks(count, threads);
    const mpq_kernel_path path = mpq_resolve_kernel_path(MPQ_PATH_AUTO);
    lookup_call c = {x, table, y, count, tasks,
                     path == MPQ_PATH_VNNI && __builtin_cpu_supports("avx512vbmi") ? mpq_lookup_u8_vbmi
                     : path == MPQ_PATH_VNNI || path == MPQ_PATH_AVX2               ? mpq_lookup_u8_avx2
                                                                                    : mpq_lookup_u8};
    mpq_pool_run(tasks, lookup_task, &c);
}
