// INT8 GEMM driver: argument checks, path choice, and the split over the thread pool.
#include "mpq_internal.h"
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

// -1: auto. Plain int, set before kernels run (as mpq_set_kernel_path).
static int amx_forced = -1;
static int amx_env = -2;  // -2: not read yet

// The AMX setting now (mpq_set_qgemm_amx's modes): 0 off, 1 on, 2 on for every region,
// 3 on with each Conv choosing its engine from its shape (the default where AMX is there).
int mpq_qgemm_amx_mode(void) {
    if (!mpq_qgemm_amx_available()) return 0;
    if (amx_forced >= 0) return amx_forced;
    if (amx_env == -2) {
        const char *v = getenv("MPQ_QGEMM_AMX");
        amx_env = !v || !*v || !strcmp(v, "auto") ? MPQ_AMX_PER_CONV : (!strcmp(v, "0") || !strcmp(v, "off")) ? 0 : 1;
    }
    return amx_env;
}

static int amx_enabled(void) { return mpq_qgemm_amx_mode(); }

int mpq_set_qgemm_amx(int mode) {
    if (mode > 0 && !mpq_qgemm_amx_available()) return -1;
    amx_forced = mode < 0 ? -1 : mode > MPQ_AMX_PER_CONV ? MPQ_AMX_PER_CONV : mode;
    return 0;
}

int mpq_qgemm_uses_amx(mpq_kernel_path path) {
    return mpq_resolve_kernel_path(path) == MPQ_PATH_VNNI && amx_enabled() ? 1 : 0;
}

const char *mpq_qgemm_engine_name(mpq_kernel_path path) {
    return mpq_qgemm_uses_amx(path) ? "amx" : mpq_kernel_path_name(mpq_resolve_kernel_path(path));
}

static mpq_gemm_region_fn region_for(mpq_kernel_path path) {
    switch (mpq_resolve_kernel_path(path)) {
    case MPQ_PATH_VNNI: {
        const int amx = amx_enabled();
        return amx == 2 ? mpq_gemm_region_amx_always : amx ? mpq_gemm_region_amx : mpq_gemm_region_vnni;
    }
    case MPQ_PATH_AVX2: return mpq_gemm_region_avx2;
    default: return mpq_gemm_region_reference;
    }
}

typedef struct {
    const mpq_gemm_job *job;
    mpq_gemm_region_fn fn;
    int split_n, units, panels, chunk, rows;
    _Atomic int next;  // the first unit nobody has claimed yet
} split;

// Runs units [u0, u1): whole micro-tiles (`rows` rows, or 4 panels = 64 columns, the VNNI
// tile), so no two claims write the same output.
static void run_units(const split *s, int u0, int u1) {
    const mpq_gemm_job *j = s->job;
    if (s->split_n) {
        int p0 = u0 * 4, p1 = u1 * 4 < s->panels ? u1 * 4 : s->panels;
        if (p0 < p1) s->fn(j, 0, j->m, p0, p1);
    } else {
        int m0 = u0 * s->rows, m1 = u1 * s->rows < j->m ? u1 * s->rows : j->m;
        if (m0 < m1) s->fn(j, m0, m1, 0, s->panels);
    }
}

// Every task claims `chunk` units at a time from one counter until none are left.
// A static split (one contiguous half per core) finishes when the slower core does: on
// a machine shared with other work, a core that loses half its time to another process
// held the whole GEMM to half speed. Claims of a few contiguous units keep each core's
// working set its own (in an N split, its own 64-column B panels, which stay in its L2
// while all rows of A stream past; in an M split, its own block of A rows) and let the
// faster core take more of them. Any split computes the same tiles with full K in each,
// so the output is bit-identical to one thread's.
static void run_task(void *arg, int t) {
    (void)t;
    split *s = (split *)arg;
    for (;;) {
        int u0 = atomic_fetch_add_explicit(&s->next, s->chunk, memory_order_relaxed);
        if (u0 >= s->units) return;
        run_units(s, u0, u0 + s->chunk < s->units ? u0 + s->chunk : s->units);
    }
}

// Splits whichever dimension has more micro-tiles over the persistent pool.
static void run(const mpq_gemm_job *job, mpq_gemm_region_fn fn, int threads) {
    // Channel-major output runs 16-row transposing tiles (fewer rows take the slower
    // scattering ones), so its row claims are whole 16-row tiles; AMX claims its 32-row blocks.
    const int rows = fn == mpq_gemm_region_amx || fn == mpq_gemm_region_amx_always ? 32 : job->out_channel_major && !job->c ? 16 : 6;
    split s = {job, fn, 0, 0, (job->n + 15) / 16, 0, rows, 0};
    if (threads <= 1) {
        fn(job, 0, job->m, 0, s.panels);
        return;
    }
    int units_m = (job->m + rows - 1) / rows, units_n = (s.panels + 3) / 4;
    s.split_n = units_n >= units_m;
    s.units = s.split_n ? units_n : units_m;
    if (threads > s.units) threads = s.units;
    if (threads > MPQ_POOL_MAX) threads = MPQ_POOL_MAX;  // the pool runs at most this many tasks
    // About 4 claims per task: enough for one core to take over a slow core's share,
    // few enough that each claim is a long contiguous run.
    s.chunk = (s.units + 4 * threads - 1) / (4 * threads);
    atomic_init(&s.next, 0);
    mpq_pool_run(threads, run_task, &s);
}

// The engine name a public GEMM entry point runs (mpq_last_engine).
static void note_gemm(mpq_gemm_region_fn fn, mpq_kernel_path path) {
    if (fn == mpq_gemm_region_amx || fn == mpq_gemm_region_amx_always) { mpq_note_engine("gemm+amx"); return; }
    switch (mpq_resolve_kernel_path(path)) {
    case MPQ_PATH_VNNI: mpq_note_engine("gemm+vnni"); break;
    case MPQ_PATH_AVX2: mpq_note_engine("gemm+avx2"); break;
    default: mpq_note_engine("gemm+reference"); break;
    }
}

static void run_noted(const mpq_gemm_job *j, mpq_kernel_path path, int threads) {
    const mpq_gemm_region_fn fn = region_for(path);
    note_gemm(fn, path);
    run(j, fn, threads);
}

// MPQ_INT8_AVX2_MADDUBS=0 keeps the AVX2 kernels' widening form for 7-bit weights too (A/B):
// decided once, where every job is made.
static int maddubs_enabled(void) {
    static int cached = -1;
    if (cached < 0) {
        const char *v = getenv("MPQ_INT8_AVX2_MADDUBS");
        cached = !(v && v[0] == '0');
    }
    return cached;
}

static int make_job(mpq_gemm_job *j, int m, int n, int k, const uint8_t *a, int lda,
                    const void *packed, int32_t za) {
    if (m <= 0 || n <= 0 || k <= 0 || !a || lda < k) return -1;
    j->m = m; j->n = n; j->k = k;
    j->a = a; j->lda = lda;
    j->za = za;
    j->c = NULL; j->ldc = 0; j->ep = NULL; j->out = NULL; j->ldo = 0; j->out_channel_major = 0;
    j->out_u8 = NULL; j->out_zp = 0;
    j->ind = NULL; j->ind_p0 = 0;
    if (mpq_packed_b_view(packed, n, k, &j->bdata, &j->colsum, &j->kp, &j->b_pairs_fit_i16)) return -1;
    j->b_pairs_fit_i16 = j->b_pairs_fit_i16 && maddubs_enabled();
    return 0;
}

int mpq_qgemm_u8s8(mpq_kernel_path path, int m, int n, int k,
                   const uint8_t *a, int lda, const void *packed,
                   int32_t a_zero_point, int32_t *c, int ldc, int threads) {
    mpq_gemm_job j;
    if (make_job(&j, m, n, k, a, lda, packed, a_zero_point) || !c || ldc < n) return -1;
    j.c = c;
    j.ldc = ldc;
    run_noted(&j, path, threads);
    return 0;
}

/// The job of a GEMM with an epilogue, its output layout checked (shared by the float and
/// the codes outputs, which differ only in where the epilogue stores).
static int make_epilogue_job(mpq_gemm_job *j, int m, int n, int k, const uint8_t *a, int lda,
                             const void *packed, const mpq_epilogue *ep, const void *out, int ldo,
                             int channel_major) {
    if (!ep || !ep->b_scale || !out || ldo < (channel_major ? m : n)) return -1;
    if (make_job(j, m, n, k, a, lda, packed, ep->a_zero_point)) return -1;
    j->ep = ep;
    j->ldo = ldo;
    j->out_channel_major = channel_major;
    return 0;
}

static int gemm_f32(mpq_kernel_path path, int m, int n, int k, const uint8_t *a, int lda,
                    const void *packed, const mpq_epilogue *ep, float *out, int ldo,
                    int channel_major, int threads) {
    mpq_gemm_job j;
    if (make_epilogue_job(&j, m, n, k, a, lda, packed, ep, out, ldo, channel_major)) return -1;
    j.out = out;
    run_noted(&j, path, threads);
    return 0;
}

int mpq_qgemm_u8s8_f32(mpq_kernel_path path, int m, int n, int k,
                       const uint8_t *a, int lda, const void *packed,
                       const mpq_epilogue *ep, float *out, int ldo, int threads) {
    return gemm_f32(path, m, n, k, a, lda, packed, ep, out, ldo, 0, threads);
}

int mpq_qgemm_u8s8_f32_nchw(mpq_kernel_path path, int m, int n, int k,
                            const uint8_t *a, int lda, const void *packed,
                            const mpq_epilogue *ep, float *out, int ldo, int threads) {
    return gemm_f32(path, m, n, k, a, lda, packed, ep, out, ldo, 1, threads);
}

int mpq_gemm_epilogue_job(mpq_gemm_job *j, int m, int n, int k, const uint8_t *a, int lda, const void *packed,
                          const mpq_epilogue *ep, float *out, uint8_t *out_u8, int ldo, uint8_t out_zero_point,
                          int channel_major, mpq_epilogue *codes) {
    if (!out == !out_u8) return -1;
    if (out) {
        if (make_epilogue_job(j, m, n, k, a, lda, packed, ep, out, ldo, channel_major)) return -1;
        j->out = out;
        return 0;
    }
    if (!ep || !(ep->out_scale > 0) || !codes) return -1;
    // The same epilogue up to the rounding; scaling by 1 keeps the rounded q - zp as is.
    *codes = *ep;
    codes->out_scale = 1.0f;
    if (make_epilogue_job(j, m, n, k, a, lda, packed, codes, out_u8, ldo, channel_major)) return -1;
    j->out_u8 = out_u8;
    j->out_zp = out_zero_point;
    return 0;
}

mpq_gemm_region_fn mpq_gemm_region_for(mpq_kernel_path path) { return region_for(path); }

void mpq_gemm_run(const mpq_gemm_job *job, mpq_gemm_region_fn fn, int threads) { run(job, fn, threads); }

int mpq_qgemm_u8s8_u8(mpq_kernel_path path, int m, int n, int k, const uint8_t *a, int lda, const void *packed,
                      const mpq_epilogue *ep, uint8_t *out, int ldo, uint8_t out_zero_point, int channel_major,
                      int threads) {
    mpq_gemm_job j;
    mpq_epilogue codes;
    if (!out || mpq_gemm_epilogue_job(&j, m, n, k, a, lda, packed, ep, NULL, out, ldo, out_zero_point, channel_major, &codes))
        return -1;
    run_noted(&j, path, threads);
    return 0;
}
