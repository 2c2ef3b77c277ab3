import CKernels
import Foundation
import ONNX

/// Softmax, LogSoftmax and Hardmax.
///
/// Before opset 13 these ops coerce the input to 2-D at `axis` (default 1) and normalise
/// each row over *all* trailing dims flattened; from opset 13 they normalise along the one
/// axis (default -1). Both reduce to "normalise `n` values `inner` apart, for each of
/// `outer * inner` lanes": the coerced form is the per-axis form with `inner = 1`.
extension ActivationOps {
    static func Softmax(_ x: Tensor, axis: Int, coerce2D: Bool) throws -> Tensor {
        // Contiguous lanes (the last axis: attention scores) go to the vectorised C kernel,
        // split over the cores; `SoftmaxReference` is what it is tested against.
        if x.dtype.isFloating, x.rank > 0, let rows = try contiguousRows(x, axis: axis, coerce2D: coerce2D) {
            var y = x
            let n = rows == 0 ? 0 : x.count / rows
            y.floats.withUnsafeMutableBufferPointer { p in
                mpq_softmax_rows_f32(MPQ_PATH_AUTO, p.baseAddress, rows, n, rowThreads(p.count))
            }
            return y
        }
        return try SoftmaxReference(x, axis: axis, coerce2D: coerce2D)
    }

    /// The number of rows when the normalised lanes are contiguous (inner = 1), else nil.
    private static func contiguousRows(_ x: Tensor, axis: Int, coerce2D: Bool) throws -> Int? {
        let r = x.rank
        let a = coerce2D ? (axis < 0 ? axis + r : axis) : try dimensionAxis(axis, rank: r)
        guard a >= 0, a < r, coerce2D || a == r - 1, x.count > 0 else { return nil }
        return x.shape[..<a].reduce(1, *)
    }

    static func SoftmaxReference(_ x: Tensor, axis: Int, coerce2D: Bool) throws -> Tensor {
        try normalise(x, axis: axis, coerce2D: coerce2D) { p, n, s in
            var m = -Float.infinity
            for k in 0..<n where p[k * s] > m { m = p[k * s] }
            var sum: Float = 0
            for k in 0..<n { let e = Foundation.exp(p[k * s] - m); p[k * s] = e; sum += e }
            let inv = 1 / sum
            for k in 0..<n { p[k * s] *= inv }
        }
    }

    static func LogSoftmax(_ x: Tensor, axis: Int, coerce2D: Bool) throws -> Tensor {
        try normalise(x, axis: axis, coerce2D: coerce2D) { p, n, s in
            var m = -Float.infinity
            for k in 0..<n where p[k * s] > m { m = p[k * s] }
            var sum: Float = 0
            for k in 0..<n { sum += Foundation.exp(p[k * s] - m) }
            let l = Foundation.log(sum) + m
            for k in 0..<n { p[k * s] -= l }
        }
    }

    /// 1 at the first maximum of each lane, 0 elsewhere.
    static func Hardmax(_ x: Tensor, axis: Int, coerce2D: Bool) throws -> Tensor {
        try normalise(x, axis: axis, coerce2D: coerce2D) { p, n, s in
            var best = 0
            for k in 1..<Swift.max(n, 1) where p[k * s] > p[best * s] { best = k }
            for k in 0..<n { p[k * s] = k == best ? 1 : 0 }
        }
    }

    /// Runs `lane(pointer, n, stride)` over every normalised lane of a float copy of `x`.
    @inline(__always)
    private static func normalise(_ x: Tensor, axis: Int, coerce2D: Bool,
                                  _ lane: (UnsafeMutablePointer<Float>, Int, Int) -> Void) throws -> Tensor {
        var y = x.dtype.isFloating ? x : Tensor(shape: x.shape, floats: x.asFloats)
        if x.rank == 0 {
            y.floats.withUnsafeMutableBufferPointer { lane($0.baseAddress!, 1, 1) }
            return y
        }
        let a: Int
        if coerce2D {
            // Opset < 13 allows axis == rank (a single row of everything... of nothing).
            let r = x.rank
            a = axis < 0 ? axis + r : axis
            guard a >= 0, a <= r else { throw OpError("axis \(axis) out of range for rank \(r)") }
        } else {
            a = try dimensionAxis(axis, rank: x.rank)
        }
        let outer = x.shape[..<a].reduce(1, *)
        let n = coerce2D ? x.shape[a...].reduce(1, *) : x.shape[a]
        let inner = coerce2D ? 1 : x.shape[(a + 1)...].reduce(1, *)
        if outer * n * inner == 0 { return y }
        y.floats.withUnsafeMutableBufferPointer { buf in
            let base = buf.baseAddress!
            for o in 0..<outer {
                for i in 0..<inner { lane(base + o * n * inner + i, n, inner) }
            }
        }
        return y
    }
}
