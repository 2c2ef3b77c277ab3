// Steps around the INT8 activation x activation GEMM (mpq_activation_gemm.h). Plain C: the
// compiler vectorises the sums and the epilogue, and there are no overflow checks.
#pragma STDC FP_CONTRACT OFF
#include "mpq_activation_gemm.h"

void mpq_transpose_shift_u8(const uint8_t *b, int k, int n, int ldb, int8_t *bt) {
    // 8 x 8 blocks keep both sides' cache lines in use.
    for (int j0 = 0; j0 < k; j0 += 8) {
        int j1 = j0 + 8 < k ? j0 + 8 : k;
        for (int c0 = 0; c0 < n; c0 += 8) {
            int c1 = c0 + 8 < n ? c0 + 8 : n;
            for (int c = c0; c < c1; c++)
                for (int j = j0; j < j1; j++) bt[(size_t)c * k + j] = (int8_t)(b[(size_t)j * ldb + c] ^ 0x80);
        }
    }
}

void mpq_row_sums_u8(const uint8_t *a, size_t rows, int k, int32_t za, int64_t *sums) {
    for (size_t r = 0; r < rows; r++) {
        const uint8_t *p = a + r * (size_t)k;
        uint32_t s = 0;  // k <= 65792 codes of at most 255: fits in 32 bits
        for (int j = 0; j < k; j++) s += p[j];
        sums[r] = (int64_t)s - (int64_t)za * k;
    }
}

void mpq_row_correct_scale_f32(const int32_t *acc, size_t rows, int n, int k, const int64_t *sums, int64_t zb,
                               float scale, float *out) {
    const int narrow = k <= 32896;  // 2 * 255 * 128 * k < 2^31: exact in int32, the same float
    for (size_t r = 0; r < rows; r++) {
        const int32_t *a = acc + r * (size_t)n;
        float *o = out + r * (size_t)n;
        const int64_t corr = zb * sums[r];
        if (narrow) {
            const int32_t c32 = (int32_t)corr;
            for (int c = 0; c < n; c++) o[c] = (float)(a[c] - c32) * scale;
        } else {
            for (int c = 0; c < n; c++) o[c] = (float)((int64_t)a[c] - corr) * scale;
        }
    }
}
