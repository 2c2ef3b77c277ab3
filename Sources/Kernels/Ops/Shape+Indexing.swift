import ONNX

/// Index-driven ops PyTorch exports use around attention and detection heads: TopK,
/// ScatterND, ScatterElements, OneHot, Trilu, EyeLike.
extension ShapeOps {
    static let indexingTable: [String: OpEntry] = [
        "TopK": OpEntry { n, i, opset in
            let k = opset < 10 ? n.int("k") : i.inputAt(1).flatMap { $0.asInts.first.map(Int.init) }
            guard let k else { throw OpError("TopK needs k") }
            return try TopK(n.required(i, 0, "X"), k: k, axis: n.int("axis", default: -1),
                            largest: n.int("largest", default: 1), sorted: n.int("sorted", default: 1))
        },
        "ScatterND": OpEntry(since: 11) { n, i, _ in
            [try ScatterND(n.required(i, 0, "data"), indices: n.required(i, 1, "indices"), updates: n.required(i, 2, "updates"),
                           reduction: n.string("reduction", default: "none"))]
        },
        "ScatterElements": OpEntry(since: 11) { n, i, _ in
            [try ScatterElements(n.required(i, 0, "data"), indices: n.required(i, 1, "indices"), updates: n.required(i, 2, "updates"),
                                 axis: n.int("axis", default: 0), reduction: n.string("reduction", default: "none"))]
        },
        "OneHot": OpEntry(since: 9) { n, i, _ in
            [try OneHot(n.required(i, 0, "indices"), depth: n.required(i, 1, "depth"), values: n.required(i, 2, "values"),
                        axis: n.int("axis", default: -1))]
        },
        "Trilu": OpEntry(since: 14) { n, i, _ in
            [try Trilu(n.required(i, 0, "input"), k: Int(i.inputAt(1)?.asInts.first ?? 0), upper: n.int("upper", default: 1))]
        },
        "EyeLike": OpEntry(since: 9) { n, i, _ in
            [try EyeLike(n.required(i, 0, "input"), dtype: n.int("dtype").flatMap { DType(onnxCode: $0) }, k: n.int("k", default: 0))]
        },
    ]

    /// The `k` largest (or smallest) values along `axis` and their int64 indices, always
    /// sorted; equal values keep the lower index first, as ONNX Runtime does.
    static func TopK(_ x: Tensor, k: Int, axis: Int, largest: Int, sorted: Int) throws -> [Tensor] {
        let a = try dimensionAxis(axis, rank: x.rank)
        let n = x.shape[a]
        guard k >= 0, k <= n else { throw OpError("k \(k) out of range for axis \(a) of size \(n)") }
        let outer = x.shape[..<a].reduce(1, *), inner = x.shape[(a + 1)...].reduce(1, *)
        let v = x.asFloats
        var outShape = x.shape
        outShape[a] = k
        var src = [Int](repeating: 0, count: outer * k * inner)
        var idx = [Int64](repeating: 0, count: src.count)
        for o in 0..<outer {
            for i in 0..<inner {
                let base = o * n * inner + i
                let order = (0..<n).sorted { p, q in
                    let a = v[base + p * inner], b = v[base + q * inner]
                    if a == b { return p < q }
                    return largest != 0 ? a > b : a < b
                }
                for j in 0..<k {
                    let out = (o * k + j) * inner + i
                    src[out] = base + order[j] * inner
                    idx[out] = Int64(order[j])
                }
            }
        }
        return [x.gathering(src, shape: outShape), Tensor(shape: outShape, ints: idx)]
    }

    /// Combines an update into an existing value for the Scatter ops' `reduction`.
    private static func combine(_ reduction: String) throws -> (Double, Double) -> Double {
        switch reduction {
        case "none": return { _, u in u }
        case "add": return { $0 + $1 }
        case "mul": return { $0 * $1 }
        case "max": return { Swift.max($0, $1) }
        case "min": return { Swift.min($0, $1) }
        default: throw OpError("unknown reduction '\(reduction)'")
        }
    }

    /// Writes `updates` at the positions `indices` selects: rows of its last dim index the
    /// leading dims of `data`; the rest of each update is a slice.
    static func ScatterND(_ x: Tensor, indices: Tensor, updates: Tensor, reduction: String) throws -> Tensor {
        let f = try combine(reduction)
        guard let q = indices.shape.last, q <= x.rank else {
            throw OpError("indices \(Tensor.describe(indices.shape)) do not index data \(Tensor.describe(x.shape))")
        }
        let st = stridesOf(x.shape)
        let slice = x.shape[q...].reduce(1, *)
        let rows = indices.count / Swift.max(q, 1)
        guard updates.count == rows * slice else {
            throw OpError("updates \(Tensor.describe(updates.shape)) do not match indices \(Tensor.describe(indices.shape)) into \(Tensor.describe(x.shape))")
        }
        let iv = indices.asInts
        var dst: [Int] = []
        for r in 0..<rows {
            var off = 0
            for d in 0..<q {
                let v = Int(iv[r * q + d]), i = v < 0 ? v + x.shape[d] : v
                guard i >= 0, i < x.shape[d] else { throw OpError("index \(v) out of range for axis \(d) of size \(x.shape[d])") }
                off += i * st[d]
            }
            dst.append(off)
        }
        return scatter(x, updates, f) { u in dst[u / slice] + u % slice }
    }

    /// `data[..., indices[i,j,k], ...] = updates[i,j,k]` along `axis`.
    static func ScatterElements(_ x: Tensor, indices: Tensor, updates: Tensor, axis: Int, reduction: String) throws -> Tensor {
        let f = try combine(reduction)
        let a = try dimensionAxis(axis, rank: x.rank)
        guard indices.shape == updates.shape, indices.rank == x.rank else {
            throw OpError("indices \(Tensor.describe(indices.shape)) and updates \(Tensor.describe(updates.shape)) must match data's rank \(x.rank)")
        }
        let st = stridesOf(x.shape), ist = stridesOf(indices.shape)
        let iv = indices.asInts
        var dst = [Int](repeating: 0, count: iv.count)
        for u in 0..<iv.count {
            var off = 0
            for d in 0..<x.rank {
                var c = (u / ist[d]) % indices.shape[d]
                if d == a {
                    let v = Int(iv[u]); c = v < 0 ? v + x.shape[d] : v
                    guard c >= 0, c < x.shape[d] else { throw OpError("index \(v) out of range for axis \(d) of size \(x.shape[d])") }
                }
                off += c * st[d]
            }
            dst[u] = off
        }
        return scatter(x, updates, f) { dst[$0] }
    }

    /// Applies every update `u` to `target(u)` in order (later updates win for "none").
    private static func scatter(_ x: Tensor, _ updates: Tensor, _ f: (Double, Double) -> Double,
                                _ target: (Int) -> Int) -> Tensor {
        var y = x
        if x.dtype.isFloating {
            let uv = updates.asFloats
            for u in 0..<uv.count { let t = target(u); y.floats[t] = Float(f(Double(y.floats[t]), Double(uv[u]))) }
        } else {
            let uv = updates.asInts
            for u in 0..<uv.count { let t = target(u); y.ints[t] = x.dtype.wrap(Int64(f(Double(y.ints[t]), Double(uv[u])))) }
        }
        return y
    }

    /// `values = [off, on]`; a new axis of size `depth` at `axis`. Indices in
    /// `[-depth, depth)` select a position (negative ones from the end); others give all off.
    static func OneHot(_ indices: Tensor, depth: Tensor, values: Tensor, axis: Int) throws -> Tensor {
        // Checked as Float: Int(_:) traps on NaN or a value beyond Int's range.
        guard let f = depth.asFloats.first, f.isFinite, f >= 1, f <= Float(TensorLimits.maxBytes) else {
            throw OpError("depth must be a positive scalar within the tensor limit, got \(depth.asFloats.prefix(4))")
        }
        let d = Int(f)
        guard values.count == 2 else { throw OpError("values must hold [off, on], got \(Tensor.describe(values.shape))") }
        let r = indices.rank + 1
        let a = try normalizeAxis(axis, rank: r)
        var shape = indices.shape
        shape.insert(d, at: a)
        try checkedCount(shape, dtype: values.dtype, "OneHot output")
        let outer = indices.shape[..<a].reduce(1, *), inner = indices.shape[a...].reduce(1, *)
        let iv = indices.asInts.map { Int($0) }
        var hot = [Bool](repeating: false, count: outer * d * inner)
        for o in 0..<outer {
            for i in 0..<inner {
                var v = iv[o * inner + i]
                if v < 0 { v += d }
                if v >= 0 && v < d { hot[(o * d + v) * inner + i] = true }
            }
        }
        if values.dtype.isFloating {
            return Tensor(shape: shape, floats: hot.map { $0 ? values.floats[1] : values.floats[0] }, dtype: values.dtype)
        }
        return Tensor(shape: shape, ints: hot.map { $0 ? values.ints[1] : values.ints[0] }, dtype: values.dtype)
    }

    /// Keeps the upper (`j - i >= k`) or lower (`j - i <= k`) triangle of the last two dims.
    static func Trilu(_ x: Tensor, k: Int, upper: Int) throws -> Tensor {
        guard x.rank >= 2 else { throw OpError("Trilu needs rank >= 2, got \(Tensor.describe(x.shape))") }
        let rows = x.shape[x.rank - 2], cols = x.shape[x.rank - 1]
        var y = x
        for p in 0..<x.count {
            let j = p % cols, i = (p / cols) % rows
            let keep = upper != 0 ? j - i >= k : j - i <= k
            if !keep { if x.dtype.isFloating { y.floats[p] = 0 } else { y.ints[p] = 0 } }
        }
        return y
    }

    /// Ones on the `k`-th diagonal of a 2-D tensor shaped like the input.
    static func EyeLike(_ x: Tensor, dtype: DType?, k: Int) throws -> Tensor {
        guard x.rank == 2 else { throw OpError("EyeLike needs a 2-D input, got \(Tensor.describe(x.shape))") }
        var y = Tensor.zeros(x.shape, dtype: dtype ?? x.dtype)
        for i in 0..<x.shape[0] {
            let (j, overflow) = i.addingReportingOverflow(k)   // k is the file's, up to Int.max
            guard !overflow, j >= 0, j < x.shape[1] else { continue }
            if y.dtype.isFloating { y.floats[i * x.shape[1] + j] = 1 } else { y.ints[i * x.shape[1] + j] = 1 }
        }
        return y
    }
}
