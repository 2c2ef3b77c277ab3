// Instruction-bound VNNI peak for the benchmark: independent vpdpbusd chains,
// enough of them to cover the instruction's latency on any current core.
#include "mpq_internal.h"
#include <immintrin.h>

#define CHAINS 16

__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni"), noinline))
static double peak512(long iterations) {
    __m512i acc[CHAINS];
    for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_set1_epi32(c);
    __m512i a = _mm512_set1_epi32((int)(iterations & 0x7f)), b = _mm512_set1_epi32(0x01020304);
    for (long i = 0; i < iterations; i++) {
        for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_dpbusd_epi32(acc[c], a, b);
        __asm__ volatile("" : "+v"(a));  // keep the loop from being folded
    }
    __m512i sum = acc[0];
    for (int c = 1; c < CHAINS; c++) sum = _mm512_add_epi32(sum, acc[c]);
    volatile int sink = _mm512_reduce_add_epi32(sum);
    (void)sink;
    return (double)iterations * CHAINS * 64 * 2;  // 64 u8*s8 MACs per zmm vpdpbusd
}

__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni"), noinline))
static double peak256(long iterations) {
    __m256i acc[CHAINS];
    for (int c = 0; c < CHAINS; c++) acc[c] = _mm256_set1_epi32(c);
    __m256i a = _mm256_set1_epi32((int)(iterations & 0x7f)), b = _mm256_set1_epi32(0x01020304);
    for (long i = 0; i < iterations; i++) {
        for (int c = 0; c < CHAINS; c++) acc[c] = _mm256_dpbusd_epi32(acc[c], a, b);
        __asm__ volatile("" : "+v"(a));
    }
    __m256i sum = acc[0];
    for (int c = 1; c < CHAINS; c++) sum = _mm256_add_epi32(sum, acc[c]);
    int32_t lanes[8];
    _mm256_storeu_si256((__m256i *)lanes, sum);
    volatile int sink = lanes[0];
    (void)sink;
    return (double)iterations * CHAINS * 32 * 2;
}

double mpq_vnni_peak_ops(long iterations) {
    return mpq_kernel_path_available(MPQ_PATH_VNNI) ? peak512(iterations) : 0.0;
}

double mpq_vnni256_peak_ops(long iterations) {
    return mpq_kernel_path_available(MPQ_PATH_VNNI) ? peak256(iterations) : 0.0;
}
