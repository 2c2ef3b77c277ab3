// ONNX Runtime's quantized average pooling on uint8 codes (mpq_pool.h): the windowed form of
// QLinearAveragePool (float sums of dequantized taps) and the global form of
// QLinearGlobalAveragePool (integer sums, one float multiplier). The `ort` scheme runs these
// on its uint8 chains so that mpq's INT8 AveragePool / GlobalAveragePool give ORT's bytes.
#include "pool_internal.h"
#include <math.h>

// QuantizeLinear as qlinear_pool.cc's quantize_value writes it: round (y / s + zp), then
// clamp. Clamping the rounded float before the int conversion gives the same byte for every
// finite value and never converts an out-of-range float.
static inline uint8_t quantize_value(float v, float y_scale, uint8_t y_zp) {
    float r = nearbyintf(v / y_scale + (float)y_zp);
    return (uint8_t)(r < 0.0f ? 0.0f : (r > 255.0f ? 255.0f : r));
}

static void qavgpool_planes(const mpq_qavgpool *p, const uint8_t *x, uint8_t *y, size_t p0, size_t p1) {
    // ORT dequantizes every code as x_scale * (int)(q - zp): a 256-entry table of those floats.
    float lut[256];
    for (int q = 0; q < 256; q++) lut[q] = p->x_scale * (float)(q - (int)p->x_zp);
    const size_t in_image = (size_t)p->in[0] * p->in[1] * p->in[2];
    const size_t out_image = (size_t)p->out[0] * p->out[1] * p->out[2];
    const float full = (float)((long long)p->kernel[0] * p->kernel[1] * p->kernel[2]);
    for (size_t c = p0; c < p1; c++) {
        const uint8_t *xp = x + c * in_image;
        uint8_t *yp = y + c * out_image;
        for (int o0 = 0; o0 < p->out[0]; o0++) {
            int s0 = o0 * p->stride[0] - p->pad[0], e0 = s0 + p->kernel[0];
            if (e0 > p->in[0]) e0 = p->in[0];
            if (s0 < 0) s0 = 0;
            for (int o1 = 0; o1 < p->out[1]; o1++) {
                int s1 = o1 * p->stride[1] - p->pad[1], e1 = s1 + p->kernel[1];
                if (e1 > p->in[1]) e1 = p->in[1];
                if (s1 < 0) s1 = 0;
                for (int o2 = 0; o2 < p->out[2]; o2++) {
                    int s2 = o2 * p->stride[2] - p->pad[2], e2 = s2 + p->kernel[2];
                    if (e2 > p->in[2]) e2 = p->in[2];
                    if (s2 < 0) s2 = 0;
                    float acc = 0.0f;
                    for (int i0 = s0; i0 < e0; i0++)
                        for (int i1 = s1; i1 < e1; i1++) {
                            const uint8_t *row = xp + ((size_t)i0 * p->in[1] + i1) * p->in[2];
                            for (int i2 = s2; i2 < e2; i2++) acc += lut[row[i2]];
                        }
                    // ORT's `y /= size` with an int64 count: the count converted to float.
                    long long taps = (long long)(e0 > s0 ? e0 - s0 : 0) * (e1 > s1 ? e1 - s1 : 0) * (e2 > s2 ? e2 - s2 : 0);
                    acc /= p->count_include_pad ? full : (float)taps;
                    yp[((size_t)o0 * p->out[1] + o1) * p->out[2] + o2] = quantize_value(acc, p->y_scale, p->y_zp);
                }
            }
        }
    }
}

typedef struct {
    const mpq_qavgpool *p;
    const uint8_t *x;
    uint8_t *y;
    int tasks;
} qavgpool_call;

static void qavgpool_task(void *arg, int task) {
    const qavgpool_call *c = arg;
    const size_t n = c->p->planes;
    qavgpool_planes(c->p, c->x, c->y, n * (size_t)task / (size_t)c->tasks, n * (size_t)(task + 1) / (size_t)c->tasks);
}

void mpq_qavgpool_u8(const mpq_qavgpool *p, const uint8_t *x, uint8_t *y, int threads) {
    if (p->planes == 0) return;
    int tasks = threads < 1 ? 1 : threads;
    if ((size_t)tasks > p->planes) tasks = (int)p->planes;
    if (tasks > MPQ_POOL_MAX) tasks = MPQ_POOL_MAX;
    qavgpool_call c = {p, x, y, tasks};
    mpq_pool_run(tasks, qavgpool_task, &c);
}

void mpq_qavgpool_plane_sums_reference(const uint8_t *x, size_t planes, size_t image, int64_t *sums) {
    for (size_t c = 0; c < planes; c++) {
        int64_t s = 0;
        for (size_t i = 0; i < image; i++) s += x[c * image + i];
        sums[c] = s;
    }
}

void mpq_qglobal_avgpool_u8(mpq_kernel_path path, const uint8_t *x, size_t planes, size_t image, float x_scale, uint8_t x_zp,
                            float y_scale, uint8_t y_zp, uint8_t *y) {
    if (planes == 0) return;
    // MLAS: scale = ScaleInput / (ScaleOutput * (float)ImageSize), bias = -zp * ImageSize;
    // MlasRequantizeOutputVector: (float)(sum + bias) * scale, MAXPS/MINPS against
    // [-y_zp, 255 - y_zp], CVTPS2DQ (round half to even), + y_zp.
    const float scale = x_scale / (y_scale * (float)image);
    const float lo = (float)(0 - (int)y_zp), hi = (float)(255 - (int)y_zp);
    enum { CHUNK = 256 };
    int64_t sums[CHUNK];
    const int fast = mpq_resolve_kernel_path(path) != MPQ_PATH_REFERENCE;
    for (size_t c0 = 0; c0 < planes; c0 += CHUNK) {
        const size_t n = planes - c0 < CHUNK ? planes - c0 : CHUNK;
        (fast ? mpq_qavgpool_plane_sums_avx2 : mpq_qavgpool_plane_sums_reference)(x + c0 * image, n, image, sums);
        for (size_t c = 0; c < n; c++) {
            float v = (float)(sums[c] - (int64_t)x_zp * (int64_t)image) * scale;
            // MAXPS(v, lo) returns lo for a NaN v (cannot arise from finite scales).
            v = v > lo ? v : lo;
            v = v < hi ? v : hi;
            y[c0 + c] = (uint8_t)((int)nearbyintf(v) + (int)y_zp);
        }
    }
}
