// mpq_quantize_u8 over the kernel pool (mpq_quantize_split.h).
#include "mpq_internal.h"
#include "mpq_quantize_split.h"

typedef struct {
    mpq_kernel_path path;
    const float *x;
    size_t count, block;
    float scale;
    uint8_t zp;
    uint8_t *y;
} quantize_job;

static void quantize_task(void *arg, int t) {
    const quantize_job *j = arg;
    size_t lo = (size_t)t * j->block, hi = lo + j->block < j->count ? lo + j->block : j->count;
    if (lo < hi) mpq_quantize_u8(j->path, j->x + lo, hi - lo, j->scale, j->zp, j->y + lo);
}

void mpq_quantize_u8_split(mpq_kernel_path path, const float *x, size_t count, float scale, uint8_t zero_point,
                           uint8_t *y, int threads) {
    if (threads > MPQ_POOL_MAX) threads = MPQ_POOL_MAX;
    if (threads < 2 || count < (1 << 16)) {
        mpq_quantize_u8(path, x, count, scale, zero_point, y);
        return;
    }
    size_t block = (count + (size_t)threads - 1) / (size_t)threads;
    block = (block + 63) & ~(size_t)63;
    int tasks = (int)((count + block - 1) / block);
    quantize_job j = {.path = path, .x = x, .count = count, .block = block, .scale = scale, .zp = zero_point, .y = y};
    mpq_pool_run(tasks, quantize_task, &j);
}
