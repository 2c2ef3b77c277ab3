import CKernels

/// Runs `body(k)` once for each chunk k in 0..<chunks on up to `threads` threads of the C
/// kernel pool (`mpq_run_chunks`: the caller among them, each thread claiming the next
/// unclaimed chunk, so a late second core delays the caller by one chunk at most; inline
/// where `mpq_set_single_threaded` is on). Unlike `DispatchQueue.concurrentPerform`, whose
/// threads park between calls, the pool's workers stay awake for `MPQ_POOL_SPIN_US` after a
/// call (thread_pool.c), so back-to-back batch-1 layers find the second core ready.
/// `body` must not itself split over the pool.
func poolPerform(threads: Int, chunks: Int, _ body: (Int) -> Void) {
    if threads <= 1 || chunks <= 1 {
        for k in 0..<chunks { body(k) }
        return
    }
    withoutActuallyEscaping(body) { escapable in
        var task = escapable
        withUnsafeMutablePointer(to: &task) { p in
            mpq_run_chunks(Int32(min(threads, 64)), Int32(chunks), { arg, k in
                arg!.assumingMemoryBound(to: ((Int) -> Void).self).pointee(Int(k))
            }, p)
        }
    }
}
