// FP32 linear GEMM (mpq_slinear.h): B packed once, the driver's blocking, and the split.
//
// Y[M][N] = A[M][K] x B[K][N] (+ bias), the Conv GEMM's 6 x 64 tile with the roles
// swapped (docs/fp32-gemm.md): the activation rows are the broadcast operand, read in
// place (packing them would be a pass over A per call; 6 row streams prefetch fine), and
// the constant B is the vector operand, packed once per session into [k][64] panels.
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

size_t mpq_slinear_pack_weights_size(int k, int n) {
    if (k <= 0 || n <= 0 || k > (1 << 24) || n > (1 << 24)) return 0;
    return sizeof(mpq_slinear_weights_header) + (size_t)k * (size_t)round_up(n, NR) * sizeof(float);
}

int mpq_slinear_pack_weights(const float *b, int k, int n, int trans_b, void *packed) {
    if (!b || !packed || mpq_slinear_pack_weights_size(k, n) == 0) return -1;
    mpq_slinear_weights_header *h = (mpq_slinear_weights_header *)packed;
    memset(h, 0, sizeof *h);
    h->magic = MPQ_SLINEAR_WEIGHTS_MAGIC;
    h->k = k;
    h->n = n;
    h->panels = (n + NR - 1) / NR;
    float *data = (float *)(h + 1);
    for (int k0 = 0; k0 < k; k0 += KC) {
        const int kc = k - k0 < KC ? k - k0 : KC;
        for (int q = 0; q < h->panels; q++) {
            const int w = panel_width(n, q);
            float *panel = data + (size_t)k0 * (size_t)h->panels * NR + (size_t)q * NR * (size_t)kc;
            const int cols = n - q * NR < w ? n - q * NR : w;  // real columns, then zeros
            for (int kk = 0; kk < kc; kk++) {
                float *dst = panel + (size_t)kk * (size_t)w;
                const size_t row = (size_t)(k0 + kk);
                if (trans_b) {
                    for (int j = 0; j < cols; j++) dst[j] = b[(size_t)(q * NR + j) * (size_t)k + row];
                } else {
                    memcpy(dst, b + row * (size_t)n + (size_t)q * NR, (size_t)cols * sizeof(float));
                }
                for (int j = cols; j < w; j++) dst[j] = 0.0f;
            }
        }
    }
    return 0;
}

static mpq_slinear_tile_fn tile_for(mpq_kernel_path path) {
    switch (mpq_resolve_kernel_path(path)) {
    case MPQ_PATH_VNNI: return mpq_slinear_tile_avx512;
    case MPQ_PATH_AVX2: return mpq_slinear_tile_avx2;
    default: return mpq_slinear_tile_reference;
    }
}

typedef struct {
    mpq_slinear_tile_fn tile;
    const float *a;
    size_t lda, ldy;
    int m, k, n, panels;
    const float *w;  // packed panels
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
        const float *wk = j->w + (size_t)k0 * (size_t)j->panels * NR;
        for (int c0 = p0; c0 < p1; c0 += NCP) {
            const int c1 = p1 - c0 < NCP ? p1 : c0 + NCP;
            for (int r = r0; r < r1; r += MR) {
                const int mr = r1 - r < MR ? r1 - r : MR;
                const float *a = j->a + (size_t)r * j->lda + (size_t)k0;
                float *yr = j->y + (size_t)r * j->ldy;
                for (int q = c0; q < c1; q++) {
                    const int col = q * NR, nc = j->n - col < NR ? j->n - col : NR;
                    j->tile(kc, a, j->lda, wk + (size_t)q * NR * (size_t)kc, (nc + 15) / 16, yr + col, j->ldy, mr, nc,
                            k0 > 0, last && j->bias ? j->bias + col : NULL);
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

int mpq_slinear_f32(mpq_kernel_path path, const float *a, int m, int lda, const void *packed_b,
                    const float *bias, float *y, int ldy, int threads) {
    const mpq_slinear_weights_header *h = (const mpq_slinear_weights_header *)packed_b;
    if (!h || h->magic != MPQ_SLINEAR_WEIGHTS_MAGIC || m < 0 || lda < h->k || ldy < h->n) return -1;
    if (m == 0) return 0;
    if (!a || !y) return -1;
    linear_job *j = aligned_alloc(64, (sizeof(linear_job) + 63) / 64 * 64);
    if (!j) return -1;
    memset(j, 0, sizeof *j);
    j->tile = tile_for(path);
    j->a = a;
    j->lda = (size_t)lda;
    j->ldy = (size_t)ldy;
    j->m = m;
    j->k = h->k;
    j->n = h->n;
    j->panels = h->panels;
    j->w = (const float *)(h + 1);
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

