// Shared by the two INT8 pointwise (1x1 stride-1) kernels: qgemm_pointwise.c (pixel panels,
// every output kind) and qgemm_pointwise_blocks.c (64-pixel blocks, codes output).
#ifndef MPQ_QGEMM_POINTWISE_INTERNAL_H
#define MPQ_QGEMM_POINTWISE_INTERNAL_H
#include "mpq_internal.h"

typedef struct {
    const uint8_t *x;      // group's first channel plane
    size_t plane;          // bytes between channel planes
    int c, kp, n, pixels;  // channels (K), K rounded to 4, output channels, pixels
    const int8_t *bdata;   // packed weights
    const int32_t *colsum;
    int32_t za;
    const mpq_epilogue *ep;
    float *out;            // one of out / out_u8; channel stride ldo
    uint8_t *out_u8;
    int32_t out_zp;
    size_t ldo;
} pw_job;

/// Bytes of the x panel buffer mpq_pw_run_pixels needs (64 pixels of every channel).
#define MPQ_PW_PANEL_BYTES(kp) ((size_t)(kp) * 64)

/// x panels for pixels [p0, p0 + 16 * np) (np <= 4): panel q at buf + q * kp * 16, group kq
/// at + kq * 64, lane l's 4 bytes = channels 4kq..4kq+3 of pixel p0 + 16q + l (0 past the
/// channels or pixels).
void mpq_pw_pack_panels(const pw_job *j, int p0, int np, uint8_t *buf);

/// The panel kernel (qgemm_pointwise.c) on pixels [p0, p1) (p0 a multiple of 16) and output
/// channels [co0, co1), any output kind; `buf` holds MPQ_PW_PANEL_BYTES.
void mpq_pw_run_pixels(const pw_job *j, int p0, int p1, int co0, int co1, uint8_t *buf);

/// The block kernel (qgemm_pointwise_blocks.c) for a codes job; 0, or -1 (nothing written)
/// when it cannot allocate its buffers.
int mpq_pw_blocks_run(const pw_job *j, int threads);

/// Whether codes jobs take the block kernel: mpq_set_int8_pointwise_blocks, else the
/// environment (MPQ_INT8_POINTWISE_BLOCKS=0 turns it off), else on.
int mpq_pw_blocks_enabled(void);
#endif
