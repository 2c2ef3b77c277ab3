// Run-time choice of kernel path: CPU features, MPQ_KERNEL_PATH, mpq_set_kernel_path.
#include "mpq_internal.h"
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int mpq_kernel_path_available(mpq_kernel_path path) {
    switch (path) {
    case MPQ_PATH_AUTO:
    case MPQ_PATH_REFERENCE:
        return 1;
    case MPQ_PATH_AVX2:
        return __builtin_cpu_supports("avx2") ? 1 : 0;
    case MPQ_PATH_VNNI:
        // BW for the 64-byte masked byte loads, VL for the 256-bit peak probe.
        return (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni")) ? 1 : 0;
    }
    return 0;
}

static mpq_kernel_path fastest(void) {
    if (mpq_kernel_path_available(MPQ_PATH_VNNI)) return MPQ_PATH_VNNI;
    if (mpq_kernel_path_available(MPQ_PATH_AVX2)) return MPQ_PATH_AVX2;
    return MPQ_PATH_REFERENCE;
}

// -1: not yet decided. Plain int: set before kernels run (documented), read often.
static int forced_path = -1;
static int env_path = -1;

static int parse_env(void) {
    const char *v = getenv("MPQ_KERNEL_PATH");
    if (!v || !*v) return MPQ_PATH_AUTO;
    if (!strcmp(v, "vnni")) return MPQ_PATH_VNNI;
    if (!strcmp(v, "avx2")) return MPQ_PATH_AVX2;
    if (!strcmp(v, "reference") || !strcmp(v, "ref")) return MPQ_PATH_REFERENCE;
    return MPQ_PATH_AUTO;
}

mpq_kernel_path mpq_get_kernel_path(void) {
    if (forced_path > 0) return (mpq_kernel_path)forced_path;
    if (env_path < 0) env_path = parse_env();
    if (env_path > 0 && mpq_kernel_path_available((mpq_kernel_path)env_path))
        return (mpq_kernel_path)env_path;
    return fastest();
}

int mpq_set_kernel_path(mpq_kernel_path path) {
    if (!mpq_kernel_path_available(path)) return -1;
    forced_path = (path == MPQ_PATH_AUTO) ? -1 : (int)path;
    return 0;
}

mpq_kernel_path mpq_resolve_kernel_path(mpq_kernel_path path) {
    if (path == MPQ_PATH_AUTO) return mpq_get_kernel_path();
    return mpq_kernel_path_available(path) ? path : fastest();
}

const char *mpq_kernel_path_name(mpq_kernel_path path) {
    switch (path) {
    case MPQ_PATH_AUTO: return "auto";
    case MPQ_PATH_REFERENCE: return "reference";
    case MPQ_PATH_AVX2: return "avx2";
    case MPQ_PATH_VNNI: return "vnni";
    }
    return "unknown";
}

size_t mpq_l2_bytes(void) {
    static _Atomic long state;
    long v = atomic_load_explicit(&state, memory_order_relaxed);
    if (!v) {
        long l2 = -1;
#ifdef _SC_LEVEL2_CACHE_SIZE
        l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
#endif
        v = l2 > 0 ? l2 : 1L << 20;
        atomic_store_explicit(&state, v, memory_order_relaxed);
    }
    return (size_t)v;
}
