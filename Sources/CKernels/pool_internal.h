#ifndef MPQ_POOL_INTERNAL_H
#define MPQ_POOL_INTERNAL_H
// Private to CKernels: the per-path pooling and elementwise functions behind mpq_pool.h.
// Each works on whole planes [p0, p1) or elements [i0, i1): the threading lives in pool.c.
#include "mpq_pool.h"
#include "mpq_internal.h"

/// Outputs [f0, f1) along W have their whole window inside the input (lo == 0, hi == kernel):
/// the range the fast paths vectorise. Pooling windows only lose taps at the edges, so the
/// full outputs are one contiguous run.
static inline void mpq_pool_full_range(const mpq_pool2d *p, int *f0, int *f1) {
    int a = 0;
    while (a < p->out_w && !(p->lo_w[a] == 0 && p->hi_w[a] == p->kernel_w)) a++;
    int b = a;
    while (b < p->out_w && p->lo_w[b] == 0 && p->hi_w[b] == p->kernel_w) b++;
    *f0 = a; *f1 = b;
}

/// Scratch for one plane's W-reduced rows: in_h * out_w elements of `elem` bytes.
static inline size_t mpq_pool_scratch(const mpq_pool2d *p, size_t elem) {
    return (size_t)p->in_h * (size_t)p->out_w * elem;
}

void mpq_maxpool2d_f32_reference(const mpq_pool2d *p, const float *x, float *y, size_t p0, size_t p1, float *scratch);
void mpq_maxpool2d_f32_avx512(const mpq_pool2d *p, const float *x, float *y, size_t p0, size_t p1, float *scratch);
void mpq_avgpool2d_f32_reference(const mpq_pool2d *p, const float *x, float *y, size_t p0, size_t p1, float *scratch);
void mpq_avgpool2d_f32_avx512(const mpq_pool2d *p, const float *x, float *y, size_t p0, size_t p1, float *scratch);
void mpq_maxpool2d_u8_reference(const mpq_pool2d *p, const uint8_t *x, uint8_t *y, size_t p0, size_t p1, uint8_t *scratch);
void mpq_maxpool2d_u8_avx512(const mpq_pool2d *p, const uint8_t *x, uint8_t *y, size_t p0, size_t p1, uint8_t *scratch);
void mpq_maxpool2d_f32_avx2(const mpq_pool2d *p, const float *x, float *y, size_t p0, size_t p1, float *scratch);
void mpq_avgpool2d_f32_avx2(const mpq_pool2d *p, const float *x, float *y, size_t p0, size_t p1, float *scratch);
void mpq_maxpool2d_u8_avx2(const mpq_pool2d *p, const uint8_t *x, uint8_t *y, size_t p0, size_t p1, uint8_t *scratch);

void mpq_binary_f32_reference(int multiply, int relu, const float *a, const float *b, size_t count, float *y);
void mpq_binary_f32_avx512(int multiply, int relu, const float *a, const float *b, size_t count, float *y);
void mpq_binary_f32_avx2(int multiply, int relu, const float *a, const float *b, size_t count, float *y);
void mpq_binary_u8_reference(int multiply, int relu, const uint8_t *a, float scale_a, uint8_t zp_a, const uint8_t *b,
                             float scale_b, uint8_t zp_b, size_t count, float scale, uint8_t zp, uint8_t *y);
void mpq_binary_u8_avx512(int multiply, int relu, const uint8_t *a, float scale_a, uint8_t zp_a, const uint8_t *b,
                          float scale_b, uint8_t zp_b, size_t count, float scale, uint8_t zp, uint8_t *y);
void mpq_binary_u8_avx2(int multiply, int relu, const uint8_t *a, float scale_a, uint8_t zp_a, const uint8_t *b,
                        float scale_b, uint8_t zp_b, size_t count, float scale, uint8_t zp, uint8_t *y);

void mpq_lookup_u8_vbmi(const uint8_t *x, size_t count, const uint8_t *table, uint8_t *y);
void mpq_lookup_u8_avx2(const uint8_t *x, size_t count, const uint8_t *table, uint8_t *y);

/// Per plane, the integer sum of its `image` codes (QLinearGlobalAveragePool's accumulator).
void mpq_qavgpool_plane_sums_reference(const uint8_t *x, size_t planes, size_t image, int64_t *sums);
void mpq_qavgpool_plane_sums_avx2(const uint8_t *x, size_t planes, size_t image, int64_t *sums);

#endif
