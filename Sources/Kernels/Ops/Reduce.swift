import Foundation
import ONNX

/// Reductions (ReduceSum, ReduceMean, ... with keepdims and axes as attribute or input)
/// and ArgMax/ArgMin.
///
/// Every reduction runs as `[outer, red, inner]`: the reduced axes are made contiguous
/// (transposing the input when they are not) and the `red` values of each output are
/// accumulated in Double, so long sums do not drift from ONNX Runtime's.
enum ReduceOps {
    static let table: [String: OpEntry] = [
        "ReduceSum": entry(axesInputSince: 13) { x, p in try ReduceSum(x, p) },
        "ReduceMean": entry(axesInputSince: 18) { x, p in try ReduceMean(x, p) },
        "ReduceMax": entry(axesInputSince: 18) { x, p in try ReduceMax(x, p) },
        "ReduceMin": entry(axesInputSince: 18) { x, p in try ReduceMin(x, p) },
        "ReduceProd": entry(axesInputSince: 18) { x, p in try ReduceProd(x, p) },
        "ReduceL1": entry(axesInputSince: 18) { x, p in try ReduceL1(x, p) },
        "ReduceL2": entry(axesInputSince: 18) { x, p in try ReduceL2(x, p) },
        "ReduceSumSquare": entry(axesInputSince: 18) { x, p in try ReduceSumSquare(x, p) },
        "ReduceLogSum": entry(axesInputSince: 18) { x, p in try ReduceLogSum(x, p) },
        "ReduceLogSumExp": entry(axesInputSince: 18) { x, p in try ReduceLogSumExp(x, p) },
        "ArgMax": OpEntry { n, i, _ in
            [try ArgMax(n.required(i, 0, "data"), axis: n.int("axis", default: 0), keepdims: n.int("keepdims", default: 1),
                        selectLastIndex: n.int("select_last_index", default: 0))]
        },
        "ArgMin": OpEntry { n, i, _ in
            [try ArgMin(n.required(i, 0, "data"), axis: n.int("axis", default: 0), keepdims: n.int("keepdims", default: 1),
                        selectLastIndex: n.int("select_last_index", default: 0))]
        },
    ]

    /// The attributes shared by every Reduce* op.
    struct Params {
        var axes: [Int]?
        var keepdims: Int = 1
        var noopWithEmptyAxes: Int = 0
    }

    /// Entry for a Reduce* op whose `axes` became an input at `axesInputSince`.
    static func entry(axesInputSince v: Int, _ f: @escaping @Sendable (Tensor, Params) throws -> Tensor) -> OpEntry {
        OpEntry { n, i, opset in
            let axes = opset < v ? n.ints("axes") : i.inputAt(1).map { $0.asInts.map { Int($0) } }
            let p = Params(axes: axes, keepdims: n.int("keepdims", default: 1),
                           noopWithEmptyAxes: n.int("noop_with_empty_axes", default: 0))
            return [try f(n.required(i, 0, "data"), p)]
        }
    }

    static func ReduceSum(_ x: Tensor, _ p: Params) throws -> Tensor {
        if !x.dtype.isFloating { return try reduceInts(x, p, 0, &+) }
        return try reduce(x, p, 0, { $0 + Double($1) })
    }

    /// Integer means truncate, as ONNX Runtime's do.
    static func ReduceMean(_ x: Tensor, _ p: Params) throws -> Tensor {
        let s = try layout(x, p)
        if !x.dtype.isFloating {
            let c = Int64(Swift.max(s.red, 1))
            return try reduceInts(x, p, 0, &+).mapInts { $0 / c }
        }
        let c = Double(s.red)
        return try reduce(x, p, 0, { $0 + Double($1) }, finish: { $0 / c })
    }

    /// NaN propagates; an empty reduction gives -inf (the lowest value for integers).
    static func ReduceMax(_ x: Tensor, _ p: Params) throws -> Tensor {
        if !x.dtype.isFloating { return try reduceInts(x, p, bounds(x.dtype).lo, { Swift.max($0, $1) }) }
        return try reduce(x, p, -.infinity, { a, v in Double(v) > a || v.isNaN ? Double(v) : a })
    }

    static func ReduceMin(_ x: Tensor, _ p: Params) throws -> Tensor {
        if !x.dtype.isFloating { return try reduceInts(x, p, bounds(x.dtype).hi, { Swift.min($0, $1) }) }
        return try reduce(x, p, .infinity, { a, v in Double(v) < a || v.isNaN ? Double(v) : a })
    }

    static func ReduceProd(_ x: Tensor, _ p: Params) throws -> Tensor {
        if !x.dtype.isFloating { return try reduceInts(x, p, 1, &*) }
        return try reduce(x, p, 1, { $0 * Double($1) })
    }

    static func ReduceL1(_ x: Tensor, _ p: Params) throws -> Tensor {
        if !x.dtype.isFloating { return try reduceInts(x, p, 0, { $0 &+ Swift.abs($1) }) }
        return try reduce(x, p, 0, { $0 + Double(Swift.abs($1)) })
    }

    static func ReduceL2(_ x: Tensor, _ p: Params) throws -> Tensor {
        try reduce(x, p, 0, { $0 + Double($1) * Double($1) }, finish: { $0.squareRoot() })
    }

    static func ReduceSumSquare(_ x: Tensor, _ p: Params) throws -> Tensor {
        if !x.dtype.isFloating { return try reduceInts(x, p, 0, { $0 &+ $1 &* $1 }) }
        return try reduce(x, p, 0, { $0 + Double($1) * Double($1) })
    }

    static func ReduceLogSum(_ x: Tensor, _ p: Params) throws -> Tensor {
        try reduce(x, p, 0, { $0 + Double($1) }, finish: { Foundation.log($0) })
    }

    /// Shifted by each output's maximum so `exp` cannot overflow.
    static func ReduceLogSumExp(_ x: Tensor, _ p: Params) throws -> Tensor {
        let s = try layout(x, p)
        let m = try ReduceMax(x, p).asFloats
        let v = s.values.asFloats
        var acc = [Double](repeating: 0, count: s.outer * s.inner)
        for o in 0..<s.outer {
            for k in 0..<s.red {
                for i in 0..<s.inner {
                    let j = o * s.inner + i
                    acc[j] += Foundation.exp(Double(v[(o * s.red + k) * s.inner + i]) - Double(m[j]))
                }
            }
        }
        let out = zip(acc, m).map { a, mx in mx.isInfinite ? (s.red == 0 ? -Float.infinity : mx) : Float(Foundation.log(a) + Double(mx)) }
        return Tensor(shape: s.shape, floats: out, dtype: x.dtype.isFloating ? x.dtype : .float32)
    }

    /// A reduction laid out as `[outer, red, inner]`: `values` is the input, transposed
    /// when the reduced axes were not contiguous; `shape` is the output shape.
    struct Layout {
        var values: Tensor
        var outer: Int, red: Int, inner: Int
        var shape: [Int]
    }

    /// Empty axes reduce everything unless `noop_with_empty_axes`, which reduces nothing
    /// (so ReduceSumSquare still squares, as the ONNX reference does).
    static func layout(_ x: Tensor, _ p: Params) throws -> Layout {
        let r = x.rank
        var axes: [Int]
        if let a = p.axes, !a.isEmpty {
            axes = Array(Set(try a.map { try normalizeAxis($0, rank: r) })).sorted()
        } else {
            axes = p.noopWithEmptyAxes != 0 ? [] : Array(0..<r)
        }
        let reduced = Set(axes)
        let shape = p.keepdims != 0 ? x.shape.enumerated().map { reduced.contains($0.offset) ? 1 : $0.element }
                                    : x.shape.enumerated().filter { !reduced.contains($0.offset) }.map(\.element)
        guard let first = axes.first, let last = axes.last else {
            return Layout(values: x, outer: x.count, red: 1, inner: 1, shape: shape)
        }
        let red = axes.reduce(1) { $0 * x.shape[$1] }
        if last - first + 1 == axes.count {
            return Layout(values: x, outer: x.shape[..<first].reduce(1, *), red: red,
                          inner: x.shape[(last + 1)...].reduce(1, *), shape: shape)
        }
        let kept = (0..<r).filter { !reduced.contains($0) }
        let t = try ShapeOps.Transpose(x, perm: kept + axes)
        return Layout(values: t, outer: kept.reduce(1) { $0 * x.shape[$1] }, red: red, inner: 1, shape: shape)
    }

    /// Float reduction: `f` folds each value into a Double accumulator, `finish` maps it out.
    @inline(__always)
    static func reduce(_ x: Tensor, _ p: Params, _ initial: Double, _ f: (Double, Float) -> Double,
                       finish: (Double) -> Double = { $0 }) throws -> Tensor {
        let s = try layout(x, p)
        let v = s.values.asFloats
        var acc = [Double](repeating: initial, count: s.outer * s.inner)
        v.withUnsafeBufferPointer { src in
            acc.withUnsafeMutableBufferPointer { a in
                if s.inner == 1 {
                    for o in 0..<s.outer {
                        var t = initial
                        for k in 0..<s.red { t = f(t, src[o * s.red + k]) }
                        a[o] = t
                    }
                } else if let from = src.baseAddress, let to = a.baseAddress {
                    // Row at a time through raw pointers, which the compiler vectorises.
                    for o in 0..<s.outer {
                        let acc = to + o * s.inner
                        for k in 0..<s.red {
                            let row = from + (o * s.red + k) * s.inner
                            for i in 0..<s.inner { acc[i] = f(acc[i], row[i]) }
                        }
                    }
                }
            }
        }
        return Tensor(shape: s.shape, floats: acc.map { Float(finish($0)) }, dtype: x.dtype.isFloating ? x.dtype : .float32)
    }

    /// The smallest and largest value of an integer dtype: what ReduceMax and ReduceMin
    /// of an empty set give.
    static func bounds(_ t: DType) -> (lo: Int64, hi: Int64) {
        switch t {
        case .bool: return (0, 1)
        case .int8: return (Int64(Int8.min), Int64(Int8.max))
        case .uint8: return (0, Int64(UInt8.max))
        case .int16: return (Int64(Int16.min), Int64(Int16.max))
        case .uint16: return (0, Int64(UInt16.max))
        case .int32: return (Int64(Int32.min), Int64(Int32.max))
        case .uint32: return (0, Int64(UInt32.max))
        case .uint64: return (0, .max)
        default: return (.min, .max)
        }
    }

    /// Integer reduction, wrapped to the input's dtype.
    @inline(__always)
    static func reduceInts(_ x: Tensor, _ p: Params, _ initial: Int64, _ f: (Int64, Int64) -> Int64) throws -> Tensor {
        let s = try layout(x, p)
        let v = s.values.ints
        var acc = [Int64](repeating: initial, count: s.outer * s.inner)
        for o in 0..<s.outer {
            for k in 0..<s.red {
                let base = (o * s.red + k) * s.inner
                for i in 0..<s.inner { acc[o * s.inner + i] = f(acc[o * s.inner + i], v[base + i]) }
            }
        }
        return Tensor(shape: s.shape, ints: acc.map(x.dtype.wrap), dtype: x.dtype)
    }

    static func ArgMax(_ x: Tensor, axis: Int, keepdims: Int, selectLastIndex: Int) throws -> Tensor {
        try arg(x, axis: axis, keepdims: keepdims, last: selectLastIndex != 0) { $0 > $1 }
    }

    static func ArgMin(_ x: Tensor, axis: Int, keepdims: Int, selectLastIndex: Int) throws -> Tensor {
        try arg(x, axis: axis, keepdims: keepdims, last: selectLastIndex != 0) { $0 < $1 }
    }

    /// Index of the first (or last) value that `better` prefers along `axis`, as int64.
    private static func arg(_ x: Tensor, axis: Int, keepdims: Int, last: Bool,
                            _ better: (Double, Double) -> Bool) throws -> Tensor {
        let a = try normalizeAxis(axis, rank: x.rank)
        let n = x.rank == 0 ? 1 : x.shape[a]
        guard n > 0 else { throw OpError("ArgMax/ArgMin over an empty axis \(a) of \(Tensor.describe(x.shape))") }
        let outer = x.rank == 0 ? 1 : x.shape[..<a].reduce(1, *)
        let inner = x.rank == 0 ? 1 : x.shape[(a + 1)...].reduce(1, *)
        let v: [Double] = x.dtype.isFloating ? x.floats.map(Double.init) : x.ints.map(Double.init)
        var out = [Int64](repeating: 0, count: outer * inner)
        for o in 0..<outer {
            for i in 0..<inner {
                var best = 0, bv = v[o * n * inner + i]
                for k in 1..<n {
                    let c = v[(o * n + k) * inner + i]
                    if better(c, bv) || (last && c == bv) { best = k; bv = c }
                }
                out[o * inner + i] = Int64(best)
            }
        }
        var shape = x.shape
        if x.rank > 0 { if keepdims != 0 { shape[a] = 1 } else { shape.remove(at: a) } }
        return Tensor(shape: shape, ints: out)
    }
}
