import ONNX

/// Ops that make tensors or change their type: Constant, ConstantOfShape, Cast, CastLike,
/// Range, NonZero, CumSum.
extension ShapeOps {
    static let creationTable: [String: OpEntry] = [
        "Constant": OpEntry { n, _, _ in [try Constant(n)] },
        "ConstantOfShape": OpEntry(since: 9) { n, i, _ in
            [try ConstantOfShape(shape: ints(n.required(i, 0, "input")), value: n.tensor("value"))]
        },
        "Cast": OpEntry(since: 6) { n, i, _ in
            guard let code = n.int("to"), let to = DType(onnxCode: code) else {
                throw OpError("unsupported Cast target type \(n.int("to").map(String.init) ?? "(missing)")")
            }
            return [Cast(try n.required(i, 0, "input"), to: to)]
        },
        "CastLike": OpEntry(since: 15) { n, i, _ in
            [Cast(try n.required(i, 0, "input"), to: try n.required(i, 1, "target_type").dtype)]
        },
        "Range": OpEntry(since: 11) { n, i, _ in
            [try Range(start: n.required(i, 0, "start"), limit: n.required(i, 1, "limit"), delta: n.required(i, 2, "delta"))]
        },
        "NonZero": OpEntry(since: 9) { n, i, _ in [NonZero(try n.required(i, 0, "X"))] },
        "CumSum": OpEntry(since: 11) { n, i, _ in
            let axis = try n.required(i, 1, "axis")
            guard axis.count == 1 else { throw OpError("CumSum axis must be a scalar, got \(Tensor.describe(axis.shape))") }
            return [try CumSum(n.required(i, 0, "x"), axis: Int(axis.asInts[0]),
                               exclusive: n.int("exclusive", default: 0), reverse: n.int("reverse", default: 0))]
        },
    ]

    /// The one value attribute the node carries: `value`, `value_float(s)` or `value_int(s)`.
    static func Constant(_ node: Node) throws -> Tensor {
        if let t = node.tensor("value") { return t }
        if let f = node.float("value_float") { return .scalar(f) }
        if let fs = node.floats("value_floats") { return Tensor(shape: [fs.count], floats: fs) }
        if let v = node.int("value_int") { return .scalar(Int64(v)) }
        if let vs = node.ints("value_ints") { return Tensor(shape: [vs.count], ints: vs.map { Int64($0) }) }
        throw OpError("Constant has no supported value attribute (sparse and string values are not supported)")
    }

    /// Fills `shape` with the one-element `value` (float32 0 by default), keeping its dtype.
    static func ConstantOfShape(shape: [Int], value: Tensor?) throws -> Tensor {
        guard shape.allSatisfy({ $0 >= 0 }) else { throw OpError("negative dim in shape \(shape)") }
        let v = value ?? .scalar(Float(0))
        guard v.count == 1 else { throw OpError("value must hold one element, got \(Tensor.describe(v.shape))") }
        let n = try checkedCount(shape, dtype: v.dtype, "ConstantOfShape output")
        return v.dtype.isFloating ? Tensor(shape: shape, floats: [Float](repeating: v.floats[0], count: n), dtype: v.dtype)
                                  : Tensor(shape: shape, ints: [Int64](repeating: v.ints[0], count: n), dtype: v.dtype)
    }

    /// Float to integer truncates toward zero, then wraps to the target width as a C cast
    /// does; anything to bool is `!= 0` (NaN is true); float16 targets are rounded to
    /// half precision though stored as Float.
    static func Cast(_ x: Tensor, to: DType) -> Tensor {
        if to.isFloating {
            var v = x.asFloats
            if to == .float16 {
                v = v.map { Float(Float16($0)) }
            }
            return Tensor(shape: x.shape, floats: v, dtype: to)
        }
        if to == .bool {
            let v: [Int64] = x.dtype.isFloating ? x.floats.map { $0 != 0 ? 1 : 0 } : x.ints.map { $0 != 0 ? 1 : 0 }
            return Tensor(shape: x.shape, ints: v, dtype: .bool)
        }
        let v = x.asInts
        return Tensor(shape: x.shape, ints: (to == .int64 || to == .uint64) ? v : v.map(to.wrap), dtype: to)
    }

    /// `ceil((limit - start) / delta)` values from `start`; the type is the inputs'.
    static func Range(start: Tensor, limit: Tensor, delta: Tensor) throws -> Tensor {
        guard start.count == 1, limit.count == 1, delta.count == 1 else {
            throw OpError("start, limit and delta must be scalars")
        }
        if start.dtype.isFloating {
            let s = start.floats[0], l = limit.asFloats[0], d = delta.asFloats[0]
            guard d != 0 else { throw OpError("Range delta is 0") }
            // The count in Double and the values accumulated in Float, as ONNX Runtime does.
            let q = (Double(l - s) / Double(d)).rounded(.up)
            guard !q.isNaN else { throw OpError("Range(\(s), \(l), \(d)) has no length (NaN)") }
            // Compared in Double first: Int(q) traps when q is beyond Int's range.
            let most = Double(TensorLimits.maxBytes / TensorLimits.storageBytes(start.dtype))
            guard q <= most else {
                throw OpError("Range(\(s), \(l), \(d)) has \(q) elements, over the limit of \(TensorLimits.describeBytes(TensorLimits.maxBytes)) (MPQ_MAX_TENSOR_BYTES)")
            }
            let n = q > 0 ? Int(q) : 0
            try checkedCount([n], dtype: start.dtype, "Range output")
            var v = [Float](repeating: 0, count: n)
            var acc = s
            for k in 0..<n { v[k] = acc; acc += d }
            return Tensor(shape: [n], floats: v, dtype: start.dtype)
        }
        let s = start.ints[0], l = limit.asInts[0], d = delta.asInts[0]
        guard d != 0 else { throw OpError("Range delta is 0") }
        let (diff, overflow) = l.subtractingReportingOverflow(s)
        let (quotient, divOverflow) = diff.dividedReportingOverflow(by: d)
        guard !overflow, !divOverflow else { throw OpError("Range(\(s), \(l), \(d)): the length overflows") }
        let n = Swift.max(Int(quotient + (diff % d != 0 && (diff < 0) == (d < 0) ? 1 : 0)), 0)
        try checkedCount([n], dtype: start.dtype, "Range output")
        return Tensor(shape: [n], ints: (0..<n).map { s + Int64($0) * d }, dtype: start.dtype)
    }

    /// `[rank, count]` int64 coordinates of the non-zero elements, in C order.
    static func NonZero(_ x: Tensor) -> Tensor {
        let nz: [Int] = x.dtype.isFloating ? x.floats.indices.filter { x.floats[$0] != 0 }
                                           : x.ints.indices.filter { x.ints[$0] != 0 }
        let st = stridesOf(x.shape)
        var v = [Int64](repeating: 0, count: x.rank * nz.count)
        for (k, flat) in nz.enumerated() {
            for d in 0..<x.rank { v[d * nz.count + k] = Int64((flat / st[d]) % x.shape[d]) }
        }
        return Tensor(shape: [x.rank, nz.count], ints: v)
    }

    /// Running sums along `axis`; `exclusive` shifts by one, `reverse` runs from the end.
    static func CumSum(_ x: Tensor, axis: Int, exclusive: Int, reverse: Int) throws -> Tensor {
        let a = try dimensionAxis(axis, rank: x.rank)
        let outer = x.shape[..<a].reduce(1, *), n = x.shape[a], inner = x.shape[(a + 1)...].reduce(1, *)
        // Integers add wrapping, as the elementwise ops do: a file's int64 extremes would trap.
        func scan<T: AdditiveArithmetic>(_ v: inout [T], _ add: (T, T) -> T) {
            for o in 0..<outer {
                for i in 0..<inner {
                    var acc = T.zero
                    for k0 in 0..<n {
                        let k = reverse != 0 ? n - 1 - k0 : k0
                        let p = (o * n + k) * inner + i
                        let x = v[p]
                        if exclusive != 0 { v[p] = acc; acc = add(acc, x) } else { acc = add(acc, x); v[p] = acc }
                    }
                }
            }
        }
        var y = x
        if x.dtype.isFloating { scan(&y.floats, +) } else { scan(&y.ints, &+) }
        return y
    }
}
