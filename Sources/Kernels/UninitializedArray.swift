/// Output buffers a kernel overwrites in full, created without the zero fill
/// `Array(repeating: 0, count:)` pays first (a write pass over memory the kernel writes
/// again at once: for the INT8 chains' elementwise kernels, about half their memory traffic).
extension Array where Element: BitwiseCopyable {
    /// `count` elements whose values are unspecified until written: only for a buffer that
    /// the very next step writes completely (an elementwise kernel's output, a gather, a
    /// copy), never one read before that.
    @inlinable
    static func uninitialized(count: Int) -> [Element] {
        [Element](unsafeUninitializedCapacity: count) { _, initialized in initialized = count }
    }
}
