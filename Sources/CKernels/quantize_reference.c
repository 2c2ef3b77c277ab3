// ONNX QuantizeLinear to uint8: the scalar reference, and the public entry point.
// All paths (quantize_avx2.c, quantize_avx512.c) divide (as ONNX specifies; x * (1/scale) rounds differently), clamp
// to [-zp, 255 - zp] in float *before* converting (so huge values and NaN
// cannot hit cvtps2dq's 0x80000000 "integer indefinite"), then round with the
// current rounding mode (nearest-even by default, i.e. nearbyint) and add zp.
// Clamping first is exact because the bounds are integers.
#include "mpq_internal.h"
#include <math.h>

void mpq_quantize_u8_reference(const float *x, size_t count, float scale, uint8_t zp, uint8_t *y) {
    const float lo = -(float)zp, hi = 255.0f - (float)zp;
    for (size_t i = 0; i < count; i++) {
        float v = x[i] / scale;
        v = (v > lo) ? v : lo;  // as maxps(v, lo): NaN -> lo
        v = (v < hi) ? v : hi;
        y[i] = (uint8_t)((int)nearbyintf(v) + (int)zp);
    }
}

void mpq_quantize_u8(mpq_kernel_path path, const float *x, size_t count,
                     float scale, uint8_t zero_point, uint8_t *y) {
    switch (mpq_resolve_kernel_path(path)) {
    case MPQ_PATH_VNNI: mpq_quantize_u8_avx512(x, count, scale, zero_point, y); break;
    case MPQ_PATH_AVX2: mpq_quantize_u8_avx2(x, count, scale, zero_point, y); break;
    default: mpq_quantize_u8_reference(x, count, scale, zero_point, y); break;
    }
}
