#ifndef MPQ_INTERNAL_H
#define MPQ_INTERNAL_H
#include <math.h>
// Private to CKernels: the per-path entry points behind the public API, and the
// scalar epilogue every path must reproduce bit for bit.
#include "mpq_kernels.h"
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

// MARK: - Tables by Conv geometry, per thread

// Kernels that derive a table from a Conv's geometry alone (the VNNI depthwise gather plan,
// the blocked FP32 Conv's tap offsets) keep their last 32 in a `_Thread_local` cache of the
// caller's: rebuilt on every call they were 2-4% of a small model's batch-1 run. A thread
// reads and evicts only its own entries, so a table lives through the call that found it.
enum { MPQ_GEOMETRY_CACHE = 32 };
typedef struct {
    struct {
        mpq_conv2d_shape s;
        int variant;                 // what else the table depends on (0 when nothing)
        void *table;                 // NULL: empty
        void (*release)(void *);
    } entry[MPQ_GEOMETRY_CACHE];
    int next;
} mpq_geometry_cache;

/// The table kept for (`s`, `variant`), or NULL. `mpq_conv2d_shape` is all int32 fields, so
/// memcmp compares geometries.
static inline void *mpq_geometry_cache_find(const mpq_geometry_cache *c, const mpq_conv2d_shape *s, int variant) {
    for (int i = 0; i < MPQ_GEOMETRY_CACHE; i++)
        if (c->entry[i].table && c->entry[i].variant == variant && memcmp(&c->entry[i].s, s, sizeof *s) == 0)
            return c->entry[i].table;
    return NULL;
}

/// Keeps `table` for (`s`, `variant`), evicting the oldest entry (freed with its `release`),
/// and returns it.
static inline void *mpq_geometry_cache_put(mpq_geometry_cache *c, const mpq_conv2d_shape *s, int variant, void *table,
                                           void (*release)(void *)) {
    const int i = c->next;
    c->next = (c->next + 1) % MPQ_GEOMETRY_CACHE;
    if (c->entry[i].table) c->entry[i].release(c->entry[i].table);
    c->entry[i].s = *s;
    c->entry[i].variant = variant;
    c->entry[i].table = table;
    c->entry[i].release = release;
    return table;
}

_Static_assert(sizeof(mpq_packed_b_header) == 64, "packed-B header is one cache line");
_Static_assert(MPQ_PACK_N * MPQ_PACK_K == 64, "one packed group is one 512-bit vpdpbusd operand");

/// Where an indirect job's A rows lie (the AVX2 GEMM only; qgemm_conv_indirect.c): row m is
/// output pixel p = ind_p0 + m of a Conv whose group input was copied channels-last and padded,
/// xh[Hp][Wp][C]. Its K = taps x C bytes are, tap by tap, the C bytes at xh + origin(p) +
/// toff[t]: the (kh, kw, c) im2col row, read where it lies instead of built.
#define MPQ_INDIRECT_MAX_TAPS 64
typedef struct {
    const uint8_t *xh;
    int ow, c, taps;             ///< output width, channels (a multiple of 4), kernel taps
    size_t row_step, col_step;   ///< bytes between the window origins of output rows / columns
    int toff[MPQ_INDIRECT_MAX_TAPS];  ///< byte offset of tap (kh, kw) from a window origin
} mpq_gemm_indirect;

/// One GEMM call, resolved: what every path's region function needs.
typedef struct {
    int m, n, k, kp;                 ///< kp = k rounded up to 4
    const uint8_t *a;
    int lda;
    const int8_t *bdata;             ///< packed groups, panel p at bdata + p * kp * 16
    const int32_t *colsum;           ///< n_padded entries
    int32_t za;
    int32_t *c;                      ///< int32 output, or NULL when `out` is used
    int ldc;
    const mpq_epilogue *ep;          ///< used when c == NULL
    float *out;
    int ldo;
    int out_channel_major;           ///< out[n * ldo + m] instead of out[m * ldo + n]
    uint8_t *out_u8;                 ///< uint8 output instead of `out` (same indexing), or NULL:
                                     ///< the epilogue then has out_scale 1 and stores v + out_zp
    int32_t out_zp;
    int b_pairs_fit_i16;             ///< the packed B's pairs_fit_i16 (0 under MPQ_INT8_AVX2_MADDUBS=0):
                                     ///< the AVX2 kernels may use vpmaddubsw
    const mpq_gemm_indirect *ind;    ///< A's rows read through this instead of `a` (AVX2 region only), or NULL
    int ind_p0;                      ///< the output pixel of row 0 when `ind` is set
} mpq_gemm_job;

/// Checks a packed-B buffer against N and K and returns its parts; -1 if it does not match.
int mpq_packed_b_view(const void *packed, int n, int k, const int8_t **data,
                      const int32_t **colsum, int *kp, int *pairs_fit_i16);
/// Sets a filled packed buffer's pairs_fit_i16: 1 when every (k even, k + 1) pair of every
/// column has |b0| + |b1| <= 128. Every packer calls it last.
void mpq_packed_b_note_pairs(void *packed);

/// Computes rows [m0, m1) x 16-column panels [p0, p1) of a job.
typedef void (*mpq_gemm_region_fn)(const mpq_gemm_job *j, int m0, int m1, int p0, int p1);

void mpq_gemm_region_reference(const mpq_gemm_job *j, int m0, int m1, int p0, int p1);
void mpq_gemm_region_avx2(const mpq_gemm_job *j, int m0, int m1, int p0, int p1);
void mpq_gemm_region_vnni(const mpq_gemm_job *j, int m0, int m1, int p0, int p1);

/// Most tasks one mpq_pool_run call runs; callers must not ask for more.
#define MPQ_POOL_MAX 64

/// Runs fn(arg, 0..tasks-1) in parallel on a persistent worker pool (task 0 on
/// the calling thread) and returns when all are done. Calls are serialised.
/// tasks <= MPQ_POOL_MAX.
void mpq_pool_run(int tasks, void (*fn)(void *arg, int task), void *arg);

/// Records, for this thread, the engine an INT8 Conv/GEMM entry point is running (a static
/// name; mpq_last_engine returns it).
void mpq_note_engine(const char *name);

void mpq_quantize_u8_reference(const float *x, size_t count, float scale, uint8_t zp, uint8_t *y);
void mpq_quantize_u8_avx2(const float *x, size_t count, float scale, uint8_t zp, uint8_t *y);
void mpq_quantize_u8_avx512(const float *x, size_t count, float scale, uint8_t zp, uint8_t *y);

void mpq_depthwise_reference(const uint8_t *x, const mpq_conv2d_shape *s, const int8_t *w,
                             const mpq_epilogue *ep, float *out, uint8_t *out_u8, int32_t out_zp);
/// mpq_depthwise_reference on channels [c0, c1) of a depthwise call over all of `s`'s channels
/// (the AVX2 kernels' fallback when their scratch cannot be allocated).
void mpq_depthwise_reference_channels(const uint8_t *x, const mpq_conv2d_shape *s, const int8_t *w,
                                      const mpq_epilogue *ep, float *out, uint8_t *out_u8, int32_t out_zp, int c0, int c1);
/// The AVX2 kernel (depthwise_avx2.c), channels split over `threads` of the kernel pool
/// (the same bytes for every count).
/// The AVX2 depthwise kernel with 16 channels in the lanes (depthwise_lanes_avx2.c), for small
/// planes; -1 (nothing written) for more than 64 taps or an empty output.
int mpq_depthwise_lanes_avx2_threads(const uint8_t *x, const mpq_conv2d_shape *s, const int8_t *w, const mpq_epilogue *ep,
                                     float *out, uint8_t *out_u8, int32_t out_zp, int threads);
/// Bytes of its padded 16-channel block buffer for `s` (what decides whether it runs).
size_t mpq_depthwise_lanes_bytes(const mpq_conv2d_shape *s);
void mpq_depthwise_avx2_threads(const uint8_t *x, const mpq_conv2d_shape *s, const int8_t *w, const mpq_epilogue *ep,
                                float *out, uint8_t *out_u8, int32_t out_zp, int threads);
/// The AVX-512 VNNI + VBMI kernel (depthwise_vnni.c); -1 (nothing written) for a geometry
/// it has no plan for. Needs `mpq_depthwise_vnni_available()`.
/// FP32 depthwise: the general scalar reference, and the AVX-512 kernel for planes
/// narrower than 16 outputs (-1, nothing written, for other geometries).
void mpq_depthwise_f32_reference(const float *x, const mpq_conv2d_shape *s, const float *w, float *y);
/// The AVX2 form of mpq_depthwise3x3_f32_lanes (depthwise_f32_padded_avx2.c): any kernel up to
/// 64 taps, stride and dilation; finite weights only (the caller checks); `clamp` 1 for
/// MPQ_ACT_CLAMP. Channels split over `threads` of the kernel pool. 0, or -1 writing nothing.
int mpq_depthwise_f32_padded_avx2(const float *x, const mpq_conv2d_shape *s, const float *w, const float *bias,
                                  int clamp, float lo, float hi, float *y, int threads);
int mpq_depthwise_f32_avx512(const float *x, const mpq_conv2d_shape *s, const float *w, float *y);
void mpq_depthwise3x3_f32_avx2(const float *x, int H, int W, const float *w, int stride_h, int stride_w,
                               int pad_top, int pad_left, int OH, int OW, float *y);
int mpq_depthwise_vnni(const uint8_t *x, const mpq_conv2d_shape *s, const int8_t *w,
                       const mpq_epilogue *ep, float *out, uint8_t *out_u8, int32_t out_zp);
/// The same, its channels split over `threads` of the kernel pool (same bytes).
int mpq_depthwise_vnni_threads(const uint8_t *x, const mpq_conv2d_shape *s, const int8_t *w,
                               const mpq_epilogue *ep, float *out, uint8_t *out_u8, int32_t out_zp, int threads);

void mpq_requantize_f32_reference(const float *x, size_t count, float scale, uint8_t zp, float *y);
void mpq_requantize_f32_avx512(const float *x, size_t count, float scale, uint8_t zp, float *y);
void mpq_requantize_f32_avx2(const float *x, size_t count, float scale, uint8_t zp, float *y);
void mpq_requantize_binary_f32_reference(int multiply, const float *a, const float *b, size_t count,
                                         float scale, uint8_t zp, float *y);
void mpq_requantize_binary_f32_avx512(int multiply, const float *a, const float *b, size_t count,
                                      float scale, uint8_t zp, float *y);
void mpq_requantize_binary_f32_avx2(int multiply, const float *a, const float *b, size_t count,
                                    float scale, uint8_t zp, float *y);
/// The uint8 code of a requantizing epilogue run with out_scale 1: `v` is the rounded,
/// clamped value q - zp (an integer in [-zp, 255 - zp]), so this is exact.
static inline uint8_t mpq_code_u8(float v, int32_t zp) { return (uint8_t)((int32_t)v + zp); }

/// (k - zp) * scale + 0 for every code k: the float a requantizing kernel writes for code k
/// (the uint8-chain references read their inputs through this table).
static inline void mpq_grid_table(float scale, uint8_t zp, float table[256]) {
    for (int k = 0; k < 256; k++) {
        float v = (float)(k - (int)zp);
        v = v * scale;
        table[k] = v + 0.0f;
    }
}

/// Elementwise splits over the kernel pool in 64-element-aligned blocks (a block never
/// straddles two tasks, so vector loops see whole blocks): how many tasks for `count`
/// elements and `threads` threads, and task `task`'s range [*i0, *i1).
static inline int mpq_block64_tasks(size_t count, int threads) {
    const size_t blocks = (count + 63) / 64;
    int tasks = threads < 1 ? 1 : threads;
    if ((size_t)tasks > blocks) tasks = (int)blocks;
    return tasks > MPQ_POOL_MAX ? MPQ_POOL_MAX : tasks;
}

static inline void mpq_block64_range(size_t count, int task, int tasks, size_t *i0, size_t *i1) {
    const size_t blocks = (count + 63) / 64;
    *i0 = blocks * (size_t)task / (size_t)tasks * 64;
    *i1 = blocks * (size_t)(task + 1) / (size_t)tasks * 64;
    if (*i1 > count) *i1 = count;
}

void mpq_dequantize_u8_reference(const uint8_t *x, size_t count, float scale, uint8_t zp, float *y);
void mpq_dequantize_u8_avx512(const uint8_t *x, size_t count, float scale, uint8_t zp, float *y);
void mpq_dequantize_u8_avx2(const uint8_t *x, size_t count, float scale, uint8_t zp, float *y);
void mpq_requantize_binary_u8_avx2(int multiply, const uint8_t *a, float scale_a, uint8_t zp_a, const uint8_t *b,
                                   float scale_b, uint8_t zp_b, size_t count, float scale, uint8_t zp, uint8_t *y);
void mpq_requantize_binary_u8_reference(int multiply, const uint8_t *a, float scale_a, uint8_t zp_a, const uint8_t *b,
                                        float scale_b, uint8_t zp_b, size_t count, float scale, uint8_t zp, uint8_t *y);
void mpq_requantize_binary_u8_avx512(int multiply, const uint8_t *a, float scale_a, uint8_t zp_a, const uint8_t *b,
                                     float scale_b, uint8_t zp_b, size_t count, float scale, uint8_t zp, uint8_t *y);

void mpq_lookup_u8grid_f32_reference(const float *x, size_t count, float scale, uint8_t zp,
                                     const float *table, float *y);
void mpq_lookup_u8grid_f32_avx512(const float *x, size_t count, float scale, uint8_t zp,
                                  const float *table, float *y);
void mpq_lookup_u8grid_f32_avx2(const float *x, size_t count, float scale, uint8_t zp,
                                const float *table, float *y);

/// The dequantizing epilogue in scalar form. Separate statements keep clang
/// from contracting mul+add into an FMA, which the SIMD paths do not do; the
/// clamp is written as maxps/minps compute it (NaN and -0 included).
static inline float mpq_epilogue_scalar(int32_t acc, const int32_t *bias_i32, float a_scale, float b_scale,
                                        const float *bias, int n, float lo, float hi, float out_scale) {
    float s = a_scale * b_scale;
    if (bias_i32) { acc = (int32_t)((uint32_t)acc + (uint32_t)bias_i32[n]); }
    float v = (float)acc;
    v = v * s;
    if (bias) { v = v + bias[n]; }
    v = (v > lo) ? v : lo;
    v = (v < hi) ? v : hi;
    if (out_scale > 0) { v = nearbyintf(v); v = v * out_scale; v = v + 0.0f; /* -0 -> +0, as DequantizeLinear */ }
    return v;
}

// MARK: - INT8 Conv through the GEMM (qgemm_conv.c)

/// Rows [oh0, oh1) of mpq_im2col_u8 (khwc == 0) or mpq_im2col_u8_khwc (khwc != 0), written
/// from `col` on with pixel rows `ld` (>= K) bytes apart: the block of the GEMM's A for those
/// output rows, same bytes as the whole; bytes K..ld-1 of each row are not written.
void mpq_im2col_u8_rows(const uint8_t *x, const mpq_conv2d_shape *s, int g, uint8_t zero_point, int khwc,
                        int oh0, int oh1, uint8_t *col, size_t ld);
/// The job of an epilogue GEMM writing floats (`out`) or codes (`out_u8`, exactly one of the
/// two); `codes` receives the codes' epilogue copy (out_scale 1) and must outlive the job.
int mpq_gemm_epilogue_job(mpq_gemm_job *j, int m, int n, int k, const uint8_t *a, int lda, const void *packed,
                          const mpq_epilogue *ep, float *out, uint8_t *out_u8, int ldo, uint8_t out_zero_point,
                          int channel_major, mpq_epilogue *codes);
/// The region function of `path`, and the split of a whole job over the pool (qgemm.c).
mpq_gemm_region_fn mpq_gemm_region_for(mpq_kernel_path path);
void mpq_gemm_run(const mpq_gemm_job *job, mpq_gemm_region_fn fn, int threads);
/// A 1x1, stride-1, unpadded Conv's job (channel-major output, m = pixels, k = channels)
/// run straight from the NCHW planes `x` (channel c at x + c * plane), no im2col
/// (qgemm_pointwise.c, VNNI only): the same bytes as the im2col + GEMM. -1 if the job is not one.
int mpq_pointwise_conv_vnni(const mpq_gemm_job *job, const uint8_t *x, size_t plane, int threads);
/// The same on AVX2 (qgemm_pointwise_avx2.c: vpmaddwd on widened operands, 8-pixel vectors):
/// the same bytes. -1 (nothing written) if the job is not one or a buffer cannot be allocated.
int mpq_pointwise_conv_avx2(const mpq_gemm_job *job, const uint8_t *x, size_t plane, int threads);
/// A stride-1 or 2 Conv's job (channel-major output, (kh, kw, c) packed weights, C / group a
/// multiple of 4) run with no im2col from a padded [C/4][phase][Hq][Wq][4] copy of group `grp` of
/// the NCHW image `x` (qgemm_conv_implicit.c, VNNI only): the same bytes as the im2col +
/// GEMM. -1 (nothing written) if the shape is not one it takes.
int mpq_implicit_conv_vnni(const mpq_gemm_job *job, const uint8_t *x, const mpq_conv2d_shape *s, int grp,
                           uint8_t zero_point, int threads);
/// The same on AVX2 (qgemm_conv_implicit_avx2.c, 8-pixel vectors: vpmaddubsw where the packed
/// B's pairs fit int16 (7-bit weights; job->b_pairs_fit_i16), else int16 channel pairs through
/// vpmaddwd): the same bytes. -1 (nothing written) if the shape is not one it takes or its
/// buffer cannot be allocated.
int mpq_implicit_conv_avx2(const mpq_gemm_job *job, const uint8_t *x, const mpq_conv2d_shape *s, int grp,
                           uint8_t zero_point, int threads);
/// A Conv's job (channel-major output; (kh, kw, c) packed weights, or a 1x1 kernel; C / group a
/// multiple of 4) run with output channels in the vector lanes from a padded channels-last copy
/// of group `grp` of `x` (qgemm_conv_cv.c, VNNI only): the same bytes as the im2col + GEMM. -1
/// (nothing written) if the shape is not one it takes.
int mpq_cv_conv_vnni(const mpq_gemm_job *job, const uint8_t *x, const mpq_conv2d_shape *s, int grp, uint8_t zero_point,
                     int khwc, int threads);
/// Whether the AVX2 GEMM can run the Conv indirectly (qgemm_conv_indirect.c): (kh, kw, c)
/// weights, C / group a multiple of 4, 2 to MPQ_INDIRECT_MAX_TAPS taps.
int mpq_indirect_conv_applies(const mpq_conv2d_shape *s, int khwc);
/// Copies group `grp` of the NCHW codes `x` channels-last with the padding written out (the zero
/// point) over `threads` pool tasks and describes it in `d` (every field but the job's ind_p0).
/// Returns the copy, which the caller frees, or NULL (a shape it does not take, or no memory).
uint8_t *mpq_indirect_conv_prepare(const uint8_t *x, const mpq_conv2d_shape *s, int grp, uint8_t zero_point,
                                   int threads, mpq_gemm_indirect *d);
/// mpq_set_int8_avx2_indirect's setting, else MPQ_INT8_AVX2_INDIRECT's (read once), else 1.
int mpq_indirect_mode(void);
/// Output planes up to this many pixels take the channel-vector tiles (mpq_qconv2d_engine;
/// MPQ_INT8_CONV_CV_PIXELS, read once, overrides it, 0 = never).
#define MPQ_QCONV_CV_MAX_PIXELS 196
/// Output width from which mpq_qconv2d_u8s8 takes the implicit path: it computes
/// (Wq - OW) / Wq of its lanes for nothing (the padded columns), 3% at 56, 12% at 14, 22%
/// at 7, where it only tied the blocked im2col (benchmarks/README.md, s7-resnet).
#define MPQ_IMPLICIT_CONV_MIN_OW 14

/// FP32 depthwise, AVX-512F: 16 outputs of a row per vector, padding taps masked (exact,
/// the reference's bits); stride 1 or 2 across, undilated across, KW <= 16, KH * KW <= 64.
/// -1 (nothing written) for other geometries.
int mpq_depthwise_f32_rows_avx512(const float *x, const mpq_conv2d_shape *s, const float *w, float *y);
/// The outputs of one undilated 3x3 plane (stride 1 or 2 across) the 3x3 plane kernel
/// leaves to masked blocks: rows outside [oh_lo, oh_hi], and columns [0, L) and [R, OW)
/// (L, R multiples of 16 from either end) of the rows inside. The scalar pixel's bits.
void mpq_depthwise3x3_f32_borders_avx512(const float *xc, int H, int W, const float *w9, int stride_h, int stride_w,
                                         int pad_top, int pad_left, int OH, int OW, int oh_lo, int oh_hi, int L, int R,
                                         float *yc);

/// Few-channel im2col from a padded copy of the image (im2col_padded.c): whether `s` (with
/// column order `khwc`) takes it; the padded copy of group `g` (mpq_im2col_padded_bytes(s)
/// bytes); rows [oh0, oh1) of the (c, kh, kw) im2col from it, `ld` bytes apart, columns K..ld-1
/// (ld < K + 16) written as 0.
int mpq_im2col_padded_applies(const mpq_conv2d_shape *s, int khwc);
void mpq_im2col_pad_image(const uint8_t *x, const mpq_conv2d_shape *s, int g, uint8_t zero_point, uint8_t *buf);
void mpq_im2col_padded_rows(const uint8_t *buf, const mpq_conv2d_shape *s, int oh0, int oh1, uint8_t *col, size_t ld);
/// The same columns as planes: column q = (c, kh, kw) of every output pixel, [q1 - q0][OH * OW]
/// from planes + q * OH * OW (stride 1 or 2, as the padded copy allows; AVX2 hosts only).
void mpq_im2col_padded_planes(const uint8_t *buf, const mpq_conv2d_shape *s, int q0, int q1, uint8_t *planes);

/// Writes the header of an n x k packed int8 B (mpq_pack_b_s8's layout) at `packed`, zeroes
/// its column sums (*colsum) and data, and returns the data (qgemm_pack.c): the start every
/// B packer shares (weights, and activation codes packed per call in qgemm_activation.c).
int8_t *mpq_packed_b_start(int n, int k, void *packed, int32_t **colsum);

// MARK: - AMX INT8 GEMM (qgemm_amx.c)

/// The AMX region (TDPBUSD tiles; needs mpq_qgemm_amx_available()): the same bytes as
/// mpq_gemm_region_vnni, whose tiles it uses for the last rows % 16 of a region.
void mpq_gemm_region_amx(const mpq_gemm_job *j, int m0, int m1, int p0, int p1);
/// The same with AMX tiles on every region however small (mpq_set_qgemm_amx(2), for tests).
void mpq_gemm_region_amx_always(const mpq_gemm_job *j, int m0, int m1, int p0, int p1);
/// Rows [m0, m0 + rows) x panels [p0, p0 + np) of a job from raw int32 sums (row r, panel
/// q at sums + r * ld + q * 16): the VNNI tiles' zero-point correction, epilogue and stores
/// (qgemm_vnni.c), for kernels that compute the sums another way.
void mpq_gemm_store_sums_vnni(const mpq_gemm_job *j, int m0, int rows, int p0, int np, const int32_t *sums, int ld);

/// The L2 cache per core in bytes (sysconf, read once; 1 MiB where the system does not say):
/// what the kernels' "does this stay in L2" rules compare working sets with (dispatch.c).
size_t mpq_l2_bytes(void);

/// The next run of `chunk` units of [0, total) from the shared counter `next`: [*lo, *hi), or 0
/// when none is left. The kernels' "claimed runs" split: about 4 claims per task, so the
/// calling thread starts at once and a core slowed by another process holds the call up by
/// one run at most.
static inline int mpq_claim_run(_Atomic size_t *next, size_t chunk, size_t total, size_t *lo, size_t *hi) {
    const size_t r = atomic_fetch_add_explicit(next, chunk, memory_order_relaxed);
    if (r >= total) return 0;
    *lo = r;
    *hi = r + chunk < total ? r + chunk : total;
    return 1;
}

/// A size threshold from the environment, read once: `name`'s value when set to a number >= 0
/// (0 usually turns the path off), else `fallback`. `state` is the caller's static, -1 until
/// read; a race between first readers stores the same value.
static inline long mpq_env_long_once(const char *name, long fallback, _Atomic long *state) {
    long v = atomic_load_explicit(state, memory_order_relaxed);
    if (v < 0) {
        const char *e = getenv(name);
        v = e && *e ? strtol(e, NULL, 10) : fallback;
        if (v < 0) v = fallback;
        atomic_store_explicit(state, v, memory_order_relaxed);
    }
    return v;
}

/// Units per thread when one image's INT8 depthwise channels split over the pool, for both
/// kernels (VBMI and AVX2): MPQ_INT8_DW_UNITS, read once per file, default 16.
static inline int mpq_int8_dw_units_per_thread(void) {
    static _Atomic long env = -1;
    const long v = mpq_env_long_once("MPQ_INT8_DW_UNITS", 16, &env);
    return v < 1 ? 1 : (int)v;
}

#endif
