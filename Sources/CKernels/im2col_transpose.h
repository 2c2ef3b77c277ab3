// The 16x16 byte transpose the im2col paths share (im2col_fast.c, im2col_padded.c). SSE2
// only: baseline x86-64, no run-time dispatch.
#ifndef MPQ_IM2COL_TRANSPOSE_H
#define MPQ_IM2COL_TRANSPOSE_H
#include <emmintrin.h>
#include <stddef.h>
#include <stdint.h>

/// 16 bytes src[0], src[step], ..., src[15 * step] for step 1 or 2 (a stride-2 row reads
/// 32 bytes and keeps the even ones).
static inline __m128i mpq_load16_step(const uint8_t *src, int step) {
    if (step == 1) return _mm_loadu_si128((const __m128i *)src);
    const __m128i even = _mm_set1_epi16(0x00FF);
    __m128i lo = _mm_loadu_si128((const __m128i *)src);
    __m128i hi = _mm_loadu_si128((const __m128i *)(src + 16));
    return _mm_packus_epi16(_mm_and_si128(lo, even), _mm_and_si128(hi, even));
}

/// dst[j * dstride + i] = byte j of a[i], for i, j < 16: an unpack ladder.
static inline void mpq_transpose16_store(const __m128i a[16], uint8_t *dst, size_t dstride) {
    __m128i b[16], c[16], d[16];
    // b[i]: rows 2i, 2i+1 interleaved, columns 0-7; b[8 + i]: columns 8-15.
    for (int i = 0; i < 8; i++) {
        b[i] = _mm_unpacklo_epi8(a[2 * i], a[2 * i + 1]);
        b[8 + i] = _mm_unpackhi_epi8(a[2 * i], a[2 * i + 1]);
    }
    // c[cq * 4 + q]: columns 4cq..4cq+3, rows 4q..4q+3.
    for (int h = 0; h < 2; h++) {
        for (int q = 0; q < 4; q++) {
            c[(2 * h) * 4 + q] = _mm_unpacklo_epi16(b[8 * h + 2 * q], b[8 * h + 2 * q + 1]);
            c[(2 * h + 1) * 4 + q] = _mm_unpackhi_epi16(b[8 * h + 2 * q], b[8 * h + 2 * q + 1]);
        }
    }
    // d[cp * 2 + o]: columns 2cp, 2cp+1, rows 8o..8o+7.
    for (int cq = 0; cq < 4; cq++) {
        for (int o = 0; o < 2; o++) {
            d[(2 * cq) * 2 + o] = _mm_unpacklo_epi32(c[cq * 4 + 2 * o], c[cq * 4 + 2 * o + 1]);
            d[(2 * cq + 1) * 2 + o] = _mm_unpackhi_epi32(c[cq * 4 + 2 * o], c[cq * 4 + 2 * o + 1]);
        }
    }
    for (int cp = 0; cp < 8; cp++) {
        _mm_storeu_si128((__m128i *)(dst + (size_t)(2 * cp) * dstride), _mm_unpacklo_epi64(d[cp * 2], d[cp * 2 + 1]));
        _mm_storeu_si128((__m128i *)(dst + (size_t)(2 * cp + 1) * dstride), _mm_unpackhi_epi64(d[cp * 2], d[cp * 2 + 1]));
    }
}

#endif
