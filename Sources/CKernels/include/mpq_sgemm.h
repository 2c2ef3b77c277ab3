#ifndef MPQ_SGEMM_H
#define MPQ_SGEMM_H
// mpq's own FP32 GEMM for Conv (docs/fp32-gemm.md): weights packed once per session into
// the micro-kernel's panel layout, the image packed straight into column panels (im2col
// fused into the packing, no im2col buffer), a register-tiled FMA micro-kernel (AVX-512,
// AVX2 + FMA, scalar reference), the Conv epilogue (`mpq_conv_epilogue_f32`) applied to
// each tile right after its last K block, and the split over the kernel pool.
//
// Every path computes each output as the same chain of fused multiply-adds in k order,
// starting from +0 (`fmaf(w, x, acc)` for k = 0, 1, ..., K-1), so all paths, all
// blockings and all thread counts give the reference's bits. The sum order differs from
// OpenBLAS's, so against OpenBLAS (or a naive double sum) results agree to float
// rounding only (docs/fp32-gemm.md states the tolerance the tests use).
#include "mpq_kernels.h"

/// Output channels per micro-tile (the broadcast operand).
#define MPQ_SGEMM_MR 6
/// Output pixels per micro-tile: four 16-float vectors (the last panel of a row of
/// panels may be 16, 32 or 48 wide).
#define MPQ_SGEMM_NR 64

/// Packed Conv weights: this header (64 bytes), then per group `mg_padded / MR` panels,
/// each [k][MR] floats (MR consecutive output channels for each k), zero in the padding
/// rows. Position-independent (no pointers), so it can be copied or cached.
typedef struct {
    uint32_t magic;      ///< MPQ_SCONV_WEIGHTS_MAGIC
    int32_t m, k, group; ///< all output channels, K per group (C/group * KH * KW), groups
    int32_t mg, mg_padded;
    int32_t cv_layout;  ///< channel-vector weights only: MPQ_SCONV_CV_ROWS or MPQ_SCONV_CV_SLICED
    int32_t flags;      ///< channel-vector weights only: MPQ_SCONV_WEIGHTS_TAME when it holds
    int32_t reserved[8];
} mpq_sconv_weights_header;

/// Every weight is finite and, where nonzero, at least 2^-50 in magnitude: with inputs of the
/// same kind no partial sum of the Conv can be -0 and no padding tap can give NaN, so a tap on
/// the zero padding adds nothing and the blocked kernel may skip it with the same bits
/// (docs/fp32-blocked-layout.md "s35").
#define MPQ_SCONV_WEIGHTS_TAME 1

/// 1 when no value of x[0..n) is nonzero and under 2^-50 in magnitude (and, with `finite`, none
/// is infinite or NaN): the guard under which a skipped padding tap keeps the bits. The scalar
/// reference, or the AVX-512 scan where `path` resolves to it; the same answer.
int mpq_f32_tame(mpq_kernel_path path, const float *x, size_t n, int finite);

#define MPQ_SCONV_WEIGHTS_MAGIC 0x3346504Du /* "MPF3" */

/// Bytes `mpq_sconv_pack_weights` needs for M output channels, K per group and `group` groups.
size_t mpq_sconv_pack_weights_size(int m, int k, int group);

/// Packs ONNX Conv weights [M][C/group][KH][KW] (row-major, read as [M][K]) once.
/// Returns 0, or -1 on bad sizes (M not divisible by `group`).
int mpq_sconv_pack_weights(const float *w, int m, int k, int group, void *packed);

/// 2-D convolution of `images` NCHW images: x [images][C][H][W], y [images][M][OH][OW]
/// (OH, OW from `mpq_conv2d_out_h/w`), written, not accumulated. `packed_w` from
/// `mpq_sconv_pack_weights` with K = C/group * KH * KW and the same M and group. Each
/// output block then gets `mpq_conv_epilogue_f32(path, ..., bias + channel, act, lo, hi)`
/// (bias may be NULL). `threads` > 1 splits images over the kernel pool, or one image's
/// pixels (output channels when there are few pixels). Returns 0, or -1 on bad arguments.
int mpq_sconv2d_f32(mpq_kernel_path path, const float *x, int images, const mpq_conv2d_shape *s,
                    const void *packed_w, const float *bias, mpq_activation act, float lo, float hi,
                    float *y, int threads);

/// The packed path alone (im2col fused into the packing; every stride): what
/// `mpq_sconv2d_f32` runs for Convs the direct path does not take, callable directly so
/// tests and benchmarks can compare the two. Same arguments and result.
int mpq_sconv2d_f32_packed(mpq_kernel_path path, const float *x, int images, const mpq_conv2d_shape *s,
                           const void *packed_w, const float *bias, mpq_activation act, float lo, float hi,
                           float *y, int threads);

/// Whether the direct path takes `s`: strides 1-4 (any kernel, pads, dilation, groups)
/// with the padded image within int range.
int mpq_sconv2d_f32_direct_applies(const mpq_conv2d_shape *s);

/// How the direct path splits one image over `threads` (its split when images < threads), for
/// tests: *mode (1 column panels of 64, 2 weight panels, 3 one column band per thread), and per
/// unit, in unit order (thread t first runs its contiguous range of them), five ints: group,
/// output channels [r0, r1) within the group, flat columns [f0, f1) (output row oh * Wq + ow on
/// the padded width, Wq = ceil((W + pads) / stride_w)). Writes at most `cap` units; returns the
/// unit count, or -1 where the direct path does not take `s` with these weights.
int mpq_sconv2d_f32_direct_split(mpq_kernel_path path, const mpq_conv2d_shape *s, const void *packed_w, int threads,
                                 int *mode, int *parts, int cap);

/// The direct path (docs/fp32-gemm.md): no packing of the image; the micro-tile reads its
/// columns from a zero-padded copy of the image, split into stride phases (from the image
/// itself for an unpadded 1x1 stride-1 kernel), at a per-k offset. Same arguments as
/// `mpq_sconv2d_f32` and the same output bits as the packed path; -1 where
/// `mpq_sconv2d_f32_direct_applies` is 0. `mpq_sconv2d_f32` uses it wherever it applies
/// unless MPQ_FP32_CONV_DIRECT=0.
int mpq_sconv2d_f32_direct(mpq_kernel_path path, const float *x, int images, const mpq_conv2d_shape *s,
                           const void *packed_w, const float *bias, mpq_activation act, float lo, float hi,
                           float *y, int threads);

/// A residual Add fused into an FP32 Conv (ResNet's `relu(conv(x) + shortcut)`): after the
/// Conv's own epilogue, y = shortcut + y (`shortcut_first`) or y + shortcut, then with `relu`
/// `r < 0 ? 0 : r`, by `mpq_binary_f32`, the call the separate Add (and Add + Relu pair)
/// makes: the same bits. `shortcut` has y's layout [images][M][OH][OW]; it must not alias y.
typedef struct {
    const float *shortcut;
    int shortcut_first;  ///< the Add's first input is the shortcut (else the Conv's output)
    int relu;
} mpq_sconv_residual;

/// `mpq_sconv2d_f32` with `residual` (NULL: none) applied to each block of output while it is
/// in cache (direct path), or in one pass after the Conv (packed path).
int mpq_sconv2d_f32_residual(mpq_kernel_path path, const float *x, int images, const mpq_conv2d_shape *s,
                             const void *packed_w, const float *bias, mpq_activation act, float lo, float hi,
                             const mpq_sconv_residual *residual, float *y, int threads);

/// The direct path with `residual` applied per chunk of output, right after its tiles.
int mpq_sconv2d_f32_direct_residual(mpq_kernel_path path, const float *x, int images, const mpq_conv2d_shape *s,
                                    const void *packed_w, const float *bias, mpq_activation act, float lo, float hi,
                                    const mpq_sconv_residual *residual, float *y, int threads);

/// Channel-vector Conv for small planes (sconv_cv.c, docs/fp32-gemm.md "Channel-vector
/// tiles"): 16 output channels per vector, output pixels broadcast from the NCHW image (a
/// zero-padded copy when the Conv pads; no stride phases, no junk lanes). Same output bits
/// as the direct and packed paths (the same FMA chain per output).
/// Its weights: this header (magic MPQ_SCONV_CV_WEIGHTS_MAGIC, mg_padded = mg rounded up to
/// 16), then per group ceil(mg / 64) blocks of k x 16 nv floats (nv = the block's vectors,
/// 4 but in the last block), block b at b * k * 64 floats; 64-byte aligned. Inside a block, by
/// the header's cv_layout:
/// - MPQ_SCONV_CV_ROWS: [k][16 nv], one row of every vector per k (the AVX-512 tile's loads);
/// - MPQ_SCONV_CV_SLICED: per K block of MPQ_SCONV_CV_KC (the last one shorter, kb floats
///   deep), [nv][kb][16]: each vector's weights for the block contiguous, what the AVX2 part
///   kernel reads in place (it copied them out of the rows per call: docs/fp32-gemm.md,
///   "Sliced channel-vector weights").
#define MPQ_SCONV_CV_WEIGHTS_MAGIC 0x3456504Du /* "MPV4" */
#define MPQ_SCONV_CV_ROWS 0
#define MPQ_SCONV_CV_SLICED 1
#define MPQ_SCONV_CV_KC 128

/// Output pixels (OH * OW) up to which `mpq_sconv2d_f32_cv_preferred` picks the kernel for
/// every Conv (4x this for some: see there).
#define MPQ_SCONV_CV_MAX_PIXELS 256

/// Bytes of the channel-vector weights for M output channels, K per group, `group` groups.
size_t mpq_sconv_cv_weights_size(int m, int k, int group);

/// Repacks `mpq_sconv_pack_weights` output (`packed_w`) into the channel-vector layout
/// (`cv`, `mpq_sconv_cv_weights_size` bytes, 64-byte aligned), rows. Returns 0, or -1.
int mpq_sconv_cv_pack_weights(const void *packed_w, void *cv);
/// The same in a given layout (MPQ_SCONV_CV_ROWS or MPQ_SCONV_CV_SLICED). Returns 0, or -1.
int mpq_sconv_cv_pack_weights_layout(const void *packed_w, int layout, void *cv);
/// The layout this CPU's kernel reads fastest: SLICED where the AUTO path is AVX2 (unless
/// MPQ_FP32_CV_SLICED=0, read once), else ROWS.
int mpq_sconv_cv_host_layout(void);

/// Whether the channel-vector kernel can run `s` (any stride, pad, dilation, group; sizes
/// within int).
int mpq_sconv2d_f32_cv_applies(const mpq_conv2d_shape *s);

/// Whether `mpq_sconv2d_f32` callers should run `s` (M output channels) on the channel-vector
/// kernel: the AVX-512 path, output planes up to P = MPQ_SCONV_CV_MAX_PIXELS pixels, or up to
/// 4P for Convs that are not 1x1 stride 1 with M / group a multiple of 16 (16P where M / group
/// is 32 or more: 56x56 3x3 layers); never 1x1 stride-1
/// Convs with fewer than 128 input channels per group; when one image is split over
/// `threads` > 1 (images < threads), also up to 64P for any Conv but 1x1 stride 1, and 1x1
/// stride-1 Convs only on planes up to MPQ_FP32_CONV_CV_PW_PIXELS (default 64: 7x7, 8x8) with
/// M / group >= 256. On the AVX2 path (s21): output planes up to 28x28 with M / group a
/// multiple of 16, 1x1 Convs only onto planes up to 7x7 (stride 1) or 14x14 (strided);
/// MPQ_FP32_CONV_CV_AVX2=0 never, =2 always (read once). Nothing on other paths, or with
/// MPQ_FP32_CONV_CV=0 (read once; the A/B switch). MPQ_FP32_CONV_CV_PIXELS=N sets P.
int mpq_sconv2d_f32_cv_preferred(mpq_kernel_path path, const mpq_conv2d_shape *s, int m, int images, int threads);

/// The channel-vector Conv: `mpq_sconv2d_f32_residual`'s arguments with the channel-vector
/// weights. The AVX-512 tile on the AVX-512 path, whole parts in K blocks on the AVX2 path
/// (sconv_cv_avx2.c), the scalar reference tile on others; the same bits on every path.
/// Returns 0, or -1 on bad arguments.
int mpq_sconv2d_f32_cv(mpq_kernel_path path, const float *x, int images, const mpq_conv2d_shape *s, const void *cv_w,
                       const float *bias, mpq_activation act, float lo, float hi, const mpq_sconv_residual *residual, float *y,
                       int threads);

/// Channel-blocked activations (docs/fp32-blocked-layout.md): one image of C channels is
/// [ceil(C / 16)][H][W][16] floats, channel c at block c / 16, lane c % 16; lanes past C are +0.
/// Floats per blocked image (0 for an empty shape).
size_t mpq_blocked_image_floats(int channels, int h, int w);

/// NCHW `images` x [channels][h][w] -> blocked, and back (lanes past C dropped). AVX-512
/// on the AVX-512 path, a scalar loop on the others; the same values either way. 0, or -1.
int mpq_reorder_to_blocked_f32(mpq_kernel_path path, const float *x, int images, int channels, int h, int w, float *y);
int mpq_reorder_from_blocked_f32(mpq_kernel_path path, const float *x, int images, int channels, int h, int w, float *y);

/// Whether the channel-blocked Conv can run `s`: the channel-vector kernel's cases with group 1.
int mpq_sconv2d_f32_blocked_applies(const mpq_conv2d_shape *s);

/// Whether a chain should run `s` blocked on `path` (the kernel applies and is the faster
/// one there): always on AVX-512; on AVX2 1x1 stride-1 Convs and others with small inputs;
/// never on the scalar reference.
int mpq_sconv2d_f32_blocked_preferred(mpq_kernel_path path, const mpq_conv2d_shape *s);

/// The channel-blocked Conv (sconv_blocked.c): `mpq_sconv2d_f32_cv`'s arguments (the channel-
/// vector weights) with x, y and the residual's shortcut blocked. Output bytes: the blocked
/// form of `mpq_sconv2d_f32_cv`'s output on the same path, for every input and weight.
/// Returns 0, or -1 on bad arguments.
int mpq_sconv2d_f32_blocked(mpq_kernel_path path, const float *x, int images, const mpq_conv2d_shape *s, const void *cv_w,
                            const float *bias, mpq_activation act, float lo, float hi, const mpq_sconv_residual *residual,
                            float *y, int threads);

/// The same with x in NCHW ([images][C][H][W]); y and the shortcut blocked: the first Conv of a
/// blocked run reading an image of few channels without a reorder. Same output bytes.
int mpq_sconv2d_f32_blocked_from_nchw(mpq_kernel_path path, const float *x, int images, const mpq_conv2d_shape *s,
                                      const void *cv_w, const float *bias, mpq_activation act, float lo, float hi,
                                      const mpq_sconv_residual *residual, float *y, int threads);

/// Whether `mpq_depthwise3x3_f32_blocked` takes `s`: depthwise (group = channels, one output
/// channel each), 3x3, undilated, stride 1 or 2 across, any stride down, pads >= 0.
int mpq_depthwise3x3_f32_blocked_applies(const mpq_conv2d_shape *s);

/// FP32 depthwise 3x3 on blocked activations (depthwise_f32_blocked.c): x and y blocked,
/// `w` [C][3][3], the epilogue fused (`bias` may be NULL; `act` NONE or CLAMP with lo <= hi).
/// Output bytes: the blocked form of `mpq_depthwise3x3_f32_lanes`'s (so of the reference and
/// `mpq_conv_epilogue_f32`), lanes past C +0. AVX-512 on the VNNI path, the scalar reference
/// on others. Fewer images than threads split by bands of output rows (each thread all
/// blocks of its band). Returns 0, or -1 writing nothing for bad arguments, a shape it does
/// not take, SILU, or a weight that is not finite (the caller runs the NCHW kernels).
int mpq_depthwise3x3_f32_blocked(mpq_kernel_path path, const float *x, int images, const mpq_conv2d_shape *s, const float *w,
                                 const float *bias, mpq_activation act, float lo, float hi, float *y, int threads);

#endif
