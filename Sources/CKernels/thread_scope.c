// A per-thread "run everything on this thread" switch. The session's image chains
// (Session+ImageChains.swift) split a batch over the cores themselves, one image at a
// time per core; every kernel called inside such a task must then stay on its thread:
// a nested split would queue on the pool's run lock behind the other core's task and
// gain nothing. Thread decisions read it through `coreCount` (Swift) and mpq_pool_run.
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE  // sched_getaffinity, CPU_COUNT
#endif
#include "mpq_internal.h"
#if defined(__linux__)
#include <sched.h>
#endif

static _Thread_local int single_threaded;

void mpq_set_single_threaded(int on) { single_threaded = on != 0; }

int mpq_single_threaded(void) { return single_threaded; }

// The engine of the last INT8 Conv/GEMM kernel call on this thread (`mpq profile` shows it per
// node): set by the entry points once they know which kernel runs, fallbacks included.
static _Thread_local const char *last_engine;

void mpq_note_engine(const char *name) { last_engine = name; }

const char *mpq_last_engine(void) { return last_engine; }

// Foundation's activeProcessorCount reads cgroup quotas and the online CPUs but not the
// affinity mask: under `taskset -c 0` the pool still started a worker, and the two threads
// took turns on one CPU (a "one-core" profile that measured two threads time-sliced).
int mpq_affinity_cpu_count(void) {
#if defined(__linux__)
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0) return 0;
    return CPU_COUNT(&set);
#else
    return 0;
#endif
}
