#ifndef MPQ_SCONV_BLOCKED_SKIP_H
#define MPQ_SCONV_BLOCKED_SKIP_H
// The blocked FP32 Conv's flat mode without its padding taps (sconv_blocked_skip.c).
#include "sgemm_internal.h"
#include <stddef.h>
#include <stdint.h>

/// Whether `count` runs of `len` floats, `stride` apart, pass the guard (mpq_f32_tame; with
/// `finite` infinities and NaN fail too): the AVX-512 form of both scans.
int mpq_f32_tame_segments_avx512(const float *x, size_t count, size_t len, size_t stride, int finite);

/// A geometry's pixel classes and their tap lists, kept per thread; NULL when out of memory or
/// when the lists would be too large (then every tap runs). `offsets`: every tap's offset in
/// the blocked image, ((cb H + kh dh) W + kw dw) 16 + c % 16 in k order. The lists hold only
/// taps inside the image, so the rows read the image itself (no padded copy).
typedef struct mpq_skip_plan mpq_skip_plan;
const mpq_skip_plan *mpq_skip_plan_for(const mpq_conv2d_shape *s, const int32_t *offsets);

/// The input guard of one blocked image x ([cbs][H][W][16]) for this plan: whether every value
/// that a pixel with clipped taps reads passes `mpq_f32_tame` (the pixels that keep every tap
/// run the reference's chain whatever they read, so the rest need no scan).
int mpq_skip_input_tame(const mpq_skip_plan *pl, mpq_kernel_path path, const float *x, int cbs);

/// Output rows [r0, r1) of one weights block (nv <= 4 vectors, `rows` live channels, rows
/// layout at w) from the blocked image `src`: class by class, tiles of up to `most` pixels over
/// the class's taps; pixel (oh, ow) stored at yc + ((oh - r0) OW + ow) 16 (vector v
/// at + v vstride) after the tile epilogue `ep`.
void mpq_skip_rows(const mpq_skip_plan *pl, const float *src, const float *w, int nv, int rows,
                   const mpq_sgemm_tile_epilogue *ep, float *yc, size_t vstride, int r0, int r1, int most);

/// The AVX-512 tile over a tap list: the blocked tile's sums with tap i reading weights row
/// kidx[i] (row k itself when kidx is NULL) and input offsets[i]; pixel p's outputs at
/// y + opix[p] (+ v vstride). nv <= 4, np <= mpq_sconv_cv_tile_pixels(nv).
void mpq_sconv_blocked_tile_taps_avx512(int kc, const int32_t *kidx, const float *w, int nv, const float *x,
                                        const int32_t *offsets, const int32_t *pix, const int32_t *opix, int np, float *y,
                                        size_t vstride, int rows, const mpq_sgemm_tile_epilogue *ep);
#endif
