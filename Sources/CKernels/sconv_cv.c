// Channel-vector FP32 Conv for small planes (mpq_sgemm.h, docs/fp32-gemm.md "Channel-vector
// tiles"): output channels in the vector lanes, output pixels broadcast.
//
// The direct path puts output pixels in the lanes, numbered on the padded width, so a
// 16x16 plane computes 11% junk columns (and 11% padded rows for M = 32), 8x8 20%, 4x4
// 32 lanes for 16 pixels; a stride-2 Conv also splits the image into phase planes first.
// Here a tile is NV vectors of 16 output channels x NP output pixels (any pixels of the
// plane, in flat order): per k = (c, kh, kw) it loads one row of the weights block
// ([k][16 NV], packed once per weight) and broadcasts NP input values read at pixel
// offset + offsets[k] from the zero-padded NCHW image (no phase split for any stride; no
// copy at all for an unpadded Conv). Lanes past M hold zero weights and are never stored.
// Every output is the same fmaf chain in k order from +0 on the same values as the packed
// and direct tiles (padding taps multiply a +0 in all three), so the same bits, and bias,
// clamp, SiLU and the residual Add are the same calls in the same order.
#include "sgemm_internal.h"
#include "mpq_pool.h"
#include "sconv_blocked_skip.h"
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CV_BLOCK 64  // output channels per weights block: 4 vectors
#define CV_PIXELS 48 // output pixels per work unit at least (a unit: one weights block x these pixels)
#define CV_UNIT_MACS (128L << 10)
#define CV_EPILOGUE_PIXELS 128
#define CV2_SLICE_PIXELS 2048  // pixels per AVX2 part-kernel call (cv_part)  // pixels between the SiLU / residual passes of a part
#define CV_BATCH_PIXELS 256          // output pixels per plane up to which a batch may run blocks over images
#define CV_BATCH_IMAGES 16           // images padded together (one group of units)

static int round_up(int v, int to) { return (v + to - 1) / to * to; }

// --- Weights: per group, ceil(mg / 64) blocks of k x 16 nv (nv = that block's vectors; rows
// or sliced, mpq_sgemm.h), block b at b * k * 64 floats from the group's first; zero past mg.

size_t mpq_sconv_cv_weights_size(int m, int k, int group) {
    if (m <= 0 || k <= 0 || group <= 0 || m % group) return 0;
    const int blocks = (m / group + CV_BLOCK - 1) / CV_BLOCK;
    return sizeof(mpq_sconv_weights_header) + (size_t)group * (size_t)blocks * (size_t)k * CV_BLOCK * sizeof(float);
}

// Where weight (kk, i) of a block of `width` = 16 nv columns and k rows goes: rows [k][width],
// or sliced, per K block of MPQ_SCONV_CV_KC, [nv][kb][16].
static size_t cv_offset(int sliced, int k, int width, int kk, int i) {
    if (!sliced) return (size_t)kk * (size_t)width + (size_t)i;
    const int k0 = kk / MPQ_SCONV_CV_KC * MPQ_SCONV_CV_KC;
    return mpq_sconv_cv_slice_at(k, width, k0, i / 16) + (size_t)(kk - k0) * 16 + (size_t)(i % 16);
}

// Sliced for the AVX2 part kernel (s24): with rows, each K block's slices were copied out per
// call, 6-9% of ResNet-18's and resnet_digits' FP32 time (perf, the part kernel's own samples,
// most of them the copy's stores). MPQ_FP32_CV_SLICED=0 (read once) keeps rows, for A/B.
int mpq_sconv_cv_host_layout(void) {
    static _Atomic long env = -1;
    if (mpq_env_long_once("MPQ_FP32_CV_SLICED", 1, &env) == 0) return MPQ_SCONV_CV_ROWS;
    return mpq_resolve_kernel_path(MPQ_PATH_AUTO) == MPQ_PATH_AVX2 ? MPQ_SCONV_CV_SLICED : MPQ_SCONV_CV_ROWS;
}

int mpq_sconv_cv_pack_weights(const void *packed_w, void *cv) {
    return mpq_sconv_cv_pack_weights_layout(packed_w, MPQ_SCONV_CV_ROWS, cv);
}

int mpq_sconv_cv_pack_weights_layout(const void *packed_w, int layout, void *cv) {
    const mpq_sconv_weights_header *h = (const mpq_sconv_weights_header *)packed_w;
    if (!h || !cv || h->magic != MPQ_SCONV_WEIGHTS_MAGIC) return -1;
    if (layout != MPQ_SCONV_CV_ROWS && layout != MPQ_SCONV_CV_SLICED) return -1;
    mpq_sconv_weights_header *o = (mpq_sconv_weights_header *)cv;
    *o = *h;
    o->magic = MPQ_SCONV_CV_WEIGHTS_MAGIC;
    o->mg_padded = round_up(h->mg, 16);
    o->cv_layout = layout;
    o->flags = mpq_f32_tame(MPQ_PATH_AUTO, (const float *)(h + 1),
                            (size_t)h->group * (size_t)(h->mg_padded / MPQ_SGEMM_MR) * (size_t)h->k * MPQ_SGEMM_MR, 1)
                   ? MPQ_SCONV_WEIGHTS_TAME
                   : 0;
    const int k = h->k, mg = h->mg, panels = h->mg_padded / MPQ_SGEMM_MR;
    const int blocks = (mg + CV_BLOCK - 1) / CV_BLOCK;
    const float *src = (const float *)(h + 1);
    float *dst = (float *)(o + 1);
    for (int g = 0; g < h->group; g++)
        for (int b = 0; b < blocks; b++) {
            const int nv = (mg - b * CV_BLOCK + 15) / 16 < 4 ? (mg - b * CV_BLOCK + 15) / 16 : 4, width = 16 * nv;
            float *blk = dst + ((size_t)g * (size_t)blocks + (size_t)b) * (size_t)k * CV_BLOCK;
            for (int kk = 0; kk < k; kk++)
                for (int i = 0; i < width; i++) {
                    const int row = b * CV_BLOCK + i;  // from the [k][MR] panel that holds it
                    blk[cv_offset(layout == MPQ_SCONV_CV_SLICED, k, width, kk, i)] =
                        row < mg ? src[((size_t)g * (size_t)panels + (size_t)(row / MPQ_SGEMM_MR)) * (size_t)k * MPQ_SGEMM_MR +
                                       (size_t)kk * MPQ_SGEMM_MR + (size_t)(row % MPQ_SGEMM_MR)]
                                 : 0.0f;
                }
        }
    return 0;
}

// Pixels per tile at most for nv vectors: 24 accumulators (8 for one vector, the FMA
// latency's minimum).
int mpq_sconv_cv_tile_pixels(int nv) { return nv <= 3 ? 8 : nv == 4 ? 6 : nv <= 6 ? 4 : 3; }

// --- The scalar reference tile: rows i < `rows` x pixels p < np, the fmaf chain.
float mpq_sconv_cv_reference_output(int kc, const float *w, int nv, int i, const float *x, ptrdiff_t pixel,
                                    const int32_t *offsets, const mpq_sgemm_tile_epilogue *ep, int sliced) {
    // Channel i's weights: its block (64 wide, or 16 nv for a last block), column c of it.
    const float *wb = nv <= 4 || i < 64 ? w : w + (size_t)kc * 64;
    const int width = nv <= 4 ? 16 * nv : i < 64 ? 64 : 16 * (nv - 4), c = nv <= 4 || i < 64 ? i : i - 64;
    float acc = 0.0f;
    for (int k = 0; k < kc; k++) acc = fmaf(wb[cv_offset(sliced, kc, width, k, c)], x[pixel + offsets[k]], acc);
    if (ep) {
        if (ep->bias && ep->bias[i] != 0.0f) acc = acc + ep->bias[i];
        if (ep->clamp) acc = acc < ep->lo ? ep->lo : (acc > ep->hi ? ep->hi : acc);
    }
    return acc;
}

void mpq_sconv_cv_tile_reference(int kc, const float *w, int nv, const float *x, const int32_t *offsets, const int32_t *pix,
                                 int np, float *y, size_t plane, int rows, const mpq_sgemm_tile_epilogue *ep) {
    for (int i = 0; i < rows; i++)
        for (int p = 0; p < np; p++)
            y[(size_t)i * plane + (size_t)p] = mpq_sconv_cv_reference_output(kc, w, nv, i, x, pix[p], offsets, ep, 0);
}

void mpq_sconv_cv_tile_reference_sliced(int kc, const float *w, int nv, const float *x, const int32_t *offsets,
                                        const int32_t *pix, int np, float *y, size_t plane, int rows,
                                        const mpq_sgemm_tile_epilogue *ep) {
    for (int i = 0; i < rows; i++)
        for (int p = 0; p < np; p++)
            y[(size_t)i * plane + (size_t)p] = mpq_sconv_cv_reference_output(kc, w, nv, i, x, pix[p], offsets, ep, 1);
}

typedef void (*cv_tile_fn)(int, const float *, int, const float *, const int32_t *, const int32_t *, int, float *, size_t,
                           int, const mpq_sgemm_tile_epilogue *);

typedef struct {
    mpq_kernel_path path;
    cv_tile_fn tile;
    int sliced;  // the weights are MPQ_SCONV_CV_SLICED
    const float *x;
    const mpq_conv2d_shape *s;
    size_t in_image, out_image, padded_image;
    int copy, hp, wp;
    int group, cg, mg, k, blocks, oh, ow, pixels, pchunks;
    int span, spans;  // weights blocks per part (2 for planes of a few pixels), parts per group
    const int32_t *offsets;  // per k, from the group's first (padded) channel
    const int32_t *pix;      // per output pixel: its window's first tap in the (padded) plane
    const float *w, *bias;
    mpq_activation act;
    float lo, hi;
    float *y;
    const mpq_sconv_residual *residual;
    const float *shared;  // one image's (padded) input, all threads (single-image mode); or
                          // `images` images' from `image` on (blocks-over-images mode)
    int mode, units, chunk, image, images, pad_tasks;
    _Atomic int next;
    mpq_sconv_ranges ranges;  // one image split over the threads (count 0: the shared counter `next`)
} cv_job;

static _Thread_local float *pad_buf;
static _Thread_local size_t pad_cap;


// One plane [h][w] zero-padded into [hp][wp] (pad_top rows and pad_left columns first), each
// float written once (a memset of the whole plane, then the rows copied over it, wrote the
// interior twice). The channel-vector and blocked drivers' copy where AVX-512 is not there.
void mpq_sconv_pad_plane(const float *x, int h, int w, int pad_top, int pad_left, int hp, int wp, float *d) {
    memset(d, 0, (size_t)pad_top * (size_t)wp * sizeof(float));
    d += (size_t)pad_top * (size_t)wp;
    const int pr = wp - w - pad_left;
    for (int r = 0; r < h; r++, d += wp) {
        for (int q = 0; q < pad_left; q++) d[q] = 0.0f;
        memcpy(d + pad_left, x + (size_t)r * (size_t)w, (size_t)w * sizeof(float));
        for (int q = 0; q < pr; q++) d[pad_left + w + q] = 0.0f;
    }
    memset(d, 0, (size_t)(hp - pad_top - h) * (size_t)wp * sizeof(float));
}

// Channels [c0, c1) of image `img` zero-padded into dst ([C][hp][wp]).
static void pad_channels(const cv_job *j, int img, int c0, int c1, float *dst) {
    const mpq_conv2d_shape *s = j->s;
    const int H = s->height, W = s->width, wp = j->wp, pl = s->pad_left;
    const float *x = j->x + (size_t)img * j->in_image;
    for (int c = c0; c < c1; c++) {
        const float *xc = x + (size_t)c * (size_t)H * (size_t)W;
        float *d = dst + (size_t)c * (size_t)j->hp * (size_t)wp;
        (j->path == MPQ_PATH_VNNI ? mpq_sconv_pad_plane_avx512 : mpq_sconv_pad_plane)(xc, H, W, s->pad_top, pl, j->hp, wp, d);
    }
}

// One image's padding split over the threads by channels (single-image mode); in the
// blocks-over-images mode, images [image, image + images) split over the threads by image.
static void pad_task(void *arg, int t) {
    const cv_job *j = (const cv_job *)arg;
    if (j->mode == MPQ_SCONV_SPLIT_M) {
        for (int i = j->images * t / j->pad_tasks; i < j->images * (t + 1) / j->pad_tasks; i++)
            pad_channels(j, j->image + i, 0, j->s->channels, (float *)j->shared + (size_t)i * j->padded_image);
        return;
    }
    const int c = j->s->channels;
    pad_channels(j, j->image, (int)((long)c * t / j->pad_tasks), (int)((long)c * (t + 1) / j->pad_tasks), (float *)j->shared);
}

// Points the job's shared input at image `img` (with the images after it that the job runs
// together): padded into `shared` over min(threads, parts) pool tasks (parts: the images of a
// group, or one image's channels; pad_task splits by the mode), or the input itself when
// the Conv has no padding.
static void stage_input(cv_job *j, int img, float *shared, int parts, int threads) {
    j->image = img;
    if (!j->copy) {
        j->shared = j->x + (size_t)img * j->in_image;
        return;
    }
    j->shared = shared;
    j->pad_tasks = threads < parts ? threads : parts;
    if (j->pad_tasks > MPQ_POOL_MAX) j->pad_tasks = MPQ_POOL_MAX;
    if (j->pad_tasks < 1) j->pad_tasks = 1;
    mpq_pool_run(j->pad_tasks, pad_task, j);
}

// The passes after a part's tiles over its `rows` channel rows (from yb) and pixels [q, p):
// the SiLU, then the residual Add as the separate Add's call (operands in its order): the
// same bits.
static void part_passes(const cv_job *j, float *yb, int rows, int q, int p) {
    const size_t plane = (size_t)j->oh * (size_t)j->ow;
    if (j->act == MPQ_ACT_SILU)
        mpq_conv_epilogue_f32(j->path, yb + q, (size_t)rows, (size_t)(p - q), plane, NULL, j->act, j->lo, j->hi);
    const mpq_sconv_residual *r = j->residual;
    for (int i = 0; r && i < rows; i++) {
        float *yy = yb + (size_t)i * plane + (size_t)q;
        const float *sc = r->shortcut + (yy - j->y);
        mpq_binary_f32(j->path, 0, r->relu, r->shortcut_first ? sc : yy, r->shortcut_first ? yy : sc, (size_t)(p - q), yy, 1);
    }
}

// Output channels of blocks [b, b + span) x pixels [p0, p1) of image img, group g, from
// `src` (the image's padded input): tiles of up to mpq_sconv_cv_tile_pixels pixels, evenly
// split, then the SiLU and the residual Add over the part's rows and pixels while they are
// in cache.
static void cv_part(const cv_job *j, const float *src, int img, int g, int b, int p0, int p1) {
    const size_t plane = (size_t)j->oh * (size_t)j->ow;
    const int row0 = b * CV_BLOCK, span = j->span * CV_BLOCK, rows = j->mg - row0 < span ? j->mg - row0 : span;
    const int nv = (rows + 15) / 16, most = mpq_sconv_cv_tile_pixels(nv);
    const float *w = j->w + ((size_t)g * (size_t)j->blocks + (size_t)b) * (size_t)j->k * CV_BLOCK;
    const float *xg = src + (size_t)g * (size_t)j->cg * (size_t)j->hp * (size_t)j->wp;
    float *yb = j->y + (size_t)img * j->out_image + ((size_t)g * (size_t)j->mg + (size_t)row0) * plane;
    const float *bias = j->bias ? j->bias + (size_t)g * (size_t)j->mg + (size_t)row0 : NULL;
    const mpq_sgemm_tile_epilogue ep = {bias, j->act == MPQ_ACT_CLAMP, j->lo, j->hi, NULL, NULL};
    const mpq_sgemm_tile_epilogue *epp = bias || j->act == MPQ_ACT_CLAMP ? &ep : NULL;
    // AVX2: the part kernel (sconv_cv_avx2.c, K in blocks) over slices of at most
    // CV2_SLICE_PIXELS pixels, each followed by its SiLU and residual passes; the tiles below
    // only where its buffer cannot be allocated. Why slices: the kernel keeps every chunk's
    // partial sums between K blocks (384 bytes a 6-pixel chunk and vector), and since s22 the
    // rule sends strided Convs of any size here: a 640x640 detector's 32->64 3x3/2 (25,600
    // pixels, K = 288) would stream 6.5 MB of them per block. At 56x56 and below slices of
    // 768-1536 pixels measured the same as one pass (s22).
    if (j->path == MPQ_PATH_AVX2) {
        static _Atomic long slice_state = -1;
        const long slice = mpq_env_long_once("MPQ_CV2_SLICE_PIXELS", CV2_SLICE_PIXELS, &slice_state);
        const int all = p1 - p0, slices = slice > 0 ? (int)((all + slice - 1) / slice) : 1;
        int q = p0;
        for (int t = 0; t < slices; t++) {
            const int p = p0 + (int)((long)all * (t + 1) / slices);
            if (mpq_sconv_cv_part_avx2(j->k, w, nv, j->sliced, xg, j->offsets, j->pix + q, p - q, yb + q, plane, rows, epp))
                break;
            part_passes(j, yb, rows, q, p);
            q = p;
        }
        if (q == p1) return;
        p0 = q;  // the part kernel's buffer could not be allocated: the tiles from here
    }
    const int n = p1 - p0, tiles = (n + most - 1) / most;
    // The SiLU and the residual every CV_EPILOGUE_PIXELS or so (whole tiles), while the
    // tiles' output is in L1: once per part, a 4096-pixel stem's 256 KB came back from L2.
    for (int t = 0, p = p0, q = p0; t < tiles; t++) {
        const int np = (n * (t + 1)) / tiles - (n * t) / tiles;
        j->tile(j->k, w, nv, xg, j->offsets, j->pix + p, np, yb + p, plane, rows, epp);
        p += np;
        if (p - q < CV_EPILOGUE_PIXELS && t + 1 < tiles) continue;
        part_passes(j, yb, rows, q, p);
        q = p;
    }
}

// Pixel chunk c's first pixel: an even split, on 16-pixel (64-byte) boundaries where the
// plane is a multiple of 16, so two threads never write one cache line of a channel row
// (unaligned chunks made a 28x28 layer 1.5-2x slower on two threads than on one).
static int chunk_start(const cv_job *j, int c) {
    if (c >= j->pchunks) return j->pixels;
    const int p = (int)((long)j->pixels * c / j->pchunks);
    return j->pixels % 16 ? p : p / 16 * 16;
}

static void run_units(const cv_job *j, int u0, int u1) {
    if (j->mode == MPQ_SCONV_SPLIT_IMAGES) {
        for (int img = u0; img < u1; img++) {
            const float *src = j->x + (size_t)img * j->in_image;
            if (j->copy) {
                pad_channels(j, img, 0, j->s->channels, pad_buf);  // run_task sized it
                src = pad_buf;
            }
            for (int g = 0; g < j->group; g++)
                for (int b = 0; b < j->blocks; b += j->span) cv_part(j, src, img, g, b, 0, j->pixels);
        }
        return;
    }
    if (j->mode == MPQ_SCONV_SPLIT_M) {
        // Unit u: (group, block) x image of this group of images, images innermost: each
        // thread streams its range of blocks once for all the images.
        for (int u = u0; u < u1; u++) {
            const int i = u % j->images, gb = u / j->images;
            const float *src = j->shared + (size_t)i * (j->copy ? j->padded_image : j->in_image);
            cv_part(j, src, j->image + i, gb / j->spans, gb % j->spans * j->span, 0, j->pixels);
        }
        return;
    }
    // Unit u: group, block, pixel chunk (pixel chunks innermost, sharing the block's weights).
    for (int u = u0; u < u1; u++) {
        const int c = u % j->pchunks, gb = u / j->pchunks;
        const int p0 = chunk_start(j, c), p1 = chunk_start(j, c + 1);
        cv_part(j, j->shared, j->image, gb / j->spans, gb % j->spans * j->span, p0, p1);
    }
}

static void run_task(void *arg, int t) {
    cv_job *j = (cv_job *)arg;
    if (j->mode == MPQ_SCONV_SPLIT_IMAGES && j->copy && !mpq_sconv_grown(&pad_buf, &pad_cap, j->padded_image)) return;
    if (j->ranges.count) {
        for (int u; (u = mpq_sconv_ranges_next(&j->ranges, t)) >= 0;) run_units(j, u, u + 1);
        return;
    }
    for (;;) {
        const int u0 = atomic_fetch_add_explicit(&j->next, j->chunk, memory_order_relaxed);
        if (u0 >= j->units) return;
        run_units(j, u0, u0 + j->chunk < j->units ? u0 + j->chunk : j->units);
    }
}

// One image split over the threads: a contiguous range of units per thread (whole weights
// blocks where there are several per thread), so each core reads about 1 / threads of the
// weights (mpq_sconv_ranges).
static void run(cv_job *j, int threads) {
    mpq_pool_run(mpq_sconv_claims_start(j->units, threads, j->mode, &j->chunk, &j->next, &j->ranges), run_task, j);
}

static int all_claimed(cv_job *j) { return mpq_sconv_all_claimed(&j->ranges, &j->next, j->units); }

// On unless MPQ_FP32_CONV_CV=0 (read once), which keeps every Conv on the direct path.
static int cv_enabled(void) {
    static _Atomic int state;
    return mpq_env_switch_on("MPQ_FP32_CONV_CV", &state);
}

// On unless MPQ_FP32_CONV_CV_BATCH=0 (read once): several images' small planes with large
// weights run blocks over images (blocks_over_images).
static int batch_enabled(void) {
    static _Atomic int state;
    return mpq_env_switch_on("MPQ_FP32_CONV_CV_BATCH", &state);
}

// Whether a batch runs (weights block, image) units, blocks outermost, instead of one image
// per thread through every block: by the bytes each thread streams from past L2. One image
// per thread reads all the weights per image unless they stay in L2 (half of it) across its
// images; blocks over images read each thread's share of the weights once, and per block all
// the images' (padded) inputs unless those together stay in L2. Small planes only (the
// images' inputs are padded together). ResNet-18 at batch 16, layer by layer: the 7x7 and
// 14x14 layers with 2.4-9.4 MB of weights take it, the 28x28 -> 14x14 stride-2 layer (1.2 MB
// of weights, 0.46 MB of padded input per image) does not. Per core, one image per thread
// streamed every block from L3: the 7x7 512-channel layer (9.4 MB) ran at 130 GFLOP/s where
// the same layer with 128 output channels (2.4 MB) ran at 150.
static int blocks_over_images(const cv_job *j, int images, int threads) {
    if (!batch_enabled() || j->pixels > CV_BATCH_PIXELS) return 0;
    const size_t l2 = mpq_l2_bytes() / 2, weights = (size_t)j->group * (size_t)j->blocks * (size_t)j->k * CV_BLOCK * sizeof(float);
    const int t = threads < images ? (threads > 1 ? threads : 1) : images;
    const size_t per_image = (j->copy ? j->padded_image : j->in_image) * sizeof(float);
    const int n = images < CV_BATCH_IMAGES ? images : CV_BATCH_IMAGES;  // images per group
    const size_t by_image = weights <= l2 ? weights : weights * (size_t)((images + t - 1) / t);
    const size_t group_in = per_image * (size_t)n, parts = (size_t)(j->group * j->spans + t - 1) / (size_t)t;
    const size_t by_block = weights / (size_t)t + (group_in <= l2 ? group_in : group_in * parts) * (size_t)((images + n - 1) / n);
    return by_block < by_image;
}

int mpq_sconv2d_f32_cv_applies(const mpq_conv2d_shape *s) {
    if (!s || s->stride_h < 1 || s->stride_w < 1 || s->group < 1 || s->channels % s->group || s->kernel_h < 1 ||
        s->kernel_w < 1 || s->dilation_h < 1 || s->dilation_w < 1 || s->pad_top < 0 || s->pad_left < 0 ||
        s->pad_bottom < 0 || s->pad_right < 0)
        return 0;
    const long hp = (long)s->height + s->pad_top + s->pad_bottom, wp = (long)s->width + s->pad_left + s->pad_right;
    const long oh = mpq_conv2d_out_h(s), ow = mpq_conv2d_out_w(s);
    // Offsets and pixel positions are int.
    return hp > 0 && wp > 0 && oh > 0 && ow > 0 && (long)s->channels * hp * wp < INT32_MAX && oh * ow < INT32_MAX;
}

// The output-plane size up to which Convs take this kernel: MPQ_SCONV_CV_MAX_PIXELS, or
// MPQ_FP32_CONV_CV_PIXELS (read once) to time another threshold without a rebuild.
static long cv_max_pixels(void) {
    static _Atomic long state = -1;
    return mpq_env_long_once("MPQ_FP32_CONV_CV_PIXELS", MPQ_SCONV_CV_MAX_PIXELS, &state);
}

// The AVX2 path's choice (s21, sconv_cv_avx2.c): MPQ_FP32_CONV_CV_AVX2 = 0 never, 1 the rule
// below, 2 every Conv the kernel applies to (read once; for A/B).
static int cv_preferred_avx2(const mpq_conv2d_shape *s, int m) {
    static _Atomic long state = -1;
    const long mode = mpq_env_long_once("MPQ_FP32_CONV_CV_AVX2", 1, &state);
    if (mode == 2) return 1;
    if (mode == 0) return 0;
    // Measured per layer against the direct path (C harness, Zen 3, AVX2; one and two threads,
    // batch 1 and 16; the part kernel, K blocks over the part, sconv_cv_avx2.c): the channel-
    // vector tiles win where the direct path's pixel lanes are short, strided or padded, and
    // lose where they are long and read rows in place. Since s22 the part kernel stores its
    // chunks without vmaskmovps (mpq_store_first8; 5-30% off every layer), which moved the
    // line (one thread batch 4 / two threads batch 1 / one thread batch 1 / two threads batch
    // 16, cv time / direct time). Taken, with 16-channel vectors:
    // - strided non-1x1 Convs at any size: ResNet-18's stride-2 3x3 0.83-0.93, its 7x7/2 stem
    //   (112x112 out) 0.93/1.03/0.95/0.93, MobileNetV2's 3x3/2 stem 0.86-0.94, resnet_digits'
    //   and the detector's 0.70-0.85;
    // - stride-1 non-1x1 Convs onto up to 56x56: ResNet-18's 56x56 0.93/1.01/0.92/0.95, its
    //   28x28-7x7 0.78-0.99, resnet_digits' 16-channel 56x56 0.93-0.99, the detector's 0.85-0.99
    //   (its 3-channel stem onto 64x64, K = 27, lost: 1.07-1.19);
    // - 1x1 stride 2 onto up to 14x14 (ResNet-18's 256->512: 0.77-0.91; its 64->128 onto 28x28
    //   lost, 1.06-1.31);
    // - 1x1 stride 1 on up to 7x7 (MobileNetV2's last layers: 0.81-0.94), and on 14x14 where
    //   the layer narrows from at least 192 channels to at most half (MobileNetV2's projections
    //   192->64, 384->64/96, 576->96: 0.74-1.02, mostly 0.9-0.98; its expansions 64->384 and
    //   96->576 lost, 1.05-1.18, as did every 1x1 at 28x28 and above).
    const long pixels = (long)mpq_conv2d_out_h(s) * mpq_conv2d_out_w(s);
    const int mg = m / s->group, cg = s->channels / s->group;
    const int strided = s->stride_h > 1 || s->stride_w > 1, one = s->kernel_h == 1 && s->kernel_w == 1;
    // Channels 1-8 past a multiple of 16 (from 24): the part kernel's 24-channel tiles
    // (s22; the detector's 16->24 3x3/2 0.87x, 32->40 3x3 0.90, 40->56 3x3/2 0.74, one thread).
    if (mg % 16 && (one || mg < 16 || mg % 16 > 8)) return 0;
    if (one && strided) return pixels <= 196;
    if (one) return pixels <= 49 || (pixels <= 196 && cg >= 192 && 2 * mg <= cg);
    return strided || pixels <= 3136;
}

// Measured per layer in a one-thread C A/B against the direct path (benchmarks/README.md,
// s10-fp32small): 0.16-0.86x of its time on every plane up to 16x16; at 28x28 0.80-0.89x for
// 3x3 and strided Convs with M a multiple of 16 (ResNet-digits' layer2), but 0.99-1.11x for
// 1x1 stride-1 Convs (MobileNetV2: pixels in the lanes read the image rows in place) and
// 1.05x at 32x32 with M = 24 (a half-empty second vector); 1.16x at 56x56; and 1.0-1.5x
// for 1x1 stride-1 Convs with K = 64-96 at 14x14 (0.73-0.99x from K = 160).
// One image split over the cores (batch 1): the detector's 64x64 3-channel stem and 32x32
// stride-2 layer (M = 24), which the one-core rule leaves on the direct path (1.04-1.08x
// there), took 0.65-0.78x and 0.90x of its time in `mpq profile` at batch 1 on two threads
// (and 0.75-0.92x in the two-thread C A/B, ResNet-digits' 56x56 layer 0.88-0.94x).
int mpq_sconv2d_f32_cv_preferred(mpq_kernel_path path, const mpq_conv2d_shape *s, int m, int images, int threads) {
    path = mpq_resolve_kernel_path(path);
    if ((path != MPQ_PATH_VNNI && path != MPQ_PATH_AVX2) || !cv_enabled() || !mpq_sconv2d_f32_cv_applies(s)) return 0;
    if (path == MPQ_PATH_AVX2) return cv_preferred_avx2(s, m);
    const long pixels = (long)mpq_conv2d_out_h(s) * mpq_conv2d_out_w(s), most = cv_max_pixels();
    const int pointwise = s->kernel_h == 1 && s->kernel_w == 1 && s->stride_h == 1 && s->stride_w == 1;
    // 1x1 stride 1 with K < 128 (MobileNetV2's expand layers, 64 -> 384 at 14x14): short tiles,
    // the transposed store is a fifth of each; the direct path reads the rows in place.
    if (pointwise && s->channels / s->group < 128) return 0;
    const int split = threads > 1 && images < threads;
    // Split over two threads, MobileNetV2's 1x1 layers at 14x14 and 7x7 were 0.78-1.04x of the
    // direct path in the C A/B and the model 1.12x at batch 1 with the kernel on: kept off
    // until s15-split. Since then, with the layers around them split by channels, the 7x7 ones
    // with 4 weights blocks or more (M / group >= 256; the direct path's 49-pixel tile is 4
    // vectors, a quarter of its lanes empty) take it: in the model-order C harness
    // (benchmarks/fp32_mbv2_sequence.c, two threads) 960 -> 320 148 -> 127 us, 320 -> 1280
    // 187 -> 157, 160 -> 960 71 -> 67; M = 160 (3 blocks, each thread reads 2 of them) lost,
    // 81 -> 83. Up to MPQ_FP32_CONV_CV_PW_PIXELS (read once; default 64, 0 never).
    static _Atomic long pw_state = -1;
    if (pointwise && split && (pixels > mpq_env_long_once("MPQ_FP32_CONV_CV_PW_PIXELS", 64, &pw_state) || m / s->group < 256))
        return 0;
    if (pixels <= most) return 1;
    // Up to 64P (128x128) since s11-fp32conv: ResNet-18's 7x7 stride-2 stem (112x112 out, 3
    // input channels) took 0.84x of the direct path's time on two threads in the C harness's
    // `seq` mode (interleaved minima over 40 runs, 0.99 vs 1.18 ms).
    if (split && !pointwise && pixels <= 64 * most) return 1;
    // One core (s11-fp32conv, one-thread C A/B on an idle Intel host): 56x56 3x3 Convs with
    // 32-64 output channels took 0.85-0.91x of the direct path's time (ResNet-18's layer1
    // 1.47 vs 1.73 ms), but 1.07x with 16 (resnet_digits' layer1: K = 144, short tiles).
    const int mg = m / s->group;
    return !pointwise && mg % 16 == 0 && (pixels <= 4 * most || (pixels <= 16 * most && mg >= 32));
}

int mpq_sconv2d_f32_cv(mpq_kernel_path path, const float *x, int images, const mpq_conv2d_shape *s, const void *cv_w,
                       const float *bias, mpq_activation act, float lo, float hi, const mpq_sconv_residual *residual, float *y,
                       int threads) {
    const mpq_sconv_weights_header *h = (const mpq_sconv_weights_header *)cv_w;
    if (!x || !s || !h || !y || images < 0 || h->magic != MPQ_SCONV_CV_WEIGHTS_MAGIC || h->group != s->group ||
        (h->cv_layout != MPQ_SCONV_CV_ROWS && h->cv_layout != MPQ_SCONV_CV_SLICED) ||
        !mpq_sconv2d_f32_cv_applies(s) || (long)(s->channels / s->group) * s->kernel_h * s->kernel_w != h->k)
        return -1;
    cv_job j = {0};
    j.path = mpq_resolve_kernel_path(path);
    j.sliced = h->cv_layout == MPQ_SCONV_CV_SLICED;
    // The AVX-512 tile reads rows: sliced weights (packed for an AVX2 host) run the AVX2 part
    // kernel, which every AVX-512 CPU has (the same bits).
    if (j.sliced && j.path == MPQ_PATH_VNNI) j.path = MPQ_PATH_AVX2;
    // AVX2 runs whole parts (mpq_sconv_cv_part_avx2); its tile here is the reference's, for a
    // part whose buffer of partial sums cannot be allocated.
    j.tile = j.path == MPQ_PATH_VNNI ? mpq_sconv_cv_tile_avx512
             : j.sliced              ? mpq_sconv_cv_tile_reference_sliced
                                     : mpq_sconv_cv_tile_reference;
    j.x = x;
    j.s = s;
    j.images = images;
    j.copy = s->pad_top || s->pad_left || s->pad_bottom || s->pad_right;
    j.hp = s->height + s->pad_top + s->pad_bottom;
    j.wp = s->width + s->pad_left + s->pad_right;
    j.in_image = (size_t)s->channels * (size_t)s->height * (size_t)s->width;
    j.padded_image = (size_t)s->channels * (size_t)j.hp * (size_t)j.wp;
    j.group = s->group;
    j.cg = s->channels / s->group;
    j.mg = h->mg;
    j.k = h->k;
    j.blocks = (h->mg + CV_BLOCK - 1) / CV_BLOCK;
    j.oh = mpq_conv2d_out_h(s);
    j.ow = mpq_conv2d_out_w(s);
    j.pixels = j.oh * j.ow;
    // Planes of 1-3 pixels: 4-vector tiles would hold 4-12 accumulators; two blocks per tile
    // double that (a 1x1 plane with 128 channels: 8 FMA chains instead of 4).
    j.span = j.pixels <= 3 ? 2 : 1;
    j.spans = (j.blocks + j.span - 1) / j.span;
    j.out_image = (size_t)h->m * (size_t)j.pixels;
    j.w = (const float *)(h + 1);
    j.bias = bias;
    j.act = act;
    j.lo = lo;
    j.hi = hi;
    j.y = y;
    j.residual = residual && residual->shortcut ? residual : NULL;
    if (images == 0) return 0;
    int32_t *offsets = malloc(((size_t)j.k + (size_t)j.pixels) * sizeof(int32_t));
    if (!offsets) return -1;
    int32_t *pix = offsets + j.k;
    const int taps = s->kernel_h * s->kernel_w;
    for (int c = 0, k = 0; c < j.cg; c++)
        for (int kh = 0; kh < s->kernel_h; kh++)
            for (int kw = 0; kw < s->kernel_w; kw++, k++)
                offsets[k] = (int32_t)(((long)c * j.hp + (long)kh * s->dilation_h) * j.wp + (long)kw * s->dilation_w);
    (void)taps;
    for (int oh = 0; oh < j.oh; oh++)
        for (int ow = 0; ow < j.ow; ow++)
            pix[oh * j.ow + ow] = (int32_t)((long)oh * s->stride_h * j.wp + (long)ow * s->stride_w);
    j.offsets = offsets;
    j.pix = pix;
    int rc = 0;
    if (images > 1 && blocks_over_images(&j, images, threads)) {
        // Images in groups of CV_BATCH_IMAGES: padded together (split over the threads by
        // image) into the caller's buffer, then (block, image) units, blocks outermost.
        const int most = images < CV_BATCH_IMAGES ? images : CV_BATCH_IMAGES;
        float *shared = NULL;
        if (j.copy && !(shared = mpq_sconv_grown(&pad_buf, &pad_cap, (size_t)most * j.padded_image))) {
            free(offsets);
            return -1;
        }
        j.mode = MPQ_SCONV_SPLIT_M;
        for (int img = 0; img < images && rc == 0; img += most) {
            j.images = images - img < most ? images - img : most;
            j.units = j.group * j.spans * j.images;
            stage_input(&j, img, shared, j.images, threads);
            run(&j, threads);
            if (!all_claimed(&j)) rc = -1;
        }
        free(offsets);
        return rc;
    }
    if (images > 1 && images >= threads) {
        j.mode = MPQ_SCONV_SPLIT_IMAGES;
        j.units = images;
        run(&j, threads);
        rc = all_claimed(&j) ? 0 : -1;
        free(offsets);
        return rc;
    }
    // One image at a time: padded once by the caller, then (group, block, pixel chunk) units.
    float *shared = NULL;
    if (j.copy && !(shared = mpq_sconv_grown(&pad_buf, &pad_cap, j.padded_image))) {
        free(offsets);
        return -1;
    }
    // AVX2 (s22): the part kernel blocks K itself and reads (sliced) or copies (rows) a part's
    // weights once per call, so the fewest pixel chunks that give every thread the same number
    // of units: ResNet-18-sized
    // units (CV_UNIT_MACS, below) split a 64-channel 14x14 plane into 5, one thread ran 3 (1.44x
    // on two threads against one) and each unit copied the whole 147 KB of weights again.
    // Only where all parts are alike (a contiguous range counts units, not channels: M = 96 as
    // 64 + 32 gave one thread twice the other's work, MobileNetV2's 576->96 1.13x).
    static _Atomic long even_state = -1;
    const int parts = j.group * j.spans, alike = j.spans == 1 || j.mg % (j.span * CV_BLOCK) == 0;
    if (j.path == MPQ_PATH_AVX2 && threads > 1 && alike && mpq_env_long_once("MPQ_CV2_EVEN_UNITS", 1, &even_state)) {
        j.pchunks = 1;
        while ((parts * j.pchunks) % threads && j.pchunks * 16 < j.pixels) j.pchunks++;
    } else {
        // Units of at least CV_UNIT_MACS (a claim is an atomic on a line both cores write; the
        // 28x28 1x1 stride-2 layer with 48-pixel units spent more on claims than on FMAs), and
        // at least two per thread where the plane allows.
        const long per_pixel = (long)(j.mg < j.span * CV_BLOCK ? j.mg : j.span * CV_BLOCK) * j.k;
        int cp = CV_PIXELS;
        while ((long)cp * per_pixel < CV_UNIT_MACS && cp < j.pixels) cp += 16;
        j.pchunks = threads > 1 ? (j.pixels + cp - 1) / cp : 1;
        // Enough units for the threads when there are few blocks (a 4x4 plane is 16 pixels).
        while (threads > 1 && parts * j.pchunks < 2 * threads && j.pchunks * 8 < j.pixels) j.pchunks++;
    }
    j.mode = MPQ_SCONV_SPLIT_N;
    j.units = parts * j.pchunks;
    for (int img = 0; img < images && rc == 0; img++) {
        stage_input(&j, img, shared, s->channels, threads);
        run(&j, threads);
        if (!all_claimed(&j)) rc = -1;
    }
    free(offsets);
    return rc;
}
