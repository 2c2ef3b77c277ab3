import CKernels

/// Keeps freed activation buffers in the process instead of returning them to the OS.
///
/// Every op allocates its output; a MiniLM batch of 16 makes 12 MB tensors. With glibc's
/// defaults such blocks are mmapped, or trimmed off the heap once freed, so each new
/// tensor pays a page fault per 4 KiB page (zero-filled by the kernel) before any math:
/// `mpq profile` showed Erf, Add and Mul spending most of their time there (the whole
/// FP32 pass 1.7-1.9x slower than with reuse). ONNX Runtime avoids the same cost with its
/// arena. Here: every block comes from the heap (no per-block mmap, so batch-64 tensors
/// over glibc's 32 MiB mmap-threshold limit are reused too), and the heap is never
/// trimmed, so the peak working set stays mapped and reused. Set once per process, on
/// the first Session.
enum HeapReuse {
    static let configured: Bool = mpq_keep_heap() != 0
}
