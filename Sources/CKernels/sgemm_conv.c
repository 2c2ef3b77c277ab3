// FP32 Conv GEMM driver (mpq_sgemm.h): cache blocking, the epilogue per tile, and the
// split over the kernel pool.
//
// Per image and group, C[M/g][pixels] = W[M/g][K] x im2col[K][pixels], blocked as
//   pixel blocks of NC (the packed column block, KC x NC floats, stays in L2)
//     K blocks of KC (packed from the image right then, im2col fused into the packing)
//       weight panels of MR rows (MR x KC floats, stay in L1)
//         column panels of NR pixels: one micro-tile, accumulated over the K blocks in C;
//         after the last K block the epilogue runs on the tile while it is in L1.
// Small maps (a 7x7 stage) waste lanes in a 64-pixel panel (49 of 64), so a batch stacks
// a few images side by side as the columns of one GEMM (4 x 49 = 196 of 208 lanes), into
// a scratch C that is copied to each image's planes with the epilogue at the end. With
// one image and few pixels, the split is by weight panels, and the columns are packed
// once for all threads first instead of once per claim.
// Splitting never cuts a sum (every tile gets its full K on one thread in k order), so
// the output does not depend on the split or the thread count.
#include "sgemm_internal.h"
#include "mpq_pool.h"
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define MR MPQ_SGEMM_MR
#define NR MPQ_SGEMM_NR
#define KC 256          // K block: a weight panel is MR x KC floats = 6 KiB (L1)
#define NC (8 * NR)     // pixel block: the packed block is KC x NC floats = 512 KiB (L2)

typedef struct {
    mpq_kernel_path path;
    mpq_sgemm_tile_fn tile;
    const float *x;
    const mpq_conv2d_shape *s;
    int images, group, cg, mg, k, oh, ow, n, panels;
    size_t in_image, out_image, in_group;
    const float *w;  // packed panels: group g, panel p at w + (g * panels + p) * k * MR
    const float *bias;
    mpq_activation act;
    float lo, hi;
    float *y;
    // The split: `units` claimed `chunk` at a time from `next`.
    int mode, units, chunk, image;
    int n_units;  // column chunks per group (mode MPQ_SCONV_SPLIT_N)
    int stack;    // images per unit (mode MPQ_SCONV_SPLIT_IMAGES)
    float *prepacked;  // mode MPQ_SCONV_SPLIT_M: every K block of the image's columns, packed once
    _Atomic int next;
} conv_job;


// Each thread's packed column block, kept between calls (pool workers are persistent).
static _Thread_local float *block_buf;
static _Thread_local size_t block_cap;

static _Thread_local float *stack_buf;
static _Thread_local size_t stack_cap;


static float *column_block(size_t floats) { return mpq_sconv_grown(&block_buf, &block_cap, floats); }

static mpq_sgemm_tile_fn tile_for(mpq_kernel_path path) {
    switch (mpq_resolve_kernel_path(path)) {
    case MPQ_PATH_VNNI: return mpq_sgemm_tile_avx512;
    case MPQ_PATH_AVX2: return mpq_sgemm_tile_avx2;
    default: return mpq_sgemm_tile_reference;
    }
}

// Offset of K block `kb` (and column panel 0) in a prepacked image: every K block holds
// all column panels at full width.
static size_t prepacked_offset(const conv_job *j, int kb) {
    return (size_t)kb * (size_t)((j->n + NR - 1) / NR) * NR;
}

// Output rows of panels [p0, p1) and columns [n0, n1) (n0 a multiple of NR) of group g for
// `stack` images from `img`: columns run over the stacked images' pixels. One image
// writes its output directly, the epilogue per tile; a stack goes through a scratch C.
static void conv_part(const conv_job *j, int img, int stack, int g, int p0, int p1, int n0, int n1, float *buf) {
    const float *xg = j->x + (size_t)img * j->in_image + (size_t)g * j->in_group;
    float *yg = j->y + (size_t)img * j->out_image + (size_t)g * (size_t)j->mg * (size_t)j->n;
    const float *wg = j->w + (size_t)g * (size_t)j->panels * (size_t)j->k * MR;
    const float *bias = j->bias ? j->bias + (size_t)g * (size_t)j->mg : NULL;
    const int epilogue = bias || j->act != MPQ_ACT_NONE;
    const int ldc = stack * j->n;
    float *cbase = yg;
    if (stack > 1) {
        cbase = mpq_sconv_grown(&stack_buf, &stack_cap, (size_t)j->mg * (size_t)ldc);
        if (!cbase) return;
    }
    for (int nb = n0; nb < n1; nb += NC) {
        const int nbe = n1 - nb < NC ? n1 : nb + NC;
        for (int kb = 0; kb < j->k; kb += KC) {
            const int kc = j->k - kb < KC ? j->k - kb : KC;
            const int last = kb + kc == j->k;
            const float *bblock = buf;
            if (j->prepacked) bblock = j->prepacked + prepacked_offset(j, kb) + (size_t)(nb / NR) * NR * (size_t)kc;
            else mpq_sconv_pack_b(xg, j->s, j->oh, j->ow, j->in_image, kb, kb + kc, nb, nbe, buf);
            for (int p = p0; p < p1; p++) {
                const int row = p * MR, mr = j->mg - row < MR ? j->mg - row : MR;
                const float *a = wg + ((size_t)p * (size_t)j->k + (size_t)kb) * MR;
                for (int col = nb, q = 0; col < nbe; col += NR, q++) {
                    const int nc = nbe - col < NR ? nbe - col : NR;
                    float *c = cbase + (size_t)row * (size_t)ldc + (size_t)col;
                    // Bias and clamp on the registers; SiLU on the stored tile after.
                    const mpq_sgemm_tile_epilogue ep = {bias ? bias + row : NULL, j->act == MPQ_ACT_CLAMP, j->lo, j->hi};
                    const int fuse = last && epilogue && stack == 1;
                    j->tile(kc, a, bblock + (size_t)q * NR * (size_t)kc, (nc + 15) / 16, c, ldc, mr, nc, kb > 0, fuse ? &ep : NULL);
                    if (fuse && j->act == MPQ_ACT_SILU)
                        mpq_conv_epilogue_f32(j->path, c, (size_t)mr, (size_t)nc, (size_t)ldc, NULL, j->act, j->lo, j->hi);
                }
            }
        }
    }
    if (stack > 1) {
        // Whole parts only (every row and column): each image's planes, then its epilogue.
        for (int s = 0; s < stack; s++) {
            float *ys = yg + (size_t)s * j->out_image;
            for (int row = 0; row < j->mg; row++)
                memcpy(ys + (size_t)row * (size_t)j->n, cbase + (size_t)row * (size_t)ldc + (size_t)s * (size_t)j->n,
                       (size_t)j->n * sizeof(float));
            if (epilogue)
                mpq_conv_epilogue_f32(j->path, ys, (size_t)j->mg, (size_t)j->n, (size_t)j->n, bias, j->act, j->lo, j->hi);
        }
    }
}

// Units [u0, u1): whole images, or consecutive column chunks (MPQ_SCONV_SPLIT_N) or weight panels
// (MPQ_SCONV_SPLIT_M) of one image, run as one part per group so each claim packs its columns once
// per K block.
static void run_units(const conv_job *j, int u0, int u1, float *buf) {
    if (j->mode == MPQ_SCONV_SPLIT_IMAGES) {
        for (int u = u0; u < u1; u++) {
            const int img = u * j->stack, stack = j->images - img < j->stack ? j->images - img : j->stack;
            for (int g = 0; g < j->group; g++) conv_part(j, img, stack, g, 0, j->panels, 0, stack * j->n, buf);
        }
        return;
    }
    const int per_group = j->mode == MPQ_SCONV_SPLIT_N ? j->n_units : j->panels;
    for (int u = u0; u < u1;) {
        const int g = u / per_group, v0 = u % per_group;
        const int v1 = v0 + (u1 - u) < per_group ? v0 + (u1 - u) : per_group;
        if (j->mode == MPQ_SCONV_SPLIT_N) conv_part(j, j->image, 1, g, 0, j->panels, v0 * NR, v1 * NR < j->n ? v1 * NR : j->n, buf);
        else conv_part(j, j->image, 1, g, v0, v1, 0, j->n, buf);
        u += v1 - v0;
    }
}

static void run_task(void *arg, int t) {
    (void)t;
    conv_job *j = (conv_job *)arg;
    float *buf = column_block((size_t)KC * NC);
    if (!buf) return;  // no memory: the caller sees that `next` did not pass every unit
    for (;;) {
        const int u0 = atomic_fetch_add_explicit(&j->next, j->chunk, memory_order_relaxed);
        if (u0 >= j->units) return;
        run_units(j, u0, u0 + j->chunk < j->units ? u0 + j->chunk : j->units, buf);
    }
}

static void prepack_task(void *arg, int t) {
    const conv_job *j = (const conv_job *)arg;
    const float *x = j->x + (size_t)j->image * j->in_image;
    for (int kb = t * KC; kb < j->k; kb += j->chunk * KC) {
        const int kc = j->k - kb < KC ? j->k - kb : KC;
        mpq_sconv_pack_b(x, j->s, j->oh, j->ow, j->in_image, kb, kb + kc, 0, j->n, j->prepacked + prepacked_offset(j, kb));
    }
}

// Packs every K block of image `j->image` (one group) into `j->prepacked`; 0 without memory.
static int prepack(conv_job *j, int threads) {
    const size_t floats = (size_t)j->k * (size_t)((j->n + NR - 1) / NR) * NR;
    j->prepacked = aligned_alloc(64, (floats * sizeof(float) + 63) / 64 * 64);
    if (!j->prepacked) return 0;
    const int blocks = (j->k + KC - 1) / KC;
    int tasks = threads < blocks ? threads : blocks;
    if (tasks > MPQ_POOL_MAX) tasks = MPQ_POOL_MAX;
    if (tasks < 1) tasks = 1;
    j->chunk = tasks;  // the stride between a task's K blocks
    mpq_pool_run(tasks, prepack_task, j);
    return 1;
}

static void run(conv_job *j, int threads) {
    threads = mpq_sconv_claims(j->units, threads, j->mode, &j->chunk);
    atomic_init(&j->next, 0);
    mpq_pool_run(threads, run_task, j);
}

// Convs run on the direct path (sgemm_conv_direct.c, the same bits) where it applies unless
// MPQ_FP32_CONV_DIRECT=0 (read once), which keeps them on the packed path for an A/B.
static int direct_enabled(void) {
    static _Atomic int state;
    return mpq_env_switch_on("MPQ_FP32_CONV_DIRECT", &state);
}

int mpq_sconv2d_f32(mpq_kernel_path path, const float *x, int images, const mpq_conv2d_shape *s,
                    const void *packed_w, const float *bias, mpq_activation act, float lo, float hi,
                    float *y, int threads) {
    if (direct_enabled() && mpq_sconv2d_f32_direct_applies(s))
        return mpq_sconv2d_f32_direct(path, x, images, s, packed_w, bias, act, lo, hi, y, threads);
    return mpq_sconv2d_f32_packed(path, x, images, s, packed_w, bias, act, lo, hi, y, threads);
}

int mpq_sconv2d_f32_residual(mpq_kernel_path path, const float *x, int images, const mpq_conv2d_shape *s,
                             const void *packed_w, const float *bias, mpq_activation act, float lo, float hi,
                             const mpq_sconv_residual *residual, float *y, int threads) {
    if (direct_enabled() && mpq_sconv2d_f32_direct_applies(s))
        return mpq_sconv2d_f32_direct_residual(path, x, images, s, packed_w, bias, act, lo, hi, residual, y, threads);
    const int rc = mpq_sconv2d_f32_packed(path, x, images, s, packed_w, bias, act, lo, hi, y, threads);
    if (rc == 0 && residual && residual->shortcut) {
        // The packed path: one pass over the whole output, as the separate Add makes.
        const mpq_sconv_weights_header *h = (const mpq_sconv_weights_header *)packed_w;
        const size_t count = (size_t)images * (size_t)h->m * (size_t)mpq_conv2d_out_h(s) * (size_t)mpq_conv2d_out_w(s);
        const float *sc = residual->shortcut;
        mpq_binary_f32(path, 0, residual->relu, residual->shortcut_first ? sc : y, residual->shortcut_first ? y : sc, count,
                       y, threads);
    }
    return rc;
}

int mpq_sconv2d_f32_packed(mpq_kernel_path path, const float *x, int images, const mpq_conv2d_shape *s,
                           const void *packed_w, const float *bias, mpq_activation act, float lo, float hi,
                           float *y, int threads) {
    const mpq_sconv_weights_header *h = mpq_sconv_checked_header(x, images, s, packed_w, y);
    if (!h) return -1;
    const int oh = mpq_conv2d_out_h(s), ow = mpq_conv2d_out_w(s);
    const int cg = s->channels / s->group;
    conv_job j = {0};
    j.path = mpq_resolve_kernel_path(path);
    j.tile = tile_for(j.path);
    j.x = x;
    j.s = s;
    j.images = images;
    j.group = s->group;
    j.cg = cg;
    j.mg = h->mg;
    j.k = h->k;
    j.oh = oh;
    j.ow = ow;
    j.n = oh * ow;
    j.panels = h->mg_padded / MR;
    j.in_group = (size_t)cg * (size_t)s->height * (size_t)s->width;
    j.in_image = j.in_group * (size_t)s->group;
    j.out_image = (size_t)h->m * (size_t)j.n;
    j.w = (const float *)(h + 1);
    j.bias = bias;
    j.act = act;
    j.lo = lo;
    j.hi = hi;
    j.y = y;
    if (images == 0) return 0;
    if (images > 1 && images >= threads) {
        // Stack images of small maps up to ~192 columns, keeping a unit per thread.
        int stack = j.n < 128 ? (192 + j.n - 1) / j.n : 1;
        const int per_thread = threads > 1 ? images / threads : images;
        if (stack > per_thread) stack = per_thread;
        j.mode = MPQ_SCONV_SPLIT_IMAGES;
        j.stack = stack < 1 ? 1 : stack;
        j.units = (images + j.stack - 1) / j.stack;
        run(&j, threads);
        return atomic_load(&j.next) >= j.units ? 0 : -1;
    }
    // Fewer images than threads: one image at a time, its pixels split (its output
    // channels when there are too few pixel panels to go round).
    const int n_units = (j.n + NR - 1) / NR;
    for (int img = 0; img < images; img++) {
        j.image = img;
        if (threads <= 1 || n_units >= 2 * threads) {
            j.mode = MPQ_SCONV_SPLIT_N;
            j.n_units = n_units;
            j.units = s->group * n_units;
        } else {
            j.mode = MPQ_SCONV_SPLIT_M;
            j.units = s->group * j.panels;
            // One group: its columns packed once, by K blocks over the threads, so claims
            // of weight panels do not each pack them again.
            if (s->group == 1 && !prepack(&j, threads)) return -1;
        }
        run(&j, threads);
        free(j.prepacked);
        j.prepacked = NULL;
        if (atomic_load(&j.next) < j.units) return -1;
    }
    return 0;
}
