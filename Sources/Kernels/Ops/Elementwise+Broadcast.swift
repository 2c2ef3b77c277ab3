import ONNX

/// Numpy-style multidirectional broadcasting, shared by the elementwise, activation and
/// shape families.
///
/// The binary kernel coalesces adjacent dimensions that both inputs traverse the same way
/// (both contiguous or both broadcast), so `[N,C,H,W] + [1,C,1,1]` becomes a loop over
/// `N*C` rows of `H*W` elements with a constant right operand, which the compiler vectorises.
enum Broadcast {
    /// The broadcast shape of two shapes, or an error naming both.
    static func shape(_ a: [Int], _ b: [Int]) throws -> [Int] {
        if a == b { return a }
        let r = max(a.count, b.count)
        var out = [Int](repeating: 1, count: r)
        for i in 0..<r {
            let da = i < r - a.count ? 1 : a[i - (r - a.count)]
            let db = i < r - b.count ? 1 : b[i - (r - b.count)]
            if da == db || db == 1 { out[i] = da } else if da == 1 { out[i] = db } else {
                throw OpError("shapes \(Tensor.describe(a)) and \(Tensor.describe(b)) do not broadcast")
            }
        }
        // Two small inputs can broadcast to an enormous output ([2^20,1] + [1,2^20]).
        try checkedCount(out, "broadcast of \(Tensor.describe(a)) and \(Tensor.describe(b))")
        return out
    }

    /// The broadcast shape of any number of shapes.
    static func shape(_ shapes: [[Int]]) throws -> [Int] {
        guard var out = shapes.first else { return [] }
        for s in shapes.dropFirst() { out = try shape(out, s) }
        return out
    }

    /// Element strides of `shape` when read as `out` (right-aligned; 0 on broadcast dims).
    static func strides(_ shape: [Int], in out: [Int]) -> [Int] {
        let own = stridesOf(shape)
        let lead = out.count - shape.count
        return (0..<out.count).map { i in
            i < lead || shape[i - lead] == 1 ? 0 : own[i - lead]
        }
    }

    /// For each element of `out` (C order), the flat index it reads from a tensor of `shape`.
    /// Used by ops that are not hot enough for a dedicated kernel (Where, Expand).
    static func indices(_ shape: [Int], to out: [Int]) -> [Int] {
        let n = out.reduce(1, *)
        if shape == out { return Array(0..<n) }
        let st = strides(shape, in: out)
        var result = [Int](repeating: 0, count: n)
        var idx = [Int](repeating: 0, count: out.count)
        var off = 0
        for o in 0..<n {
            result[o] = off
            var d = out.count - 1
            while d >= 0 {
                idx[d] += 1; off += st[d]
                if idx[d] < out[d] { break }
                off -= st[d] * out[d]; idx[d] = 0; d -= 1
            }
        }
        return result
    }

    /// Applies `f` elementwise to two broadcast arrays. Inlined into each caller so that
    /// `f` is specialised and the inner loops vectorise.
    @inline(__always)
    static func binary<T, U>(_ a: [T], _ sa: [Int], _ b: [T], _ sb: [Int],
                             _ f: (T, T) -> U) throws -> (shape: [Int], values: [U]) {
        let out = try shape(sa, sb)
        let n = out.reduce(1, *)
        if n == 0 { return (out, []) }
        let values = [U](unsafeUninitializedCapacity: n) { buf, count in
            a.withUnsafeBufferPointer { pa in
                b.withUnsafeBufferPointer { pb in
                    if sa == sb {
                        for i in 0..<n { buf[i] = f(pa[i], pb[i]) }
                    } else if pb.count == 1 {
                        let y = pb[0]
                        for i in 0..<n { buf[i] = f(pa[i], y) }
                    } else if pa.count == 1 {
                        let x = pa[0]
                        for i in 0..<n { buf[i] = f(x, pb[i]) }
                    } else if sa == out, isTrailingRow(sb, of: out) {
                        // b is one row repeated along the leading axes (a bias [N] onto
                        // [B, L, N]: every unfused MatMul + Add a calibration pass runs).
                        let m = pb.count
                        for o in stride(from: 0, to: n, by: m) { for j in 0..<m { buf[o + j] = f(pa[o + j], pb[j]) } }
                    } else if sb == out, isTrailingRow(sa, of: out) {
                        let m = pa.count
                        for o in stride(from: 0, to: n, by: m) { for j in 0..<m { buf[o + j] = f(pa[j], pb[o + j]) } }
                    } else {
                        general(pa, sa, pb, sb, out, buf, f)
                    }
                }
            }
            count = n
        }
        return (out, values)
    }

    /// Whether `s` (leading 1s aside) is the trailing axes of `out`: its values repeat
    /// along out's leading axes, a row of out's innermost elements at a time.
    static func isTrailingRow(_ s: [Int], of out: [Int]) -> Bool {
        let core = s.drop(while: { $0 == 1 })
        return !core.isEmpty && core.count <= out.count && out.suffix(core.count).elementsEqual(core)
    }

    /// The strided loop behind `binary` for genuinely broadcast shapes.
    @inline(__always)
    private static func general<T, U>(_ pa: UnsafeBufferPointer<T>, _ sa: [Int],
                                      _ pb: UnsafeBufferPointer<T>, _ sb: [Int], _ out: [Int],
                                      _ buf: UnsafeMutableBufferPointer<U>, _ f: (T, T) -> U) {
        // Coalesce dims: merge d into d+1 when both inputs step through them alike.
        var dims: [Int] = [], stA: [Int] = [], stB: [Int] = []
        let fa = strides(sa, in: out), fb = strides(sb, in: out)
        for d in 0..<out.count where out[d] != 1 {
            if let last = dims.last, stA.last! == fa[d] * out[d], stB.last! == fb[d] * out[d] {
                dims[dims.count - 1] = last * out[d]
                stA[stA.count - 1] = fa[d]; stB[stB.count - 1] = fb[d]
            } else {
                dims.append(out[d]); stA.append(fa[d]); stB.append(fb[d])
            }
        }
        if dims.isEmpty { dims = [1]; stA = [0]; stB = [0] }
        let r = dims.count
        let inner = dims[r - 1], ia = stA[r - 1], ib = stB[r - 1]
        let outer = buf.count / inner
        var idx = [Int](repeating: 0, count: r)
        var offA = 0, offB = 0, o = 0
        let pA = pa.baseAddress!, pB = pb.baseAddress!, pO = buf.baseAddress!
        for _ in 0..<outer {
            row(pA + offA, ia, pB + offB, ib, pO + o, inner, f)
            o += inner
            var d = r - 2
            while d >= 0 {
                idx[d] += 1; offA += stA[d]; offB += stB[d]
                if idx[d] < dims[d] { break }
                offA -= stA[d] * dims[d]; offB -= stB[d] * dims[d]; idx[d] = 0; d -= 1
            }
        }
    }

    /// One output row of `binary`'s strided loop; the unit/zero-stride cases are split out
    /// so each vectorises.
    @inline(__always)
    private static func row<T, U>(_ a: UnsafePointer<T>, _ ia: Int, _ b: UnsafePointer<T>, _ ib: Int,
                                  _ out: UnsafeMutablePointer<U>, _ n: Int, _ f: (T, T) -> U) {
        if ia == 1 && ib == 1 {
            for j in 0..<n { out[j] = f(a[j], b[j]) }
        } else if ia == 1 && ib == 0 {
            let y = b[0]
            for j in 0..<n { out[j] = f(a[j], y) }
        } else if ia == 0 && ib == 1 {
            let x = a[0]
            for j in 0..<n { out[j] = f(x, b[j]) }
        } else {
            for j in 0..<n { out[j] = f(a[j * ia], b[j * ib]) }
        }
    }

    /// Float op on two tensors (ints are converted); the result keeps `a`'s float dtype.
    @inline(__always)
    static func floats(_ a: Tensor, _ b: Tensor, _ f: (Float, Float) -> Float) throws -> Tensor {
        let r = try binary(a.asFloats, a.shape, b.asFloats, b.shape, f)
        let dt: DType = a.dtype.isFloating ? a.dtype : (b.dtype.isFloating ? b.dtype : .float32)
        return Tensor(shape: r.shape, floats: r.values, dtype: dt)
    }

    /// Integer op on two tensors; the result is wrapped into `a`'s integer dtype.
    @inline(__always)
    static func ints(_ a: Tensor, _ b: Tensor, _ f: (Int64, Int64) -> Int64) throws -> Tensor {
        // The result takes `a`'s dtype, which must then be an integer type (a float
        // tensor here would trip Tensor's storage precondition).
        guard !a.dtype.isFloating, !b.dtype.isFloating else {
            throw OpError("needs integer tensors, got \(a.dtype) and \(b.dtype)")
        }
        let r = try binary(a.asInts, a.shape, b.asInts, b.shape, f)
        let dt = a.dtype
        let v = (dt == .int64 || dt == .uint64) ? r.values : r.values.map { dt.wrap($0) }
        return Tensor(shape: r.shape, ints: v, dtype: dt)
    }

    /// Arithmetic dispatch: float storage when either side is floating, else integer.
    @inline(__always)
    static func arithmetic(_ a: Tensor, _ b: Tensor, float f: (Float, Float) -> Float,
                           int g: (Int64, Int64) -> Int64) throws -> Tensor {
        if a.dtype.isFloating || b.dtype.isFloating { return try floats(a, b, f) }
        return try ints(a, b, g)
    }

    /// Comparison on two tensors, as bool. Compares in the shared storage type.
    @inline(__always)
    static func compare(_ a: Tensor, _ b: Tensor, float f: (Float, Float) -> Bool,
                        int g: (Int64, Int64) -> Bool) throws -> Tensor {
        if a.dtype.isFloating || b.dtype.isFloating {
            let r = try binary(a.asFloats, a.shape, b.asFloats, b.shape) { x, y -> Int64 in f(x, y) ? 1 : 0 }
            return Tensor(shape: r.shape, ints: r.values, dtype: .bool)
        }
        let r = try binary(a.ints, a.shape, b.ints, b.shape) { x, y -> Int64 in g(x, y) ? 1 : 0 }
        return Tensor(shape: r.shape, ints: r.values, dtype: .bool)
    }
}

extension Tensor {
    /// Applies `f` to every float in place (float tensors) and returns the result.
    @inline(__always)
    func mapFloats(_ f: (Float) -> Float) -> Tensor {
        var t = self
        if !t.dtype.isFloating { t = Tensor(shape: shape, floats: asFloats) }
        t.floats.withUnsafeMutableBufferPointer { p in
            for i in p.indices { p[i] = f(p[i]) }
        }
        return t
    }

    /// Applies `f` to every integer in place (integer tensors), wrapping to the dtype.
    @inline(__always)
    func mapInts(_ f: (Int64) -> Int64) -> Tensor {
        var t = self
        let dt = dtype
        let wrap = dt != .int64 && dt != .uint64
        t.ints.withUnsafeMutableBufferPointer { p in
            for i in p.indices { p[i] = wrap ? dt.wrap(f(p[i])) : f(p[i]) }
        }
        return t
    }

    /// A tensor of the same dtype and storage kind holding the elements at `idx` (flat
    /// indices into self), under `shape`. The generic data mover behind shape ops.
    func gathering(_ idx: [Int], shape: [Int]) -> Tensor {
        if dtype.isFloating {
            let v = floats.withUnsafeBufferPointer { p in idx.map { p[$0] } }
            return Tensor(shape: shape, floats: v, dtype: dtype)
        }
        let v = ints.withUnsafeBufferPointer { p in idx.map { p[$0] } }
        return Tensor(shape: shape, ints: v, dtype: dtype)
    }
}

extension Array where Element == Tensor? {
    /// Input `i`, or nil when omitted ("") or past the end (trailing optional inputs).
    func inputAt(_ i: Int) -> Tensor? { i < count ? self[i] : nil }
}
