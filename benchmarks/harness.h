#ifndef MPQ_BENCH_HARNESS_H
#define MPQ_BENCH_HARNESS_H
// What the C kernel harnesses (benchmarks/*.c, built by ckernels_lib.sh) share: a monotonic
// clock, the fixed-seed xorshift data every layer harness draws (so their inputs and weights
// match from harness to harness), 64-byte aligned buffers, and a cache flush for timing layers
// as a model meets them (weights and input cold).
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

static inline double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static uint64_t harness_rng = 88172645463325252ull;

/// Uniform in [-1, 1), xorshift64 (each translation unit its own stream, from the same seed).
static inline float rndf(void) {
    harness_rng ^= harness_rng << 13;
    harness_rng ^= harness_rng >> 7;
    harness_rng ^= harness_rng << 17;
    return (float)((harness_rng >> 40) & 0xFFFF) / 32768.0f - 1.0f;
}

static inline void *aalloc(size_t bytes) { return aligned_alloc(64, (bytes + 63) / 64 * 64); }

/// 64 MB touched (not timed by the caller): what was cached, weights and input, comes from
/// memory on the next call, as a layer's do once per image inside a model (s37).
static inline void flush_caches(void) {
    static volatile char *junk;
    if (!junk) junk = calloc(64u << 20, 1);
    for (size_t q = 0; junk && q < (64u << 20); q += 64) junk[q]++;
}

#endif
