#ifndef MPQ_SGEMM_INTERNAL_H
#define MPQ_SGEMM_INTERNAL_H
// Private to the FP32 Conv GEMM (mpq_sgemm.h): the micro-kernels of each path and the
// packing of the image into column panels.
#include "mpq_internal.h"
#include <stdatomic.h>
#include <stdlib.h>
#include "mpq_sgemm.h"

_Static_assert(sizeof(mpq_sconv_weights_header) == 64, "packed-weights header is one cache line");
_Static_assert(MPQ_SGEMM_NR % 16 == 0, "column panels are whole 16-float vectors");

/// The packed weights' header when a Conv call's arguments fit them (non-NULL pointers,
/// images >= 0, the header's magic and group, a non-empty output, K = (C / group) * KH * KW),
/// else NULL: the checks every FP32 Conv entry point (packed and direct) starts with.
static inline const mpq_sconv_weights_header *mpq_sconv_checked_header(const float *x, int images,
                                                                      const mpq_conv2d_shape *s,
                                                                      const void *packed_w, const float *y) {
    const mpq_sconv_weights_header *h = (const mpq_sconv_weights_header *)packed_w;
    if (!x || !s || !h || !y || images < 0 || h->magic != MPQ_SCONV_WEIGHTS_MAGIC || h->group != s->group) return NULL;
    if (mpq_conv2d_out_h(s) <= 0 || mpq_conv2d_out_w(s) <= 0) return NULL;
    if ((long)(s->channels / s->group) * s->kernel_h * s->kernel_w != h->k) return NULL;
    return h;
}

/// How the FP32 Conv drivers (packed and direct) split their work units over the pool.
/// MPQ_SCONV_SPLIT_BANDS (direct path only): one image's columns in one band per thread, band
/// edges on 16-column vectors (sgemm_conv_direct.c, `band_start`).
enum { MPQ_SCONV_SPLIT_IMAGES, MPQ_SCONV_SPLIT_N, MPQ_SCONV_SPLIT_M, MPQ_SCONV_SPLIT_BANDS };

/// The thread count for `units` work units (1..MPQ_POOL_MAX, no more than the units) and, in
/// *chunk, how many units a claim takes: a few claims per thread, so a core slowed by other
/// work hands its share over; one unit per claim when whole images are split; all of them on
/// one thread.
static inline int mpq_sconv_claims(int units, int threads, int split, int *chunk) {
    if (threads > units) threads = units;
    if (threads > MPQ_POOL_MAX) threads = MPQ_POOL_MAX;
    if (threads < 1) threads = 1;
    *chunk = (units + 4 * threads - 1) / (4 * threads);
    if (split == MPQ_SCONV_SPLIT_IMAGES || threads == 1) *chunk = threads == 1 ? units : 1;
    return threads;
}

/// One image split over the threads (MPQ_SCONV_SPLIT_N / _M): contiguous ranges of the work
/// units, one per thread; a thread drains its own range first, then what is left of the
/// others' (a core slowed by other work hands the end of its range over). Claimed one by one
/// from a shared counter, neighbouring units alternated between the cores: each core streamed
/// nearly all of a layer's weights from L3 (the channel-vector path's 64-channel blocks) and
/// the cores wrote the two sides of every column-panel border (the direct path's output rows).
typedef struct {
    int count;  // ranges (threads); 0: not used
    int end[MPQ_POOL_MAX];
    _Atomic int next[MPQ_POOL_MAX];
} mpq_sconv_ranges;

/// `units` split into `threads` ranges, or none (count 0) unless MPQ_FP32_CONV_RANGES is on
/// (read once; =0 keeps the shared counter, for an A/B).
void mpq_sconv_ranges_init(mpq_sconv_ranges *r, int units, int threads);

/// The next unit for thread t (its own range first), or -1 when every range is drained.
static inline int mpq_sconv_ranges_next(mpq_sconv_ranges *r, int t) {
    for (int i = 0; i < r->count; i++) {
        const int s = (t + i) % r->count;
        if (atomic_load_explicit(&r->next[s], memory_order_relaxed) >= r->end[s]) continue;
        const int u = atomic_fetch_add_explicit(&r->next[s], 1, memory_order_relaxed);
        if (u < r->end[s]) return u;
    }
    return -1;
}

/// Whether every unit of the ranges was claimed.
static inline int mpq_sconv_ranges_drained(mpq_sconv_ranges *r) {
    for (int s = 0; s < r->count; s++)
        if (atomic_load_explicit(&r->next[s], memory_order_relaxed) < r->end[s]) return 0;
    return 1;
}

/// The part of the Conv epilogue a tile applies to its registers after the last K block:
/// v + bias[i] (skipped where bias[i] == 0, as `mpq_conv_epilogue_f32` does), then with
/// `clamp` min(max(v, lo), hi) written as that function's clamp (NaN and -0 kept).
typedef struct {
    const float *bias;  ///< the tile's first row's bias, or NULL
    int clamp;
    float lo, hi;
    /// AVX-512 direct tiles only (NULL elsewhere): a compressing store. Vector q keeps the
    /// lanes set in valid[q] (the flat positions that are output pixels, not junk columns),
    /// packed together at c + row * ldc + place[q] (valid positions map to consecutive
    /// output pixels), so a padded Conv writes its output without a scratch copy.
    const uint16_t *valid;
    const int32_t *place;
} mpq_sgemm_tile_epilogue;

/// One micro-tile: c[i * ldc + j] for i < mr, j < nc is set to (accumulate: itself plus)
/// sum over k < kc of a[k * MR + i] * b[k * 16 * nv + j], as a chain of FMAs in k order,
/// then `ep` (NULL: none) applied before the store.
/// `a` is a weight panel from its k-block's first k, `b` a column panel of width 16 * nv
/// (nc <= 16 * nv). Rows mr.. of `a` and columns nc.. of `b` are padding, never stored.
typedef void (*mpq_sgemm_tile_fn)(int kc, const float *a, const float *b, int nv, float *c, int ldc,
                                  int mr, int nc, int accumulate, const mpq_sgemm_tile_epilogue *ep);

void mpq_sgemm_tile_reference(int kc, const float *a, const float *b, int nv, float *c, int ldc,
                              int mr, int nc, int accumulate, const mpq_sgemm_tile_epilogue *ep);
void mpq_sgemm_tile_avx2(int kc, const float *a, const float *b, int nv, float *c, int ldc,
                         int mr, int nc, int accumulate, const mpq_sgemm_tile_epilogue *ep);
void mpq_sgemm_tile_avx512(int kc, const float *a, const float *b, int nv, float *c, int ldc,
                           int mr, int nc, int accumulate, const mpq_sgemm_tile_epilogue *ep);

/// d[i] = src[2 * i] for i < count (reads no further than src[2 * (count - 1)]).
void mpq_sconv_gather2_avx512(float *d, const float *src, int count);

/// Packs rows [k0, k1) and columns [n0, n1) of one group's im2col matrix (row
/// k = (c, kh, kw), column = pixel oh * OW + ow; padding taps 0) into column panels
/// from n0: panel q holds columns n0 + q*NR .. as [k1 - k0][w] floats, w = that panel's
/// width rounded up to 16 (zeros beyond), panel q at dst + q * NR * (k1 - k0).
/// `x` is the group's first input channel. Columns past OH * OW continue in the next
/// image, `image_stride` floats further (a stack of small images as one GEMM).
void mpq_sconv_pack_b(const float *x, const mpq_conv2d_shape *s, int oh_n, int ow_n, size_t image_stride,
                      int k0, int k1, int n0, int n1, float *dst);

/// One micro-tile of the direct (pack-free) path for stride-1 Convs
/// (sgemm_conv_direct.c): c[i * ldc + j] for i < mr, j < nc is set to
/// sum over k < kc of a[k * MR + i] * b[offsets[k] + j], as a chain of FMAs in k order
/// from +0, then `ep` (NULL: none) applied before the store: the packed tile's chain on
/// the same values, read straight from a zero-padded image instead of a packed panel.
/// Lanes j >= nc of b are never read (masked loads), nv = ceil(nc / 16) <= 4.
typedef void (*mpq_sgemm_direct_tile_fn)(int kc, const float *a, const float *b, const int32_t *offsets, int nv,
                                         float *c, int ldc, int mr, int nc, const mpq_sgemm_tile_epilogue *ep);

void mpq_sgemm_direct_tile_reference(int kc, const float *a, const float *b, const int32_t *offsets, int nv,
                                     float *c, int ldc, int mr, int nc, const mpq_sgemm_tile_epilogue *ep);
void mpq_sgemm_direct_tile_avx2(int kc, const float *a, const float *b, const int32_t *offsets, int nv,
                                float *c, int ldc, int mr, int nc, const mpq_sgemm_tile_epilogue *ep);
void mpq_sgemm_direct_tile_avx512(int kc, const float *a, const float *b, const int32_t *offsets, int nv,
                                  float *c, int ldc, int mr, int nc, const mpq_sgemm_tile_epilogue *ep);

/// The direct tile over up to `mpq_sgemm_direct_tall_panels(nv)` consecutive weight panels
/// at once (sgemm_direct_tall_avx512.c): rows i < mr (ceil(mr / MR) panels, `panel_stride`
/// floats apart) x nc <= 16 * nv columns, each row the 6-row tile's FMA chain and epilogue,
/// so the same bits; for narrow column tiles (small planes), where one panel at a time
/// leaves too few accumulators. `ep->bias`, if any, is row 0's.
void mpq_sgemm_direct_tall_avx512(int kc, const float *a, size_t panel_stride, const float *b, const int32_t *offsets,
                                  int nv, float *c, int ldc, int mr, int nc, const mpq_sgemm_tile_epilogue *ep);

/// The AVX2 direct tile over consecutive weight panels (rows i < mr, ceil(mr / MR) panels
/// `panel_stride` floats apart) x nc <= 16 * nv columns, each row the 6-row tile's FMA chain
/// and epilogue, so the same bits (sgemm_avx2.c). `ep->bias`, if any, is row 0's.
void mpq_sgemm_direct_panels_avx2(int kc, const float *a, size_t panel_stride, const float *b, const int32_t *offsets,
                                  int nv, float *c, int ldc, int mr, int nc, const mpq_sgemm_tile_epilogue *ep);

/// Panels one tall tile takes for a column tile of nv vectors: 4 (24 rows) for 1, 2 for 2,
/// else 1 (the regular 6 x 4 tile is already 24 accumulators).
int mpq_sgemm_direct_tall_panels(int nv);

/// A channel-vector tile (sconv_cv.c): output channels i < rows (<= 16 nv, nv <= 8) x pixels
/// p < np (np <= mpq_sconv_cv_tile_pixels(nv)), y[i * plane + p] = the fmaf chain over k < kc
/// of weight(k, i) * x[pix[p] + offsets[k]] from +0, then `ep` (bias, clamp; NULL: none).
/// weight(k, i) = w[k * 16 nv + i] for nv <= 4 (one block); for nv > 4 two blocks, channel
/// i < 64 at w[k * 64 + i], i >= 64 at w[kc * 64 + k * 16 (nv - 4) + i - 64].
int mpq_sconv_cv_tile_pixels(int nv);
/// One channel plane [h][w] zero-padded into [hp][wp], pad_top rows and pad_left columns first
/// (sconv_cv_avx512.c; the channel-vector driver's copy on the AVX-512 path).
void mpq_sconv_pad_plane_avx512(const float *x, int h, int w, int pad_top, int pad_left, int hp, int wp, float *dst);
/// The same with memset and memcpy (sconv_cv.c): every other path's copy.
void mpq_sconv_pad_plane(const float *x, int h, int w, int pad_top, int pad_left, int hp, int wp, float *dst);
/// Output channel i of the channel-vector reference tile at the pixel whose window starts at
/// x + pixel: the fmaf chain over k in order from +0, then the bias (when not 0) and the clamp.
/// Both reference tiles (NCHW and blocked stores) compute every output through it.
/// Where vector v's slice for the K block from k0 (a multiple of MPQ_SCONV_CV_KC) starts in
/// one block of MPQ_SCONV_CV_SLICED weights `width` = 16 nv floats wide and k deep: the
/// layout's one definition (the packer, the reference and the AVX2 part kernel read it here).
static inline size_t mpq_sconv_cv_slice_at(int k, int width, int k0, int v) {
    const int kb = k - k0 < MPQ_SCONV_CV_KC ? k - k0 : MPQ_SCONV_CV_KC;
    return (size_t)k0 * (size_t)width + (size_t)v * (size_t)kb * 16;
}
/// Vector v's weights for the K block from k0 in a part's channel-vector weights of nv vectors
/// (the first 4 in the part's first weights block, the rest in its second at kc * 64 floats):
/// its slice [kb][16] (`sliced`), else its 16 columns of the block's rows; *stride: the floats
/// from one k to the next. The AVX2 part kernel and the AVX2 blocked tile read weights here.
static inline const float *mpq_sconv_cv_vector_block(const float *w, int kc, int nv, int v, int k0, int sliced,
                                                     size_t *stride) {
    const int first = v < 4, width = 16 * (first ? (nv < 4 ? nv : 4) : nv - 4), vb = first ? v : v - 4;
    const float *blk = first ? w : w + (size_t)kc * 64;
    *stride = sliced ? 16 : (size_t)width;
    return sliced ? blk + mpq_sconv_cv_slice_at(kc, width, k0, vb) : blk + (size_t)k0 * (size_t)width + 16 * (size_t)vb;
}
/// `sliced`: the weights are MPQ_SCONV_CV_SLICED (else rows).
float mpq_sconv_cv_reference_output(int kc, const float *w, int nv, int i, const float *x, ptrdiff_t pixel,
                                    const int32_t *offsets, const mpq_sgemm_tile_epilogue *ep, int sliced);
void mpq_sconv_cv_tile_reference(int kc, const float *w, int nv, const float *x, const int32_t *offsets, const int32_t *pix,
                                 int np, float *y, size_t plane, int rows, const mpq_sgemm_tile_epilogue *ep);
/// The reference tile on MPQ_SCONV_CV_SLICED weights (the other tiles read rows only).
void mpq_sconv_cv_tile_reference_sliced(int kc, const float *w, int nv, const float *x, const int32_t *offsets,
                                        const int32_t *pix, int np, float *y, size_t plane, int rows,
                                        const mpq_sgemm_tile_epilogue *ep);
/// The AVX2 form, over a whole part (n pixels of the driver's part, pix[0..n)): the same sums in
/// K blocks, each block's weights reused by every pixel chunk, partial sums kept in a thread
/// buffer between blocks; the same bits as the tile. 0, or -1 (nothing written) without memory.
/// `sliced`: the weights are MPQ_SCONV_CV_SLICED and are read in place (rows: each block's
/// slices are copied out first).
int mpq_sconv_cv_part_avx2(int kc, const float *w, int nv, int sliced, const float *x, const int32_t *offsets,
                           const int32_t *pix, int n, float *y, size_t plane, int rows, const mpq_sgemm_tile_epilogue *ep);
void mpq_sconv_cv_tile_avx512(int kc, const float *w, int nv, const float *x, const int32_t *offsets, const int32_t *pix,
                              int np, float *y, size_t plane, int rows, const mpq_sgemm_tile_epilogue *ep);

/// A channel-blocked tile (sconv_blocked.c): the channel-vector tile's chain (same weights,
/// x, offsets, pix, rows, ep), stored as whole vectors: y[v * vstride + 16 p + lane] for
/// channel 16 v + lane, +0 in lanes at or past `rows`.
void mpq_sconv_blocked_tile_reference(int kc, const float *w, int nv, const float *x, const int32_t *offsets,
                                      const int32_t *pix, int np, float *y, size_t vstride, int rows,
                                      const mpq_sgemm_tile_epilogue *ep);
void mpq_sconv_blocked_tile_reference_sliced(int kc, const float *w, int nv, const float *x, const int32_t *offsets,
                                             const int32_t *pix, int np, float *y, size_t vstride, int rows,
                                             const mpq_sgemm_tile_epilogue *ep);
void mpq_sconv_blocked_tile_avx512(int kc, const float *w, int nv, const float *x, const int32_t *offsets,
                                   const int32_t *pix, int np, float *y, size_t vstride, int rows,
                                   const mpq_sgemm_tile_epilogue *ep);
/// The AVX2 tile (sconv_blocked_avx2.c): rows or MPQ_SCONV_CV_SLICED weights, np <=
/// MPQ_SCONV_BLOCKED_AVX2_MAX_NP (the other blocked tiles take up to 8).
#define MPQ_SCONV_BLOCKED_AVX2_MAX_NP 16
/// Whether a block of `rows` output channels ends in a half vector (8 or fewer live channels
/// in its last 16): the AVX2 tile then runs that vector with the one before it (or alone when
/// it is the only one), and the driver gives it tiles of MPQ_SCONV_BLOCKED_AVX2_MAX_NP pixels.
static inline int mpq_sconv_blocked_ends_in_half(int rows) { return rows % 16 != 0 && rows % 16 <= 8; }
/// One tile of a run of blocked tiles: its input (the image, a border patch or the padded
/// image), the taps' offsets there, its pixels' offsets, and where its outputs start in each
/// vector's plane (floats).
typedef struct {
    const float *x;
    const int32_t *offsets;
    int32_t pix[MPQ_SCONV_BLOCKED_AVX2_MAX_NP];
    int np;
    size_t y;
} mpq_blocked_tile_at;
/// `count` tiles, vector by vector (each vector's weights read for all the tiles before the
/// next vector's): the same bits as mpq_sconv_blocked_tile_avx2 tile by tile.
void mpq_sconv_blocked_tiles_avx2(int kc, const float *w, int nv, int sliced, const mpq_blocked_tile_at *at, int count,
                                  float *y, size_t vstride, int rows, const mpq_sgemm_tile_epilogue *ep);
/// A run of `n` output pixels of one row: pixel p's window at x + step p (`step` 16 or 32 in a
/// blocked image, 1 or 2 in NCHW planes), its k-th input at offsets[k] from there, its outputs at
/// y + 16 p (vector v's at + v vstride).
typedef struct {
    const float *x;
    float *y;
    int n;
} mpq_blocked_pixel_run;
/// `count` runs, vector by vector: the same bits as the tiles above on those pixels.
void mpq_sconv_blocked_pixel_runs_avx2(int kc, const float *w, int nv, int sliced, const mpq_blocked_pixel_run *runs, int count,
                                       const int32_t *offsets, int step, size_t vstride, int rows, const mpq_sgemm_tile_epilogue *ep);
/// The same on the AVX-512 tile (rows layout, nv <= 4): 0, or -1 (nothing done) for another nv or step.
int mpq_sconv_blocked_pixel_runs_avx512(int kc, const float *w, int nv, const mpq_blocked_pixel_run *runs, int count,
                                        const int32_t *offsets, int step, size_t vstride, int rows,
                                        const mpq_sgemm_tile_epilogue *ep);
void mpq_sconv_blocked_tile_avx2(int kc, const float *w, int nv, const float *x, const int32_t *offsets,
                                 const int32_t *pix, int np, float *y, size_t vstride, int rows,
                                 const mpq_sgemm_tile_epilogue *ep);
void mpq_sconv_blocked_tile_avx2_sliced(int kc, const float *w, int nv, const float *x, const int32_t *offsets,
                                        const int32_t *pix, int np, float *y, size_t vstride, int rows,
                                        const mpq_sgemm_tile_epilogue *ep);
void mpq_sconv_blocked_patch_avx2(const float *x, int cbs, int h, int w, int ih0, int iw0, int ph, int pw, int pwc,
                                  float *dst);
void mpq_reorder_to_blocked_f32_avx2(const float *x, int channels, size_t hw, float *y);
void mpq_reorder_from_blocked_f32_avx2(const float *x, int channels, size_t hw, float *y);
/// Rows [ih0, ih0 + ph) x columns [iw0, iw0 + pw) of a blocked image [cbs][h][w][16] into
/// [cbs][ph][pwc][16] (pwc >= pw), +0 outside the image: a border tile's window.
void mpq_sconv_blocked_patch_avx512(const float *x, int cbs, int h, int w, int ih0, int iw0, int ph, int pw, int pwc,
                                    float *dst);
/// One image's reorders (mpq_reorder_to/from_blocked_f32) on each path.
void mpq_reorder_to_blocked_f32_reference(const float *x, int channels, size_t hw, float *y);
void mpq_reorder_to_blocked_f32_avx512(const float *x, int channels, size_t hw, float *y);
void mpq_reorder_from_blocked_f32_reference(const float *x, int channels, size_t hw, float *y);
void mpq_reorder_from_blocked_f32_avx512(const float *x, int channels, size_t hw, float *y);


/// A thread's scratch buffer of at least `floats` floats (64-byte aligned), grown when too
/// small and kept between calls (`buf`, `cap`: the caller's thread-local pair; a fresh buffer
/// per call would be mapped and faulted in again each time). NULL when allocation fails.
static inline float *mpq_sconv_grown(float **buf, size_t *cap, size_t floats) {
    if (floats > *cap) {
        free(*buf);
        *buf = aligned_alloc(64, (floats * sizeof(float) + 63) / 64 * 64);
        *cap = *buf ? floats : 0;
    }
    return *buf;
}

/// The claim state's start, shared by the direct and channel-vector drivers: the thread
/// count for `units` (mpq_sconv_claims, which sets `chunk`), one unit per claim when one image
/// is split over several threads, the shared counter reset, and each thread's contiguous
/// range (mpq_sconv_ranges) when one image is split. Returns the threads to run.
static inline int mpq_sconv_claims_start(int units, int threads, int mode, int *chunk, _Atomic int *next,
                                         mpq_sconv_ranges *ranges) {
    threads = mpq_sconv_claims(units, threads, mode, chunk);
    if (mode != MPQ_SCONV_SPLIT_IMAGES && threads > 1) *chunk = 1;
    atomic_init(next, 0);
    mpq_sconv_ranges_init(ranges, units, mode != MPQ_SCONV_SPLIT_IMAGES ? threads : 1);
    return threads;
}

/// Whether every unit was claimed (a thread without its buffers claims none).
static inline int mpq_sconv_all_claimed(mpq_sconv_ranges *ranges, _Atomic int *next, int units) {
    return ranges->count ? mpq_sconv_ranges_drained(ranges) : atomic_load(next) >= units;
}

/// An A/B switch of the FP32 Conv drivers: on unless the environment variable `name` starts
/// with '0' (MPQ_FP32_CONV_DIRECT, _SMALL, _CV). Read once per switch: `state` is the caller's
/// static (0 unread, 1 on, 2 off); a race between first readers stores the same value.
static inline int mpq_env_switch_on(const char *name, _Atomic int *state) {
    int v = atomic_load_explicit(state, memory_order_relaxed);
    if (!v) {
        const char *e = getenv(name);
        v = e && e[0] == '0' ? 2 : 1;
        atomic_store_explicit(state, v, memory_order_relaxed);
    }
    return v == 1;
}

#endif
