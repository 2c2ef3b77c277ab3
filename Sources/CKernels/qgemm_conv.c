// INT8 Conv through the GEMM, im2col a block of output rows at a time (docs/int8-conv.md).
// On the AVX2 path windowed Convs with C / group a multiple of 4 run the same blocks and splits
// with no im2col at all: the GEMM reads each tap's channels from a channels-last copy
// (qgemm_conv_indirect.c, `cb->ind`).
//
// The whole-image im2col wrote [pixels][K] bytes (1.8 MB for a ResNet-18 layer-1 3x3 conv)
// that the GEMM then read back from L3 or memory, and at batch 1 it ran on one core while
// the other waited for the GEMM. Here each pool task claims blocks of output rows, builds
// that block of A (about 96 KB) in its own buffer and runs the GEMM region on it at once,
// while the block is in L2: the im2col is split over the cores too. Blocks are whole rows
// whose pixel count is a multiple of 16 where the row width allows, so the channel-major
// path's 16 x 16 transposing tiles stay whole. Every output element is still one tile with
// full K and the same epilogue, so the bytes do not depend on the block size or the split.
#include "im2col_transpose.h"  // mpq_load16_step
#include "mpq_internal.h"
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/// Bytes of A one block aims at: well inside a 1 MB L2 with the B panels beside it.
#define BLOCK_BYTES (96 * 1024)

typedef struct {
    mpq_gemm_job job;  // the whole image; each block narrows m, a and the output pointer
    mpq_gemm_region_fn fn;
    const uint8_t *x;
    const uint8_t *padded;  // the group's padded planes for the few-channel im2col, or NULL
    const mpq_gemm_indirect *ind;  // no im2col: the GEMM reads a channels-last copy, or NULL
    const mpq_conv2d_shape *s;
    int g, khwc, oh_n, ow_n, rows, blocks;
    uint8_t zp;
    uint8_t *scratch;
    size_t block_bytes;
} conv_blocks;

// `count` im2col buffers of `bytes` each: zeroed unless the im2col writes every byte (`written`,
// see the driver: A's K-pad columns must read 0).
static uint8_t *col_alloc(size_t count, size_t bytes, int written) {
    return (uint8_t *)(written ? malloc(count * bytes) : calloc(count, bytes));
}

static int gcd(int a, int b) { while (b) { int t = a % b; a = b; b = t; } return a; }

// Rows [oh0, oh1) of A, `lda` bytes apart, from the padded copy where there is one.
static void im2col_rows(const conv_blocks *cb, int oh0, int oh1, uint8_t *col) {
    if (cb->padded) mpq_im2col_padded_rows(cb->padded, cb->s, oh0, oh1, col, (size_t)cb->job.lda);
    else mpq_im2col_u8_rows(cb->x, cb->s, cb->g, cb->zp, cb->khwc, oh0, oh1, col, (size_t)cb->job.lda);
}

static void run_block(const conv_blocks *cb, int b, uint8_t *col) {
    const int oh0 = b * cb->rows, oh1 = oh0 + cb->rows < cb->oh_n ? oh0 + cb->rows : cb->oh_n;
    mpq_gemm_job j = cb->job;
    const size_t p0 = (size_t)oh0 * (size_t)cb->ow_n;  // first pixel: a column of the channel-major output
    j.m = (oh1 - oh0) * cb->ow_n;
    if (cb->ind) {
        j.ind_p0 = (int)p0;  // an indirect job reads its A rows where they lie
    } else {
        im2col_rows(cb, oh0, oh1, col);
        j.a = col;
    }
    if (j.out) j.out += p0;
    if (j.out_u8) j.out_u8 += p0;
    cb->fn(&j, 0, j.m, 0, (j.n + 15) / 16);
}

static void run_unit(void *arg, int b, int t) {
    conv_blocks *cb = (conv_blocks *)arg;
    run_block(cb, b, cb->scratch + (size_t)t * cb->block_bytes);
}

typedef struct {
    const conv_blocks *cb;
    uint8_t *col;
    int tasks;
} whole_im2col;

// Task t of `tasks` writes its share of the output rows of the whole-image im2col.
static void im2col_task(void *arg, int t) {
    const whole_im2col *w = (const whole_im2col *)arg;
    const conv_blocks *cb = w->cb;
    const int oh0 = cb->oh_n * t / w->tasks, oh1 = cb->oh_n * (t + 1) / w->tasks;
    if (oh0 < oh1) im2col_rows(cb, oh0, oh1, w->col + (size_t)oh0 * (size_t)cb->ow_n * (size_t)cb->job.lda);
}

// A small plane on AVX2 over several threads (s25): each task writes the whole im2col into
// its own buffer and multiplies it by its share of the 16-column panels, one pool run in all
// (panel_split_preferred says where).
// The row split this replaces (the im2col's rows over the threads, a join, then the GEMM's
// 16-row tiles claimed) had two joins per Conv and, on a 7x7 plane (49 pixels: tiles of 16,
// 16, 16 and 1), one thread with twice the other's rows. Each output is still one tile's
// full-K sum: the same bytes.
// Where (two threads, 7-bit weights, int8_conv_layers.c, alternated): planes of at most 64
// pixels with 128+ output channels and K up to 1152 (MobileNetV2's 1x1 layers on 7x7 0.75-0.94x
// of the row split's time, resnet_digits' 128->128 3x3 on 7x7 0.85x); not with a bigger K
// (ResNet-18's 3x3 into 7x7 and 14x14, K = 2304-4608: 1.03-1.07x, the duplicated im2col and
// each thread's half of B streamed per row block) nor with 64 or fewer output channels (the
// detector's 8x8 and 4x4 layers, 10-50 us: up to 1.25x). MPQ_INT8_PANEL_SPLIT=0 (read once)
// keeps the row split, for A/B.
static int panel_split_preferred(int m, int n, int kp, int threads) {
    static _Atomic long state = -1;
    if (mpq_env_long_once("MPQ_INT8_PANEL_SPLIT", 1, &state) == 0) return 0;
    return m <= 64 && n >= 128 && kp <= 1152 && (n + 15) / 16 >= 2 * threads;
}

typedef struct {
    const conv_blocks *cb;
    uint8_t *cols;
    size_t col_bytes;
    int tasks, panels, m;
} panel_split;

static void panel_split_task(void *arg, int t) {
    const panel_split *ps = (const panel_split *)arg;
    const int p0 = ps->panels * t / ps->tasks, p1 = ps->panels * (t + 1) / ps->tasks;
    if (p0 >= p1) return;
    mpq_gemm_job j = ps->cb->job;
    if (!ps->cb->ind) {
        uint8_t *col = ps->cols + (size_t)t * ps->col_bytes;
        im2col_rows(ps->cb, 0, ps->cb->oh_n, col);
        j.a = col;
    }
    ps->cb->fn(&j, 0, ps->m, p0, p1);
}

// Where the AMX GEMM repays the im2col in front of it and its own setup (docs/int8-amx.md,
// "Engine per Conv"; per-layer minima of `mpq profile` with MPQ_QGEMM_AMX=0 and 1 on ResNet-18,
// MobileNetV2, resnet_digits and shapes_det, benchmarks/README.md s9-amxconv): layers with
// many output channels N and a large weight matrix (N x K bytes, K = kernel volume x input
// channels per group). Against the im2col + VNNI GEMM (7x7 planes, 1x1 stride 2, stems) AMX
// won from N 128 and 128 KB of weights (0.6-0.9x the time); against the implicit VNNI conv
// (wide planes, no im2col) only from N 256 and 256 KB (0.4-0.8x). Below, it lost: 16-64
// output channels ran 1.2-4x slower (tile setup per region, half-empty 2-panel blocks, the
// A packing and the im2col in front of a short GEMM).
#define AMX_MIN_N_VS_IM2COL 128
#define AMX_MIN_WEIGHTS_VS_IM2COL (128 * 1024)
#define AMX_MIN_N_VS_IMPLICIT 256
#define AMX_MIN_WEIGHTS_VS_IMPLICIT (256 * 1024)

// Rows per block for the AVX2 GEMM on several threads: the multiple of the fewest rows holding
// a multiple of 8 pixels (its channel-major stores are 8 x 8 transposes, so such blocks store
// only whole vectors), up to the L2 fit, whose contiguous ranges give the busiest thread the
// fewest rows (the largest such block on a tie). The 16-pixel unit gave a 28x28 plane 7 blocks
// of 4 rows, so one of two threads ran 4 blocks and the other 3 (ResNet-18's 128->128 3x3 at
// 28x28: 1.75x the one-thread rate on two threads); blocks of 2 rows split it 7 and 7.
// MPQ_INT8_BALANCED_ROWS=0 (read once) keeps the 16-pixel unit, for A/B.
static int balanced_rows_on(void) {
    static _Atomic long state = -1;
    return mpq_env_long_once("MPQ_INT8_BALANCED_ROWS", 1, &state) != 0;
}

static int balanced_rows(int oh_n, int ow_n, int fit, int threads) {
    const int unit = 8 / gcd(ow_n, 8);
    const int top = fit > unit ? fit / unit * unit : unit;
    int best = unit, best_load = oh_n + 1;
    for (int r = unit; r <= top && r <= oh_n; r += unit) {
        const int blocks = (oh_n + r - 1) / r;
        int load = 0;
        for (int t = 0; t < threads; t++) {
            const int b0 = blocks * t / threads, b1 = blocks * (t + 1) / threads;
            const int rows = (b1 * r < oh_n ? b1 * r : oh_n) - b0 * r;
            if (rows > load) load = rows;
        }
        if (load <= best_load) { best = r; best_load = load; }
    }
    return best < oh_n ? best : oh_n;  // a plane of fewer rows than the unit: one block
}

static int is_pointwise(const mpq_conv2d_shape *s, int m) {
    return s->kernel_h == 1 && s->kernel_w == 1 && s->stride_h == 1 && s->stride_w == 1 && !s->pad_top &&
           !s->pad_left && !s->pad_bottom && !s->pad_right && m >= 128;
}

// The shapes mpq_implicit_conv_vnni takes (its own checks), on planes wide enough that its
// dropped lanes on the padded columns cost little (MPQ_IMPLICIT_CONV_MIN_OW).
static int implicit_applies(const mpq_conv2d_shape *s, int khwc) {
    const int cg = s->group > 0 ? s->channels / s->group : 0, S = s->stride_h;
    if (!khwc || cg < 4 || cg % 4 || (S != 1 && S != 2) || s->stride_w != S || s->kernel_h * s->kernel_w > 64) return 0;
    const int wq = (s->pad_left + s->width + s->pad_right + S - 1) / S;
    return wq >= 6 && mpq_conv2d_out_h(s) > 0 && mpq_conv2d_out_w(s) >= MPQ_IMPLICIT_CONV_MIN_OW;
}

// The output-plane size up to which Convs take the channel-vector tiles: MPQ_QCONV_CV_MAX_PIXELS,
// or MPQ_INT8_CONV_CV_PIXELS (read once; 0 turns them off) to A/B them without a rebuild.
static long cv_max_pixels(void) {
    static _Atomic long state = -1;
    return mpq_env_long_once("MPQ_INT8_CONV_CV_PIXELS", MPQ_QCONV_CV_MAX_PIXELS, &state);
}

// Larger planes take the channel-vector tiles too where the window has taps and the group at
// least 32 input channels (up to 56x56 outputs), without AMX (s33: measured on Zen 4 only; the
// AMX per-Conv policy was tuned against the implicit conv). One core, codes out
// (int8_conv_layers.c, alternated): ResNet-18's 64->64 3x3 at 56x56 0.98x the implicit conv's
// time, 64->128 3x3/2 0.97-0.98, 128->128 at 28x28 0.93, resnet_digits' 32->32 at 28x28
// 0.94-0.96, the detector's 32->32 at 16x16 0.88 (two threads, one image: 0.91-0.98); but with
// 16-24 channels 1.06-1.62x (resnet_digits' 16->16 at 56x56, the detector's 16->24 3x3/2 at
// 64x64) and on a 1x1 stride-2 Conv 1.13-1.17x (the im2col's). MPQ_INT8_CONV_CV_WIDE=0 (read
// once) keeps such Convs where they were, for A/B.
#define CV_WIDE_MIN_CHANNELS 32
#define CV_WIDE_MAX_PIXELS 3136
static int cv_wide(const mpq_conv2d_shape *s, long pixels) {
    static _Atomic long state = -1;
    if (!mpq_env_long_once("MPQ_INT8_CONV_CV_WIDE", 1, &state) || cv_max_pixels() <= 0 || mpq_qgemm_amx_mode() != 0) return 0;
    const int cg = s->group > 0 ? s->channels / s->group : 0;
    return s->kernel_h * s->kernel_w > 1 && cg >= CV_WIDE_MIN_CHANNELS && pixels <= CV_WIDE_MAX_PIXELS;
}

static int im2col_gemm(conv_blocks *cb, const uint8_t *x, const mpq_conv2d_shape *s, int g, int khwc,
                       uint8_t x_zero_point, int k, int n, int m, int avx2, int threads);
static mpq_qconv_engine engine_without_cv(const mpq_conv2d_shape *s, int n, int khwc);

// (Since s31 the indirect conv (indirect_avx2_preferred) takes every shape this rule saw on the
// AVX2 path; the rule decides only with MPQ_INT8_AVX2_INDIRECT=0.)
// Where the AVX2 implicit conv beats the im2col + AVX2 GEMM (7-bit weights; one thread, codes,
// int8_conv_layers.c, s23; the same bytes either way). Its 2 x 4 tile runs at ~0.9x of the GEMM
// tile's rate, so it wins where the im2col weighs: stride 1 with few input channels (0.78-0.95x
// of the time with 16-64 channels: ResNet-18's 64-channel 56x56 layers, resnet_digits, the
// detector's 32-channel 16x16; 0.99 at 32 channels 28x28), not with 128-256 (1.06-1.37x: the
// taps' rows of the padded copy outgrow L1). At stride 2 the im2col is 37% of a 56x56 layer and
// the implicit conv 0.97-1.24x, except on planes of a multiple of 4 KiB (64x64), where the
// im2col took 55% (its reads of 4 channel planes 4 KiB apart share L1 sets, likely) and the
// implicit conv 0.67-0.74x (the detector's 16->24 and a 32->32 3x3/2). MPQ_INT8_AVX2_IMPLICIT=0
// (read once) keeps every AVX2 Conv on the im2col, for A/B.
// `wide`: 8-bit weights, the kernel's widening form (int16 channel pairs, twice the bytes of
// the padded copy): at stride 1 it won only with 16 input channels (0.77-0.83x: resnet_digits'
// 16->16 at 56x56, a 16->24 at 32x32), about tied with 32-64 (0.90-1.06; 1.16 on
// resnet_digits' 64->64 at 14x14); stride 2 on 64x64 planes 0.74-0.79x.
static int implicit_avx2_preferred(const mpq_conv2d_shape *s, int wide) {
    static _Atomic long state = -1;
    if (mpq_env_long_once("MPQ_INT8_AVX2_IMPLICIT", 1, &state) == 0) return 0;
    const int cg = s->group > 0 ? s->channels / s->group : 0;
    if (s->stride_h == 1) return cg <= (wide ? 16 : 64);
    return ((size_t)s->height * (size_t)s->width) % 4096 == 0;
}

// Where the indirect AVX2 GEMM (qgemm_conv_indirect.c) replaces the im2col and the implicit
// conv: wherever it applies (mpq_set_int8_avx2_indirect / MPQ_INT8_AVX2_INDIRECT=0 turn it off).
// Interleaved A/B, one and two threads, 7- and 8-bit weights (int8_conv_layers.c AB=1,
// benchmarks/README.md s31): 0.64-0.96x of the time on every 3x3 layer of ResNet-18,
// resnet_digits and the detector with 7-bit weights; with 8-bit weights (the widening tile)
// 0.71-1.03x, one 8x8 layer at 1.06x on one thread, 0.89x on two.
static int indirect_avx2_preferred(void) { return mpq_indirect_mode() != 0; }

mpq_qconv_engine mpq_qconv2d_engine(mpq_kernel_path path, const mpq_conv2d_shape *s, int n, int khwc) {
    if (!s) return MPQ_QCONV_IM2COL;
    const mpq_kernel_path resolved = mpq_resolve_kernel_path(path);
    // AVX2: the pointwise twin (qgemm_pointwise_avx2.c) on the same shapes, the implicit twin
    // (qgemm_conv_implicit_avx2.c; it declines 8-bit weights, which then take the im2col) on
    // the VNNI kernel's; everything else is the im2col + AVX2 GEMM.
    if (resolved == MPQ_PATH_AVX2) {
        if (is_pointwise(s, mpq_conv2d_out_h(s) * mpq_conv2d_out_w(s))) return MPQ_QCONV_POINTWISE;
        if (mpq_indirect_conv_applies(s, khwc) && indirect_avx2_preferred()) return MPQ_QCONV_INDIRECT;
        return implicit_applies(s, khwc) && implicit_avx2_preferred(s, 0) ? MPQ_QCONV_IMPLICIT : MPQ_QCONV_IM2COL;
    }
    if (resolved != MPQ_PATH_VNNI) return MPQ_QCONV_IM2COL;
    const mpq_qconv_engine e = engine_without_cv(s, n, khwc);
    // Small planes: output channels in the lanes (qgemm_conv_cv.c), where the pixel-vector
    // kernels fill lanes with padded-width or past-the-plane pixels and the im2col copies and
    // transposes everything. One thread, codes out (benchmarks/README.md, s11-int8b1): 0.68-0.71x
    // of the time on ResNet-18's 3x3 convs into 14x14 and 7x7, 0.43-0.56x on the detector's 8x8
    // and 4x4, 0.87-0.92x on MobileNetV2's 7x7 pointwise; but 1.15-1.33x against the pointwise
    // kernel on 14x14 planes (which stay on it), 0.91-0.95x at 28x28 and 1.5x on the detector's
    // 16x16 stride-2 layer with 32 channels (hence 196 pixels). Not where the per-Conv policy
    // chose AMX (not measured against it).
    const long pixels = (long)mpq_conv2d_out_h(s) * mpq_conv2d_out_w(s);
    if (e != MPQ_QCONV_IM2COL_AMX && e != MPQ_QCONV_POINTWISE && (pixels <= cv_max_pixels() || cv_wide(s, pixels)) &&
        mpq_qconv2d_cv_applies(s, khwc))
        return MPQ_QCONV_CV;
    return e;
}

static mpq_qconv_engine engine_without_cv(const mpq_conv2d_shape *s, int n, int khwc) {
    // Pointwise: vectors along the NCHW pixels, no im2col and no output transpose (not on a
    // 7x7 plane, where 64-pixel tiles would compute 15 of every 64 lanes for nothing).
    if (is_pointwise(s, mpq_conv2d_out_h(s) * mpq_conv2d_out_w(s))) return MPQ_QCONV_POINTWISE;
    const int implicit = implicit_applies(s, khwc), amx = mpq_qgemm_amx_mode();
    if (amx == 0) return implicit ? MPQ_QCONV_IMPLICIT : MPQ_QCONV_IM2COL;
    if (amx != MPQ_AMX_PER_CONV) return MPQ_QCONV_IM2COL_AMX;  // MPQ_QGEMM_AMX=1: AMX wherever it can run
    const double weights = (double)n * (double)(s->group > 0 ? s->channels / s->group : 0) * s->kernel_h * s->kernel_w;
    if (implicit ? n >= AMX_MIN_N_VS_IMPLICIT && weights >= AMX_MIN_WEIGHTS_VS_IMPLICIT
                 : n >= AMX_MIN_N_VS_IM2COL && weights >= AMX_MIN_WEIGHTS_VS_IM2COL)
        return MPQ_QCONV_IM2COL_AMX;
    return implicit ? MPQ_QCONV_IMPLICIT : MPQ_QCONV_IM2COL;
}

const char *mpq_qconv2d_engine_name(mpq_kernel_path path, mpq_qconv_engine engine) {
    switch (engine) {
    case MPQ_QCONV_POINTWISE: return mpq_resolve_kernel_path(path) == MPQ_PATH_AVX2 ? "pointwise+avx2" : "pointwise";
    case MPQ_QCONV_IMPLICIT: return mpq_resolve_kernel_path(path) == MPQ_PATH_AVX2 ? "implicit+avx2" : "implicit";
    case MPQ_QCONV_IM2COL_AMX: return "im2col+amx";
    case MPQ_QCONV_CV: return "cv+vnni";
    case MPQ_QCONV_INDIRECT: return "indirect+avx2";
    default:
        switch (mpq_resolve_kernel_path(path)) {
        case MPQ_PATH_VNNI: return "im2col+vnni";
        case MPQ_PATH_AVX2: return "im2col+avx2";
        default: return "im2col+reference";
        }
    }
}

// Few-channel stems on AVX2 (s25): the padded copy's columns written as K planes of the output
// pixels ([K][OH * OW], mpq_im2col_padded_planes), then the pointwise kernel over them, pixels
// in the lanes, as if the stem were a 1x1 conv with K input channels. The im2col + GEMM ran
// MobileNetV2's 3->32 3x3/2 stem at 19-27 GMAC/s a core (K = 27: 7 k quads per 4 x 16 tile,
// then the tile's transposed channel-major store); the pointwise kernel stores 32 pixels of a
// channel per vector. One thread (int8_conv_layers.c, 7-bit weights): that stem 396 -> 252 us,
// the detector's 3->16 3x3 at 64x64 73 -> 50, ResNet-18's 3->64 7x7/2 (K = 147) 1873 -> 1588;
// two threads 482 -> 199 and 982 -> 934. Planes up to STEM_PLANES_MAX_BYTES (a bigger image
// keeps the im2col's L2-sized blocks). The same int32 sums and epilogue: the same bytes.
// MPQ_INT8_STEM_PLANES=0 (read once) keeps the im2col, for A/B.
#define STEM_PLANES_MAX_K 160
#define STEM_PLANES_MAX_BYTES (8u << 20)

typedef struct {
    const uint8_t *padded;
    const mpq_conv2d_shape *s;
    uint8_t *planes;
    int k, tasks;
} stem_planes_job;

static void stem_planes_task(void *arg, int t) {
    const stem_planes_job *j = (const stem_planes_job *)arg;
    mpq_im2col_padded_planes(j->padded, j->s, j->k * t / j->tasks, j->k * (t + 1) / j->tasks, j->planes);
}

static int stem_planes_preferred(const mpq_conv2d_shape *s, int khwc, int k) {
    static _Atomic long state = -1;
    return mpq_env_long_once("MPQ_INT8_STEM_PLANES", 1, &state) != 0 && mpq_im2col_padded_applies(s, khwc) &&
           k <= STEM_PLANES_MAX_K && (long)mpq_conv2d_out_h(s) * mpq_conv2d_out_w(s) >= 128 &&
           (size_t)k * (size_t)mpq_conv2d_out_h(s) * (size_t)mpq_conv2d_out_w(s) <= STEM_PLANES_MAX_BYTES;
}

// 0, or -1 with nothing written (no memory, or the pointwise kernel declined): the im2col runs.
static int stem_planes_conv(const mpq_gemm_job *job, const uint8_t *x, const mpq_conv2d_shape *s, int g, uint8_t zp,
                            int k, int threads) {
    const size_t P = (size_t)mpq_conv2d_out_h(s) * (size_t)mpq_conv2d_out_w(s);
    uint8_t *padded = (uint8_t *)malloc(mpq_im2col_padded_bytes(s));
    uint8_t *planes = (uint8_t *)malloc((size_t)k * P);
    int rc = -1;
    if (padded && planes) {
        mpq_im2col_pad_image(x, s, g, zp, padded);
        stem_planes_job j = {padded, s, planes, k, threads < k ? threads : k};
        if (j.tasks > 1) mpq_pool_run(j.tasks, stem_planes_task, &j);
        else stem_planes_task(&j, 0);
        rc = mpq_pointwise_conv_avx2(job, planes, P, threads);
    }
    free(padded);
    free(planes);
    return rc;
}

// Strided or padded 1x1 Convs on AVX2 (s31): the pixels the kernel samples copied once into
// contiguous planes ([C][OH * OW]: a 1x1 conv reads nothing else), then the pointwise kernel over
// them as over a stride-1 1x1 conv (pixels in the lanes, codes stored channel-major as they come)
// instead of the im2col's transposes and the GEMM's transposed stores. Where it won (7-bit
// weights, the driver's switch alternated in a harness, minima, the same bytes): ResNet-18's
// 64->128 1x1/2 from 56x56 0.78x of the time on one thread and 0.79x on two, resnet_digits' 16->32
// from 56x56 0.62x and 0.97x. Not on smaller outputs (128->256 into 14x14 0.92-0.94x but 32->64
// into 14x14 1.24x on two threads: the copy on one core and a two-chunk pointwise split), nor with
// 8-bit weights (the widening pointwise form: 0.98x and 1.22x). The same int32 sums and epilogue:
// the same bytes. MPQ_INT8_SUBSAMPLED_POINTWISE=0 (read once) keeps the im2col, for A/B.
#define SUBSAMPLED_MIN_PIXELS 784
#define SUBSAMPLED_MAX_BYTES (8u << 20)

static int subsampled_pointwise_preferred(const mpq_conv2d_shape *s, int pairs_fit_i16) {
    static _Atomic long state = -1;
    if (!pairs_fit_i16 || mpq_env_long_once("MPQ_INT8_SUBSAMPLED_POINTWISE", 1, &state) == 0) return 0;
    const long P = (long)mpq_conv2d_out_h(s) * mpq_conv2d_out_w(s);
    return s->kernel_h == 1 && s->kernel_w == 1 && P >= SUBSAMPLED_MIN_PIXELS && !is_pointwise(s, (int)P) &&
           (size_t)(s->channels / s->group) * (size_t)P <= SUBSAMPLED_MAX_BYTES;
}

typedef struct {
    const uint8_t *x;  // the group's first channel plane
    const mpq_conv2d_shape *s;
    uint8_t *planes, zp;
    int c, tasks;
} subsample_job;

// Channels [c0, c1): output pixel (oh, ow) of channel c = input (oh sh - pt, ow sw - pl), or the
// zero point outside the image (the im2col's pad taps). Stride 1 and 2 runs inside a row by
// 16-byte loads (mpq_load16_step), the rest byte by byte.
static void subsample_channels(const subsample_job *j, int c0, int c1) {
    const mpq_conv2d_shape *s = j->s;
    const int H = s->height, W = s->width, OH = mpq_conv2d_out_h(s), OW = mpq_conv2d_out_w(s);
    const int sh = s->stride_h, sw = s->stride_w, pt = s->pad_top, pl = s->pad_left;
    for (int c = c0; c < c1; c++) {
        const uint8_t *plane = j->x + (size_t)c * (size_t)H * (size_t)W;
        for (int oh = 0; oh < OH; oh++) {
            uint8_t *dst = j->planes + ((size_t)c * (size_t)OH + (size_t)oh) * (size_t)OW;
            const int ih = oh * sh - pt;
            if (ih < 0 || ih >= H) { memset(dst, j->zp, (size_t)OW); continue; }
            const uint8_t *row = plane + (size_t)ih * (size_t)W;
            int ow = 0;
            for (; ow < OW; ow++) {  // left of the image (padding)
                const int iw = ow * sw - pl;
                if (iw >= 0) break;
                dst[ow] = j->zp;
            }
            // 16 samples by one load where all 16 (and the bytes the load reads) lie in the row;
            // the row's last 16 as one more load overlapping the one before where it fits (a
            // store of the load: 4% faster on ResNet-18's 64->128 1x1/2 than the next case's
            // copy through a buffer). A shorter rest (rows under 16 wide) by one load that may run
            // into the next rows of the plane, its junk lanes not stored.
            const int first = ow;
            for (; sw <= 2 && ow + 16 <= OW && (ow * sw - pl) + 16 * sw <= W; ow += 16)
                _mm_storeu_si128((__m128i *)(dst + ow), mpq_load16_step(row + (ow * sw - pl), sw));
            if (sw <= 2 && ow < OW && OW - 16 >= first && (OW - 16) * sw - pl + 16 * sw <= W) {
                _mm_storeu_si128((__m128i *)(dst + OW - 16), mpq_load16_step(row + ((OW - 16) * sw - pl), sw));
                ow = OW;
            }
            const int last_in = (W - 1 + pl) / sw + 1;  // outputs from here sample right of the image
            const int n_in = (last_in < OW ? last_in : OW) - ow;
            if (sw <= 2 && n_in > 0 && (size_t)ih * (size_t)W + (size_t)(ow * sw - pl) + 16u * (size_t)sw <= (size_t)H * (size_t)W) {
                uint8_t t[16];
                _mm_storeu_si128((__m128i *)t, mpq_load16_step(row + (ow * sw - pl), sw));
                const int n = n_in < 16 ? n_in : 16;
                memcpy(dst + ow, t, (size_t)n);
                ow += n;
            }
            for (; ow < OW; ow++) {
                const int iw = ow * sw - pl;
                dst[ow] = iw < W ? row[iw] : j->zp;
            }
        }
    }
}

static void subsample_task(void *arg, int t) {
    const subsample_job *j = (const subsample_job *)arg;
    subsample_channels(j, j->c * t / j->tasks, j->c * (t + 1) / j->tasks);
}

// 0, or -1 with nothing written (no memory, or the pointwise kernel declined): the im2col runs.
static int subsampled_pointwise_conv(const mpq_gemm_job *job, const uint8_t *x, const mpq_conv2d_shape *s, int g,
                                     uint8_t zp, int threads) {
    const int C = s->channels / s->group;
    const size_t P = (size_t)mpq_conv2d_out_h(s) * (size_t)mpq_conv2d_out_w(s);
    subsample_job j = {x + (size_t)g * (size_t)C * (size_t)s->height * (size_t)s->width, s, NULL, zp, C, 1};
    j.planes = (uint8_t *)malloc((size_t)C * P);
    if (!j.planes) return -1;
    // Copies under 16 KB on one core (as the channels-last copies).
    j.tasks = (size_t)C * P < 16 * 1024 ? 1 : threads < C ? threads : C;
    if (j.tasks > 1) mpq_pool_run(j.tasks, subsample_task, &j);
    else subsample_task(&j, 0);
    const int rc = mpq_pointwise_conv_avx2(job, j.planes, P, threads);
    free(j.planes);
    return rc;
}

int mpq_qconv2d_u8s8(mpq_kernel_path path, const uint8_t *x, const mpq_conv2d_shape *s, int g, int khwc,
                     uint8_t x_zero_point, const void *packed, const mpq_epilogue *ep, float *out, uint8_t *out_u8,
                     uint8_t out_zero_point, int threads) {
    const int oh_n = mpq_conv2d_out_h(s), ow_n = mpq_conv2d_out_w(s);
    if (!x || oh_n == 0 || ow_n == 0 || g < 0 || g >= s->group || !packed || !ep) return -1;
    if (threads < 1) threads = 1;
    if (ep->a_zero_point != (int32_t)x_zero_point) return -1;
    const int k = s->channels / s->group * s->kernel_h * s->kernel_w;
    const int n = ((const mpq_packed_b_header *)packed)->n, m = oh_n * ow_n;
    conv_blocks cb;
    mpq_epilogue codes;
    // A placeholder A for the argument checks; every block sets its own.
    if (mpq_gemm_epilogue_job(&cb.job, m, n, k, x, k, packed, ep, out, out_u8, m, out_zero_point, 1, &codes)) return -1;
    // Every engine computes the same int32 sums and runs the same epilogue: the bytes do not
    // depend on the choice.
    const mpq_qconv_engine engine = mpq_qconv2d_engine(path, s, n, khwc);
    if (engine == MPQ_QCONV_POINTWISE) {
        const size_t plane = (size_t)s->height * (size_t)s->width;
        const uint8_t *xg = x + (size_t)g * (size_t)k * plane;
        if (mpq_resolve_kernel_path(path) != MPQ_PATH_AVX2) {
            mpq_note_engine(mpq_qconv2d_engine_name(path, engine));
            return mpq_pointwise_conv_vnni(&cb.job, xg, plane, threads);
        }
        // The AVX2 twin; where it declines (-1: a job it does not take, or no memory),
        // nothing is written and the im2col below runs.
        if (mpq_pointwise_conv_avx2(&cb.job, xg, plane, threads) == 0) {
            mpq_note_engine(mpq_qconv2d_engine_name(path, engine));
            return 0;
        }
    }
    if (engine == MPQ_QCONV_CV && mpq_cv_conv_vnni(&cb.job, x, s, g, x_zero_point, khwc, threads) == 0) {
        mpq_note_engine(mpq_qconv2d_engine_name(path, engine));
        return 0;  // a small plane: output channels in the lanes (qgemm_conv_cv.c)
    }
    const int avx2 = mpq_resolve_kernel_path(path) == MPQ_PATH_AVX2;
    if (engine == MPQ_QCONV_IM2COL && avx2 && stem_planes_preferred(s, khwc, k) &&
        stem_planes_conv(&cb.job, x, s, g, x_zero_point, k, threads) == 0) {
        mpq_note_engine("stem-planes+avx2");
        return 0;
    }
    if (engine == MPQ_QCONV_IM2COL && avx2 && subsampled_pointwise_preferred(s, cb.job.b_pairs_fit_i16) &&
        subsampled_pointwise_conv(&cb.job, x, s, g, x_zero_point, threads) == 0) {
        mpq_note_engine("subsampled+pointwise+avx2");
        return 0;
    }
    if (engine == MPQ_QCONV_IMPLICIT && (!avx2 || cb.job.b_pairs_fit_i16 || implicit_avx2_preferred(s, 1)) &&
        (avx2 ? mpq_implicit_conv_avx2 : mpq_implicit_conv_vnni)(&cb.job, x, s, g, x_zero_point, threads) == 0) {
        mpq_note_engine(mpq_qconv2d_engine_name(path, engine));
        return 0;  // a wide stride-1/2 plane: no im2col at all (qgemm_conv_implicit.c, _avx2.c)
    }
    // The im2col GEMM: AMX where chosen, else the path's kernel without AMX (an implicit
    // conv that declined its arguments lands here too, and says so).
    cb.fn = engine == MPQ_QCONV_IM2COL_AMX || mpq_resolve_kernel_path(path) != MPQ_PATH_VNNI ? mpq_gemm_region_for(path)
                                                                                           : mpq_gemm_region_vnni;
    // Indirect: the same GEMM reading a channels-last copy instead of the im2col (no memory for
    // the copy: the im2col).
    mpq_gemm_indirect ind;
    uint8_t *xh = NULL;
    if (engine == MPQ_QCONV_INDIRECT && cb.fn == mpq_gemm_region_avx2)
        xh = mpq_indirect_conv_prepare(x, s, g, x_zero_point, threads, &ind);
    cb.ind = xh ? &ind : NULL;
    cb.job.ind = cb.ind;
    mpq_note_engine(mpq_qconv2d_engine_name(path, xh ? MPQ_QCONV_INDIRECT
                                                 : cb.fn == mpq_gemm_region_amx || cb.fn == mpq_gemm_region_amx_always
                                                     ? MPQ_QCONV_IM2COL_AMX : MPQ_QCONV_IM2COL));
    const int rc = im2col_gemm(&cb, x, s, g, khwc, x_zero_point, k, n, m, avx2, threads);
    free(xh);
    return rc;
}

// The blocked im2col (or, with cb->ind, no im2col) and the GEMM, split over the threads.
static int im2col_gemm(conv_blocks *cb, const uint8_t *x, const mpq_conv2d_shape *s, int g, int khwc,
                       uint8_t x_zero_point, int k, int n, int m, int avx2, int threads) {
    const int oh_n = mpq_conv2d_out_h(s), ow_n = mpq_conv2d_out_w(s);
    cb->x = x; cb->s = s; cb->g = g; cb->khwc = khwc; cb->zp = x_zero_point;
    cb->oh_n = oh_n; cb->ow_n = ow_n;
    // A stem (3 channels, 3x3 or 7x7): pad the group's planes once, so its im2col is whole
    // 16 x 16 transposes with no bounds checks (im2col_padded.c).
    uint8_t *padded = NULL;
    if (!cb->ind && mpq_im2col_padded_applies(s, khwc)) {
        padded = (uint8_t *)malloc(mpq_im2col_padded_bytes(s));
        if (!padded) return -1;
        mpq_im2col_pad_image(x, s, g, x_zero_point, padded);
    }
    cb->padded = padded;
    const int unit = 16 / gcd(ow_n, 16);  // fewest rows holding a multiple of 16 pixels
    // Rows of A padded to a multiple of 4 bytes, the pad zero (calloc; im2col never writes
    // it; with no pad, malloc: every byte is written) against the zero-padded packed weights: K runs as whole vpdpbusd groups, where a
    // K % 4 tail cost a short copy per row and tile (the 7x7 stem's K = 147: a third of its
    // GEMM time). The int32 sums are the same.
    const int kp = (k + 3) / 4 * 4;
    const int written = kp == k || padded;  // the padded im2col writes the pad columns too
    cb->job.k = kp;
    cb->job.lda = kp;
    const int fit = BLOCK_BYTES / kp / ow_n;
    cb->rows = fit > unit ? fit / unit * unit : unit;
    if (cb->rows > oh_n) cb->rows = oh_n;
    cb->blocks = (oh_n + cb->rows - 1) / cb->rows;
    if (threads > MPQ_POOL_MAX) threads = MPQ_POOL_MAX;  // (>= 1: mpq_qconv2d_u8s8)
    if (threads > 1 && avx2 && cb->fn == mpq_gemm_region_avx2 && !padded && cb->blocks >= 2 * threads &&
        balanced_rows_on()) {
        cb->rows = balanced_rows(oh_n, ow_n, fit, threads);
        cb->blocks = (oh_n + cb->rows - 1) / cb->rows;
    }
    if (threads > 1 && cb->blocks < 2 * threads) {
        // Too few blocks to share evenly (a 7x7 or 14x14 late layer): on the AVX2 GEMM where
        // panel_split_preferred says so, each thread its own im2col and share of the panels;
        // else one im2col, its rows split over the cores, then the GEMM splits its tiles.
        if (avx2 && cb->fn == mpq_gemm_region_avx2 && panel_split_preferred(m, n, kp, threads)) {
            panel_split ps = {cb, NULL, ((size_t)m * (size_t)kp + 63) / 64 * 64, threads, (n + 15) / 16, m};
            if (!cb->ind) {  // an indirect job shares the one copy and needs no im2col buffer
                ps.cols = col_alloc((size_t)threads, ps.col_bytes, written);
                if (!ps.cols) { free(padded); return -1; }
            }
            mpq_pool_run(threads, panel_split_task, &ps);
            free(ps.cols);
            free(padded);
            return 0;
        }
        if (cb->ind) {
            mpq_gemm_run(&cb->job, cb->fn, threads);
            return 0;
        }
        uint8_t *col = col_alloc((size_t)m, (size_t)kp, written);
        if (!col) { free(padded); return -1; }
        whole_im2col w = {cb, col, threads < oh_n ? threads : oh_n};
        mpq_pool_run(w.tasks, im2col_task, &w);
        cb->job.a = col;
        mpq_gemm_run(&cb->job, cb->fn, threads);
        free(col);
        free(padded);
        return 0;
    }
    const int tasks = threads < cb->blocks ? threads : cb->blocks;
    cb->block_bytes = cb->ind ? 0 : ((size_t)cb->rows * (size_t)ow_n * (size_t)kp + 63) / 64 * 64;
    cb->scratch = cb->ind ? NULL : col_alloc((size_t)tasks, cb->block_bytes, written);
    if (!cb->ind && !cb->scratch) { free(padded); return -1; }
    // Each thread a contiguous run of blocks (mpq_run_ranges): the 16 x 16 output tiles of
    // neighbouring blocks share cache lines of every output channel's row.
    mpq_run_ranges(tasks, cb->blocks, run_unit, cb);
    free(cb->scratch);
    free(padded);
    return 0;
}
