// Channel-blocked FP32 Conv (mpq_sgemm.h, docs/fp32-blocked-layout.md): input and output in
// [N][C/16][H][W][16] (lanes past C zero), the channel-vector kernel's weights and tiles
// (sconv_cv.c) with a blocked broadcast and a whole-vector store.
//
// Today's channel-vector Conv pads a copy of its NCHW input (mpq_sconv_pad_plane_avx512) and
// transposes every tile into the output planes. Here a tile reads the blocked input in place
// (x[cb][ih][iw][c % 16]: one broadcast per pixel and k, as before) and stores its
// accumulators as they are. Padding: a tile whose window stays inside the image (the interior,
// most tiles of a large plane) reads the image; a tile with any tap outside it (a border tile)
// first copies its own window, a few vectors per channel block, into a small zero-padded patch
// and reads that. Why not ORT's clipping of the tap range: a skipped tap is not the same as
// fmaf(w, +0, acc): with acc = -0 and w >= +0 the FMA gives +0, a skip keeps -0, and whether a
// -0 partial sum meets such a tap depends on the order of the taps (a fix-up "+ 0" at the end
// turns a -0 that a later underflowing product made into +0 too). The patch holds +0 where
// today's padded copy holds +0, so every output is the same fmaf chain on the same values:
// today's bits for every input and weight, non-finite included, with no routing.
#include "sgemm_internal.h"
#include "mpq_pool.h"
#include "sconv_blocked_skip.h"
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define BK_BLOCK 64  // output channels per weights block (the channel-vector weights' blocks)
#define BK_TAME_IMAGES 16 // images split over the threads with the skip's guard kept per image
#define BK_MAX_NP MPQ_SCONV_BLOCKED_AVX2_MAX_NP  // pixels per tile at most (the AVX2 tile's; the others take up to 8)
// Output rows narrower than this run in flat mode: the padded image copied once per image
// (one vector per padded pixel and channel block) and tiles over consecutive output pixels as
// the channel-vector kernel's, so a 7-pixel row is not cut into 3 + 4-pixel tiles (12-16
// accumulators): ResNet-18's 7x7 and 14x14 layers ran 1.03-1.13x of the channel-vector
// kernel's time with row tiles (one-thread C A/B, fp32_blocked_ab.sh).
#ifndef BK_FLAT_WIDTH
#define BK_FLAT_WIDTH 16
#endif

size_t mpq_blocked_image_floats(int channels, int h, int w) {
    if (channels <= 0 || h <= 0 || w <= 0) return 0;
    return (size_t)(channels + 15) / 16 * 16 * (size_t)h * (size_t)w;
}

// --- Reorders: scalar references beside the AVX-512 and AVX2 forms (sconv_blocked_avx512.c,
// sconv_blocked_avx2.c).
void mpq_reorder_to_blocked_f32_reference(const float *x, int channels, size_t hw, float *y) {
    for (int cb = 0; cb < (channels + 15) / 16; cb++)
        for (size_t p = 0; p < hw; p++)
            for (int l = 0; l < 16; l++) {
                const int c = 16 * cb + l;
                y[((size_t)cb * hw + p) * 16 + (size_t)l] = c < channels ? x[(size_t)c * hw + p] : 0.0f;
            }
}

void mpq_reorder_from_blocked_f32_reference(const float *x, int channels, size_t hw, float *y) {
    for (int c = 0; c < channels; c++)
        for (size_t p = 0; p < hw; p++) y[(size_t)c * hw + p] = x[((size_t)(c / 16) * hw + p) * 16 + (size_t)(c % 16)];
}

typedef void (*reorder_fn)(const float *, int, size_t, float *);

// `images` images, one kernel call each: `to_blocked` NCHW -> blocked, else back.
static int reorder_images(mpq_kernel_path path, const float *x, int images, int channels, int h, int w, float *y,
                          int to_blocked) {
    if (!x || !y || images < 0 || channels <= 0 || h <= 0 || w <= 0) return -1;
    const size_t hw = (size_t)h * (size_t)w, nchw = (size_t)channels * hw, blocked = mpq_blocked_image_floats(channels, h, w);
    const size_t in = to_blocked ? nchw : blocked, out = to_blocked ? blocked : nchw;
    const mpq_kernel_path p = mpq_resolve_kernel_path(path);
    const reorder_fn f = to_blocked ? (p == MPQ_PATH_VNNI   ? mpq_reorder_to_blocked_f32_avx512
                                       : p == MPQ_PATH_AVX2 ? mpq_reorder_to_blocked_f32_avx2
                                                            : mpq_reorder_to_blocked_f32_reference)
                                    : (p == MPQ_PATH_VNNI   ? mpq_reorder_from_blocked_f32_avx512
                                       : p == MPQ_PATH_AVX2 ? mpq_reorder_from_blocked_f32_avx2
                                                            : mpq_reorder_from_blocked_f32_reference);
    for (int i = 0; i < images; i++) f(x + (size_t)i * in, channels, hw, y + (size_t)i * out);
    return 0;
}

int mpq_reorder_to_blocked_f32(mpq_kernel_path path, const float *x, int images, int channels, int h, int w, float *y) {
    return reorder_images(path, x, images, channels, h, w, y, 1);
}

int mpq_reorder_from_blocked_f32(mpq_kernel_path path, const float *x, int images, int channels, int h, int w, float *y) {
    return reorder_images(path, x, images, channels, h, w, y, 0);
}

// --- The scalar reference tile: the channel-vector reference's chain, stored blocked.
static void blocked_tile_reference(int kc, const float *w, int nv, const float *x, const int32_t *offsets,
                                   const int32_t *pix, int np, float *y, size_t vstride, int rows,
                                   const mpq_sgemm_tile_epilogue *ep, int sliced) {
    for (int i = 0; i < 16 * nv; i++)
        for (int p = 0; p < np; p++) {
            float *d = y + (size_t)(i / 16) * vstride + (size_t)p * 16 + (size_t)(i % 16);
            *d = i < rows ? mpq_sconv_cv_reference_output(kc, w, nv, i, x, pix[p], offsets, ep, sliced) : 0.0f;
        }
}

void mpq_sconv_blocked_tile_reference(int kc, const float *w, int nv, const float *x, const int32_t *offsets,
                                      const int32_t *pix, int np, float *y, size_t vstride, int rows,
                                      const mpq_sgemm_tile_epilogue *ep) {
    blocked_tile_reference(kc, w, nv, x, offsets, pix, np, y, vstride, rows, ep, 0);
}

void mpq_sconv_blocked_tile_reference_sliced(int kc, const float *w, int nv, const float *x, const int32_t *offsets,
                                             const int32_t *pix, int np, float *y, size_t vstride, int rows,
                                             const mpq_sgemm_tile_epilogue *ep) {
    blocked_tile_reference(kc, w, nv, x, offsets, pix, np, y, vstride, rows, ep, 1);
}

static void patch_reference(const float *x, int cbs, int H, int W, int ih0, int iw0, int ph, int pw, int pwc, float *d) {
    for (int cb = 0; cb < cbs; cb++)
        for (int r = 0; r < ph; r++)
            for (int q = 0; q < pw; q++) {
                const int ih = ih0 + r, iw = iw0 + q;
                float *dv = d + (((size_t)cb * ph + r) * (size_t)pwc + q) * 16;
                for (int l = 0; l < 16; l++)
                    dv[l] = ih < 0 || ih >= H || iw < 0 || iw >= W ? 0.0f : x[(((size_t)cb * H + ih) * W + iw) * 16 + l];
            }
}

typedef void (*bk_tile_fn)(int, const float *, int, const float *, const int32_t *, const int32_t *, int, float *, size_t,
                           int, const mpq_sgemm_tile_epilogue *);

typedef void (*bk_patch_fn)(const float *, int, int, int, int, int, int, int, int, float *);

typedef struct {
    mpq_kernel_path path;
    bk_tile_fn tile;
    bk_patch_fn patch;       // a border tile's window, or the flat mode's padded blocked image
    const mpq_conv2d_shape *s;
    const float *x;
    float *y;
    size_t in_image, out_image, plane16;  // floats per blocked image in and out; 16 OH OW
    int cbs, mg, k, blocks, span, spans, oh, ow, ph, pwc, chunks;
    int flat, hp, wp;        // flat mode (small planes): the padded image's rows and columns
    int nchw;                // the input is NCHW (always flat mode: padded planes, pixels 1 float apart)
    int sliced;              // the weights are MPQ_SCONV_CV_SLICED (the AVX2 tile reads both layouts)
    int in_place;            // flat mode on the image itself: a 1x1 stride-1 unpadded Conv (no padded copy)
    size_t padded_image;
    const float *shared;     // flat mode, one image split over the threads: the padded images
    const int32_t *offsets;  // per k, in the image: ((cb H + kh dh) W + kw dw) 16 + c % 16
    const int32_t *poffsets; // per k, in a border tile's patch [cb][ph][pwc][16] (flat mode: in the padded image)
    const float *w, *bias;
    mpq_activation act;
    float lo, hi;
    const mpq_sconv_residual *residual;
    int mode, units, chunk, tasks;
    int spatial;             // ranged claims: units numbered chunk-major (see bk_unit)
    _Atomic int next;
    mpq_sconv_ranges ranges; // one image split: each thread's contiguous range first (count 0: guided claims)
    const mpq_skip_plan *skip;        // flat mode without the padding taps (sconv_blocked_skip.c), or NULL
    unsigned char tame[BK_TAME_IMAGES]; // one image split: whether image i passes the skip's guard
} bk_job;

static _Thread_local float *patch_buf;
static _Thread_local size_t patch_cap;

// Whether output pixel (oh, ow)'s whole window lies inside the image.
static int inside(const bk_job *j, int oh, int ow) {
    const mpq_conv2d_shape *s = j->s;
    const int ih = oh * s->stride_h - s->pad_top, iw = ow * s->stride_w - s->pad_left;
    return ih >= 0 && ih + (s->kernel_h - 1) * s->dilation_h < s->height && iw >= 0 &&
           iw + (s->kernel_w - 1) * s->dilation_w < s->width;
}

// Tile t of `tiles` over a chunk's n pixels from p0: its first pixel and pixel count (an even split).
static inline int bk_tile_first(int p0, int n, int tiles, int t) { return p0 + (int)((long)n * t / tiles); }
static inline int bk_tile_pixels(int n, int tiles, int t) { return (int)((long)n * (t + 1) / tiles - (long)n * t / tiles); }

// Whether tile [q0, q0 + np) reads a border patch (row mode, its window past the image).
static int bk_border_tile(const bk_job *j, int q0, int np) {
    const int oh = q0 / j->ow, ow0 = q0 % j->ow;
    return !j->flat && !(inside(j, oh, ow0) && inside(j, oh, ow0 + np - 1));
}

// Tile [q0, q0 + np) of a chunk starting at pixel p0: its input, taps' offsets and pixels in
// `at`; a border tile's window is copied into `patch` first (row mode).
static void bk_tile_at(const bk_job *j, const float *src, float *patch, int p0, int q0, int np, mpq_blocked_tile_at *at) {
    const mpq_conv2d_shape *s = j->s;
    at->np = np;
    at->y = (size_t)(q0 - p0) * 16;
    if (j->flat) {
        // One division per tile, then step along the row (a division per pixel was 2.5% of
        // the detector's one-thread time: its stem plane is 4096 pixels in flat mode).
        long oh = q0 / j->ow, ow = q0 % j->ow;
        for (int p = 0; p < np; p++) {
            at->pix[p] = (int32_t)((oh * s->stride_h * j->wp + ow * s->stride_w) * (j->nchw ? 1 : 16));
            if (++ow == j->ow) { ow = 0; oh++; }
        }
        at->x = src;
        at->offsets = j->poffsets;
        return;
    }
    const int oh = q0 / j->ow, ow0 = q0 % j->ow;
    const int ih0 = oh * s->stride_h - s->pad_top, iw0 = ow0 * s->stride_w - s->pad_left;
    if (!bk_border_tile(j, q0, np)) {
        for (int p = 0; p < np; p++) at->pix[p] = (int32_t)(((long)ih0 * s->width + iw0 + (long)p * s->stride_w) * 16);
        at->x = src;
        at->offsets = j->offsets;
        return;
    }
    const int pw = (np - 1) * s->stride_w + (s->kernel_w - 1) * s->dilation_w + 1;
    j->patch(src, j->cbs, s->height, s->width, ih0, iw0, j->ph, pw, j->pwc, patch);
    for (int p = 0; p < np; p++) at->pix[p] = (int32_t)(p * s->stride_w * 16);
    at->x = patch;
    at->offsets = j->poffsets;
}

// Tiles [t0, t1) of `tiles` over the chunk's n pixels from p0, one call each (a border tile's
// window copied into `patch` first): the general form, on every path.
static void bk_tiles(const bk_job *j, const float *src, float *patch, const float *w, int nv, int rows,
                     const mpq_sgemm_tile_epilogue *epp, float *yc, int p0, int n, int tiles, int t0, int t1) {
    for (int t = t0; t < t1; t++) {
        mpq_blocked_tile_at at;
        bk_tile_at(j, src, patch, p0, bk_tile_first(p0, n, tiles, t), bk_tile_pixels(n, tiles, t), &at);
        j->tile(j->k, w, nv, at.x, at.offsets, at.pix, at.np, yc + at.y, j->plane16, rows, epp);
    }
}

// The AVX2 tile's runs (mpq_sconv_blocked_tiles_avx2): up to BK_RUN tiles at a time, each
// border tile with its own patch (a thread buffer of one patch per border tile of the run).
#define BK_RUN 32
static _Thread_local float *run_patches;
static _Thread_local size_t run_patches_cap;

// Tiles [t0, t1) of `tiles` over the chunk's n pixels from p0, vector by vector; 0, or -1 (nothing
// done) without memory for their patches.
static int bk_run_avx2(const bk_job *j, const float *src, const float *w, int nv, int rows, const mpq_sgemm_tile_epilogue *epp,
                       float *yc, int p0, int n, int tiles, int t0, int t1) {
    const size_t per_patch = (size_t)j->cbs * j->ph * j->pwc * 16;
    unsigned char border[BK_RUN];
    int borders = 0;
    for (int t = t0; t < t1; t++)
        borders += border[t - t0] = (unsigned char)bk_border_tile(j, bk_tile_first(p0, n, tiles, t), bk_tile_pixels(n, tiles, t));
    float *patches = borders ? mpq_sconv_grown(&run_patches, &run_patches_cap, (size_t)borders * per_patch) : NULL;
    if (borders && !patches) return -1;
    mpq_blocked_tile_at at[BK_RUN];
    for (int t = t0, b = 0; t < t1; t++) {
        float *patch = border[t - t0] ? patches + (size_t)b++ * per_patch : NULL;
        bk_tile_at(j, src, patch, p0, bk_tile_first(p0, n, tiles, t), bk_tile_pixels(n, tiles, t), &at[t - t0]);
    }
    mpq_sconv_blocked_tiles_avx2(j->k, w, nv, j->sliced, at, t1 - t0, yc, j->plane16, rows, epp);
    return 0;
}

// Pixel runs (mpq_sconv_blocked_pixel_runs_avx2, s30): output pixels of one row whose inputs
// sit a fixed step apart, run with one pointer per register tile, each vector over all of them
// in one call. Three kinds, below; each returns 0, or -1 (nothing done, or nothing the tiles
// would not redo the same) where it does not apply.

// An NCHW input's padded planes (a stem's few channels, flat mode): a run per output row of
// the chunk, where rows are 16 pixels or more (shorter ones would cut the register tiles
// short; the tiles there cross rows). One core: the detector's 3 -> 16 at 64x64 and
// MobileNetV2's 3 -> 32 /2 at 224x224 took 0.75x and 0.81x the tiles' time.
#define BK_NCHW_ROW_RUNS 16

// `count` runs on the job's path: the AVX2 runs (vector by vector), or the AVX-512 run tiles
// (s33; rows-layout weights, up to 4 vectors); 0, or -1 (nothing done).
static int bk_runs(const bk_job *j, const float *w, int nv, int rows, const mpq_sgemm_tile_epilogue *epp,
                   const mpq_blocked_pixel_run *runs, int count, const int32_t *offsets, int step) {
    if (j->path == MPQ_PATH_AVX2) {
        mpq_sconv_blocked_pixel_runs_avx2(j->k, w, nv, j->sliced, runs, count, offsets, step, j->plane16, rows, epp);
        return 0;
    }
    if (j->path != MPQ_PATH_VNNI || j->sliced) return -1;
    return mpq_sconv_blocked_pixel_runs_avx512(j->k, w, nv, runs, count, offsets, step, j->plane16, rows, epp);
}

static int bk_nchw_row_runs(const bk_job *j, const float *src, const float *w, int nv, int rows,
                            const mpq_sgemm_tile_epilogue *epp, float *yc, int p0, int p1) {
    const mpq_conv2d_shape *s = j->s;
    if (j->ow < BK_FLAT_WIDTH) return -1;
    mpq_blocked_pixel_run runs[BK_NCHW_ROW_RUNS];
    int count = 0;
    for (int q = p0; q < p1;) {
        const int oh = q / j->ow, ow = q % j->ow, len = j->ow - ow < p1 - q ? j->ow - ow : p1 - q;
        const size_t at = (size_t)oh * s->stride_h * j->wp + (size_t)ow * s->stride_w;
        runs[count++] = (mpq_blocked_pixel_run){src + at, yc + (size_t)(q - p0) * 16, len};
        q += len;
        if (count == BK_NCHW_ROW_RUNS || q == p1) {
            // (A refusal can only come on the first call: nv and the step are the chunk's.)
            if (bk_runs(j, w, nv, rows, epp, runs, count, j->poffsets, s->stride_w) != 0) return -1;
            count = 0;
        }
    }
    return 0;
}

// Row mode (the chunk is one output row): its interior tiles (bk_border_tile: windows inside
// the image; they are consecutive) as one run, its border tiles through bk_run_avx2 (their
// patches) as before. Not for a row whose tiles all cross the image's edge, or without memory
// for a border tile's patch.
static int bk_row_interior_run(const bk_job *j, const float *src, float *patch, const float *w, int nv, int rows,
                               const mpq_sgemm_tile_epilogue *epp, float *yc, int p0, int p1, int tiles) {
    const int n = p1 - p0;
    int t0 = 0, t1 = tiles;  // interior tiles [t0, t1)
    while (t0 < tiles && bk_border_tile(j, bk_tile_first(p0, n, tiles, t0), bk_tile_pixels(n, tiles, t0))) t0++;
    while (t1 > t0 && bk_border_tile(j, bk_tile_first(p0, n, tiles, t1 - 1), bk_tile_pixels(n, tiles, t1 - 1))) t1--;
    if (t1 <= t0) return -1;
    // The run's first pixel reads the image in place as bk_tile_at's interior tiles do.
    mpq_blocked_tile_at first;
    const int q0 = bk_tile_first(p0, n, tiles, t0), q1 = bk_tile_first(p0, n, tiles, t1);
    bk_tile_at(j, src, NULL, p0, q0, 1, &first);
    const mpq_blocked_pixel_run run = {first.x + first.pix[0], yc + first.y, q1 - q0};
    if (j->path == MPQ_PATH_AVX2) {
        if (t0 > 0 && bk_run_avx2(j, src, w, nv, rows, epp, yc, p0, n, tiles, 0, t0) != 0) return -1;
        if (t1 < tiles && bk_run_avx2(j, src, w, nv, rows, epp, yc, p0, n, tiles, t1, tiles) != 0) return -1;
        return bk_runs(j, w, nv, rows, epp, &run, 1, j->offsets, 16 * j->s->stride_w);
    }
    // AVX-512: the interior first (it declines before anything is written), then the border
    // tiles one by one with their patches, as bk_chunk's loop runs them.
    if (bk_runs(j, w, nv, rows, epp, &run, 1, j->offsets, 16 * j->s->stride_w) != 0) return -1;
    bk_tiles(j, src, patch, w, nv, rows, epp, yc, p0, n, tiles, 0, t0);
    bk_tiles(j, src, patch, w, nv, rows, epp, yc, p0, n, tiles, t1, tiles);
    return 0;
}

// Chunk [p0, p1) (`tiles` tiles) as pixel runs where a kind applies: a 1x1 stride-1 Conv's
// whole chunk (its pixels one after another in the image), an NCHW input's rows, a row-mode
// row's interior. Flat mode on a blocked padded copy keeps the tiles (its rows are under 16
// pixels; the tiles cross them).
static int bk_pixel_runs(const bk_job *j, const float *src, float *patch, const float *w, int nv, int rows,
                         const mpq_sgemm_tile_epilogue *epp, float *yc, int p0, int p1, int tiles) {
    if (j->in_place) {
        const mpq_blocked_pixel_run run = {src + (size_t)p0 * 16, yc, p1 - p0};
        return bk_runs(j, w, nv, rows, epp, &run, 1, j->poffsets, 16);
    }
    if (j->s->stride_w != 1 && j->s->stride_w != 2) return -1;
    if (j->nchw) return bk_nchw_row_runs(j, src, w, nv, rows, epp, yc, p0, p1);
    if (j->flat) return -1;
    return bk_row_interior_run(j, src, patch, w, nv, rows, epp, yc, p0, p1, tiles);
}

// Pixels [p0, p1) of image `img`'s output, weights blocks [b, b + span), then the SiLU and
// the residual Add over them while they are in cache. Row mode (p0, p1: one output row):
// tiles along the row, interior ones read the image in place, border ones their patch.
// Flat mode (small planes): tiles over consecutive output pixels of the zero-padded copy `src`
// (numbered as the channel-vector kernel numbers its pixels, on the padded width).
static void bk_chunk(const bk_job *j, const float *src, float *patch, int img, int b, int p0, int p1, int skip) {
    const int row0 = b * BK_BLOCK, span = j->span * BK_BLOCK, rows = j->mg - row0 < span ? j->mg - row0 : span;
    // The AVX2 tile takes up to 16 pixels: a full vector in register tiles of up to 6 (12 of
    // 16 ymm), a half vector after a full one with it in tiles of 4 (3 ymm each), a lone half
    // vector in tiles of 8. Tiles of 16 where the block ends in a half vector, so its pairs of
    // 4 and its full vectors' 6 both split them evenly; 6 elsewhere.
    const int nv = (rows + 15) / 16, half = mpq_sconv_blocked_ends_in_half(rows);
    const int most = j->path != MPQ_PATH_AVX2 ? mpq_sconv_cv_tile_pixels(nv) : half ? MPQ_SCONV_BLOCKED_AVX2_MAX_NP : 6;
    const float *w = j->w + (size_t)b * (size_t)j->k * BK_BLOCK;
    float *yc = j->y + (size_t)img * j->out_image + (size_t)(row0 / 16) * j->plane16 + (size_t)p0 * 16;
    const mpq_sgemm_tile_epilogue ep = {j->bias ? j->bias + row0 : NULL, j->act == MPQ_ACT_CLAMP, j->lo, j->hi, NULL, NULL};
    const mpq_sgemm_tile_epilogue *epp = j->bias || j->act == MPQ_ACT_CLAMP ? &ep : NULL;
    const int n = p1 - p0, tiles = (n + most - 1) / most;
    int t = 0;
    // Without the padding taps (its chunks are whole rows): class by class.
    if (skip) {
        mpq_skip_rows(j->skip, src, w, nv, rows, epp, yc, j->plane16, p0 / j->ow, p1 / j->ow, most);
        t = tiles;
    }
    // AVX2: the chunk's pixels that read the input at a fixed step as pixel runs
    // (bk_pixel_runs); where they do not apply, the tiles below. AVX-512 (s33): the same runs on
    // its run tiles (up to 4 vectors; more take the tiles). MPQ_FP32_BK_PIXEL_RUNS=0 (read
    // once): tiles only, for an A/B.
    static _Atomic long row_runs_state = -1;
    if (t < tiles && (j->path == MPQ_PATH_AVX2 || j->path == MPQ_PATH_VNNI) &&
        mpq_env_long_once("MPQ_FP32_BK_PIXEL_RUNS", 1, &row_runs_state) &&
        bk_pixel_runs(j, src, patch, w, nv, rows, epp, yc, p0, p1, tiles) == 0)
        t = tiles;
    // MPQ_FP32_BK_RUNS=0 (read once): tile by tile on AVX2 too, as before s28, for an A/B.
    static _Atomic long runs_state = -1;
    if (j->path == MPQ_PATH_AVX2 && mpq_env_long_once("MPQ_FP32_BK_RUNS", 1, &runs_state))
        for (; t < tiles; t += BK_RUN)
            if (bk_run_avx2(j, src, w, nv, rows, epp, yc, p0, n, tiles, t, t + BK_RUN < tiles ? t + BK_RUN : tiles) != 0) break;
    bk_tiles(j, src, patch, w, nv, rows, epp, yc, p0, n, tiles, t, tiles);
    if (j->act == MPQ_ACT_SILU)
        mpq_conv_epilogue_f32(j->path, yc, (size_t)nv, (size_t)n * 16, j->plane16, NULL, j->act, j->lo, j->hi);
    const mpq_sconv_residual *r = j->residual;
    for (int v = 0; r && v < nv; v++) {
        // The separate Add's call (operands in its order) on these values: the same bits.
        float *yy = yc + (size_t)v * j->plane16;
        const float *sc = r->shortcut + (yy - j->y);
        mpq_binary_f32(j->path, 0, r->relu, r->shortcut_first ? sc : yy, r->shortcut_first ? yy : sc, (size_t)n * 16, yy, 1);
    }
}

// Chunk c of the plane's `chunks`: an output row in row mode, an even split of the pixels in
// flat mode, of the rows where it skips padding taps; `skip`: the image passed the guard.
static void bk_chunk_at(const bk_job *j, const float *src, float *patch, int img, int b, int c, int skip) {
    const int pixels = j->oh * j->ow;
    int p0 = (int)((long)pixels * c / j->chunks), p1 = (int)((long)pixels * (c + 1) / j->chunks);
    if (j->skip) p0 = (int)((long)j->oh * c / j->chunks) * j->ow, p1 = (int)((long)j->oh * (c + 1) / j->chunks) * j->ow;
    if (p1 > p0) bk_chunk(j, src, patch, img, b, p0, p1, skip);
}

// Parts [p0, p1) of image `img` zero-padded into `dst` ([cb][hp][wp][16], or [c][hp][wp] when
// the input is NCHW): the flat mode's input. A part is a channel block (a channel for NCHW).
static void bk_pad_parts(const bk_job *j, int img, int p0, int p1, float *dst) {
    const mpq_conv2d_shape *s = j->s;
    const float *x = j->x + (size_t)img * j->in_image;
    if (j->nchw) {
        for (int c = p0; c < p1; c++) {
            const float *xc = x + (size_t)c * s->height * s->width;
            float *d = dst + (size_t)c * j->hp * j->wp;
            (j->path == MPQ_PATH_VNNI ? mpq_sconv_pad_plane_avx512 : mpq_sconv_pad_plane)(xc, s->height, s->width, s->pad_top,
                                                                                          s->pad_left, j->hp, j->wp, d);
        }
        return;
    }
    const float *xb = x + (size_t)p0 * s->height * s->width * 16;
    float *db = dst + (size_t)p0 * j->hp * j->wp * 16;
    j->patch(xb, p1 - p0, s->height, s->width, -s->pad_top, -s->pad_left, j->hp, j->wp, j->wp, db);
}

static int bk_pad_part_count(const bk_job *j) { return j->nchw ? j->s->channels : j->cbs; }

static void bk_pad(const bk_job *j, int img, float *dst) { bk_pad_parts(j, img, 0, bk_pad_part_count(j), dst); }

typedef struct {
    const bk_job *j;
    float *shared;
} bk_pad_split;

static void bk_pad_unit(void *arg, int u, int t) {
    (void)t;
    const bk_pad_split *p = arg;
    const int parts = bk_pad_part_count(p->j), img = u / parts, part = u % parts;
    bk_pad_parts(p->j, img, part, part + 1, p->shared + (size_t)img * p->j->padded_image);
}

// The next units [u0, u1) to run, or 0 when none is left. One image split over the threads
// claims guided: a claim takes 1/(2 tasks) of what is left, at most `chunk` and at least one
// unit, so the claims shrink toward the end. With fixed claims of 1/8 of the layer, the caller
// waited on average half a claim for the worker's last one: 6.3% of its time in
// resnet_digits at batch 1 (perf, inside this kernel's pool runs).
static int bk_claim(bk_job *j, int *u0, int *u1) {
    if (j->mode == MPQ_SCONV_SPLIT_IMAGES || j->tasks <= 1) {
        *u0 = atomic_fetch_add_explicit(&j->next, j->chunk, memory_order_relaxed);
        if (*u0 >= j->units) return 0;
        *u1 = *u0 + j->chunk < j->units ? *u0 + j->chunk : j->units;
        return 1;
    }
    int at = atomic_load_explicit(&j->next, memory_order_relaxed);
    for (;;) {
        if (at >= j->units) return 0;
        int take = (j->units - at + 2 * j->tasks - 1) / (2 * j->tasks);
        if (take > j->chunk) take = j->chunk;
        if (take < 1) take = 1;
        if (atomic_compare_exchange_weak_explicit(&j->next, &at, at + take, memory_order_relaxed, memory_order_relaxed)) {
            *u0 = at;
            *u1 = at + take;
            return 1;
        }
    }
}

// Whether an image's chunks read flat mode's padded copy: not where the image skips its padding
// taps (the tap lists stay inside the image and read it in place, s36).
static int bk_reads_copy(const bk_job *j, int skip) { return !skip && j->flat && !j->in_place; }

// Unit u of one image split over the threads (with the images padded beforehand, flat mode,
// into j->shared): (image, block span, chunk), the chunk fastest, or under ranged claims on a
// layer whose weights are no larger than its input, the span fastest: a thread's contiguous
// range is then a band of output pixels over all channels, the rows the next layer's band on
// the same core reads (each core's L2 keeps its band from layer to layer, as the depthwise
// kernel's row bands do); a layer whose weights outweigh its input keeps its channel split,
// so each core streams half the weights.
static void bk_unit(const bk_job *j, float *patch, int u) {
    int c, sp, img;
    if (j->spatial) {
        sp = u % j->spans, c = u / j->spans % j->chunks, img = u / j->spans / j->chunks;
    } else {
        c = u % j->chunks, sp = u / j->chunks % j->spans, img = u / j->chunks / j->spans;
    }
    const int skip = j->skip && j->tame[img];
    const float *src = bk_reads_copy(j, skip) ? j->shared + (size_t)img * j->padded_image : j->x + (size_t)img * j->in_image;
    bk_chunk_at(j, src, patch, img, sp * j->span, c, skip);
}

// Units: whole images (MPQ_SCONV_SPLIT_IMAGES), or bk_unit's.
static void bk_task(void *arg, int t) {
    bk_job *j = (bk_job *)arg;
    // A skip that reads the image needs the padded copy only for an image that fails the guard:
    // grown then (a 224x224 plane of 64 channels pads to 13 MB per thread).
    const int lazy = j->skip != NULL;
    const size_t need = j->in_place || lazy ? 16 : j->flat ? j->padded_image : (size_t)j->cbs * j->ph * j->pwc * 16;
    float *patch = mpq_sconv_grown(&patch_buf, &patch_cap, need);
    if (!patch) return;
    if (j->ranges.count) {
        for (int u; (u = mpq_sconv_ranges_next(&j->ranges, t)) >= 0;) bk_unit(j, patch, u);
        return;
    }
    for (;;) {
        int u0, u1;
        if (!bk_claim(j, &u0, &u1)) return;
        for (int u = u0; u < u1; u++) {
            if (j->mode == MPQ_SCONV_SPLIT_IMAGES) {
                const float *src = j->x + (size_t)u * j->in_image;
                const int skip = j->skip && mpq_skip_input_tame(j->skip, j->path, src, j->cbs);
                if (bk_reads_copy(j, skip)) {
                    if (lazy && !(patch = mpq_sconv_grown(&patch_buf, &patch_cap, j->padded_image))) return;
                    bk_pad(j, u, patch);
                    src = patch;
                }
                for (int b = 0; b < j->blocks; b += j->span)
                    for (int c = 0; c < j->chunks; c++) bk_chunk_at(j, src, patch, u, b, c, skip);
                continue;
            }
            bk_unit(j, patch, u);
        }
    }
}

int mpq_sconv2d_f32_blocked_applies(const mpq_conv2d_shape *s) {
    return mpq_sconv2d_f32_cv_applies(s) && s->group == 1 &&
           (long)(s->channels + 15) / 16 * 16 * s->height * (long)s->width < INT32_MAX;
}

// AVX2 (s27): the tile runs each 16-channel vector over the whole of K (sconv_blocked_avx2.c),
// so it re-reads the input once per vector and a vector's weights once per 6 pixels, where the
// channel-vector part kernel works in K blocks over a slice of pixels. Measured one thread,
// blocked / channel-vector time (fp32_blocked_layers.c): the detector's and resnet_digits'
// layers (inputs of up to 16 x 64 x 64 floats) 0.88-0.96, ResNet-18's 64-channel 56x56 layer
// (200,704 floats) 1.11, its 28x28 layers 1.00-1.01. So on AVX2 inputs of up to
// BK_AVX2_MAX_INPUT floats per image run blocked, larger ones NCHW; 1x1 stride-1 Convs
// (MobileNetV2's, read in place in chunks of ~24 pixels, whose K values stay in L1 across the
// vectors) at any size.
#define BK_AVX2_MAX_INPUT 65536

int mpq_sconv2d_f32_blocked_preferred(mpq_kernel_path path, const mpq_conv2d_shape *s) {
    if (!mpq_sconv2d_f32_blocked_applies(s)) return 0;
    const mpq_kernel_path p = mpq_resolve_kernel_path(path);
    if (p == MPQ_PATH_VNNI) return 1;
    if (p != MPQ_PATH_AVX2) return 0;
    const int pointwise = s->kernel_h == 1 && s->kernel_w == 1 && s->stride_h == 1 && s->stride_w == 1;
    return pointwise || (long)s->channels * s->height * (long)s->width <= BK_AVX2_MAX_INPUT;
}

// The taps' offsets (in the blocked image, then in a border patch or the padded image) for
// the job's geometry and input layout, kept per thread (mpq_geometry_cache): computed on every
// call they were 2% of the detector's blocked-Conv time. k follows from the geometry; the second
// half (patch or padded image) from flat mode too, which since s35 also depends on the path and
// the weights (a padding skip runs flat), so flat mode is part of the key.
static _Thread_local mpq_geometry_cache tap_tables;

static const int32_t *tap_offsets(const bk_job *j, int nchw) {
    const mpq_conv2d_shape *s = j->s;
    const int variant = nchw + 2 * j->flat;
    const int32_t *kept = mpq_geometry_cache_find(&tap_tables, s, variant);
    if (kept) return kept;
    int32_t *offsets = malloc(2 * (size_t)j->k * sizeof(int32_t));
    if (!offsets) return NULL;
    int32_t *poffsets = offsets + j->k;
    for (int c = 0, k = 0; c < s->channels; c++)
        for (int kh = 0; kh < s->kernel_h; kh++)
            for (int kw = 0; kw < s->kernel_w; kw++, k++) {
                const long cb = c / 16, l = c % 16, dh = (long)kh * s->dilation_h, dw = (long)kw * s->dilation_w;
                offsets[k] = (int32_t)(((cb * s->height + dh) * s->width + dw) * 16 + l);
                poffsets[k] = nchw ? (int32_t)(((long)c * j->hp + dh) * j->wp + dw) : (int32_t)(((cb * j->ph + dh) * j->pwc + dw) * 16 + l);
            }
    return mpq_geometry_cache_put(&tap_tables, s, variant, offsets, free);
}

// Chunks per plane. Row mode: one output row each. Flat mode: about BK_CHUNK_PIXELS pixels
// each, so tiles take their full width: chunks of one row gave ResNet-18's 7x7 layers (49 pixels,
// 4 vectors of output channels, 6-pixel tiles) tiles of 3 + 4 pixels, 12-16 of 24 accumulators.
// One image split over the threads keeps at least 4 units per thread where the plane allows (up
// to a row per chunk, or 8 pixels in place). MPQ_FP32_BK_CHUNK_PIXELS (read once; 0: one row per
// chunk, as before s17) for an A/B. The chunks cut no sum: same bits whatever their number.
#ifndef BK_CHUNK_PIXELS
#define BK_CHUNK_PIXELS 24
#endif

// One image split over the threads: `chunks` raised (to at most `most`) until the units are a
// multiple of the threads, so the contiguous ranges give every thread the same count (s33, Zen 4,
// two threads, one image: resnet_digits' 64-channel 14x14 layer took 9 chunks, one thread 5 of
// them, 73 us; with 10 or 8 chunks, 67-68 us).
static int bk_whole_rounds(const bk_job *j, int images, int threads, int chunks, int most) {
    for (int more = 0; more < threads && ((long)images * j->spans * chunks) % threads && chunks < most; more++) chunks++;
    return chunks;
}

static int bk_chunks(const bk_job *j, int images, int threads) {
    static _Atomic long state = -1;
    const long base = mpq_env_long_once("MPQ_FP32_BK_CHUNK_PIXELS", BK_CHUNK_PIXELS, &state);
    // AVX2, whole images per thread: chunks 4x as large, so a vector's weights serve 16 tiles
    // before the next vector's (mpq_sconv_blocked_tiles_avx2): resnet_digits' 128-channel 7x7
    // layers in the model, one thread, 167-174 -> 163-168 us (their weights outgrow L2).
    const long per = j->path == MPQ_PATH_AVX2 && images >= threads ? 4 * base : base;
    const int pixels = j->oh * j->ow;
    if (!j->flat || per <= 0 || (j->in_place && j->ow >= BK_FLAT_WIDTH)) return j->oh;
    // AVX-512, an NCHW input (a stem) with rows of 16 pixels or more: a row per chunk, so each
    // row is one pixel run (bk_nchw_row_runs) in tiles of up to 16 pixels, where 24-pixel chunks
    // cut runs of 24 into tiles of 12 (s33, Zen 4, fp32_blocked_stems.c: resnet_digits' 1 -> 16
    // 7x7 at 56x56, the detector's 3 -> 16 and MobileNetV2's 3 -> 32 /2 0.91-0.92x the time on
    // one image over two threads, 0.93x on eight images on one thread).
    const int stem_rows = j->nchw && j->path == MPQ_PATH_VNNI && j->ow >= BK_FLAT_WIDTH;
    int chunks = stem_rows ? j->oh : (int)((pixels + per - 1) / per);
    if (images < threads) {
        const int want = (4 * threads + j->spans - 1) / j->spans, most = j->in_place ? (pixels + 7) / 8 : j->oh;
        const int floor = want < most ? want : most;
        if (chunks < floor) chunks = floor;
        chunks = bk_whole_rounds(j, images, threads, chunks, pixels);
    }
    return chunks > 0 ? chunks : 1;
}

// Chunks where the padding taps are skipped: bands of whole rows (the classes tile a band's
// rectangles), about BK_SKIP_CHUNK_PIXELS pixels each, so a class's pixels fill their tiles
// (bands of 2 rows left a 7x7 plane's edge classes tiles of 1-2 pixels). One image split over
// the threads: at least one unit per thread, a multiple of the threads where the rows allow.
#ifndef BK_SKIP_CHUNK_PIXELS
#define BK_SKIP_CHUNK_PIXELS 256
#endif
static int bk_skip_chunks(const bk_job *j, int images, int threads) {
    static _Atomic long state = -1;
    const long base = mpq_env_long_once("MPQ_FP32_BK_SKIP_CHUNK_PIXELS", BK_SKIP_CHUNK_PIXELS, &state);
    const int per = base > j->ow ? (int)(base / j->ow) : 1;
    int chunks = (j->oh + per - 1) / per;
    if (images < threads) {
        const int want = (threads + j->spans - 1) / j->spans;
        if (chunks < want) chunks = want;
        chunks = bk_whole_rounds(j, images, threads, chunks, j->oh);
    }
    return chunks < j->oh ? chunks : j->oh;
}

// Whether this Conv skips its padding taps (sconv_blocked_skip.c), in flat mode whatever its
// width: the AVX-512 tile on rows-layout weights of one block per tile, a blocked input with padding,
// weights that pass the guard, and a block of weights that stays in L2 (1 MB on Zen 4; at 512
// channels a 7x7 plane's 13 class tiles each streamed the 1.18 MB block from L3: 1.07-1.13x the
// time). Planes of rows under BK_FLAT_WIDTH (flat mode anyway) always; wider ones, which row
// mode would run without the padded copy, only up to BK_SKIP_MAX_WIDTH, at stride 1 and with
// 32 output channels or more (one thread, fp32_blocked_layers.c: 32 -> 32 at 16x16 0.92x,
// 128 -> 128 at 28x28 0.96-0.98x; at 56x56, at stride 2 or with 16 channels the copy costs
// more than the border taps: 16 -> 16 at 56x56 1.04x, 16 -> 32 /2 at 56x56 1.08x). Without the
// copy (s36: the skip reads the image in place) the width bound went: ResNet-18's 64-channel
// 56x56 layers took 0.98x alone (0.97x on one image over two threads) and the whole model
// 0.99x at batch 1 and 16 (two env A/Bs of 5-6 rounds: 17.42 -> 17.22 and 17.19 -> 16.95 ms,
// 265.9 -> 262.5 and 263.0 -> 260.1). Stride 2 and 16 channels still keep every tap: with
// the copy gone they were within noise on resnet_digits and the detector at one thread and
// slower for the stems on one image over two threads (1.1-1.3x). s37: with the classes that
// keep every tap run first (sconv_blocked_skip.c, mpq_skip_rows) 16 channels gain too:
// resnet_digits' 16 -> 16 at 56x56 0.94x on one thread, 0.90x on one image over two (weights
// and input cold: 0.93x, 0.95x), the model batch 1 1.112 -> 1.091 ms and batch 16 17.07 ->
// 16.71 (env A/B, 5 rounds, minima); so the channel bound went (stride 2 keeps every tap).
// MPQ_FP32_BK_SKIP=0 (read once): every tap, for an A/B; MPQ_FP32_BK_SKIP_MAX_WIDTH a bound on
// the output width (s35's was 32).
#ifndef BK_SKIP_MAX_BLOCK_BYTES
#define BK_SKIP_MAX_BLOCK_BYTES (1 << 20)
#endif
#ifndef BK_SKIP_MAX_WIDTH
#define BK_SKIP_MAX_WIDTH (1 << 30)
#endif
static int bk_skips(const bk_job *j, const mpq_sconv_weights_header *h) {
    static _Atomic long state = -1, width_state = -1;
    const mpq_conv2d_shape *s = j->s;
    const int padded = s->pad_top || s->pad_left || s->pad_bottom || s->pad_right;
    const int wide_ok = j->ow <= mpq_env_long_once("MPQ_FP32_BK_SKIP_MAX_WIDTH", BK_SKIP_MAX_WIDTH, &width_state) &&
                        s->stride_h == 1 && s->stride_w == 1;
    return j->path == MPQ_PATH_VNNI && !j->nchw && !j->sliced && j->span == 1 && padded &&
           (h->flags & MPQ_SCONV_WEIGHTS_TAME) && (size_t)j->k * BK_BLOCK * sizeof(float) <= BK_SKIP_MAX_BLOCK_BYTES &&
           (j->ow < BK_FLAT_WIDTH || wide_ok) && mpq_env_long_once("MPQ_FP32_BK_SKIP", 1, &state);
}

// Both entry points: x blocked, or NCHW (`nchw`).
static int blocked_conv(mpq_kernel_path path, const float *x, int nchw, int images, const mpq_conv2d_shape *s, const void *cv_w,
                        const float *bias, mpq_activation act, float lo, float hi, const mpq_sconv_residual *residual,
                        float *y, int threads) {
    const mpq_sconv_weights_header *h = (const mpq_sconv_weights_header *)cv_w;
    if (!x || !s || !h || !y || images < 0 || h->magic != MPQ_SCONV_CV_WEIGHTS_MAGIC || h->group != 1 ||
        (h->cv_layout != MPQ_SCONV_CV_ROWS && h->cv_layout != MPQ_SCONV_CV_SLICED) ||
        !mpq_sconv2d_f32_blocked_applies(s) || (long)s->channels * s->kernel_h * s->kernel_w != h->k)
        return -1;
    bk_job j = {0};
    j.path = mpq_resolve_kernel_path(path);
    // The AVX-512 tile reads rows; the AVX2 tile rows or slices (an AVX2 host's layout).
    const int sliced = h->cv_layout == MPQ_SCONV_CV_SLICED;
    j.sliced = sliced;
    j.tile = j.path == MPQ_PATH_AVX2 ? (sliced ? mpq_sconv_blocked_tile_avx2_sliced : mpq_sconv_blocked_tile_avx2)
             : sliced                ? mpq_sconv_blocked_tile_reference_sliced
             : j.path == MPQ_PATH_VNNI ? mpq_sconv_blocked_tile_avx512
                                       : mpq_sconv_blocked_tile_reference;
    j.patch = j.path == MPQ_PATH_VNNI ? mpq_sconv_blocked_patch_avx512 : j.path == MPQ_PATH_AVX2 ? mpq_sconv_blocked_patch_avx2 : patch_reference;
    j.s = s;
    j.x = x;
    j.y = y;
    j.cbs = (s->channels + 15) / 16;
    j.mg = h->mg;
    j.k = h->k;
    j.blocks = (h->mg + BK_BLOCK - 1) / BK_BLOCK;
    j.oh = mpq_conv2d_out_h(s);
    j.ow = mpq_conv2d_out_w(s);
    j.nchw = nchw;
    j.in_image = nchw ? (size_t)s->channels * s->height * s->width : mpq_blocked_image_floats(s->channels, s->height, s->width);
    j.out_image = mpq_blocked_image_floats(h->m, j.oh, j.ow);
    j.plane16 = (size_t)j.oh * (size_t)j.ow * 16;
    // Planes of 1-3 pixels: two blocks per tile, as the channel-vector kernel does.
    j.span = j.oh * j.ow <= 3 ? 2 : 1;
    j.spans = (j.blocks + j.span - 1) / j.span;
    j.ph = (s->kernel_h - 1) * s->dilation_h + 1;
    j.pwc = (BK_MAX_NP - 1) * s->stride_w + (s->kernel_w - 1) * s->dilation_w + 1;
    j.hp = s->height + s->pad_top + s->pad_bottom;
    j.wp = s->width + s->pad_left + s->pad_right;
    j.padded_image = nchw ? (size_t)s->channels * j.hp * j.wp : (size_t)j.cbs * (size_t)j.hp * (size_t)j.wp * 16;
    // Flat mode where output rows are shorter than BK_FLAT_WIDTH (see there).
    const int padded = s->pad_top || s->pad_left || s->pad_bottom || s->pad_right;
    const int skips = bk_skips(&j, h);
    j.flat = nchw || (j.ow < BK_FLAT_WIDTH && padded) || skips;
    // A 1x1 stride-1 unpadded Conv (MobileNetV2's expand and project layers): every pixel's
    // window is the pixel itself, so flat mode's tiles over consecutive pixels read the blocked
    // image in place, in chunks of about 24 pixels (row chunks of a 7- or 14-pixel row left
    // tiles of 7 pixels where the tile takes 6-8).
    j.in_place = !nchw && !padded && s->kernel_h == 1 && s->kernel_w == 1 && s->stride_h == 1 && s->stride_w == 1;
    if (j.in_place) j.flat = 1;
    if (j.flat) {
        j.ph = j.hp;
        j.pwc = j.wp;
    }
    j.w = (const float *)(h + 1);
    j.bias = bias;
    j.act = act;
    j.lo = lo;
    j.hi = hi;
    j.residual = residual && residual->shortcut ? residual : NULL;
    if (images == 0) return 0;
    const int32_t *offsets = tap_offsets(&j, nchw);
    if (!offsets) return -1;
    j.offsets = offsets;
    j.poffsets = offsets + j.k;
    if (skips) j.skip = mpq_skip_plan_for(s, j.offsets);
    j.chunks = j.skip ? bk_skip_chunks(&j, images, threads) : bk_chunks(&j, images, threads);
    j.mode = images >= threads || threads <= 1 ? MPQ_SCONV_SPLIT_IMAGES : MPQ_SCONV_SPLIT_N;
    // One image split over the threads: each image's guard once, before the threads start.
    int all_tame = j.skip != NULL;
    if (j.skip && j.mode == MPQ_SCONV_SPLIT_N) {
        if (images > BK_TAME_IMAGES) j.skip = NULL, all_tame = 0;
        for (int i = 0; j.skip && i < images; i++)
            all_tame &= j.tame[i] = (unsigned char)mpq_skip_input_tame(j.skip, j.path, x + (size_t)i * j.in_image, j.cbs);
    }
    j.units = j.mode == MPQ_SCONV_SPLIT_IMAGES ? images : images * j.spans * j.chunks;
    float *shared = NULL;
    if (j.flat && !j.in_place && j.mode == MPQ_SCONV_SPLIT_N && !all_tame) {
        // Fewer images than threads: each padded once, before the threads split it (unless
        // every image skips its padding taps and reads itself).
        if (!(shared = aligned_alloc(64, ((size_t)images * j.padded_image * sizeof(float) + 63) / 64 * 64))) return -1;
        // Split over the threads when it is large (the detector's stem: 3 x 66 x 66): one
        // thread padded it before the others started, 4% of its one-thread time.
        const int parts = bk_pad_part_count(&j);
        if (threads > 1 && parts > 1 && (size_t)images * j.padded_image >= 16384) {
            bk_pad_split p = {&j, shared};
            mpq_run_ranges(threads, images * parts, bk_pad_unit, &p);
        } else {
            for (int i = 0; i < images; i++) bk_pad(&j, i, shared + (size_t)i * j.padded_image);
        }
        j.shared = shared;
    }
    const int t = mpq_sconv_claims(j.units, threads, j.mode, &j.chunk);
    j.tasks = t;
    atomic_init(&j.next, 0);
    // One image over several threads: contiguous ranges (MPQ_FP32_BK_RANGES=0, read once: the
    // guided claims of s16, which alternated 1/8-layer claims between the cores).
    static _Atomic long ranges_state = -1;
    j.ranges.count = 0;
    if (j.mode != MPQ_SCONV_SPLIT_IMAGES && t > 1 && mpq_env_long_once("MPQ_FP32_BK_RANGES", 1, &ranges_state)) {
        mpq_sconv_ranges_init(&j.ranges, j.units, t);
        j.spatial = (size_t)j.k * (size_t)j.mg <= j.in_image;
    }
    mpq_pool_run(t, bk_task, &j);
    const int rc = (j.ranges.count ? mpq_sconv_ranges_drained(&j.ranges) : atomic_load(&j.next) >= j.units) ? 0 : -1;
    free(shared);
    return rc;
}

int mpq_sconv2d_f32_blocked(mpq_kernel_path path, const float *x, int images, const mpq_conv2d_shape *s, const void *cv_w,
                            const float *bias, mpq_activation act, float lo, float hi, const mpq_sconv_residual *residual,
                            float *y, int threads) {
    return blocked_conv(path, x, 0, images, s, cv_w, bias, act, lo, hi, residual, y, threads);
}

// The first Conv of a blocked run on an image of few channels (the detector's 3-channel stem):
// reordering its input would write 16 lanes per pixel for 3 (2% of the detector's FP32 samples
// went to that reorder); the padded planes are read as the channel-vector kernel reads them.
int mpq_sconv2d_f32_blocked_from_nchw(mpq_kernel_path path, const float *x, int images, const mpq_conv2d_shape *s,
                                      const void *cv_w, const float *bias, mpq_activation act, float lo, float hi,
                                      const mpq_sconv_residual *residual, float *y, int threads) {
    return blocked_conv(path, x, 1, images, s, cv_w, bias, act, lo, hi, residual, y, threads);
}
