// A per-thread "run everything on this thread" switch. The session's image chains
// (Session+ImageChains.swift) split a batch over the cores themselves, one image at a
// time per core; every kernel called inside such a task must then stay on its thread:
// a nested split would queue on the pool's run lock behind the other core's task and
// gain nothing. Thread decisions read it through `coreCount` (Swift) and mpq_pool_run.
#include "mpq_internal.h"

static _Thread_local int single_threaded;

void mpq_set_single_threaded(int on) { single_threaded = on != 0; }

int mpq_single_threaded(void) { return single_threaded; }

// The engine of the last INT8 Conv/GEMM kernel call on this thread (`mpq profile` shows it per
// node): set by the entry points once they know which kernel runs, fallbacks included.
static _Thread_local const char *last_engine;

void mpq_note_engine(const char *name) { last_engine = name; }

const char *mpq_last_engine(void) { return last_engine; }
