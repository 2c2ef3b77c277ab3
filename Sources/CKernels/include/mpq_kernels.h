#ifndef MPQ_KERNELS_H
#define MPQ_KERNELS_H
// C kernels for mpq. Every SIMD kernel has a scalar reference beside it.
//
// Conventions for every function below:
// - Pointers are borrowed: a kernel never frees, keeps or reallocates what it is
//   given. Outputs are written, never read (unless documented).
// - No alignment is required anywhere (all SIMD loads and stores are unaligned);
//   64-byte alignment of packed buffers and rows is recommended for speed.
// - Leading dimensions (lda, ldc, ...) are in elements, not bytes.
// - Integer accumulators are int32. They are exact (every path equals the
//   reference bit for bit) as long as K * 255 * 128 fits in int32 (K < 65793).
#include <stdint.h>
#include <stddef.h>

/// Version tag, so Swift can check it links the expected kernels.
int mpq_kernels_version(void);

// MARK: - Kernel paths (run-time dispatch)

/// An instruction-set path. Every kernel has all three; a path the CPU lacks is
/// never run. `MPQ_PATH_AUTO` means "the fastest path this CPU has".
typedef enum {
    MPQ_PATH_AUTO = 0,
    MPQ_PATH_REFERENCE = 1,  ///< plain scalar C, never optimised by hand
    MPQ_PATH_AVX2 = 2,       ///< AVX2, widening u8/s8 -> s16 then vpmaddwd (cannot saturate)
    MPQ_PATH_VNNI = 3,       ///< AVX-512 F/BW/VNNI, vpdpbusd
} mpq_kernel_path;

/// Whether this CPU can run `path` (AUTO and REFERENCE: always 1).
int mpq_kernel_path_available(mpq_kernel_path path);

/// The path kernels use when given `MPQ_PATH_AUTO`: the one forced by
/// `mpq_set_kernel_path`, else the one named by the environment variable
/// `MPQ_KERNEL_PATH=vnni|avx2|reference` (read once), else the fastest
/// available. A forced path the CPU lacks falls back to the fastest available.
mpq_kernel_path mpq_get_kernel_path(void);

/// Forces the path used for `MPQ_PATH_AUTO` (pass AUTO to undo). Returns 0, or
/// -1 (and changes nothing) if the CPU lacks the path. Process-wide; not meant
/// to be flipped while kernels run on other threads.
int mpq_set_kernel_path(mpq_kernel_path path);

/// Resolves AUTO and unavailable paths to the concrete path that will run.
mpq_kernel_path mpq_resolve_kernel_path(mpq_kernel_path path);

/// "reference", "avx2", "vnni" or "auto".
const char *mpq_kernel_path_name(mpq_kernel_path path);

// MARK: - INT8 GEMM: C[M][N] = A[M][K] (uint8) x B[K][N] (int8)

/// Packed-B layout, identical for every path (so one packed buffer serves all):
///
///     header  mpq_packed_b_header          (64 bytes)
///     colsum  int32[n_padded]              sum over k of B[n][k], 0 in padding
///     data    int8[n_padded / 16][k_padded / 4][16][4]
///
/// n_padded = N rounded up to 16, k_padded = K rounded up to 4; padding bytes are
/// zero. One 64-byte group holds 4 consecutive k for 16 consecutive output
/// columns: exactly one `vpdpbusd` operand; the AVX2 path widens it in 16-byte
/// quarters (4 columns x 4 k). The whole buffer is position-independent (no
/// pointers inside), so it can be copied or cached.
typedef struct {
    uint32_t magic;      ///< MPQ_PACKED_B_MAGIC
    int32_t n, k;        ///< logical sizes
    int32_t n_padded, k_padded;
    /// 1 when every pair of consecutive k (k even, k + 1) of every column has
    /// |b0| + |b1| <= 128, so that u8 x s8 pair sums 255 * 128 fit int16 and
    /// `vpmaddubsw` is exact (7-bit weights, `--weight-bits 7`); set by every packer.
    int32_t pairs_fit_i16;
    int32_t reserved[10];
} mpq_packed_b_header;

#define MPQ_PACKED_B_MAGIC 0x3842504Du /* "MPB8" */
#define MPQ_PACK_N 16
#define MPQ_PACK_K 4

/// Bytes needed by `mpq_pack_b_s8` for an N x K weight matrix.
size_t mpq_pack_b_s8_size(int n, int k);

/// Packs weights once. `b` is [N][K] row-major with row stride `ldb` (>= K):
/// one row per output channel, i.e. ONNX Conv weights [Cout][Cin/g*KH*KW] or
/// the transpose of a MatMul's [K][N] initializer. `packed` must hold
/// `mpq_pack_b_s8_size(n, k)` bytes. Also stores the column sums used for
/// activation zero-point correction. Weights are symmetric int8 (zero point 0,
/// as ONNX Runtime quantizes weights by default); an asymmetric weight zero
/// point would need a row-sum-of-A correction this API does not do.
/// Returns 0, or -1 on bad sizes.
int mpq_pack_b_s8(const int8_t *b, int n, int k, int ldb, void *packed);

/// Column sums (N int32) stored in a packed buffer: sum over k of B[n][k].
const int32_t *mpq_packed_b_colsum(const void *packed);

/// Exact zero-point-corrected accumulators:
///     C[m][n] = sum_k (A[m][k] - a_zero_point) * B[n][k]
///             = sum_k A[m][k] * B[n][k] - a_zero_point * colsum[n]
/// `a` is [M][K] row-major, row stride `lda` (>= K); `c` is [M][N], row stride
/// `ldc` (>= N). `packed` comes from `mpq_pack_b_s8` with the same N and K.
/// `threads` <= 1 runs on the calling thread; more splits whole 6x64 tiles over
/// that many threads of a persistent pool (the caller is one of them; workers
/// are started on first use and park when idle; concurrent multi-threaded calls
/// are serialised). About 2 us of overhead when cores are free, so
/// splitting pays from roughly 1M multiply-adds up. Returns 0, or -1 on bad
/// arguments.
int mpq_qgemm_u8s8(mpq_kernel_path path, int m, int n, int k,
                   const uint8_t *a, int lda, const void *packed,
                   int32_t a_zero_point, int32_t *c, int ldc, int threads);

/// Dequantizing epilogue fused into the GEMM (and the depthwise conv):
///     acc   = exact int32 accumulator, zero-point corrected (as above)
///     acc   = acc + bias_i32[n]                     (if bias_i32 != NULL; int32, wraps)
///     v     = (float)acc * (a_scale * b_scale[n])   (one rounding each)
///     v     = v + bias[n]                           (if bias != NULL)
///     out   = min(max(v, clamp_lo), clamp_hi)
///     out   = nearbyint(out) * out_scale + 0         (if out_scale > 0: half to even; -0 -> +0)
/// Use -INFINITY / INFINITY for no clamp, (0, INFINITY) for a fused ReLU.
/// Operations are done in this order, unfused, so every path gives the same
/// float bits as the reference.
/// With a_scale = 1, b_scale[n] = s_x * s_w[n] / s_y, bias_i32 = the int32 bias,
/// clamp (-z_y, 255 - z_y) and out_scale = s_y, `out` is ONNX Runtime's
/// QLinearConv/QGemm requantization (MlasRequantizeOutput) followed by
/// DequantizeLinear: (q - z_y) * s_y.
typedef struct {
    int32_t a_zero_point;
    float a_scale;
    const float *b_scale;  ///< N (or C) per-output-channel scales; repeat one value for per-tensor
    const float *bias;     ///< N (or C) floats, or NULL
    float clamp_lo, clamp_hi;
    const int32_t *bias_i32; ///< N (or C) int32 added to the accumulator, or NULL
    float out_scale;         ///< > 0: round half to even and scale (requantize + dequantize); 0: off
} mpq_epilogue;

/// GEMM with the fused epilogue; `out` is [M][N] float, row stride `ldo`.
int mpq_qgemm_u8s8_f32(mpq_kernel_path path, int m, int n, int k,
                       const uint8_t *a, int lda, const void *packed,
                       const mpq_epilogue *ep, float *out, int ldo, int threads);

/// Same, but writes the output transposed, channel-major: out[n * ldo + m]
/// (ldo >= M). With A from `mpq_im2col_u8` (rows = output pixels) this writes
/// a Conv's NCHW output planes directly: out = &y[(img * Cout + g * Cout/g) * OH*OW],
/// ldo = OH * OW.
int mpq_qgemm_u8s8_f32_nchw(mpq_kernel_path path, int m, int n, int k,
                            const uint8_t *a, int lda, const void *packed,
                            const mpq_epilogue *ep, float *out, int ldo, int threads);

// MARK: - Quantize, im2col, depthwise conv

/// ONNX QuantizeLinear to uint8: y = saturate(nearbyint(x / scale) + zero_point)
/// with round-half-to-even (the default rounding mode), saturated to [0, 255].
/// NaN maps to 0. `count` elements, contiguous.
void mpq_quantize_u8(mpq_kernel_path path, const float *x, size_t count,
                     float scale, uint8_t zero_point, uint8_t *y);

// MARK: - Region kernels of the `ort` scheme (float tensors holding dequantized uint8 values)

/// Requantize in place or out of place (`y` may be `x`): y = nearbyint(clamp(x / scale,
/// -zp, 255 - zp)) * scale + 0, i.e. QuantizeLinear then DequantizeLinear (NaN -> the
/// value of q = 0). The reference and the AVX-512 path (used by MPQ_PATH_VNNI) agree bit
/// for bit; the AVX2 path runs the reference.
void mpq_requantize_f32(mpq_kernel_path path, const float *x, size_t count, float scale, uint8_t zp, float *y);

/// The same applied to a + b (`multiply` 0) or a * b (1), elementwise, one float op each.
void mpq_requantize_binary_f32(mpq_kernel_path path, int multiply, const float *a, const float *b, size_t count,
                               float scale, uint8_t zp, float *y);

/// y[i] = table[k], k = nearbyint(x[i] / scale) + zp clamped to [0, 255] (NaN -> 0): a
/// unary op whose input lies on the uint8 grid (scale, zp), as a 256-entry table.
void mpq_lookup_u8grid_f32(mpq_kernel_path path, const float *x, size_t count, float scale, uint8_t zp,
                           const float *table, float *y);

/// Geometry of a 2-D convolution over one NCHW image (batch handled by caller).
typedef struct {
    int channels, height, width;           ///< input C, H, W (all groups)
    int kernel_h, kernel_w;
    int pad_top, pad_left, pad_bottom, pad_right;
    int stride_h, stride_w;
    int dilation_h, dilation_w;
    int group;                             ///< channels % group == 0
} mpq_conv2d_shape;

/// Output height and width of `s` (0 if the geometry is invalid).
int mpq_conv2d_out_h(const mpq_conv2d_shape *s);
int mpq_conv2d_out_w(const mpq_conv2d_shape *s);

/// Builds the GEMM A operand for group `g` of a Conv: `col` is
/// [out_h * out_w][(C/group) * KH * KW] row-major (contiguous, lda = K), rows
/// are output pixels in (oh, ow) order, columns are (c, kh, kw) with c local to
/// the group, matching ONNX weights [Cout][C/group][KH][KW] flattened per
/// output channel. Padding taps read `zero_point`, so they contribute 0 after
/// zero-point correction. `x` is the uint8 image [C][H][W].
void mpq_im2col_u8(const uint8_t *x, const mpq_conv2d_shape *s, int g,
                   uint8_t zero_point, uint8_t *col);

/// im2col with columns in (kh, kw, c) order instead, K index (kh*KW + kw)*(C/g) + c:
/// each tap becomes a 16x16-block transpose, much faster than (c, kh, kw) for
/// KxK convs with C/g >= 16 (below that, blocks are partial and the (c, kh, kw)
/// version is faster). The GEMM's weights must then be in the same order, [Cout][KH][KW][C/g]
/// per group (`mpq_conv_weights_khwc_s8`), before `mpq_pack_b_s8`.
void mpq_im2col_u8_khwc(const uint8_t *x, const mpq_conv2d_shape *s, int g,
                        uint8_t zero_point, uint8_t *col);

/// Reorders one group's Conv weights [cout][cg][kh][kw] to [cout][kh][kw][cg] (for
/// `mpq_im2col_u8_khwc`). `out` must not alias `w`.
void mpq_conv_weights_khwc_s8(const int8_t *w, int cout, int cg, int kh, int kw, int8_t *out);

/// The scalar reference im2col (same contract), for tests and timing.
void mpq_im2col_u8_reference(const uint8_t *x, const mpq_conv2d_shape *s, int g,
                             uint8_t zero_point, uint8_t *col);

/// Direct depthwise conv (group == channels, one filter per channel; docs/depthwise.md):
/// `x` uint8 [C][H][W], `w` int8 [C][KH][KW], `out` float [C][out_h][out_w]
/// with the epilogue applied per channel (b_scale[c], bias[c]). Padding taps
/// read `ep->a_zero_point`. Returns 0, or -1 if `s` is not depthwise.
int mpq_depthwise_conv_u8s8(mpq_kernel_path path, const uint8_t *x,
                            const mpq_conv2d_shape *s, const int8_t *w,
                            const mpq_epilogue *ep, float *out);

// MARK: - uint8 chains of the `ort` scheme (docs/int8-chains.md)
//
// Between INT8 ops the runtime may carry a requantized tensor as its uint8 codes q instead
// of the floats (q - zp) * scale + 0 that the kernels above write; every function here
// gives the codes of exactly what its float counterpart computes.

/// The INT8 GEMM with a requantizing epilogue (ep->out_scale > 0, as for
/// mpq_qgemm_u8s8_f32[_nchw]) writing the codes q = nearbyint(clamped) + out_zero_point
/// instead of (q - out_zero_point) * out_scale. `channel_major` as the _nchw variant.
int mpq_qgemm_u8s8_u8(mpq_kernel_path path, int m, int n, int k, const uint8_t *a, int lda, const void *packed,
                      const mpq_epilogue *ep, uint8_t *out, int ldo, uint8_t out_zero_point, int channel_major,
                      int threads);

/// mpq_depthwise_conv_u8s8 with a requantizing epilogue, writing codes as mpq_qgemm_u8s8_u8.
int mpq_depthwise_conv_u8s8_u8(mpq_kernel_path path, const uint8_t *x, const mpq_conv2d_shape *s, const int8_t *w,
                               const mpq_epilogue *ep, uint8_t *out, uint8_t out_zero_point);
/// The same with the VBMI kernel's channels split over `threads` of the kernel pool (the
/// pool's spinning workers, not a fork per call); the same bytes for every thread count. The
/// AVX2 kernel splits its channels the same way; the reference runs on the calling thread.
int mpq_depthwise_conv_u8s8_u8_threads(mpq_kernel_path path, const uint8_t *x, const mpq_conv2d_shape *s,
                                       const int8_t *w, const mpq_epilogue *ep, uint8_t *out, uint8_t out_zero_point,
                                       int threads);

/// The largest output plane (pixels) for which the AVX2 path runs its depthwise kernel with 16
/// channels in the lanes instead of 16 pixels of one channel; 0 turns it off. Default 56 x 56
/// (env MPQ_INT8_DW_LANES_PIXELS). Returns the previous value. For tests and benchmarks: both
/// kernels give the same bytes.
long mpq_set_depthwise_lanes_pixels(long pixels);

/// Whether the VNNI path's depthwise kernels run their AVX-512 VBMI form (`vpermb`
/// window gathers, docs/depthwise.md): the CPU has VNNI and VBMI. Without VBMI the VNNI
/// path runs the AVX2 depthwise kernels. For tests and benchmarks that report coverage.
int mpq_depthwise_vnni_available(void);

/// DequantizeLinear of codes: y = (x - zp) * scale + 0, bit for bit the floats the
/// requantizing kernels write.
void mpq_dequantize_u8(mpq_kernel_path path, const uint8_t *x, size_t count, float scale, uint8_t zp, float *y);

/// mpq_requantize_binary_f32 on inputs given as codes (each dequantized as above), writing
/// the output's codes.
void mpq_requantize_binary_u8(mpq_kernel_path path, int multiply, const uint8_t *a, float scale_a, uint8_t zp_a,
                              const uint8_t *b, float scale_b, uint8_t zp_b, size_t count, float scale, uint8_t zp,
                              uint8_t *y);

/// `mpq_requantize_binary_u8` split over `threads` (the kernel pool, 64-code units; under
/// 4096 codes or one thread: one call). Same bytes for any split.
void mpq_requantize_binary_u8_threads(mpq_kernel_path path, int multiply, const uint8_t *a, float scale_a, uint8_t zp_a,
                                      const uint8_t *b, float scale_b, uint8_t zp_b, size_t count, float scale, uint8_t zp,
                                      uint8_t *y, int threads);

/// y[i] = table[x[i]].
void mpq_lookup_u8(const uint8_t *x, size_t count, const uint8_t *table, uint8_t *y);

// MARK: - FP32 elementwise

/// ONNX Sigmoid, y may be x. `MPQ_PATH_REFERENCE`: libm expf, 1 / (1 + e^-x) for x >= 0 and
/// e^x / (1 + e^x) below (NaN stays NaN); other paths: the same split with a polynomial
/// exp within a few ulp of expf, vectorised (AVX2 + FMA), and 0 instead of the subnormal
/// results below x = -86.5 (subnormals are ~100x slower to compute with).
void mpq_sigmoid_f32(mpq_kernel_path path, const float *x, size_t count, float *y);

/// Calibration's first pass over one float tensor (range_stats.c): the smallest and largest
/// finite value (a zero one is the array's first zero, as a scalar scan keeps it), the
/// smallest |x|, and counts of finite values, exact zeros and skipped NaN / infinities.
/// min/max/abs_min are +-inf when nothing is finite. Every path gives the same bits.
typedef struct {
    float min, max, abs_min;
    size_t finite, zeros, non_finite;
} mpq_range_stats;
void mpq_range_stats_f32(mpq_kernel_path path, const float *x, size_t count, mpq_range_stats *out);
void mpq_range_stats_f32_reference(const float *x, size_t count, mpq_range_stats *out);

/// What an FP32 Conv applies to its output after the bias (`mpq_conv_epilogue_f32`).
typedef enum {
    MPQ_ACT_NONE = 0,
    MPQ_ACT_CLAMP = 1,  ///< Relu / Clip: min(max(v, lo), hi), NaN stays NaN
    MPQ_ACT_SILU = 2,   ///< v * sigmoid(v), sigmoid as `mpq_sigmoid_f32` on the same path
} mpq_activation;

/// The FP32 Conv epilogue over `rows` rows (output channels) of `cols` values, `ld` apart,
/// in place: `bias[row]` added (when `bias` is not NULL and the value is not 0), then `act`.
/// Bit for bit the unfused bias pass, Relu/Clip and Sigmoid-then-Mul on the same path.
void mpq_conv_epilogue_f32(mpq_kernel_path path, float *y, size_t rows, size_t cols, size_t ld,
                           const float *bias, mpq_activation act, float lo, float hi);

/// FP32 depthwise 3x3 Conv of one plane, undilated: `x` [H][W], `w` the 9 taps row-major,
/// `y` [OH][OW] written (not accumulated); padding taps are skipped. Each output sums the
/// taps inside the input in (kh, kw) order from +0 with one fused multiply-add per tap, then
/// adds +0 (a -0 sum reads +0): every path
/// (AVX2 vectors for strides 1 and 2, scalar otherwise) gives the reference's bits.
void mpq_depthwise3x3_f32(mpq_kernel_path path, const float *x, int H, int W, const float *w, int stride_h,
                          int stride_w, int pad_top, int pad_left, int OH, int OW, float *y);

/// FP32 depthwise Conv of one image, any kernel size, stride, dilation and pads (docs/depthwise.md):
/// `x` [C][H][W], `w` [C][KH][KW], `y` [C][OH][OW] written (no bias). group must equal
/// channels. The same arithmetic as `mpq_depthwise3x3_f32` (taps inside the input in
/// (kh, kw) order from +0, one fused multiply-add each, then + 0), so every path gives the reference's
/// bits: the VNNI path runs an AVX-512 window-gather kernel on planes narrower than 16
/// outputs, the VNNI and AVX2 paths the 3x3 plane kernel on other undilated 3x3 convs, and
/// the scalar reference otherwise. Returns 0, or -1 if `s` is not depthwise.
int mpq_depthwise_f32(mpq_kernel_path path, const float *x, const mpq_conv2d_shape *s, const float *w, float *y);

/// FP32 depthwise 3x3 (undilated, stride 1 or 2 across) of one image with 16 channels in the
/// vector lanes (depthwise_f32_lanes.c, docs/depthwise.md), NCHW in and out, the epilogue
/// fused: `y` = `mpq_depthwise_f32` then `mpq_conv_epilogue_f32(bias, act, lo, hi)`, the same
/// bits. `bias` may be NULL; `act` NONE or CLAMP (lo <= hi). Splits (16-channel block, row
/// strip) units over `threads` threads of the kernel pool (mpq_run_ranges: a contiguous run of
/// channels per thread). The AVX2 path runs the same kernel with 8 channels in the lanes
/// (depthwise_f32_lanes_avx2.c) for output planes up to `mpq_set_fp32_depthwise_lanes_pixels`
/// pixels (default all), larger ones on the padded-plane kernel (depthwise_f32_padded_avx2.c: a plane per
/// channel, padded and split into stride phases, 16 outputs per block, channel ranges over
/// the threads); the same bits. Returns 0, or -1
/// writing nothing when the path is the reference, the geometry is not this case, a
/// weight is not finite, `act` is SILU, or MPQ_FP32_DW_LANES=0.
int mpq_depthwise3x3_f32_lanes(mpq_kernel_path path, const float *x, const mpq_conv2d_shape *s, const float *w,
                               const float *bias, mpq_activation act, float lo, float hi, float *y, int threads);

/// The largest output plane (pixels) for which the AVX2 path of `mpq_depthwise3x3_f32_lanes`
/// runs its 8-lane kernel instead of the padded-plane one; 0 turns it off. Default: every
/// plane (env MPQ_FP32_DW_LANES_PIXELS). Returns the previous value. For tests and benchmarks: both
/// kernels give the same bits.
long mpq_set_fp32_depthwise_lanes_pixels(long pixels);

// MARK: - Benchmark helpers

/// Runs `iterations` of a loop of independent vpdpbusd (512-bit) chains, the
/// instruction-bound VNNI peak. Returns integer ops done (2 per u8*s8 MAC), or 0
/// if the CPU lacks VNNI. The caller times it.
double mpq_vnni_peak_ops(long iterations);

/// Same with 256-bit vpdpbusd (AVX512-VL): some CPUs run 512-bit ops as two halves.
double mpq_vnni256_peak_ops(long iterations);

// MARK: - INT8 Conv through the GEMM

/// One image and group `g` of an INT8 Conv: im2col (`khwc` selects the (kh, kw, c) column
/// order, weights packed to match) + packed GEMM + the fused epilogue, written channel-major
/// (NCHW) to `out` (floats, as mpq_qgemm_u8s8_f32_nchw) or `out_u8` (codes, as
/// mpq_qgemm_u8s8_u8 with channel_major 1): exactly one of the two, pointing at the group's
/// first output channel, channel stride = output pixels. `x_zero_point` fills the padding and
/// must equal ep->a_zero_point. The im2col is done a block of output rows at a time into a
/// small per-thread buffer that the GEMM reads while it is still in L2, never the whole
/// [pixels][K] matrix, and the blocks split over `threads` (im2col included); an image with
/// too few blocks to share falls back to one whole im2col and a split GEMM. Same bytes as
/// mpq_im2col_u8[_khwc] + the GEMM for every block size and thread count. Returns 0, or -1
/// on bad arguments.
int mpq_qconv2d_u8s8(mpq_kernel_path path, const uint8_t *x, const mpq_conv2d_shape *s, int g, int khwc,
                     uint8_t x_zero_point, const void *packed, const mpq_epilogue *ep, float *out, uint8_t *out_u8,
                     uint8_t out_zero_point, int threads);

/// mpq_qconv2d_u8s8 on its implicit-GEMM path alone (no im2col; qgemm_conv_implicit.c), for
/// tests: the VNNI path or the AVX2 path (vpmaddubsw with 7-bit weights, int16 channel pairs
/// otherwise), `khwc` weights, stride 1 or 2 (both ways alike), C / group a multiple of 4,
/// padded width / stride of 6+, at any output width (mpq_qconv2d_u8s8 takes it only on wide
/// planes). The same bytes as mpq_qconv2d_u8s8. Returns 0, or -1 (nothing written) where it
/// does not apply.
int mpq_qconv2d_u8s8_implicit(mpq_kernel_path path, const uint8_t *x, const mpq_conv2d_shape *s, int g, int khwc,
                              uint8_t x_zero_point, const void *packed, const mpq_epilogue *ep, float *out,
                              uint8_t *out_u8, uint8_t out_zero_point, int threads);

/// mpq_qconv2d_u8s8 on its channel-vector path alone (qgemm_conv_cv.c: output channels in the
/// vector lanes, a padded channels-last copy of the input, no im2col), for tests and A/B: the
/// VNNI path, or MPQ_PATH_REFERENCE for its scalar form (the same copy, sums and epilogue one
/// value at a time); `khwc` weights or a 1x1 kernel, C / group a multiple of 4, any stride,
/// dilation and padding, at any plane size (mpq_qconv2d_u8s8 takes it only on small planes).
/// The same bytes as mpq_qconv2d_u8s8. Returns 0, or -1 (nothing written) where it does not apply.
int mpq_qconv2d_u8s8_cv(mpq_kernel_path path, const uint8_t *x, const mpq_conv2d_shape *s, int g, int khwc,
                        uint8_t x_zero_point, const void *packed, const mpq_epilogue *ep, float *out, uint8_t *out_u8,
                        uint8_t out_zero_point, int threads);
/// Whether a shape is one the channel-vector path takes (any plane size).
int mpq_qconv2d_cv_applies(const mpq_conv2d_shape *s, int khwc);

/// The pointwise engine's codes output on 64-pixel blocks (qgemm_pointwise_blocks.c, the
/// default) or on the 16-pixel panels of the float output (0): the same bytes, for tests and
/// A/B. 1 on, 0 off, -1 back to the environment's choice (MPQ_INT8_POINTWISE_BLOCKS=0: off).
/// Returns the previous setting (-1 if none). Process-wide; not for flipping while kernels run.
int mpq_set_int8_pointwise_blocks(int mode);

/// Where the AVX2 path runs windowed Convs as an indirect GEMM from a channels-last copy
/// (qgemm_conv_indirect.c) instead of the im2col or the implicit conv: 1 wherever it applies (the
/// default), 0 never; -1 back to the environment's choice (MPQ_INT8_AVX2_INDIRECT=0: never). The
/// same bytes either way, for tests and A/B. Returns the previous
/// setting (-1 if none). Process-wide; not for flipping while kernels run.
int mpq_set_int8_avx2_indirect(int mode);

/// Few-channel (c, kh, kw) im2col (im2col_padded.c; what mpq_qconv2d_u8s8 runs for a stem
/// with fewer than 16 channels per group, K of 16 to 1024, stride_w 1 or 2): the group's
/// planes copied once with their padding written out into `scratch`
/// (mpq_im2col_padded_bytes(s) bytes), then 16 pixels x 16 columns per byte transpose.
/// Same contract and bytes as mpq_im2col_u8; returns -1 (nothing written) for a shape it
/// does not take.
size_t mpq_im2col_padded_bytes(const mpq_conv2d_shape *s);
int mpq_im2col_u8_padded(const uint8_t *x, const mpq_conv2d_shape *s, int g, uint8_t zero_point, uint8_t *col,
                         uint8_t *scratch);

/// Per-thread switch (thread_scope.c): while on, every kernel split over the pool runs its
/// tasks one after another on the calling thread, and the Swift runtime's `coreCount` reads 1
/// on that thread. Used by tasks that already own a core (the session's image chains).
void mpq_set_single_threaded(int on);
int mpq_single_threaded(void);

/// The CPUs this process may run on (Linux: its affinity mask, as `taskset` or a cpuset
/// sets it); 0 where that cannot be read. The Swift `processCoreCount` takes the smaller of
/// this and Foundation's count, which ignores the mask.
int mpq_affinity_cpu_count(void);

// MARK: - AMX for the INT8 GEMM (qgemm_amx.c, docs/int8-amx.md)

/// 1 if the CPU has AMX-TILE and AMX-INT8 (and the VNNI path) and the OS granted this
/// process the tile data state (Linux arch_prctl ARCH_REQ_XCOMP_PERM, asked once).
int mpq_qgemm_amx_available(void);

/// The INT8 GEMM engine of the VNNI path: -1 auto (the environment variable
/// `MPQ_QGEMM_AMX=0|1`, read once, else 3 where AMX is available), 0 the VNNI kernel, 1 AMX
/// tiles for every GEMM and every im2col Conv (regions too small to repay the tile setup,
/// under 2^18 multiply-adds, and the last rows % 16 still run the VNNI tiles), 2 AMX tiles on
/// every region however small (tests), 3 (MPQ_AMX_PER_CONV) AMX for MatMul/Gemm as 1, and
/// each Conv choosing AMX or a VNNI kernel from its shape (mpq_qconv2d_engine).
/// Returns 0, or -1 (changing nothing) for 1-3 on a machine without AMX. Same bytes either
/// way; process-wide, not meant to be flipped while kernels run on other threads.
int mpq_set_qgemm_amx(int mode);

/// Whether mpq_qgemm_* on `path` run on AMX tiles now (mpq_qconv2d_u8s8: where its
/// engine, mpq_qconv2d_engine, is MPQ_QCONV_IM2COL_AMX).
int mpq_qgemm_uses_amx(mpq_kernel_path path);

/// The INT8 GEMM engine `path` runs now: "amx", "vnni", "avx2" or "reference".
const char *mpq_qgemm_engine_name(mpq_kernel_path path);

/// mpq_set_qgemm_amx's mode 3, the default on AMX machines: each Conv picks its engine.
#define MPQ_AMX_PER_CONV 3

/// The AMX mode in effect (mpq_set_qgemm_amx's 0-3, after the environment): 0 where AMX is
/// not available.
int mpq_qgemm_amx_mode(void);

/// The kernel mpq_qconv2d_u8s8 runs for one group of a Conv of shape `s` with `n` output
/// channels per group and (kh, kw, c) weights if `khwc` (docs/int8-amx.md, "Engine per
/// Conv"): chosen from the shape alone, so one layer runs the same kernel on every call.
typedef enum {
    MPQ_QCONV_IM2COL = 0,     // blocked im2col + the path's GEMM without AMX
    MPQ_QCONV_POINTWISE = 1,  // 1x1 stride-1 conv on the NCHW planes (qgemm_pointwise.c, _avx2.c)
    MPQ_QCONV_IMPLICIT = 2,   // implicit-GEMM conv, no im2col (qgemm_conv_implicit.c, _avx2.c)
    MPQ_QCONV_IM2COL_AMX = 3, // blocked im2col + the AMX GEMM (qgemm_amx.c)
    MPQ_QCONV_CV = 4,         // channel-vector VNNI tiles on small planes (qgemm_conv_cv.c)
    MPQ_QCONV_INDIRECT = 5    // the AVX2 GEMM reading taps from a channels-last copy (qgemm_conv_indirect.c)
} mpq_qconv_engine;
mpq_qconv_engine mpq_qconv2d_engine(mpq_kernel_path path, const mpq_conv2d_shape *s, int n, int khwc);

/// The engine's name: "im2col+vnni" (+avx2, +reference), "pointwise" ("pointwise+avx2" on the
/// AVX2 path), "implicit", "im2col+amx", "cv+vnni".
const char *mpq_qconv2d_engine_name(mpq_kernel_path path, mpq_qconv_engine engine);

/// The engine the last INT8 kernel call on the calling thread ran, as the entry point found it
/// (fallbacks included): mpq_qconv2d_u8s8 "pointwise", "pointwise+avx2", "implicit", "im2col+vnni",
/// "im2col+amx" (+avx2, +reference); mpq_depthwise_conv_u8s8(_u8) "depthwise+vnni" (the VBMI kernel),
/// "depthwise+avx2", "depthwise+reference"; mpq_qgemm_u8s8(_f32, _f32_nchw, _u8) "gemm+amx",
/// "gemm+vnni", "gemm+avx2", "gemm+reference". NULL before any. A static string. For
/// `mpq profile`'s engine column: a layer reads it on its own thread right after its call.
const char *mpq_last_engine(void);
/// fn(arg, k) once for each chunk k in 0..chunks-1, on up to `threads` threads of the kernel
/// pool (mpq_pool_run; the caller among them, inline while mpq_set_single_threaded is on),
/// each claiming the next unclaimed chunk: a late or descheduled worker holds the caller up
/// by one chunk at most. For Swift code that splits work the way the kernels do. `fn` must
/// not itself call into the pool (calls are serialised).
void mpq_run_chunks(int threads, int chunks, void (*fn)(void *arg, int chunk), void *arg);
/// Runs fn(arg, unit, task) for every unit in [0, units) on `threads` pool tasks, each task
/// first taking its own contiguous range of the units in order, then units from the back of
/// the other tasks' ranges (thread_pool.c, "Contiguous ranges"). `task` indexes per-task
/// scratch. MPQ_POOL_RANGES=0 (read once) claims units one by one from a shared counter
/// instead, the split before s14, for A/B; the units and so the output bytes are the same.
void mpq_run_ranges(int threads, int units, void (*fn)(void *arg, int unit, int task), void *arg);

#endif
