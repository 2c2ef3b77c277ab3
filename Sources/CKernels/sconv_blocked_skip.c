// The blocked FP32 Conv's flat mode without its padding taps (s35, docs/fp32-blocked-layout.md
// "s35"): output pixels grouped by the range of taps that land inside the image (a 3x3 pad-1
// Conv has 9 such classes: the interior, 4 edges, 4 corners), each class run over its own tap
// list on the one copy of the weights. ORT's NCHWc kernel clips its tap ranges the same way;
// multiplying the padding cost resnet_digits 7.2% of its Conv MACs, the detector 9.3%.
//
// Why the bits stay the reference's: a skipped tap is fmaf(w, +0, acc). With every weight
// finite and every nonzero |w| and |x| at least 2^-50 (`mpq_f32_tame`), each product w x is a
// multiple of 2^-146 and so is every partial sum: a sum is then either exactly 0, which round to
// nearest makes +0 (from +0: -0 needs both addends -0), or at least 2^-146 in magnitude and
// never rounds to 0. So acc is never -0, w * +0 is +-0 (never NaN), and acc + +-0 = acc: the
// tap changes nothing. The weights are checked once when packed (MPQ_SCONV_WEIGHTS_TAME), the
// input once per image; otherwise the driver runs every tap as before.
#include "sconv_blocked_skip.h"
#include "mpq_internal.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

// --- The guard -------------------------------------------------------------------------------

static int tame_reference(const float *x, size_t n, int finite) {
    for (size_t i = 0; i < n; i++) {
        const float a = fabsf(x[i]);
        if (finite && !isfinite(a)) return 0;
        if (a > 0.0f && a < 0x1p-50f) return 0;
    }
    return 1;
}

int mpq_f32_tame(mpq_kernel_path path, const float *x, size_t n, int finite) {
    if (mpq_resolve_kernel_path(path) == MPQ_PATH_VNNI) return mpq_f32_tame_segments_avx512(x, 1, n, 0, finite);
    return tame_reference(x, n, finite);
}

static int tame_segments(mpq_kernel_path path, const float *x, size_t count, size_t len, size_t stride) {
    if (path == MPQ_PATH_VNNI) return mpq_f32_tame_segments_avx512(x, count, len, stride, 0);
    for (size_t i = 0; i < count; i++)
        if (!tame_reference(x + i * stride, len, 0)) return 0;
    return 1;
}

// --- The classes -----------------------------------------------------------------------------

// Taps kept for one geometry, per class (row class r, column class c at r * ccs + c): k index
// and input offset (in the image, from the window's unclipped corner) of each tap inside the image, in k order.
struct mpq_skip_plan {
    int oh, ow, ccs, stride_h, stride_w;
    int h, w;                    // the input plane
    int *row_class, *col_class;  // [oh], [ow]
    // The input the skipping pixels read (mpq_skip_input_tame): whole rows in row_runs, the
    // columns col_runs of every other row; [start, end) pairs, counts in rr and cr.
    int *row_runs, *col_runs, rr, cr;
    int32_t *start;              // [classes + 1]: class i's taps at [start[i], start[i + 1])
    unsigned char *full;         // [classes]: the class keeps every tap (its kidx is k itself)
    int32_t *kidx, *off;
};

// Lists above this many taps in all (a large kernel on a plane where most rows differ) are not
// worth their memory: such a Conv keeps every tap.
#define SKIP_MAX_TAPS (1 << 20)
// Interior rows at least this wide run as pixel runs.
#ifndef SKIP_RUN_WIDTH
#define SKIP_RUN_WIDTH 16
#endif

// The classes of one axis: out[o] = the class of output position o, by its valid tap range
// [lo, hi) (positions o s - pad + t d inside [0, size)); the ranges in lo[]/hi[]. Returns the count.
static int axis_classes(int outs, int size, int kernel, int stride, int pad, int dilation, int *out, int *lo, int *hi) {
    int count = 0;
    for (int o = 0; o < outs; o++) {
        const int base = o * stride - pad;
        int a = 0, b = kernel;
        while (a < kernel && base + a * dilation < 0) a++;
        while (b > a && base + (b - 1) * dilation >= size) b--;
        if (b < a) b = a;
        int c = 0;
        while (c < count && (lo[c] != a || hi[c] != b)) c++;
        if (c == count) lo[count] = a, hi[count] = b, count++;
        out[o] = c;
    }
    return count;
}

// The input positions along one axis that outputs of a clipped class read (a pixel that keeps
// every tap runs the reference's chain whatever it reads), as [start, end) runs; NULL when out
// of memory.
static int *needed_runs(int outs, int size, int stride, int pad, int dilation, int kernel, const int *cls, const int *lo,
                        const int *hi, int *count) {
    unsigned char *need = calloc((size_t)size, 1);
    int *runs = malloc(sizeof(int) * (size_t)(size + 1));
    if (!need || !runs) {
        free(need);
        free(runs);
        return NULL;
    }
    for (int o = 0; o < outs; o++) {
        const int c = cls[o];
        if (lo[c] == 0 && hi[c] == kernel) continue;
        for (int t = lo[c]; t < hi[c]; t++) need[o * stride - pad + t * dilation] = 1;
    }
    int n = 0;
    for (int i = 0; i < size;) {
        if (!need[i]) { i++; continue; }
        int e = i;
        while (e < size && need[e]) e++;
        runs[n++] = i, runs[n++] = e;
        i = e;
    }
    free(need);
    *count = n / 2;
    return runs;
}

static void plan_free(void *p) {
    mpq_skip_plan *pl = p;
    if (!pl) return;
    free(pl->row_class);
    free(pl->col_class);
    free(pl->row_runs);
    free(pl->col_runs);
    free(pl->start);
    free(pl->full);
    free(pl->kidx);
    free(pl->off);
    free(pl);
}

static mpq_skip_plan *plan_build(const mpq_conv2d_shape *s, const int32_t *offsets) {
    const int oh = mpq_conv2d_out_h(s), ow = mpq_conv2d_out_w(s), kh = s->kernel_h, kw = s->kernel_w;
    mpq_skip_plan *pl = calloc(1, sizeof *pl);
    int *lo = malloc(sizeof(int) * (size_t)(oh + ow) * 2);
    if (!pl || !lo) goto fail;
    int *rlo = lo, *rhi = lo + oh, *clo = lo + 2 * oh, *chi = lo + 2 * oh + ow;
    pl->row_class = malloc(sizeof(int) * (size_t)oh);
    pl->col_class = malloc(sizeof(int) * (size_t)ow);
    if (!pl->row_class || !pl->col_class) goto fail;
    const int rcs = axis_classes(oh, s->height, kh, s->stride_h, s->pad_top, s->dilation_h, pl->row_class, rlo, rhi);
    const int ccs = axis_classes(ow, s->width, kw, s->stride_w, s->pad_left, s->dilation_w, pl->col_class, clo, chi);
    const int classes = rcs * ccs;
    long taps = 0;
    for (int r = 0; r < rcs; r++)
        for (int c = 0; c < ccs; c++) taps += (long)s->channels * (rhi[r] - rlo[r]) * (chi[c] - clo[c]);
    if (taps > SKIP_MAX_TAPS) goto fail;
    pl->start = malloc(sizeof(int32_t) * (size_t)(classes + 1));
    pl->full = malloc((size_t)classes);
    pl->kidx = malloc(sizeof(int32_t) * (size_t)(taps > 0 ? taps : 1));
    pl->off = malloc(sizeof(int32_t) * (size_t)(taps > 0 ? taps : 1));
    if (!pl->start || !pl->full || !pl->kidx || !pl->off) goto fail;
    // A window's top-left corner (o s - pad) is read from the corner at o s shifted back by the
    // padding: every kept tap lies inside the image.
    const int32_t shift = -(int32_t)(((long)s->pad_top * s->width + s->pad_left) * 16);
    int32_t at = 0;
    for (int r = 0; r < rcs; r++)
        for (int c = 0; c < ccs; c++) {
            const int i = r * ccs + c;
            pl->start[i] = at;
            pl->full[i] = rlo[r] == 0 && rhi[r] == kh && clo[c] == 0 && chi[c] == kw;
            for (int ch = 0; ch < s->channels; ch++)
                for (int a = rlo[r]; a < rhi[r]; a++)
                    for (int b = clo[c]; b < chi[c]; b++) {
                        const int32_t kk = (ch * kh + a) * kw + b;
                        pl->kidx[at] = kk;
                        pl->off[at++] = offsets[kk] + shift;
                    }
        }
    pl->start[classes] = at;
    if (!(pl->row_runs = needed_runs(oh, s->height, s->stride_h, s->pad_top, s->dilation_h, kh, pl->row_class, rlo, rhi, &pl->rr)) ||
        !(pl->col_runs = needed_runs(ow, s->width, s->stride_w, s->pad_left, s->dilation_w, kw, pl->col_class, clo, chi, &pl->cr)))
        goto fail;
    pl->h = s->height, pl->w = s->width;
    pl->oh = oh, pl->ow = ow, pl->ccs = ccs, pl->stride_h = s->stride_h, pl->stride_w = s->stride_w;
    free(lo);
    return pl;
fail:
    free(lo);
    plan_free(pl);
    return NULL;
}

// Per thread, by geometry (mpq_geometry_cache), as the taps' offsets are (the offsets follow
// from the geometry).
static _Thread_local mpq_geometry_cache plans;

const mpq_skip_plan *mpq_skip_plan_for(const mpq_conv2d_shape *s, const int32_t *offsets) {
    const mpq_skip_plan *kept = mpq_geometry_cache_find(&plans, s, 0);
    if (kept) return kept;
    mpq_skip_plan *pl = plan_build(s, offsets);
    return pl ? mpq_geometry_cache_put(&plans, s, 0, pl, plan_free) : NULL;
}

int mpq_skip_input_tame(const mpq_skip_plan *pl, mpq_kernel_path path, const float *x, int cbs) {
    const mpq_kernel_path p = mpq_resolve_kernel_path(path);
    const size_t row = (size_t)pl->w * 16;
    for (int cb = 0; cb < cbs; cb++) {
        const float *xc = x + (size_t)cb * pl->h * row;
        // Whole rows where clipped rows read; the clipped columns of the rows between.
        for (int r = 0, at = 0; r <= pl->rr; r++) {
            const int end = r < pl->rr ? pl->row_runs[2 * r] : pl->h;
            for (int c = 0; at < end && c < pl->cr; c++)
                if (!tame_segments(p, xc + (size_t)at * row + (size_t)pl->col_runs[2 * c] * 16, (size_t)(end - at),
                                   (size_t)(pl->col_runs[2 * c + 1] - pl->col_runs[2 * c]) * 16, row))
                    return 0;
            if (r == pl->rr) break;
            at = pl->row_runs[2 * r + 1];
            if (!tame_segments(p, xc + (size_t)pl->row_runs[2 * r] * row, 1, (size_t)(at - pl->row_runs[2 * r]) * row, 0)) return 0;
        }
    }
    return 1;
}

// --- The rows --------------------------------------------------------------------------------

// Rows [ra, rb) x columns [ca, cb) of a class with every tap as one pixel run per row (the run
// tiles take up to 16 pixels where the tiles take 8); 0, or -1 with nothing done where the
// run tiles do not take this nv or step.
static int class_runs(const mpq_skip_plan *pl, const float *src, const float *w, int nv, int rows,
                      const mpq_sgemm_tile_epilogue *ep, float *yc, size_t vstride, int r0, int ra, int rb, int ca, int cb,
                      int kc, const int32_t *offsets) {
    mpq_blocked_pixel_run runs[16];
    int count = 0;
    for (int oh = ra; oh < rb; oh++) {
        const float *x = src + ((long)oh * pl->stride_h * pl->w + (long)ca * pl->stride_w) * 16;
        runs[count++] = (mpq_blocked_pixel_run){x, yc + ((long)(oh - r0) * pl->ow + ca) * 16, cb - ca};
        if (count == 16 || oh == rb - 1) {
            // (A refusal can only come on the first call: nv and the step are the class's.)
            if (mpq_sconv_blocked_pixel_runs_avx512(kc, w, nv, runs, count, offsets, 16 * pl->stride_w, vstride,
                                                    rows, ep) != 0)
                return -1;
            count = 0;
        }
    }
    return 0;
}

void mpq_skip_rows(const mpq_skip_plan *pl, const float *src, const float *w, int nv, int rows,
                   const mpq_sgemm_tile_epilogue *ep, float *yc, size_t vstride, int r0, int r1, int most) {
    int32_t pix[8], opix[8];
    // The classes that keep every tap first: they read the weights block from its start to its
    // end, a stream the prefetchers follow, where a clipped class reads it with gaps. With the
    // block cold (each layer's weights come from L3 or memory once per image in a model) a
    // corner class first ran resnet_digits' 128-channel 7x7 layer in 186 us against 138 for
    // every tap, the full class first in 127 (benchmarks/fp32_blocked_layers.c with the caches
    // flushed before each call, FLUSH=1; docs/fp32-blocked-layout.md "s37").
    // MPQ_FP32_BK_SKIP_FULL_FIRST=0 (read once): raster order, for an A/B.
    static _Atomic long order_state = -1;
    const int full_first = (int)mpq_env_long_once("MPQ_FP32_BK_SKIP_FULL_FIRST", 1, &order_state) != 0;
    for (int pass = 0; pass < (full_first ? 2 : 1); pass++)
    for (int ra = r0; ra < r1;) {
        int rb = ra + 1;
        while (rb < r1 && pl->row_class[rb] == pl->row_class[ra]) rb++;
        for (int ca = 0; ca < pl->ow;) {
            int cb = ca + 1;
            while (cb < pl->ow && pl->col_class[cb] == pl->col_class[ca]) cb++;
            const int cls = pl->row_class[ra] * pl->ccs + pl->col_class[ca];
            if (full_first && pl->full[cls] != (pass == 0)) {
                ca = cb;
                continue;
            }
            const int32_t *kidx = pl->full[cls] ? NULL : pl->kidx + pl->start[cls];
            const int kc = pl->start[cls + 1] - pl->start[cls];
            // A wide plane's interior: pixel runs, as row mode runs its interior.
            if (!kidx && cb - ca >= SKIP_RUN_WIDTH &&
                class_runs(pl, src, w, nv, rows, ep, yc, vstride, r0, ra, rb, ca, cb, kc, pl->off + pl->start[cls]) == 0) {
                ca = cb;
                continue;
            }
            // The rectangle [ra, rb) x [ca, cb) in raster order, in even tiles of at most `most`.
            const int width = cb - ca, n = (rb - ra) * width, tiles = (n + most - 1) / most;
            for (int t = 0; t < tiles; t++) {
                const int q0 = (int)((long)n * t / tiles), q1 = (int)((long)n * (t + 1) / tiles);
                for (int q = q0; q < q1; q++) {
                    const int oh = ra + q / width, ow = ca + q % width;
                    pix[q - q0] = (int32_t)(((long)oh * pl->stride_h * pl->w + (long)ow * pl->stride_w) * 16);
                    opix[q - q0] = (int32_t)(((long)(oh - r0) * pl->ow + ow) * 16);
                }
                mpq_sconv_blocked_tile_taps_avx512(kc, kidx, w, nv, src, pl->off + pl->start[cls], pix, opix, q1 - q0, yc,
                                                   vstride, rows, ep);
            }
            ca = cb;
        }
        ra = rb;
    }
}
