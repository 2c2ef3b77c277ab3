import Foundation

/// Limits on what a model may make mpq allocate, and the checked arithmetic behind them.
///
/// Every dimension and element count that comes from a file (initializer dims, shape
/// inputs, attributes) goes through `sizeProblem` before anything is allocated: Swift
/// traps on integer overflow and `Array(repeating:count:)` aborts on absurd counts, so
/// an unchecked product turns a malformed model into a signal instead of an error.
public enum TensorLimits {
    /// The most bytes one tensor may hold (as mpq stores it: 4 per float, 8 per integer).
    /// `MPQ_MAX_TENSOR_BYTES` overrides it; otherwise just under 8 GiB or a quarter of the
    /// machine's memory, whichever is smaller: a run holds several tensors at once (an op
    /// often copies its input besides writing its output), and under 8 GiB every float
    /// tensor's element count, hence every GEMM size, fits the 32-bit sizes BLAS takes.
    /// A command-line flag may set it before loading a model.
    nonisolated(unsafe) public static var maxBytes: Int = defaultMaxBytes()

    /// NaN/Inf in initializers is an error unless `MPQ_ALLOW_NONFINITE=1` (or this flag)
    /// says the model means it (a mask of -inf, for example).
    nonisolated(unsafe) public static var allowNonFinite: Bool = {
        let value = ProcessInfo.processInfo.environment["MPQ_ALLOW_NONFINITE"] ?? ""
        if !["", "0", "1"].contains(value) { warn("MPQ_ALLOW_NONFINITE='\(value)' is neither 0 nor 1; NaN/Inf weights stay errors") }
        return value == "1"
    }()

    /// Largest attribute value accepted in window geometry (kernel, stride, dilation,
    /// pads, output_padding): 2^24, far above any real model, low enough that products
    /// with a dim (`(in - 1) * stride + dilation * (kernel - 1)`) cannot overflow Int.
    public static let maxDim = 1 << 24

    static func defaultMaxBytes() -> Int {
        let physical = ProcessInfo.processInfo.physicalMemory
        let blasLimit = Int(Int32.max) * 4      // float32 elements BLAS can count
        let quarter = physical / 4
        let fallback = quarter > 0 && quarter < UInt64(blasLimit) ? Int(quarter) : blasLimit
        guard let s = ProcessInfo.processInfo.environment["MPQ_MAX_TENSOR_BYTES"] else { return fallback }
        // Strict: "16G" or "-1" read as a default would silently change what is checked.
        guard s.allSatisfy({ $0.isASCII && $0.isNumber }), let v = Int(s), v > 0 else {
            warn("MPQ_MAX_TENSOR_BYTES='\(s)' is not a positive number of bytes; using \(describeBytes(fallback))")
            return fallback
        }
        return v
    }

    /// The limits are read before any command runs, so a bad setting cannot throw; it is
    /// reported on stderr instead of being ignored silently.
    static func warn(_ message: String) {
        FileHandle.standardError.write(Data("warning: \(message)\n".utf8))
    }

    /// Bytes per element as mpq stores a dtype (floats as Float32, integers as Int64).
    public static func storageBytes(_ dtype: DType) -> Int { dtype.isFloating ? 4 : 8 }

    /// The product of `dims`, or nil when a dim is negative or the product overflows.
    /// Inlinable so other modules specialise it: called unspecialised, its generic iterator
    /// cost a metadata lookup per call (about 6% of a small FP32 Conv's time, s13-lead).
    @inlinable
    public static func product<C: Collection>(_ dims: C) -> Int? where C.Element == Int {
        var n = 1
        for d in dims {
            guard d >= 0 else { return nil }
            let (p, overflow) = n.multipliedReportingOverflow(by: d)
            if overflow { return nil }
            n = p
        }
        return n
    }

    /// Why a tensor of `shape` and `dtype` cannot be built, or nil when it can. The
    /// reason names the shape and the size, so callers only add which tensor it is.
    public static func sizeProblem(_ shape: [Int], dtype: DType) -> String? {
        if let d = shape.first(where: { $0 < 0 }) {
            return "shape \(Tensor.describe(shape)) has a negative dimension \(d)"
        }
        let bytesPer = storageBytes(dtype)
        guard let n = product(shape), case let (bytes, false) = n.multipliedReportingOverflow(by: bytesPer) else {
            return "shape \(Tensor.describe(shape)) has more elements than an integer can count"
        }
        guard bytes <= maxBytes else {
            return "shape \(Tensor.describe(shape)) of \(dtype) needs \(describeBytes(bytes)), over the limit of \(describeBytes(maxBytes)) (MPQ_MAX_TENSOR_BYTES)"
        }
        // A zero-element tensor can still carry a huge dim that per-axis tables are sized from.
        if let d = shape.first(where: { $0 > maxBytes / bytesPer }) {
            return "shape \(Tensor.describe(shape)) has dimension \(d), over the limit of \(describeBytes(maxBytes)) (MPQ_MAX_TENSOR_BYTES)"
        }
        return nil
    }

    /// `1.5 GiB (1610612736 bytes)`.
    public static func describeBytes(_ n: Int) -> String {
        let units = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
        var v = Double(n), u = 0
        while v >= 1024 && u < units.count - 1 { v /= 1024; u += 1 }
        return u == 0 ? "\(n) bytes" : String(format: "%.1f ", v) + "\(units[u]) (\(n) bytes)"
    }
}
