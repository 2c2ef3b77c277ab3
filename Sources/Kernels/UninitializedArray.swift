/// Arrays for kernel outputs that the kernel writes completely. `[T](repeating: 0, count:)`
/// zero-fills first: a single-threaded pass over memory the kernel overwrites anyway (at
/// MiniLM's batch 16 a 12 MB memset before each large GEMM, GELU and softmax output; for the
/// INT8 chains' elementwise kernels about half their memory traffic).

/// `count` elements, all written by `fill` (given the first of them; not called for 0).
func uninitializedArray<T: BitwiseCopyable>(count: Int, _ fill: (UnsafeMutablePointer<T>) -> Void) -> [T] {
    [T](unsafeUninitializedCapacity: count) { buffer, initialized in
        if count > 0 { fill(buffer.baseAddress!) }
        initialized = count
    }
}

/// `count` elements of a trivial type with unspecified values, for a caller that writes
/// every one of them before reading (or discards the array when its kernel fails).
func uninitializedArray<T: BitwiseCopyable>(count: Int, of: T.Type) -> [T] {
    [T](unsafeUninitializedCapacity: count) { _, initialized in initialized = count }
}

extension Array where Element: BitwiseCopyable {
    /// The same as `uninitializedArray(count:of:)`, spelled where the element type is
    /// inferred: only for a buffer that the very next step writes completely (an elementwise
    /// kernel's output, a gather, a copy), never one read before that.
    @inlinable
    static func uninitialized(count: Int) -> [Element] {
        [Element](unsafeUninitializedCapacity: count) { _, initialized in initialized = count }
    }
}
