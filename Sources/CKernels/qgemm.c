// INT8 GEMM driver: argument checks, path choice, and the pthread split.
#include "mpq_internal.h"
#include <pthread.h>

static mpq_gemm_region_fn region_for(mpq_kernel_path path) {
    switch (mpq_resolve_kernel_path(path)) {
    case MPQ_PATH_VNNI: return mpq_gemm_region_vnni;
    case MPQ_PATH_AVX2: return mpq_gemm_region_avx2;
    default: return mpq_gemm_region_reference;
    }
}

typedef struct {
    const mpq_gemm_job *job;
    mpq_gemm_region_fn fn;
    int m0, m1, p0, p1;
} slice;

static void *run_slice(void *arg) {
    slice *s = (slice *)arg;
    if (s->m0 < s->m1 && s->p0 < s->p1) s->fn(s->job, s->m0, s->m1, s->p0, s->p1);
    return NULL;
}

// Splits whichever dimension has more micro-tiles (6 rows, 64 columns: the VNNI
// tile) so each thread keeps whole tiles; contiguous ranges keep B panels local.
static void run(const mpq_gemm_job *job, mpq_gemm_region_fn fn, int threads) {
    int panels = (job->n + 15) / 16;
    enum { MAX_THREADS = 64 };
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    if (threads <= 1) {
        fn(job, 0, job->m, 0, panels);
        return;
    }
    int units_m = (job->m + 5) / 6, units_n = (panels + 3) / 4;
    int split_n = units_n >= units_m;
    int units = split_n ? units_n : units_m;
    if (threads > units) threads = units;
    slice slices[MAX_THREADS];
    pthread_t tid[MAX_THREADS];
    int started[MAX_THREADS] = {0};
    for (int t = 0; t < threads; t++) {
        int u0 = (int)((long)units * t / threads), u1 = (int)((long)units * (t + 1) / threads);
        slice *s = &slices[t];
        s->job = job;
        s->fn = fn;
        if (split_n) {
            s->m0 = 0; s->m1 = job->m;
            s->p0 = u0 * 4; s->p1 = u1 * 4 < panels ? u1 * 4 : panels;
        } else {
            s->p0 = 0; s->p1 = panels;
            s->m0 = u0 * 6; s->m1 = u1 * 6 < job->m ? u1 * 6 : job->m;
        }
    }
    // Slice 0 runs here; if a thread cannot start its slice runs here as well.
    for (int t = 1; t < threads; t++)
        started[t] = pthread_create(&tid[t], NULL, run_slice, &slices[t]) == 0;
    run_slice(&slices[0]);
    for (int t = 1; t < threads; t++) {
        if (started[t]) pthread_join(tid[t], NULL);
        else run_slice(&slices[t]);
    }
}

static int make_job(mpq_gemm_job *j, int m, int n, int k, const uint8_t *a, int lda,
                    const void *packed, int32_t za) {
    if (m <= 0 || n <= 0 || k <= 0 || !a || lda < k) return -1;
    j->m = m; j->n = n; j->k = k;
    j->a = a; j->lda = lda;
    j->za = za;
    j->c = NULL; j->ldc = 0; j->ep = NULL; j->out = NULL; j->ldo = 0; j->out_channel_major = 0;
    return mpq_packed_b_view(packed, n, k, &j->bdata, &j->colsum, &j->kp);
}

int mpq_qgemm_u8s8(mpq_kernel_path path, int m, int n, int k,
                   const uint8_t *a, int lda, const void *packed,
                   int32_t a_zero_point, int32_t *c, int ldc, int threads) {
    mpq_gemm_job j;
    if (make_job(&j, m, n, k, a, lda, packed, a_zero_point) || !c || ldc < n) return -1;
    j.c = c;
    j.ldc = ldc;
    run(&j, region_for(path), threads);
    return 0;
}

static int gemm_f32(mpq_kernel_path path, int m, int n, int k, const uint8_t *a, int lda,
                    const void *packed, const mpq_epilogue *ep, float *out, int ldo,
                    int channel_major, int threads) {
    mpq_gemm_job j;
    if (!ep || !ep->b_scale || !out || ldo < (channel_major ? m : n)) return -1;
    if (make_job(&j, m, n, k, a, lda, packed, ep->a_zero_point)) return -1;
    j.ep = ep;
    j.out = out;
    j.ldo = ldo;
    j.out_channel_major = channel_major;
    run(&j, region_for(path), threads);
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
