// mpq_quantize_u8 over the kernel pool (mpq_quantize_split.h).
#include <stdatomic.h>
#include "mpq_internal.h"
#include "mpq_quantize_split.h"

typedef struct {
    mpq_kernel_path path;
    const float *x;
    size_t count, block;  // block: elements per claim, a multiple of 64
    float scale;
    uint8_t zp;
    uint8_t *y;
    _Atomic size_t next;  // the first element nobody has claimed yet
} quantize_job;

// Blocks are claimed from one counter, about 4 per task, instead of one fixed half per
// core: the calling thread starts at once and takes more while a pool worker wakes up, and a
// core slowed by another process holds the op up less. Every block starts at a multiple of
// 64, so each element takes the same path as in one call wherever the split falls.
static void quantize_task(void *arg, int t) {
    (void)t;
    quantize_job *j = arg;
    size_t lo, hi;
    while (mpq_claim_run(&j->next, j->block, j->count, &lo, &hi))
        mpq_quantize_u8(j->path, j->x + lo, hi - lo, j->scale, j->zp, j->y + lo);
}

void mpq_quantize_u8_split(mpq_kernel_path path, const float *x, size_t count, float scale, uint8_t zero_point,
                           uint8_t *y, int threads) {
    if (threads > MPQ_POOL_MAX) threads = MPQ_POOL_MAX;
    if (threads < 2 || count < (1 << 16)) {
        mpq_quantize_u8(path, x, count, scale, zero_point, y);
        return;
    }
    size_t per = 4 * (size_t)threads;
    size_t block = (count + per - 1) / per;
    block = (block + 63) & ~(size_t)63;
    quantize_job j = {.path = path, .x = x, .count = count, .block = block, .scale = scale, .zp = zero_point, .y = y};
    atomic_init(&j.next, 0);
    mpq_pool_run(threads, quantize_task, &j);
}
