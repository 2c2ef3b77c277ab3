#ifndef MPQ_POOL_H
#define MPQ_POOL_H
// 2-D pooling and elementwise kernels of CNNs, on floats and on uint8 codes (the INT8
// runtime's chains, docs/int8-chains.md). Each has a scalar reference and an AVX-512
// path (run on `MPQ_PATH_VNNI` machines; other paths run the reference). The AVX-512
// paths do the reference's operations in the reference's order, so every path agrees
// bit for bit (-0 included; a NaN that a sum produces may differ in sign or payload,
// which IEEE leaves open): docs/pooling.md explains why.
// `threads` > 1 splits planes (pooling) or elements (elementwise) over the kernel pool.
#include "mpq_kernels.h"

/// One 2-D pooling window over `planes` contiguous [in_h][in_w] planes, writing
/// [out_h][out_w] planes. Per output index along each axis, the kernel taps that land
/// inside the input are `lo[o]..<hi[o]` (tap t reads input o * stride - pad + t * dilation);
/// an output with no tap is -inf (max) or 0 / count (average). The window reduces along W
/// first, then along H, taps in increasing order: the order `PoolOps.poolSeparable` uses.
typedef struct {
    size_t planes;
    int in_h, in_w, out_h, out_w;
    int kernel_h, kernel_w, stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left;
    const int *lo_h, *hi_h;   ///< out_h entries each
    const int *lo_w, *hi_w;   ///< out_w entries each
    /// Average pooling only: output (oh, ow) is sum / (count_h[oh] * count_w[ow]).
    const float *count_h, *count_w;
} mpq_pool2d;

/// Max pooling; a tap compares as `v > acc ? v : acc` (a NaN in the first tap stays,
/// a later NaN is skipped, as the Swift reference).
void mpq_maxpool2d_f32(mpq_kernel_path path, const mpq_pool2d *p, const float *x, float *y, int threads);
/// Max pooling of uint8 codes (an empty window gives 0, the code of -inf).
void mpq_maxpool2d_u8(mpq_kernel_path path, const mpq_pool2d *p, const uint8_t *x, uint8_t *y, int threads);
/// Average pooling: sums in tap order, then one division by the Float product of counts.
void mpq_avgpool2d_f32(mpq_kernel_path path, const mpq_pool2d *p, const float *x, float *y, int threads);

/// `mpq_maxpool2d_f32` (`is_max`) or `mpq_avgpool2d_f32` on channel-blocked images
/// ([N][ceil(C/16)][H][W][16], docs/fp32-blocked-layout.md): `p->planes` counts N * ceil(C/16)
/// blocks of 16 lanes. Taps fold in the NCHW kernels' order (W, then H), so each lane holds
/// the NCHW kernel's value bit for bit; lanes past `channels` in an image's last block are +0.
/// `threads` > 1 splits output rows over the kernel pool. 0, or -1 when the planes are not
/// whole images of `channels`.
int mpq_pool2d_f32_blocked(mpq_kernel_path path, int is_max, const mpq_pool2d *p, int channels, const float *x, float *y,
                           int threads);

/// y = a + b (multiply = 0) or a * b (multiply = 1), then with `relu` `r < 0 ? 0 : r`
/// (NaN and -0 stay): a residual Add and the Relu after it in one pass. `y` may alias `a` or `b`.
void mpq_binary_f32(mpq_kernel_path path, int multiply, int relu, const float *a, const float *b,
                    size_t count, float *y, int threads);

/// `mpq_requantize_binary_u8` with an optional Relu between the operation and the
/// requantization, split over `threads`: each code dequantized as its producer wrote it
/// ((q - z) * s + 0), one float add or multiply, `r < 0 ? 0 : r` with `relu`, then
/// divide, clamp, round half to even, + zp (what the FP32 Add, Relu and QuantizeLinear give).
void mpq_binary_u8(mpq_kernel_path path, int multiply, int relu, const uint8_t *a, float scale_a, uint8_t zp_a,
                   const uint8_t *b, float scale_b, uint8_t zp_b, size_t count, float scale, uint8_t zp,
                   uint8_t *y, int threads);

/// y[i] = table[x[i]] (a 256-entry code table: a fused INT8 elementwise chain), split over
/// `threads`; on CPUs with AVX-512 VBMI 64 codes per step with byte permutes, with AVX2 32 per
/// step with byte shuffles, otherwise `mpq_lookup_u8`. `y` may be `x`.
void mpq_lookup_u8_threads(const uint8_t *x, size_t count, const uint8_t *table, uint8_t *y, int threads);

/// ONNX Runtime's QLinearAveragePool on uint8 codes (onnxruntime/contrib_ops/cpu/quantization/
/// qlinear_pool.cc), over `planes` contiguous planes of up to 3 spatial axes (unused axes
/// have size, kernel and stride 1, pad 0). Per output: each tap in the input dequantized as
/// `x_scale * (float)(q - x_zp)`, summed in float in row-major tap order from 0, divided by
/// the Float count (the kernel's size with `count_include_pad`, else the taps inside the
/// input), then `nearbyintf(sum / y_scale + y_zp)` clamped to [0, 255]. A window clipped to
/// the input keeps `start = max(o * stride - pad, 0)`, `end = min(o * stride - pad + kernel, in)`
/// (ORT ignores dilations: callers pass only undilated windows). Scalar only: the sums are
/// float sums in tap order, which no vector form keeps cheaper. `threads` > 1 splits planes.
typedef struct {
    size_t planes;
    int in[3], out[3], kernel[3], stride[3], pad[3];
    int count_include_pad;
    float x_scale, y_scale;
    uint8_t x_zp, y_zp;
} mpq_qavgpool;

void mpq_qavgpool_u8(const mpq_qavgpool *p, const uint8_t *x, uint8_t *y, int threads);

/// ONNX Runtime's QLinearGlobalAveragePool on uint8 codes (MLAS `MlasQLinearGlobalAveragePool`,
/// onnxruntime/core/mlas/lib/qlgavgpool.cpp, x86 form), also what QLinearAveragePool runs when
/// the kernel covers the whole unpadded input: per plane the int32 sum of its `image` codes
/// minus `x_zp * image`, times the float `x_scale / (y_scale * (float)image)`, clamped to
/// [-y_zp, 255 - y_zp], rounded half to even, + y_zp. The AVX2 path (any path but the
/// reference) sums bytes with `vpsadbw`: integer sums, so every path gives the same bytes.
void mpq_qglobal_avgpool_u8(mpq_kernel_path path, const uint8_t *x, size_t planes, size_t image, float x_scale, uint8_t x_zp,
                            float y_scale, uint8_t y_zp, uint8_t *y);

#endif
