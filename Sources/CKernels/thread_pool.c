// A small persistent worker pool for the GEMM split. Starting a pthread costs
// ~20 us, as much as a whole 1M-MAC GEMM on the VNNI path; parked workers wake
// in a few us, so splitting pays off for much smaller GEMMs.
//
// One call runs at a time (callers queue on `run_lock`); the caller runs task 0
// itself and workers 1..n-1 run the rest. Workers park on a condition variable
// after a short spin, so an idle process burns no CPU.
//
// A task is claimed before it runs (`ticket`): when the caller has finished task 0
// and a worker has not yet started its task, the caller runs that task itself
// instead of waiting for the worker to be scheduled. On a busy machine (more
// runnable threads than cores) a parked worker can wait a whole scheduler slice,
// milliseconds, to wake: a split op then costs what one thread costs, never more.
//
// The spin after a call has two phases: ~1000 pauses (15-30 us), then, up to
// MPQ_POOL_SPIN_US microseconds after the worker finished its last task (read once;
// default 2000, 0 parks right after the pauses as before s9), a check of the next call
// between sched_yield()s. Why (s9-fp32): at batch 1 a model alternates split layers
// with small single-core ones (0.05-0.5 ms each); a worker that parked in between needs
// a futex wake and, on a VM, an IPI to a halted vCPU (tens to hundreds of us) before it
// claims its task, and the caller, finding the task unclaimed, ran it itself: the second
// core sat idle through most split layers (ResNet-18 1.29x on two cores, ORT 1.84x, whose
// workers spin through a run). The yield keeps the wait cheap where the core has other
// work: sched_yield hands the core to any runnable thread, and on an idle core it returns
// at once, so the worker sees the next call within a microsecond.
#include "mpq_internal.h"
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

enum { POOL_MAX = MPQ_POOL_MAX, SPIN = 1000 };  // ~15-30 us of pause: long spins steal the core from the caller when the machine is oversubscribed

static pthread_mutex_t run_lock = PTHREAD_MUTEX_INITIALIZER;  // one mpq_pool_run at a time
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;      // guards the fields below
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static pthread_cond_t done = PTHREAD_COND_INITIALIZER;
static int workers;                       // started so far (worker ids 1..workers)
static _Atomic unsigned long generation;  // bumped once per call
static int active;                        // tasks 1..active-1 belong to this generation
static _Atomic int pending;               // tasks not finished yet
static void (*task_fn)(void *, int);
static void *task_arg;
static unsigned long start_generation[POOL_MAX];  // the call a worker was started for, minus one
// Task t of call g is unclaimed while ticket[t] == g (calls number from 1); claiming
// swaps in 0. A worker that wakes after its call moved on fails the swap and never
// touches that call's (by then dangling) argument.
static _Atomic unsigned long ticket[POOL_MAX];

static long long now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000LL + t.tv_nsec / 1000;
}

// MPQ_POOL_SPIN_US, read once (a race between two first readers writes the same value).
static long long spin_us(void) {
    static _Atomic long long cached = -1;
    long long v = atomic_load_explicit(&cached, memory_order_relaxed);
    if (v < 0) {
        const char *e = getenv("MPQ_POOL_SPIN_US");
        v = e && *e ? atoll(e) : 2000;
        if (v < 0) v = 0;
        atomic_store_explicit(&cached, v, memory_order_relaxed);
    }
    return v;
}

// Waits (without the lock) until a call after `seen` is posted or the spin time is over.
static void spin_for_next_call(unsigned long seen) {
    for (int s = 0; atomic_load_explicit(&generation, memory_order_acquire) == seen && s < SPIN; s++)
        __builtin_ia32_pause();
    const long long budget = spin_us();
    if (budget == 0 || atomic_load_explicit(&generation, memory_order_acquire) != seen) return;
    const long long until = now_us() + budget;
    while (atomic_load_explicit(&generation, memory_order_acquire) == seen) {
        sched_yield();
        for (int s = 0; s < 32 && atomic_load_explicit(&generation, memory_order_acquire) == seen; s++)
            __builtin_ia32_pause();
        if (now_us() >= until) return;
    }
}

static int claim(int task, unsigned long call) {
    unsigned long expected = call;
    return atomic_compare_exchange_strong_explicit(&ticket[task], &expected, 0UL, memory_order_acq_rel,
                                                   memory_order_relaxed);
}

static void finish_one(void) {
    if (atomic_fetch_sub_explicit(&pending, 1, memory_order_acq_rel) == 1) {
        pthread_mutex_lock(&lock);
        pthread_cond_signal(&done);
        pthread_mutex_unlock(&lock);
    }
}

static void *worker_main(void *arg) {
    const int id = (int)(long)arg;
    unsigned long seen = start_generation[id];
    for (;;) {
        spin_for_next_call(seen);
        // Snapshot the call under the lock: the caller writes all of it there,
        // so a late worker never mixes one call's `active` with another's task.
        pthread_mutex_lock(&lock);
        while (atomic_load_explicit(&generation, memory_order_relaxed) == seen) pthread_cond_wait(&wake, &lock);
        seen = atomic_load_explicit(&generation, memory_order_relaxed);
        const int n = active;
        void (*fn)(void *, int) = task_fn;
        void *arg = task_arg;
        pthread_mutex_unlock(&lock);
        if (id < n && claim(id, seen)) {
            fn(arg, id);
            finish_one();
        }
    }
    return NULL;
}

void mpq_pool_run(int tasks, void (*fn)(void *, int), void *arg) {
    if (tasks > POOL_MAX) tasks = POOL_MAX;
    if (tasks <= 1) {
        fn(arg, 0);
        return;
    }
    if (mpq_single_threaded()) {
        // Inside a task that already owns a core (thread_scope.c): the same tasks, in order,
        // on this thread; each task's work is what it is on a worker, so the bytes are too.
        for (int t = 0; t < tasks; t++) fn(arg, t);
        return;
    }
    pthread_mutex_lock(&run_lock);
    while (workers < tasks - 1) {
        pthread_t t;
        start_generation[workers + 1] = atomic_load_explicit(&generation, memory_order_relaxed);
        if (pthread_create(&t, NULL, worker_main, (void *)(long)(workers + 1)) != 0) break;
        pthread_detach(t);
        workers++;
    }
    // Tasks no worker can take (pthread_create failed) run on this thread.
    int n = tasks <= workers + 1 ? tasks : workers + 1;
    pthread_mutex_lock(&lock);
    task_fn = fn;
    task_arg = arg;
    active = n;
    atomic_store_explicit(&pending, n - 1, memory_order_relaxed);
    const unsigned long call = atomic_load_explicit(&generation, memory_order_relaxed) + 1;
    for (int t = 1; t < n; t++) atomic_store_explicit(&ticket[t], call, memory_order_relaxed);
    atomic_fetch_add_explicit(&generation, 1, memory_order_release);
    pthread_cond_broadcast(&wake);
    pthread_mutex_unlock(&lock);

    fn(arg, 0);
    for (int t = n; t < tasks; t++) fn(arg, t);
    // Tasks whose worker has not started yet: run them here rather than wait for it.
    for (int t = 1; t < n; t++) {
        if (claim(t, call)) {
            fn(arg, t);
            finish_one();
        }
    }
    for (int s = 0; atomic_load_explicit(&pending, memory_order_acquire) != 0 && s < SPIN; s++)
        __builtin_ia32_pause();
    pthread_mutex_lock(&lock);
    while (atomic_load_explicit(&pending, memory_order_acquire) != 0) pthread_cond_wait(&done, &lock);
    pthread_mutex_unlock(&lock);
    pthread_mutex_unlock(&run_lock);
}

// Chunks claimed from a counter: each pool task takes the next unclaimed chunk until none
// is left, so a worker that wakes late (or is descheduled) leaves its share to the caller
// and holds the caller up by at most the one chunk it is running (from s8-mbv2's 976fb17).
typedef struct {
    void (*fn)(void *, int);
    void *arg;
    int chunks;
    _Atomic int next;
} chunk_job;

static void chunk_task(void *p, int task) {
    (void)task;
    chunk_job *j = p;
    for (int k; (k = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed)) < j->chunks;) j->fn(j->arg, k);
}

void mpq_run_chunks(int threads, int chunks, void (*fn)(void *, int), void *arg) {
    if (threads > chunks) threads = chunks;
    if (threads > MPQ_POOL_MAX) threads = MPQ_POOL_MAX;
    if (threads <= 1) {
        for (int k = 0; k < chunks; k++) fn(arg, k);
        return;
    }
    chunk_job j = {fn, arg, chunks, 0};
    mpq_pool_run(threads, chunk_task, &j);
}

// MARK: - Contiguous ranges (s14-int8b1)
//
// The INT8 conv kernels split one image's output over the cores in units of pixels (a
// 64-pixel block of a 1x1 conv, a few output rows of an im2col conv) that each write a short
// piece of every output channel's plane. Claimed one by one from a shared counter, the two
// cores took alternate units, so neighbouring pieces of every channel row, often sharing a
// cache line (a 64-byte block at an offset that is not a multiple of 64, and the adjacent-line
// prefetcher's 128-byte pairs), were written by different cores, and the lines moved between
// the cores' L2s on every layer. One thread, C harness, 2 threads against 1 (min of 1000
// calls where both threads ran from the start): MobileNetV2's 16->96 1x1 on 112x112 took
// 195-230 us on two cores against 172 on one; with contiguous halves 149.
//
// Here task t owns units [U t / T, U (t + 1) / T), takes them from the front in order, and
// when its own are done takes units one by one from the back of the others' ranges: the
// cores meet inside a range, so each core's output is (nearly) one contiguous run, and a core
// that is slow to start (a worker descheduled on a busy host) still hands its units to the
// other one, as the counter did. A range is one 64-bit word (first << 32 | end), so a claim
// from either end is one compare-and-swap and no unit is taken twice.
typedef struct {
    void (*fn)(void *, int, int);
    void *arg;
    int tasks;
    _Atomic unsigned long long range[POOL_MAX];
} ranges_job;

static int range_pop(_Atomic unsigned long long *r, int back) {
    unsigned long long v = atomic_load_explicit(r, memory_order_relaxed);
    for (;;) {
        const unsigned lo = (unsigned)(v >> 32), hi = (unsigned)v;
        if (lo >= hi) return -1;
        const unsigned long long next = back ? ((unsigned long long)lo << 32) | (hi - 1)
                                             : ((unsigned long long)(lo + 1) << 32) | hi;
        if (atomic_compare_exchange_weak_explicit(r, &v, next, memory_order_relaxed, memory_order_relaxed))
            return back ? (int)(hi - 1) : (int)lo;
    }
}

static void ranges_task(void *p, int t) {
    ranges_job *j = p;
    for (int u; (u = range_pop(&j->range[t], 0)) >= 0;) j->fn(j->arg, u, t);
    for (int k = 1; k < j->tasks; k++)
        for (int u; (u = range_pop(&j->range[(t + k) % j->tasks], 1)) >= 0;) j->fn(j->arg, u, t);
}

typedef struct {
    void (*fn)(void *, int, int);
    void *arg;
    int units;
    _Atomic int next;
} counter_job;

static void counter_task(void *p, int t) {
    counter_job *j = p;
    for (int u; (u = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed)) < j->units;) j->fn(j->arg, u, t);
}

void mpq_run_ranges(int threads, int units, void (*fn)(void *arg, int unit, int task), void *arg) {
    if (threads > units) threads = units;
    if (threads > POOL_MAX) threads = POOL_MAX;
    if (threads <= 1) {
        for (int u = 0; u < units; u++) fn(arg, u, 0);
        return;
    }
    static _Atomic long env = -1;
    if (mpq_env_long_once("MPQ_POOL_RANGES", 1, &env) == 0) {
        counter_job c = {fn, arg, units, 0};
        mpq_pool_run(threads, counter_task, &c);
        return;
    }
    ranges_job j = {fn, arg, threads, {0}};
    for (int t = 0; t < threads; t++) {
        const unsigned long long lo = (unsigned long long)units * (unsigned)t / (unsigned)threads;
        const unsigned long long hi = (unsigned long long)units * (unsigned)(t + 1) / (unsigned)threads;
        atomic_init(&j.range[t], (lo << 32) | hi);
    }
    mpq_pool_run(threads, ranges_task, &j);
}
