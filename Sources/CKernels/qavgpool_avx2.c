// QLinearGlobalAveragePool's per-plane sums, AVX2: `vpsadbw` against zero adds 8 bytes into
// each 64-bit lane, 32 bytes per step; the tail by the reference. Integer sums, so the
// bytes of mpq_qglobal_avgpool_u8 do not depend on the path.
#include "pool_internal.h"
#include <immintrin.h>

__attribute__((target("avx2")))
void mpq_qavgpool_plane_sums_avx2(const uint8_t *x, size_t planes, size_t image, int64_t *sums) {
    const __m256i zero = _mm256_setzero_si256();
    for (size_t c = 0; c < planes; c++) {
        const uint8_t *p = x + c * image;
        __m256i acc = _mm256_setzero_si256();
        size_t i = 0;
        for (; i + 32 <= image; i += 32) acc = _mm256_add_epi64(acc, _mm256_sad_epu8(_mm256_loadu_si256((const __m256i *)(p + i)), zero));
        __m128i s = _mm_add_epi64(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
        s = _mm_add_epi64(s, _mm_unpackhi_epi64(s, s));
        int64_t total = _mm_cvtsi128_si64(s);
        int64_t tail = 0;
        mpq_qavgpool_plane_sums_reference(p + i, 1, image - i, &tail);
        sums[c] = total + tail;
    }
}
