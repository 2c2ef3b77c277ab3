// Scalar references of the FP32 row kernels (mpq_rowwise.h): the formulas the Swift ops
// used before, in the same order, so MPQ_KERNEL_PATH=reference reproduces them.
#include "rowwise_internal.h"

void mpq_softmax_rows_reference(float *x, size_t rows, size_t n) {
    for (size_t r = 0; r < rows; r++) {
        float *p = x + r * n;
        float m = -INFINITY;
        for (size_t k = 0; k < n; k++) if (p[k] > m) m = p[k];
        float sum = 0;
        for (size_t k = 0; k < n; k++) { float e = expf(p[k] - m); p[k] = e; sum += e; }
        float inv = 1 / sum;
        for (size_t k = 0; k < n; k++) p[k] *= inv;
    }
}

void mpq_erf_reference(const float *x, size_t count, float *y) {
    for (size_t i = 0; i < count; i++) y[i] = erff(x[i]);
}

void mpq_layernorm_reference(const float *x, size_t rows, size_t cols, const float *scale, const float *bias,
                             float epsilon, float *y, float *mean, float *inv_std) {
    for (size_t r = 0; r < rows; r++) {
        const float *p = x + r * cols;
        float *q = y + r * cols;
        // Two passes, four double accumulators each (as NormalizationOps.moments).
        double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        size_t i = 0;
        for (; i + 4 <= cols; i += 4) { s0 += p[i]; s1 += p[i + 1]; s2 += p[i + 2]; s3 += p[i + 3]; }
        for (; i < cols; i++) s0 += p[i];
        double mu = (s0 + s1 + s2 + s3) / (double)(cols ? cols : 1);
        double v0 = 0, v1 = 0, v2 = 0, v3 = 0;
        for (i = 0; i + 4 <= cols; i += 4) {
            double d0 = p[i] - mu, d1 = p[i + 1] - mu, d2 = p[i + 2] - mu, d3 = p[i + 3] - mu;
            v0 += d0 * d0; v1 += d1 * d1; v2 += d2 * d2; v3 += d3 * d3;
        }
        for (; i < cols; i++) { double d = p[i] - mu; v0 += d * d; }
        double var = (v0 + v1 + v2 + v3) / (double)(cols ? cols : 1);
        float m = (float)mu, s = (float)(1 / sqrt(var + (double)epsilon));
        if (mean) mean[r] = m;
        if (inv_std) inv_std[r] = s;
        for (size_t j = 0; j < cols; j++) {
            float v = (p[j] - m) * s;
            v = v * scale[j];
            q[j] = v + (bias ? bias[j] : 0.0f);
        }
    }
}
