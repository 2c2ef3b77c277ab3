// FP32 linear GEMM (mpq_slinear.h): B packed once, the driver's blocking, and the split.
//
// Y[M][N] = A[M][K] x B[K][N] (+ bias), the Conv GEMM's 6 x 64 tile with the roles
// swapped (docs/fp32-gemm.md): the activation rows are the broadcast operand, read in
// place (packing them would be a pass over A per call; 6 row streams prefetch fine), and
// the constant B is the vector operand, packed once per session into 64-column panels
// (rows of 64 for the AVX-512 tile, 16-column runs contiguous over k for the AVX2 one), or,
// for a B used once (attention's products, mpq_slinear_f32_rows), read in place by rows.
// Blocking, per unit of work (a block of rows x a group of column panels):
//   K blocks of KC = 256 (the layout's; a tile's 6 rows x 256 of A stay in L1)
//     column blocks of NCP panels (B: 256 x 256 floats = 256 KiB, stays in L2)
//       6-row panels of the unit's rows
//         column panels: one tile, accumulated over the K blocks in Y; the bias is
//         added to the registers after the last K block.
// Split: the column panels form one group per thread (when there are enough panels),
// so each core streams only its part of B from memory and keeps it in its L2; each
// group's row blocks are claimed from that group's counter, and a thread that finishes
// its own group helps the next one. Splitting never cuts a sum (every output gets its
// full K on one thread in k order), so the output does not depend on the split.
#include "sgemm_linear_internal.h"
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define MR MPQ_SLINEAR_MR
#define NR MPQ_SLINEAR_NR
#define KC MPQ_SLINEAR_KC
#define NCP 4  // column panels per column block

static int round_up(int v, int to) { return (v + to - 1) / to * to; }

// Width of column panel q: what is left of N, at most NR, rounded up to whole vectors.
static int panel_width(int n, int q) {
    const int left = n - q * NR;
    return round_up(left < NR ? left : NR, 16);
}

static int layout_known(int layout) { return layout == MPQ_SLINEAR_LAYOUT_WIDE || layout == MPQ_SLINEAR_LAYOUT_SUB16; }

// Where a panel w columns wide and kc deep keeps B(k, 16 v + j): at v * vstride + k * ldb + j
// (wide rows: ldb w, vstride 16; sub-panels: ldb 16, vstride 16 kc).
static void panel_strides(int layout, int w, int kc, size_t *ldb, size_t *vstride) {
    const int wide = layout == MPQ_SLINEAR_LAYOUT_WIDE;
    *ldb = wide ? (size_t)w : 16;
    *vstride = wide ? 16 : 16 * (size_t)kc;
}

size_t mpq_slinear_pack_weights_size(int k, int n) {
    if (k <= 0 || n <= 0 || k > (1 << 24) || n > (1 << 24)) return 0;
    return sizeof(mpq_slinear_weights_header) + (size_t)k * (size_t)round_up(n, NR) * sizeof(float);
}

// Sub-panels for the AVX2 tile (s24): with wide rows each of its 16-column passes read every
// fourth cache line of the panel, and with weights cold (a transformer's 2.4 MB FFN weights
// come from memory every call) one thread ran MiniLM's FFN pair at 0.85x ORT's rate. The
// AVX-512 tile keeps its wide rows (measured there, s10). MPQ_FP32_LINEAR_SUBPANELS=0 (read
// once) packs wide everywhere, for A/B.
int mpq_slinear_host_layout(void) {
    static _Atomic long env = -1;
    if (mpq_env_long_once("MPQ_FP32_LINEAR_SUBPANELS", 1, &env) == 0) return MPQ_SLINEAR_LAYOUT_WIDE;
    return mpq_resolve_kernel_path(MPQ_PATH_AUTO) == MPQ_PATH_VNNI ? MPQ_SLINEAR_LAYOUT_WIDE : MPQ_SLINEAR_LAYOUT_SUB16;
}

int mpq_slinear_pack_weights(const float *b, int k, int n, int trans_b, void *packed) {
    return mpq_slinear_pack_weights_layout(b, k, n, trans_b, mpq_slinear_host_layout(), packed);
}

int mpq_slinear_pack_weights_layout(const float *b, int k, int n, int trans_b, int layout, void *packed) {
    if (!b || !packed || mpq_slinear_pack_weights_size(k, n) == 0) return -1;
    if (!layout_known(layout)) return -1;
    mpq_slinear_weights_header *h = (mpq_slinear_weights_header *)packed;
    memset(h, 0, sizeof *h);
    h->magic = MPQ_SLINEAR_WEIGHTS_MAGIC;
    h->k = k;
    h->n = n;
    h->panels = (n + NR - 1) / NR;
    h->layout = layout;
    float *data = (float *)(h + 1);
    for (int k0 = 0; k0 < k; k0 += KC) {
        const int kc = k - k0 < KC ? k - k0 : KC;
        for (int q = 0; q < h->panels; q++) {
            const int w = panel_width(n, q);
            float *panel = data + (size_t)k0 * (size_t)h->panels * NR + (size_t)q * NR * (size_t)kc;
            const int cols = n - q * NR < w ? n - q * NR : w;  // real columns, then zeros
            size_t ldb, vstride;
            panel_strides(layout, w, kc, &ldb, &vstride);
            for (int v = 0; v < w / 16; v++) {
                const int c0 = 16 * v, live = cols - c0 < 0 ? 0 : cols - c0 < 16 ? cols - c0 : 16;
                for (int kk = 0; kk < kc; kk++) {
                    float *dst = panel + (size_t)v * vstride + (size_t)kk * ldb;
                    const size_t row = (size_t)(k0 + kk);
                    if (trans_b) {
                        for (int j = 0; j < live; j++) dst[j] = b[(size_t)(q * NR + c0 + j) * (size_t)k + row];
                    } else if (live == 16) {
                        // A constant size inlines to one vector copy instead of a libc call per 16
                        // floats: attention's B is packed on every product (s34, fp32_batched_products.c:
                        // packing 0.35-0.39 ms against 0.37-0.45 for MiniLM's 192 softmax x V).
                        __builtin_memcpy(dst, b + row * (size_t)n + (size_t)(q * NR + c0), 16 * sizeof(float));
                    } else {
                        memcpy(dst, b + row * (size_t)n + (size_t)(q * NR + c0), (size_t)live * sizeof(float));
                    }
                    for (int j = live; j < 16; j++) dst[j] = 0.0f;
                }
            }
        }
    }
    return 0;
}

static mpq_slinear_tile_fn tile_for(mpq_kernel_path path, int layout) {
    switch (mpq_resolve_kernel_path(path)) {
    case MPQ_PATH_VNNI:
        // The AVX-512 tile loads its four vectors from one wide row; a sub-panel pack (made
        // for an AVX2 tile) runs the AVX2 one, which every AVX-512 CPU has: the same bits.
        return layout == MPQ_SLINEAR_LAYOUT_WIDE ? mpq_slinear_tile_avx512 : mpq_slinear_tile_avx2;
    case MPQ_PATH_AVX2: return mpq_slinear_tile_avx2;
    default: return mpq_slinear_tile_reference;
    }
}

typedef struct {
    mpq_slinear_tile_fn tile;
    const float *a;
    size_t lda, ldy;
    int m, k, n, panels, layout;
    const float *w;  // packed panels, or B itself (ldb_rows > 0)
    size_t ldb_rows; // B read in place: its row stride in floats (0: packed panels)
    const float *bias;
    float *y;
    int groups, rows_per_block, row_blocks;
    _Atomic int next[MPQ_POOL_MAX];  // per group: the next row block to claim
} linear_job;

// Rows [r0, r1) x column panels [p0, p1).
static void run_block(const linear_job *j, int r0, int r1, int p0, int p1) {
    for (int k0 = 0; k0 < j->k; k0 += KC) {
        const int kc = j->k - k0 < KC ? j->k - k0 : KC;
        const int last = k0 + kc == j->k;
        const float *wk = j->ldb_rows ? j->w + (size_t)k0 * j->ldb_rows : j->w + (size_t)k0 * (size_t)j->panels * NR;
        for (int c0 = p0; c0 < p1; c0 += NCP) {
            const int c1 = p1 - c0 < NCP ? p1 : c0 + NCP;
            for (int r = r0; r < r1; r += MR) {
                const int mr = r1 - r < MR ? r1 - r : MR;
                const float *a = j->a + (size_t)r * j->lda + (size_t)k0;
                float *yr = j->y + (size_t)r * j->ldy;
                for (int q = c0; q < c1; q++) {
                    const int col = q * NR, nc = j->n - col < NR ? j->n - col : NR, nv = (nc + 15) / 16;
                    size_t ldb = j->ldb_rows, vstride = 16;
                    const float *bq = wk + (size_t)col;  // row-major B: the panel is B's columns in place
                    if (!j->ldb_rows) {
                        panel_strides(j->layout, 16 * nv, kc, &ldb, &vstride);
                        bq = wk + (size_t)q * NR * (size_t)kc;
                    }
                    j->tile(kc, a, j->lda, bq, ldb, vstride, nv, yr + col, j->ldy, mr, nc, k0 > 0,
                            last && j->bias ? j->bias + col : NULL);
                }
            }
        }
    }
}

static void group_panels(const linear_job *j, int g, int *p0, int *p1) {
    *p0 = (int)((long)j->panels * g / j->groups);
    *p1 = (int)((long)j->panels * (g + 1) / j->groups);
}

// Task t works its own group's row blocks first, then helps the following groups.
static void run_task(void *arg, int t) {
    linear_job *j = (linear_job *)arg;
    for (int s = 0; s < j->groups; s++) {
        const int g = (t + s) % j->groups;
        int p0, p1;
        group_panels(j, g, &p0, &p1);
        for (;;) {
            const int b = atomic_fetch_add_explicit(&j->next[g], 1, memory_order_relaxed);
            if (b >= j->row_blocks) break;
            const int r0 = b * j->rows_per_block;
            const int r1 = j->m - r0 < j->rows_per_block ? j->m : r0 + j->rows_per_block;
            run_block(j, r0, r1, p0, p1);
        }
    }
}

// Runs Y = A x B (+ bias) with B either packed (`ldb_rows` 0, `w` the panels after the header,
// `layout` theirs) or row-major in place (`ldb_rows` its row stride, N a multiple of 16).
static int run_linear(mpq_kernel_path path, const float *a, int m, int lda, const float *w, int k, int n, int layout,
                      size_t ldb_rows, const float *bias, float *y, int ldy, int threads) {
    linear_job *j = aligned_alloc(64, (sizeof(linear_job) + 63) / 64 * 64);
    if (!j) return -1;
    memset(j, 0, sizeof *j);
    // Row-major B has the wide rows' addressing (vstride 16), which every tile but the
    // sub-panel one reads; the AVX2 tile reads both.
    j->tile = tile_for(path, ldb_rows ? MPQ_SLINEAR_LAYOUT_WIDE : layout);
    j->layout = layout;
    j->a = a;
    j->lda = (size_t)lda;
    j->ldy = (size_t)ldy;
    j->m = m;
    j->k = k;
    j->n = n;
    j->panels = (n + NR - 1) / NR;
    j->w = w;
    j->ldb_rows = ldb_rows;
    j->bias = bias;
    j->y = y;
    if (threads > MPQ_POOL_MAX) threads = MPQ_POOL_MAX;
    if (threads < 1) threads = 1;
    // One column group per thread when each gets at least two panels (its own part of B);
    // else one group and the threads split rows.
    j->groups = threads > 1 && j->panels >= 2 * threads ? threads : 1;
    // Row blocks: about 4 claims per thread per group for balance, 6 to 96 rows each.
    const int row_panels = (m + MR - 1) / MR;
    const int claims = 4 * ((threads + j->groups - 1) / j->groups);
    int per = (row_panels + claims - 1) / claims;
    if (per > 16) per = 16;
    if (per < 1) per = 1;
    j->rows_per_block = per * MR;
    j->row_blocks = (m + j->rows_per_block - 1) / j->rows_per_block;
    for (int g = 0; g < j->groups; g++) atomic_init(&j->next[g], 0);
    int tasks = threads;
    if (tasks > j->groups * j->row_blocks) tasks = j->groups * j->row_blocks;
    if (tasks <= 1) run_task(j, 0);
    else mpq_pool_run(tasks, run_task, j);
    free(j);
    return 0;
}

int mpq_slinear_f32(mpq_kernel_path path, const float *a, int m, int lda, const void *packed_b,
                    const float *bias, float *y, int ldy, int threads) {
    const mpq_slinear_weights_header *h = (const mpq_slinear_weights_header *)packed_b;
    if (!h || h->magic != MPQ_SLINEAR_WEIGHTS_MAGIC || !layout_known(h->layout) || m < 0 || lda < h->k || ldy < h->n)
        return -1;
    if (m == 0) return 0;
    if (!a || !y) return -1;
    return run_linear(path, a, m, lda, (const float *)(h + 1), h->k, h->n, h->layout, 0, bias, y, ldy, threads);
}

int mpq_slinear_f32_rows(mpq_kernel_path path, const float *a, int m, int lda, const float *b, int k, int n, int ldb,
                         const float *bias, float *y, int ldy, int threads) {
    if (m < 0 || k <= 0 || n <= 0 || n % 16 != 0 || k > (1 << 24) || n > (1 << 24) || lda < k || ldb < n || ldy < n)
        return -1;
    if (m == 0) return 0;
    if (!a || !b || !y) return -1;
    return run_linear(path, a, m, lda, b, k, n, MPQ_SLINEAR_LAYOUT_WIDE, (size_t)ldb, bias, y, ldy, threads);
}

