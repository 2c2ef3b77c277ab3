#ifndef MPQ_DEPTHWISE_F32_LANES_INTERNAL_H
#define MPQ_DEPTHWISE_F32_LANES_INTERNAL_H
// What the FP32 depthwise lanes kernels share (depthwise_f32_lanes.c: 16 channels per AVX-512
// vector; depthwise_f32_lanes_avx2.c: 8 per AVX2 vector): one call's geometry and operands,
// planned once for either vector width, the thread's scratch buffer and the scalar unit a
// unit runs when that buffer cannot be allocated. The units themselves (transposes, taps)
// are per instruction set.
#include "mpq_internal.h"

/// One call's geometry and operands. Units are `lanes`-channel blocks x `strips` row strips
/// (unit u: block u / strips, strip u % strips).
typedef struct {
    const float *x, *w, *bias;
    float *y;
    int C, H, W, OH, OW, s, sh, pt, pl, Wp, strips, sub_rows, ring_rows, lanes;
    int clamp;
    float lo, hi;
    size_t ring_floats, out_floats;  // the ring of padded input rows, the strip's [pixel][lanes] outputs
} mpq_dw_lanes_job;

/// The job for `s` (3x3, stride 1 or 2 across, checked by the caller) with `lanes` channels
/// per block, and its units' split: `*threads` becomes the threads to run (1 on an image
/// chain's thread). Returns the number of units.
int mpq_dw_lanes_plan(mpq_dw_lanes_job *j, const float *x, const mpq_conv2d_shape *s, const float *w, const float *bias,
                      int clamp, float lo, float hi, float *y, int lanes, int *threads);

/// The calling thread's scratch buffer of at least `floats` floats (64-byte aligned), kept
/// between calls; NULL if it cannot be allocated.
float *mpq_dw_lanes_scratch(size_t floats);

/// Channels [c0, c0 + cb) x output rows [oh_begin, oh_end) by the reference's arithmetic (taps
/// inside the input in (kh, kw) order from +0 by fmaf, + 0, the bias when not 0, clamp1): the
/// lanes kernels' bits, for a unit without scratch memory.
void mpq_dw_lanes_unit_scalar(const mpq_dw_lanes_job *j, int c0, int cb, int oh_begin, int oh_end);

/// Unit u of an 8-lane job on AVX2 + FMA (depthwise_f32_lanes_avx2.c), for mpq_run_ranges.
void mpq_dw_lanes_unit_avx2(void *job, int u, int task);

#endif
