// The scalar reference INT8 GEMM: a plain triple loop, never optimised by hand.
// It reads B through the packed layout's index formula, so tests that compare it
// with an unpacked triple loop also check the packing.
#include "mpq_internal.h"

static int8_t packed_b(const mpq_gemm_job *j, int kk, int col) {
    size_t panel = (size_t)(col / 16) * (size_t)j->kp * 16;
    return j->bdata[panel + (size_t)(kk / 4) * 64 + (size_t)(col % 16) * 4 + (size_t)(kk % 4)];
}

void mpq_gemm_region_reference(const mpq_gemm_job *j, int m0, int m1, int p0, int p1) {
    int n1 = p1 * 16 < j->n ? p1 * 16 : j->n;
    for (int row = m0; row < m1; row++) {
        const uint8_t *a = j->a + (size_t)row * (size_t)j->lda;
        for (int col = p0 * 16; col < n1; col++) {
            // Sums wrap modulo 2^32 like the SIMD adds (unsigned: defined in C),
            // so paths agree bit for bit even past the documented K limit.
            uint32_t sum = 0;
            for (int kk = 0; kk < j->k; kk++) {
                sum += (uint32_t)((int32_t)a[kk] * (int32_t)packed_b(j, kk, col));
            }
            sum -= (uint32_t)j->za * (uint32_t)j->colsum[col];
            const int32_t acc = (int32_t)sum;
            if (j->c) {
                j->c[(size_t)row * (size_t)j->ldc + (size_t)col] = acc;
            } else {
                const mpq_epilogue *ep = j->ep;
                size_t at = j->out_channel_major ? (size_t)col * (size_t)j->ldo + (size_t)row
                                                 : (size_t)row * (size_t)j->ldo + (size_t)col;
                float v = mpq_epilogue_scalar(
                    acc, ep->bias_i32, ep->a_scale, ep->b_scale[col], ep->bias, col, ep->clamp_lo, ep->clamp_hi, ep->out_scale);
                if (j->out_u8) j->out_u8[at] = mpq_code_u8(v, j->out_zp);
                else j->out[at] = v;
            }
        }
    }
}
