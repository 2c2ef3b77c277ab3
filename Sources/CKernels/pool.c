// Public entry points of mpq_pool.h: pick the path, split planes over the kernel pool.
// Each task takes a contiguous block of planes and its own W-pass scratch.
#include "pool_internal.h"
#include <stdlib.h>

typedef enum { POOL_MAX_F32, POOL_AVG_F32, POOL_MAX_U8 } pool_kind;

typedef struct {
    const mpq_pool2d *p;
    pool_kind kind;
    mpq_kernel_path path;  // resolved
    int tasks;
    const void *x;
    void *y;
} pool_call;

static void pool_task(void *arg, int task) {
    const pool_call *c = arg;
    const size_t planes = c->p->planes;
    const size_t p0 = planes * (size_t)task / (size_t)c->tasks, p1 = planes * (size_t)(task + 1) / (size_t)c->tasks;
    if (p0 >= p1) return;
    const size_t elem = c->kind == POOL_MAX_U8 ? 1 : sizeof(float);
    void *scratch = malloc(mpq_pool_scratch(c->p, elem) + 64);
    if (!scratch) return;  // cannot happen for a plane that fits the tensor itself
    switch (c->kind) {
    case POOL_MAX_F32:
        (c->path == MPQ_PATH_VNNI   ? mpq_maxpool2d_f32_avx512
         : c->path == MPQ_PATH_AVX2 ? mpq_maxpool2d_f32_avx2
                                    : mpq_maxpool2d_f32_reference)(c->p, c->x, c->y, p0, p1, scratch);
        break;
    case POOL_AVG_F32:
        (c->path == MPQ_PATH_VNNI   ? mpq_avgpool2d_f32_avx512
         : c->path == MPQ_PATH_AVX2 ? mpq_avgpool2d_f32_avx2
                                    : mpq_avgpool2d_f32_reference)(c->p, c->x, c->y, p0, p1, scratch);
        break;
    case POOL_MAX_U8:
        (c->path == MPQ_PATH_VNNI   ? mpq_maxpool2d_u8_avx512
         : c->path == MPQ_PATH_AVX2 ? mpq_maxpool2d_u8_avx2
                                    : mpq_maxpool2d_u8_reference)(c->p, c->x, c->y, p0, p1, scratch);
        break;
    }
    free(scratch);
}

static void run_pool(mpq_kernel_path path, const mpq_pool2d *p, pool_kind kind, const void *x, void *y, int threads) {
    if (p->planes == 0 || p->out_h <= 0 || p->out_w <= 0) return;
    int tasks = threads < 1 ? 1 : threads;
    if ((size_t)tasks > p->planes) tasks = (int)p->planes;
    if (tasks > MPQ_POOL_MAX) tasks = MPQ_POOL_MAX;
    pool_call c = {p, kind, mpq_resolve_kernel_path(path), tasks, x, y};
    mpq_pool_run(tasks, pool_task, &c);
}

void mpq_maxpool2d_f32(mpq_kernel_path path, const mpq_pool2d *p, const float *x, float *y, int threads) {
    run_pool(path, p, POOL_MAX_F32, x, y, threads);
}

void mpq_avgpool2d_f32(mpq_kernel_path path, const mpq_pool2d *p, const float *x, float *y, int threads) {
    run_pool(path, p, POOL_AVG_F32, x, y, threads);
}

void mpq_maxpool2d_u8(mpq_kernel_path path, const mpq_pool2d *p, const uint8_t *x, uint8_t *y, int threads) {
    run_pool(path, p, POOL_MAX_U8, x, y, threads);
}
