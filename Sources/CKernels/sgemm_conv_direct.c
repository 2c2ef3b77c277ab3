// Direct (pack-free) FP32 Conv (mpq_sgemm.h, docs/fp32-gemm.md).
//
// With stride 1, im2col row k = (c, kh, kw) of a zero-padded image is the padded plane of
// channel c shifted by kh * dh * Wp + kw * dw, if output pixels are numbered on the padded
// width Wp ("flat" positions oh * Wp + ow; the columns ow >= OW are junk, computed and
// dropped). So the micro-tile reads its column vectors straight from the padded image at
// a per-k offset, and nothing is packed: the packed path wrote K x pixels floats per image
// (451K for a 16-channel 3x3 layer at 56x56) in many short copies, as much work as the
// 16-channel GEMM itself. A 1x1 unpadded Conv reads the image itself (no copy, no junk).
// Stride s: the padded plane is split into s_h x s_w phase planes (rows r = a mod s_h,
// columns b mod s_w), each Hq x Wq = ceil(Hp / s_h) x ceil(Wp / s_w); tap (kh, kw) reads
// phase ((kh dh) mod s_h, (kw dw) mod s_w) shifted by ((kh dh) / s_h, (kw dw) / s_w), so a
// strided Conv is a stride-1 one over the phases, with flat positions oh * Wq + ow.
//
// Same weights panels, same tile shape (MR x 64) and the same FMA chain in k order from
// +0 on the same values (the padded copy holds the image and +0, as the packed panel
// does), so the output has the packed path's and the reference's bits, on every path,
// split and thread count. A tile runs its whole K in registers (no K blocks).
#include "sgemm_internal.h"
#include "mpq_pool.h"
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MR MPQ_SGEMM_MR
#define NR MPQ_SGEMM_NR
#define SCRATCH_FLOATS (64 * 1024)  // a part's scratch C (256 KiB): rows x columns of one chunk

typedef struct {
    mpq_kernel_path path;
    mpq_sgemm_direct_tile_fn tile;
    int compress;         // AVX-512 tiles store only output pixels (mpq_sgemm_tile_epilogue.valid)
    int tall;             // AVX-512 tall tiles for narrow column tiles (sgemm_direct_tall_avx512.c)
    int multi;            // AVX2: one call per column tile over all the part's panels (mpq_sgemm_direct_panels_avx2)
    int m_unit;           // weight panels per work unit when output channels are split (MPQ_SCONV_SPLIT_M)
    const float *x;
    const mpq_conv2d_shape *s;
    size_t in_image;      // floats per input image
    int copy;             // 1: images are zero-padded into a buffer first; 0: x is read as is
    int hp, wp;           // padded plane
    int sh, sw, hq, wq;   // strides, one phase plane (hq = ceil(hp / sh), wq = ceil(wp / sw))
    size_t plane;         // hq * wq: one phase plane
    int slot[16];         // phase (a, b) -> its plane among the channel's (a * sw + b), -1: no tap reads it
    size_t chan;          // one channel's phase planes: (phases some tap reads) * plane
    size_t padded_image;  // floats of one padded image, slack included
    int images, group, cg, mg, k, panels, oh, ow, flat, n_units;
    const int32_t *offsets;  // per k, from the group's first padded plane
    const float *w, *bias;
    mpq_activation act;
    float lo, hi;
    float *y;
    size_t out_image;
    const float *shared;  // the one padded image all threads read (modes MPQ_SCONV_SPLIT_N / MPQ_SCONV_SPLIT_M)
    const mpq_sconv_residual *residual;  // NULL, or a residual Add (+ Relu) applied per chunk (residual_pass)
    int mode, units, chunk, image;
    int bands;            // mode MPQ_SCONV_SPLIT_BANDS: column bands per group (one per thread)
    _Atomic int next;
    mpq_sconv_ranges ranges;  // one image split over the threads (count 0: the shared counter `next`)
} direct_job;


static _Thread_local float *pad_buf, *scratch_buf;
static _Thread_local size_t pad_cap, scratch_cap;


static mpq_sgemm_direct_tile_fn direct_tile_for(mpq_kernel_path path) {
    switch (mpq_resolve_kernel_path(path)) {
    case MPQ_PATH_VNNI: return mpq_sgemm_direct_tile_avx512;
    case MPQ_PATH_AVX2: return mpq_sgemm_direct_tile_avx2;
    default: return mpq_sgemm_direct_tile_reference;
    }
}

// Packing copies values, so every path pads the same bits; the AVX-512 de-interleave is
// used wherever the CPU has it, whatever the kernel path.
static int has_avx512(void) {
    static _Atomic int state;  // 0 unknown, 1 yes, 2 no
    int v = atomic_load_explicit(&state, memory_order_relaxed);
    if (!v) {
        v = __builtin_cpu_supports("avx512f") ? 1 : 2;
        atomic_store_explicit(&state, v, memory_order_relaxed);
    }
    return v == 1;
}

// Small planes (a channel's phase planes within SMALL_CHANNEL_FLOATS): the channels' whole
// padded area is zeroed with one memset and only the image's rows are written, instead of
// a memset and a copy call per padded row and phase (960 calls for a 48-channel 8x8
// stride-2 layer, a third of its time). Same bytes as the row-by-row path below.
#define SMALL_CHANNEL_FLOATS 4096

static void pad_small_channels(const direct_job *j, const float *x, int c0, int c1, float *dst, int avx512) {
    const mpq_conv2d_shape *s = j->s;
    const int H = s->height, W = s->width, pt = s->pad_top, pl = s->pad_left, sh = j->sh, sw = j->sw;
    memset(dst + (size_t)c0 * j->chan, 0, (size_t)(c1 - c0) * j->chan * sizeof(float));
    // Per column phase b: its columns inside the image, q in [q0, q1), from image column q0 * sw + b - pl.
    int q0[4], q1[4];
    for (int b = 0; b < sw; b++) {
        q0[b] = b >= pl ? 0 : (pl - b + sw - 1) / sw;
        q1[b] = W + pl - 1 - b >= 0 ? (W + pl - 1 - b) / sw + 1 : 0;
        if (q1[b] > j->wq) q1[b] = j->wq;
        if (q0[b] > q1[b]) q0[b] = q1[b];
    }
    for (int c = c0; c < c1; c++) {
        const float *xc = x + (size_t)c * (size_t)H * (size_t)W;
        float *base = dst + (size_t)c * j->chan;
        for (int h = 0; h < H; h++) {
            const int a = (h + pt) % sh, r = (h + pt) / sh;
            if (r >= j->hq) continue;
            const float *row = xc + (size_t)h * (size_t)W;
            for (int b = 0; b < sw; b++) {
                const int slot = j->slot[a * sw + b], n = q1[b] - q0[b];
                if (slot < 0 || n <= 0) continue;
                float *p = base + (size_t)slot * j->plane + (size_t)r * (size_t)j->wq + q0[b];
                const float *src = row + (q0[b] * sw + b - pl);
                if (sw == 1) memcpy(p, src, (size_t)n * sizeof(float));
                else if (avx512) mpq_sconv_gather2_avx512(p, src, n);
                else for (int q = 0; q < n; q++) p[q] = src[(size_t)q * (size_t)sw];
            }
        }
    }
}

// Channels [c0, c1) of image `img` zero-padded (and split into stride phases) into `dst`
// (the image's padded buffer): phase (a, b) row r column q holds padded pixel
// (r * sh + a, q * sw + b), 0 outside the image.
static void pad_channels(const direct_job *j, int img, int c0, int c1, float *dst) {
    const mpq_conv2d_shape *s = j->s;
    const int H = s->height, W = s->width, pt = s->pad_top, pl = s->pad_left, sh = j->sh, sw = j->sw;
    const float *x = j->x + (size_t)img * j->in_image;
    const int avx512 = sw == 2 && has_avx512();
    if (j->chan <= SMALL_CHANNEL_FLOATS) {
        pad_small_channels(j, x, c0, c1, dst, avx512);
        c0 = c1;  // done; the slack below still applies
    }
    for (int c = c0; c < c1; c++) {
        const float *xc = x + (size_t)c * (size_t)H * (size_t)W;
        for (int a = 0; a < sh; a++)
            for (int b = 0; b < sw; b++) {
                if (j->slot[a * sw + b] < 0) continue;  // a 1x1 stride-2 kernel reads one phase of four
                float *p = dst + (size_t)c * j->chan + (size_t)j->slot[a * sw + b] * j->plane;
                // Phase columns inside the image: q * sw + b - pl in [0, W).
                int q0 = b >= pl ? 0 : (pl - b + sw - 1) / sw;
                int q1 = W + pl - 1 - b >= 0 ? (W + pl - 1 - b) / sw + 1 : 0;
                if (q1 > j->wq) q1 = j->wq;
                if (q0 > q1) q0 = q1;
                for (int r = 0; r < j->hq; r++, p += j->wq) {
                    const int h = r * sh + a - pt;
                    if (h < 0 || h >= H || q0 == q1) {
                        memset(p, 0, (size_t)j->wq * sizeof(float));
                        continue;
                    }
                    const float *src = xc + (size_t)h * (size_t)W + (q0 * sw + b - pl);
                    if (q0) memset(p, 0, (size_t)q0 * sizeof(float));
                    if (sw == 1) memcpy(p + q0, src, (size_t)(q1 - q0) * sizeof(float));
                    else if (avx512) mpq_sconv_gather2_avx512(p + q0, src, q1 - q0);
                    else for (int q = q0; q < q1; q++) p[q] = src[(size_t)(q - q0) * (size_t)sw];
                    if (q1 < j->wq) memset(p + q1, 0, (size_t)(j->wq - q1) * sizeof(float));
                }
            }
    }
    if (c1 == s->channels)  // the slack the junk columns of the last plane read
        memset(dst + (size_t)s->channels * j->chan, 0, (j->padded_image - (size_t)s->channels * j->chan) * sizeof(float));
}

// Copies flat columns [c0, c1) of `rows` rows from scratch (ld = c1 - c0) to the output
// planes, dropping the junk columns (ow >= OW).
static void copy_out(const direct_job *j, const float *scratch, int rows, int c0, int c1, float *y) {
    const int ld = c1 - c0;
    for (int r = 0; r < rows; r++) {
        const float *src = scratch + (size_t)r * (size_t)ld;
        float *dst = y + (size_t)r * (size_t)j->oh * (size_t)j->ow;
        for (int oh = c0 / j->wq; oh * j->wq < c1; oh++) {
            const int a = oh * j->wq > c0 ? oh * j->wq : c0;
            const int b = oh * j->wq + j->ow < c1 ? oh * j->wq + j->ow : c1;
            if (b > a) memcpy(dst + (size_t)oh * (size_t)j->ow + (a - oh * j->wq), src + (a - c0), (size_t)(b - a) * sizeof(float));
        }
    }
}

// The output pixel of the first flat position >= f that is one (not a junk column).
static int out_ceil(const direct_job *j, int f) {
    const int oh = f / j->wq, ow = f % j->wq;
    return ow < j->ow ? oh * j->ow + ow : (oh + 1) * j->ow;
}

// The fused residual Add (+ Relu) over output rows [row0, row1) and output pixels [o0, o1)
// of image `img`, group `g`, right after the chunk's tiles wrote them (still in L1/L2):
// the same `mpq_binary_f32` call, operands in the Add's order, that the separate Add (and
// Add + Relu pair) makes over the whole tensor, so the same bits.
static void residual_pass(const direct_job *j, int img, int g, int row0, int row1, int o0, int o1) {
    const mpq_sconv_residual *r = j->residual;
    if (!r || o1 <= o0) return;
    const size_t out_plane = (size_t)j->oh * (size_t)j->ow;
    const size_t base = (size_t)img * j->out_image + ((size_t)g * (size_t)j->mg + (size_t)row0) * out_plane + (size_t)o0;
    for (int row = row0; row < row1; row++) {
        const size_t at = base + (size_t)(row - row0) * out_plane;
        float *y = j->y + at;
        const float *sc = r->shortcut + at;
        mpq_binary_f32(j->path, 0, r->relu, r->shortcut_first ? sc : y, r->shortcut_first ? y : sc, (size_t)(o1 - o0), y, 1);
    }
}

// Weight panels per block when a part's tiles write the output directly: all of them (every
// weight panel over a column tile, then the next column tile) unless the part writes more
// output than L2 holds (mpq_l2_bytes: 2 MiB per core here) from at most half that of input; then blocks of
// `MPQ_FP32_PW_PANELS` (default 2) panels, each over all the part's columns, so a block writes
// its output rows front to back (12 streams) while the input stays in L2, instead of every
// column tile touching every output row (96 rows at once for MobileNetV2's 16 -> 96 expand at
// 112x112: 4.8 MB of output). One thread, C harness: 16 -> 96 at 112x112 with Relu6 ~640 ->
// ~450 us (24 -> 144 at 56x56, 1.8 MB, measured no faster: left out by the 2 MiB bound). One
// image over several threads then splits by weight panel (mode MPQ_SCONV_SPLIT_M), each unit
// a panel over every column. Same tiles, so the same bits. MPQ_FP32_PW_PANELS=0: all panels per
// column tile (the old order and split), for A/B.
static int panel_block(const direct_job *j, int cols, int panels) {
    static _Atomic long state = -1;
    const long pb = mpq_env_long_once("MPQ_FP32_PW_PANELS", 2, &state);
    const size_t out_bytes = (size_t)panels * MR * (size_t)cols * sizeof(float);
    const size_t in_bytes = (size_t)j->cg * (size_t)cols * sizeof(float);
    if (pb <= 0 || j->wq != j->ow || j->residual || out_bytes <= mpq_l2_bytes() || in_bytes > mpq_l2_bytes() / 2)
        return panels;
    return pb < panels ? (int)pb : panels;
}

// Weight panels [p0, p1) x flat columns [f0, f1) of image `img`, group g, read from the
// padded image `src`; column tiles of NR from f0 (the last one narrower). Without junk
// columns the tiles write the output directly; otherwise AVX-512 tiles store only the pixel
// lanes at their output positions (compressing store), and other paths' chunks of column
// panels go through a scratch C and are copied out.
static void direct_part(const direct_job *j, const float *src, int img, int g, int p0, int p1, int f0, int f1) {
    const float *b = src + (size_t)g * (size_t)j->cg * j->chan;
    float *yg = j->y + (size_t)img * j->out_image + (size_t)g * (size_t)j->mg * (size_t)j->oh * (size_t)j->ow;
    const float *wg = j->w + (size_t)g * (size_t)j->panels * (size_t)j->k * MR;
    const float *bias = j->bias ? j->bias + (size_t)g * (size_t)j->mg : NULL;
    const int epilogue = bias || j->act != MPQ_ACT_NONE;
    const int direct_out = j->wq == j->ow;
    // AVX-512: tiles drop the junk columns themselves (compressing store), no scratch copy.
    const int compress = !direct_out && j->compress;
    const size_t out_plane = (size_t)j->oh * (size_t)j->ow;
    const int row0 = p0 * MR, row1 = p1 * MR < j->mg ? p1 * MR : j->mg, rows = row1 - row0;
    int chunk = f1 - f0;
    if (!direct_out) {  // the scratch's size, or with compressing stores the block the SiLU pass covers
        chunk = SCRATCH_FLOATS / ((p1 - p0) * MR * NR);
        if (chunk < 1) chunk = 1;
        chunk *= NR;
    }
    for (int c0 = f0; c0 < f1; c0 += chunk) {
        const int c1 = c0 + chunk < f1 ? c0 + chunk : f1;
        // Row `row` of the part at cbase + (row - first) * ldc.
        float *cbase = yg;
        int ldc = j->flat, origin = 0, first = 0;
        if (!direct_out && !compress) {
            cbase = scratch_buf;  // run_task sized it for the largest part
            ldc = c1 - c0;
            origin = c0;
            first = row0;
        }
        // Panel blocks outer (pb panels each), the chunk's column tiles inner: see panel_block.
        const int pb = panel_block(j, c1 - c0, p1 - p0);
        for (int pq = p0; pq < p1; pq += pb) {
            const int pq1 = pq + pb < p1 ? pq + pb : p1;
            for (int col = c0; col < c1; col += NR) {
                const int nc = c1 - col < NR ? c1 - col : NR, nv = (nc + 15) / 16;
                // Compressing store: per vector the lanes that are pixels (column < OW) and where
                // the first goes; valid flat positions map to consecutive output pixels.
                uint16_t valid[NR / 16];
                int32_t place[NR / 16];
                if (compress) {
                    int oh = col / j->wq, ow = col % j->wq;
                    for (int q = 0; q < nv; q++) {
                        unsigned m = 0;
                        place[q] = 0;
                        for (int l = 0; l < 16 && col + 16 * q + l < col + nc; l++) {
                            if (ow < j->ow) {
                                if (!m) place[q] = oh * j->ow + ow;
                                m |= 1u << l;
                            }
                            if (++ow == j->wq) ow = 0, oh++;
                        }
                        valid[q] = (uint16_t)m;
                    }
                }
                // Narrow column tiles (small planes) take several weight panels per tile.
                const int tall = j->tall ? mpq_sgemm_direct_tall_panels(nv) : j->multi ? pq1 - pq : 1;
                for (int p = pq, step; p < pq1; p += step) {
                    step = pq1 - p < tall ? pq1 - p : tall;
                    const int row = p * MR, mr = j->mg - row < step * MR ? j->mg - row : step * MR;
                    float *c = compress ? yg + (size_t)row * out_plane
                                        : cbase + (size_t)(row - first) * (size_t)ldc + (size_t)(col - origin);
                    const int ld = compress ? (int)out_plane : ldc;
                    const mpq_sgemm_tile_epilogue ep = {bias ? bias + row : NULL, j->act == MPQ_ACT_CLAMP, j->lo, j->hi,
                                                        compress ? valid : NULL, compress ? place : NULL};
                    const mpq_sgemm_tile_epilogue *epp = epilogue || compress ? &ep : NULL;
                    const float *a = wg + (size_t)p * (size_t)j->k * MR;
                    if (step > 1 && j->multi)
                        mpq_sgemm_direct_panels_avx2(j->k, a, (size_t)j->k * MR, b + col, j->offsets, nv, c, ld, mr, nc, epp);
                    else if (step > 1)
                        mpq_sgemm_direct_tall_avx512(j->k, a, (size_t)j->k * MR, b + col, j->offsets, nv, c, ld, mr, nc, epp);
                    else
                        j->tile(j->k, a, b + col, j->offsets, nv, c, ld, mr, nc, epp);
                    if (j->act == MPQ_ACT_SILU && !compress)
                        mpq_conv_epilogue_f32(j->path, c, (size_t)mr, (size_t)nc, (size_t)ldc, NULL, j->act, j->lo, j->hi);
                }
            }
        }
        // Compressed tiles: the SiLU once over the chunk's output pixels, whole rows of
        // them (per tile, the 8-wide epilogue loop's scalar tail took a 62-pixel row's last 6).
        if (compress && j->act == MPQ_ACT_SILU) {
            const int o0 = out_ceil(j, c0), o1 = out_ceil(j, c1);
            if (o1 > o0)
                mpq_conv_epilogue_f32(j->path, yg + (size_t)row0 * out_plane + o0, (size_t)rows, (size_t)(o1 - o0), out_plane,
                                      NULL, j->act, j->lo, j->hi);
        }
        if (!direct_out && !compress)
            copy_out(j, cbase, rows, c0, c1, yg + (size_t)row0 * (size_t)j->oh * (size_t)j->ow);
        residual_pass(j, img, g, row0, row1, out_ceil(j, c0), out_ceil(j, c1));
    }
}

// Band b's first flat column (b == bands: the end): the plane's 16-column vectors split evenly,
// so every band holds whole vectors (a thread's tiles are those of an unsplit run but at its
// band's edge) and the two threads' FMAs differ by at most one vector per panel.
static int band_start(const direct_job *j, int b) {
    const int vectors = (j->flat + 15) / 16, f = 16 * (int)((long)vectors * b / j->bands);
    return f < j->flat ? f : j->flat;
}

// Unit u of one image's split (modes other than MPQ_SCONV_SPLIT_IMAGES): group *g, weight
// panels [*p0, *p1), flat columns [*f0, *f1). mpq_sconv2d_f32_direct_split lists them for tests.
static void unit_part(const direct_job *j, int u, int *g, int *p0, int *p1, int *f0, int *f1) {
    if (j->mode == MPQ_SCONV_SPLIT_BANDS) {
        *g = u / j->bands, *p0 = 0, *p1 = j->panels;
        *f0 = band_start(j, u % j->bands), *f1 = band_start(j, u % j->bands + 1);
        return;
    }
    const int per_group = j->mode == MPQ_SCONV_SPLIT_N ? j->n_units : (j->panels + j->m_unit - 1) / j->m_unit;
    const int v = u % per_group;
    *g = u / per_group;
    if (j->mode == MPQ_SCONV_SPLIT_N) {
        *p0 = 0, *p1 = j->panels, *f0 = v * NR, *f1 = (v + 1) * NR < j->flat ? (v + 1) * NR : j->flat;
    } else {
        *p0 = v * j->m_unit, *p1 = (v + 1) * j->m_unit < j->panels ? (v + 1) * j->m_unit : j->panels, *f0 = 0, *f1 = j->flat;
    }
}

// Units [u0, u1): whole images, or one image's units, where consecutive units that continue
// one another (the next columns of the same panels, or the next panels over the same columns)
// run as one part (one thread with every unit: the whole image in one part, its loop order).
static void run_units(const direct_job *j, int u0, int u1) {
    if (j->mode == MPQ_SCONV_SPLIT_IMAGES) {
        for (int img = u0; img < u1; img++) {
            const float *src = j->x + (size_t)img * j->in_image;
            if (j->copy) {
                pad_channels(j, img, 0, j->s->channels, pad_buf);  // run_task sized it
                src = pad_buf;
            }
            for (int g = 0; g < j->group; g++) direct_part(j, src, img, g, 0, j->panels, 0, j->flat);
        }
        return;
    }
    int g = 0, p0 = 0, p1 = 0, f0 = 0, f1 = 0;
    for (int u = u0; u < u1; u++) {
        int h, q0, q1, e0, e1;
        unit_part(j, u, &h, &q0, &q1, &e0, &e1);
        if (u > u0 && h == g && q0 == p0 && q1 == p1 && e0 == f1) {
            f1 = e1;
            continue;
        }
        if (u > u0 && h == g && e0 == f0 && e1 == f1 && q0 == p1) {
            p1 = q1;
            continue;
        }
        if (u > u0) direct_part(j, j->shared, j->image, g, p0, p1, f0, f1);
        g = h, p0 = q0, p1 = q1, f0 = e0, f1 = e1;
    }
    if (u1 > u0) direct_part(j, j->shared, j->image, g, p0, p1, f0, f1);
}

static void run_task(void *arg, int t) {
    direct_job *j = (direct_job *)arg;
    // Buffers first: without memory this thread claims nothing, and the caller sees that
    // `next` did not pass every unit.
    if (j->mode == MPQ_SCONV_SPLIT_IMAGES && j->copy && !mpq_sconv_grown(&pad_buf, &pad_cap, j->padded_image)) return;
    if (j->wq != j->ow) {
        const size_t most = (size_t)j->panels * MR * NR;
        if (!mpq_sconv_grown(&scratch_buf, &scratch_cap, most > SCRATCH_FLOATS ? most : SCRATCH_FLOATS)) return;
    }
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

static int all_claimed(direct_job *j) { return mpq_sconv_all_claimed(&j->ranges, &j->next, j->units); }

static void pad_task(void *arg, int t) {
    const direct_job *j = (const direct_job *)arg;
    const int c = j->s->channels;
    pad_channels(j, j->image, c * t / j->chunk, c * (t + 1) / j->chunk, (float *)j->shared);
}

static void run(direct_job *j, int threads) {
    // One image split over the threads: one unit (a column panel, or a few weight panels)
    // per claim. Every unit is tens of microseconds or more, so the claims cost nothing, and
    // a layer ends at most one unit apart on the two cores: with ~4 claims per thread the
    // last claim left one core idle for up to an eighth of the layer (ResNet-18 at batch 1:
    // 28x28 planes are 14 column panels, claimed as 7 pairs, 8 against 6 units).
    // Same tiles, so the same bits.
    // Since s11-fp32conv each thread takes a contiguous range of those units first
    // (mpq_sconv_ranges): the cores no longer write both sides of every panel border.
    mpq_pool_run(mpq_sconv_claims_start(j->units, threads, j->mode, &j->chunk, &j->next, &j->ranges), run_task, j);
}

// On unless MPQ_FP32_CONV_RANGES=0 (read once), which keeps the shared counter for an A/B.
static int ranges_enabled(void) {
    static _Atomic int state;
    return mpq_env_switch_on("MPQ_FP32_CONV_RANGES", &state);
}

void mpq_sconv_ranges_init(mpq_sconv_ranges *r, int units, int threads) {
    if (threads > MPQ_POOL_MAX) threads = MPQ_POOL_MAX;
    r->count = threads > 1 && units > 0 && ranges_enabled() ? threads : 0;
    for (int s = 0; s < r->count; s++) {
        atomic_init(&r->next[s], (int)((long)units * s / threads));
        r->end[s] = (int)((long)units * (s + 1) / threads);
    }
}

// Tall tiles and compressing stores on the AVX-512 path unless MPQ_FP32_CONV_SMALL=0 (read
// once), which keeps the 6-row tiles and the scratch copy for an A/B; the same bits either way.
static int small_plane_tiles_enabled(void) {
    static _Atomic int state;
    return mpq_env_switch_on("MPQ_FP32_CONV_SMALL", &state);
}

// AVX2: a column tile's panels in one call (mpq_sgemm_direct_panels_avx2: K blocks, the
// image's block kept in L1 over the panels) unless MPQ_FP32_CONV_AVX2_PANELS=0 (read once),
// which keeps one 6-row tile per call over the whole K, for an A/B; the same bits either way.
static int avx2_panels_enabled(void) {
    static _Atomic int state;
    return mpq_env_switch_on("MPQ_FP32_CONV_AVX2_PANELS", &state);
}

// Column bands (MPQ_SCONV_SPLIT_BANDS) for planes of under 4 column panels per thread and
// output channels (weight panels, MPQ_SCONV_SPLIT_M) for small planes with many panels, unless
// MPQ_FP32_CONV_BANDS=0 (read once: both off, the split before s15, for A/B).
static int bands_enabled(void) {
    static _Atomic int state;
    return mpq_env_switch_on("MPQ_FP32_CONV_BANDS", &state);
}

// Output planes up to this many flat positions split by output channels (channel_split):
// MPQ_FP32_CONV_CHANNEL_PIXELS (read once; 0 never).
static long channel_pixels(void) {
    static _Atomic long state = -1;
    return mpq_env_long_once("MPQ_FP32_CONV_CHANNEL_PIXELS", 1024, &state);
}

// The most weight panels one of `threads` contiguous ranges holds with units of `m` panels.
static int most_panels(int panels, int m, int threads) {
    const int units = (panels + m - 1) / m;
    int most = 0;
    for (int t = 0; t < threads; t++) {
        const int a = (int)((long)units * t / threads) * m, b = (int)((long)units * (t + 1) / threads) * m;
        const int n = (b < panels ? b : panels) - a;
        if (n > most) most = n;
    }
    return most;
}

// Whether one image splits by output channels: a small plane (the whole input stays in each
// core's L2, every thread reads all of it) with panels enough for a balanced split. Each thread
// then writes whole output planes, one contiguous run (s14: split by 64-column panels, a 14x14
// plane was 4 units, 128 and 68 pixels per thread, and every channel's row was written half by
// each core), and the depthwise 3x3 after an expand (its channel ranges, depthwise_f32_lanes.c)
// reads the planes its own core wrote. MPQ_FP32_CONV_CHANNEL_PANELS (read once; default 4):
// the panels per thread from which it applies (above 11, MobileNetV2's 384 -> 64 projects at
// 14x14 take one band per thread instead: 60.4 against 61.0 us in the sequence harness, the same).
static int channel_split(const direct_job *j, int threads) {
    static _Atomic long state = -1;
    const long per_thread = mpq_env_long_once("MPQ_FP32_CONV_CHANNEL_PANELS", 4, &state);
    if (!bands_enabled() || j->group != 1 || j->panels < per_thread * threads || j->flat > channel_pixels()) return 0;
    const size_t in_bytes = (size_t)j->cg * (j->copy ? j->chan : (size_t)j->flat) * sizeof(float);
    return in_bytes <= mpq_l2_bytes() / 4;
}

// How one image's work splits over `threads`: units and the mode (run_units). Every mode runs
// the same tiles' FMA chains over whole K for every output (only which thread and which tile
// width covers an output changes), so the output bytes are the same for every split.
static void choose_split(direct_job *j, int threads) {
    const int groups = j->s->group;
    // By weight panel also when the output outgrows L2 (panel_block) and the panels go round.
    const int by_panel = threads > 1 && j->panels >= 2 * threads && panel_block(j, j->flat, j->panels) < j->panels;
    if (threads > 1 && !by_panel && channel_split(j, threads)) {
        // Units of m panels, as many as balance allows (a unit's column tiles are reused across
        // its panels), down to 1: at most ~6% above an even share per thread.
        j->mode = MPQ_SCONV_SPLIT_M;
        j->m_unit = j->panels / (4 * threads) > 1 ? j->panels / (4 * threads) : 1;
        while (j->m_unit > 1 && (long)most_panels(j->panels, j->m_unit, threads) * threads * 16 > (long)j->panels * 17)
            j->m_unit--;
        j->units = groups * ((j->panels + j->m_unit - 1) / j->m_unit);
        return;
    }
    if (threads > 1 && !by_panel && bands_enabled() && j->n_units < 4 * threads && (j->flat + 15) / 16 >= 2 * threads) {
        j->mode = MPQ_SCONV_SPLIT_BANDS;
        j->bands = threads;
        j->units = groups * j->bands;
        return;
    }
    if (threads <= 1 || (j->n_units >= 2 * threads && !by_panel)) {
        j->mode = MPQ_SCONV_SPLIT_N;
        j->units = groups * j->n_units;
        return;
    }
    // Whole tall tiles per unit (a split mid-tile would run it as narrower tiles). Also a
    // layer whose output outgrows L2 (panel_block): a unit is then a weight panel over
    // every column, its output rows written front to back.
    j->mode = MPQ_SCONV_SPLIT_M;
    // Panels per unit: what the last (narrowest) column tile's tall tile takes, fewer
    // where that leaves under two units per thread (balance first).
    const int last_nv = (j->flat - (j->n_units - 1) * NR + 15) / 16;
    j->m_unit = j->tall ? mpq_sgemm_direct_tall_panels(last_nv) : 1;
    while (j->m_unit > 1 && (j->panels + j->m_unit - 1) / j->m_unit < 2 * threads) j->m_unit--;
    j->units = groups * ((j->panels + j->m_unit - 1) / j->m_unit);
}

// The job's geometry (everything but the operands and the split): tiles, padded planes,
// panels, columns.
static void direct_geometry(direct_job *j, mpq_kernel_path path, const mpq_conv2d_shape *s, const mpq_sconv_weights_header *h) {
    const int oh = mpq_conv2d_out_h(s), ow = mpq_conv2d_out_w(s);
    const int cg = s->channels / s->group;
    j->path = mpq_resolve_kernel_path(path);
    j->tile = direct_tile_for(j->path);
    j->tall = j->path == MPQ_PATH_VNNI && small_plane_tiles_enabled();
    j->compress = j->tall;
    j->m_unit = 1;
    j->s = s;
    j->in_image = (size_t)s->channels * (size_t)s->height * (size_t)s->width;
    j->hp = s->height + s->pad_top + s->pad_bottom;
    j->wp = s->width + s->pad_left + s->pad_right;
    j->sh = s->stride_h;
    j->sw = s->stride_w;
    j->hq = (j->hp + j->sh - 1) / j->sh;
    j->wq = (j->wp + j->sw - 1) / j->sw;
    j->plane = (size_t)j->hq * (size_t)j->wq;
    for (int i = 0; i < 16; i++) j->slot[i] = -1;
    for (int kh = 0; kh < s->kernel_h; kh++)
        for (int kw = 0; kw < s->kernel_w; kw++) j->slot[(kh * s->dilation_h % j->sh) * j->sw + kw * s->dilation_w % j->sw] = 0;
    int phases = 0;
    for (int i = 0; i < j->sh * j->sw; i++)
        if (j->slot[i] == 0) j->slot[i] = phases++;
    j->chan = (size_t)phases * j->plane;
    const int unpadded = !s->pad_top && !s->pad_left && !s->pad_bottom && !s->pad_right;
    // Junk columns read up to (KW - 1) * dw / sw past a plane: the last plane needs slack,
    // so only a 1x1-wide unpadded stride-1 kernel reads x as it is.
    j->copy = !(unpadded && s->kernel_w == 1 && j->sh == 1 && j->sw == 1);
    j->padded_image = (size_t)s->channels * j->chan + (size_t)(s->kernel_w - 1) * (size_t)s->dilation_w / (size_t)j->sw + 16;
    j->group = s->group;
    j->cg = cg;
    j->mg = h->mg;
    j->k = h->k;
    j->panels = h->mg_padded / MR;
    j->oh = oh;
    j->ow = ow;
    j->flat = oh * j->wq;
    j->n_units = (j->flat + NR - 1) / NR;
    // A group's padded image within L1 (32 KiB: det's 4x4 and 8x8 layers) is read from L1 by
    // the one-panel tiles already; their K blocks' extra calls and stores only cost there.
    j->multi = j->path == MPQ_PATH_AVX2 && avx2_panels_enabled() && (size_t)cg * j->chan * sizeof(float) > 32 * 1024;
    j->out_image = (size_t)h->m * (size_t)oh * (size_t)ow;
}

int mpq_sconv2d_f32_direct_split(mpq_kernel_path path, const mpq_conv2d_shape *s, const void *packed_w, int threads,
                                 int *mode, int *parts, int cap) {
    const mpq_sconv_weights_header *h = (const mpq_sconv_weights_header *)packed_w;
    if (!s || !h || h->magic != MPQ_SCONV_WEIGHTS_MAGIC || h->group != s->group || !mpq_sconv2d_f32_direct_applies(s) ||
        mpq_conv2d_out_h(s) <= 0 || mpq_conv2d_out_w(s) <= 0 || (long)(s->channels / s->group) * s->kernel_h * s->kernel_w != h->k)
        return -1;
    direct_job j = {0};
    direct_geometry(&j, path, s, h);
    if (threads > MPQ_POOL_MAX) threads = MPQ_POOL_MAX;
    choose_split(&j, threads < 1 ? 1 : threads);
    if (mode) *mode = j.mode;
    for (int u = 0; u < j.units && u < cap && parts; u++) {
        int g, p0, p1, f0, f1;
        unit_part(&j, u, &g, &p0, &p1, &f0, &f1);
        int *o = parts + 5 * u;
        o[0] = g, o[1] = p0 * MR, o[2] = p1 * MR < j.mg ? p1 * MR : j.mg, o[3] = f0, o[4] = f1;
    }
    return j.units;
}

int mpq_sconv2d_f32_direct_applies(const mpq_conv2d_shape *s) {
    if (!s || s->stride_h < 1 || s->stride_w < 1 || s->stride_h > 4 || s->stride_w > 4 || s->group < 1 ||
        s->channels % s->group || s->kernel_w < 1 || s->dilation_w < 1)
        return 0;
    const long hp = (long)s->height + s->pad_top + s->pad_bottom, wp = (long)s->width + s->pad_left + s->pad_right;
    const long hq = (hp + s->stride_h - 1) / s->stride_h * s->stride_h, wq = (wp + s->stride_w - 1) / s->stride_w * s->stride_w;
    // Offsets and flat positions are int: the padded image (and its slack) must fit.
    return hp > 0 && wp > 0 && (long)s->channels * hq * wq + (long)s->kernel_w * s->dilation_w + 64 < INT32_MAX;
}

int mpq_sconv2d_f32_direct(mpq_kernel_path path, const float *x, int images, const mpq_conv2d_shape *s,
                           const void *packed_w, const float *bias, mpq_activation act, float lo, float hi,
                           float *y, int threads) {
    return mpq_sconv2d_f32_direct_residual(path, x, images, s, packed_w, bias, act, lo, hi, NULL, y, threads);
}

int mpq_sconv2d_f32_direct_residual(mpq_kernel_path path, const float *x, int images, const mpq_conv2d_shape *s,
                                    const void *packed_w, const float *bias, mpq_activation act, float lo, float hi,
                                    const mpq_sconv_residual *residual, float *y, int threads) {
    const mpq_sconv_weights_header *h = mpq_sconv_checked_header(x, images, s, packed_w, y);
    if (!h || !mpq_sconv2d_f32_direct_applies(s)) return -1;
    direct_job j = {0};
    direct_geometry(&j, path, s, h);
    const int cg = j.cg;
    j.x = x;
    j.images = images;
    j.w = (const float *)(h + 1);
    j.bias = bias;
    j.act = act;
    j.lo = lo;
    j.hi = hi;
    j.y = y;
    j.residual = residual && residual->shortcut ? residual : NULL;
    if (images == 0) return 0;
    int32_t *offsets = malloc((size_t)j.k * sizeof(int32_t));
    if (!offsets) return -1;
    // The taps of channel 0 (kernel_h * kernel_w of them), then every channel's the same
    // plus c * chan: one division per tap, not per k (a 4x4 layer spent 7% here).
    const int taps = s->kernel_h * s->kernel_w;
    for (int kh = 0, k = 0; kh < s->kernel_h; kh++)
        for (int kw = 0; kw < s->kernel_w; kw++) {
            const int r = kh * s->dilation_h, q = kw * s->dilation_w;
            offsets[k++] = (int32_t)((size_t)j.slot[(r % j.sh) * j.sw + q % j.sw] * j.plane + (size_t)(r / j.sh) * (size_t)j.wq +
                                     (size_t)(q / j.sw));
        }
    for (int c = 1; c < cg; c++)
        for (int t = 0; t < taps; t++) offsets[c * taps + t] = (int32_t)((size_t)c * j.chan) + offsets[t];
    j.offsets = offsets;
    int rc = 0;
    if (images > 1 && images >= threads) {
        j.mode = MPQ_SCONV_SPLIT_IMAGES;
        j.units = images;
        run(&j, threads);
        rc = all_claimed(&j) ? 0 : -1;
        free(offsets);
        return rc;
    }
    // Fewer images than threads: one image at a time, padded once (its channels split over
    // the threads), then its column panels split (its weight panels when there are too few
    // column panels to go round).
    // The caller's own padding buffer, kept between calls (a fresh one per call would be
    // mapped and faulted in again each time); the pool's tasks only read it in these modes.
    float *shared = NULL;
    if (j.copy && !(shared = mpq_sconv_grown(&pad_buf, &pad_cap, j.padded_image))) {
        free(offsets);
        return -1;
    }
    choose_split(&j, threads);  // the geometry's, the same for every image
    for (int img = 0; img < images && rc == 0; img++) {
        j.image = img;
        if (j.copy) {
            j.shared = shared;
            int tasks = threads < s->channels ? threads : s->channels;
            if (tasks > MPQ_POOL_MAX) tasks = MPQ_POOL_MAX;
            if (tasks < 1) tasks = 1;
            j.chunk = tasks;
            mpq_pool_run(tasks, pad_task, &j);
        } else {
            j.shared = x + (size_t)img * j.in_image;
        }
        run(&j, threads);
        if (!all_claimed(&j)) rc = -1;
    }
    free(offsets);
    return rc;
}
