import CKernels
import ONNX

/// Ops that reshape or move data without arithmetic. Slice/Pad/Gather live in
/// `Shape+Slicing.swift`, tensor creation and Cast in `Shape+Creation.swift`, TopK/Scatter/
/// OneHot/Trilu in `Shape+Indexing.swift`, SpaceToDepth/DepthToSpace in `Shape+Blocks.swift`;
/// their tables merge here so OpRegistry sees one family.
enum ShapeOps {
    static let table: [String: OpEntry] = {
        var t: [String: OpEntry] = [
            "Reshape": OpEntry { n, i, opset in
                // Opset 5 made the target shape an input.
                let shape = opset < 5 ? n.ints("shape") ?? [] : ints(try n.required(i, 1, "shape"))
                return [try Reshape(n.required(i, 0, "data"), shape: shape,
                             allowzero: n.int("allowzero", default: 0))]
            },
            "Flatten": OpEntry { n, i, _ in [try Flatten(n.required(i, 0, "input"), axis: n.int("axis", default: 1))] },
            "Transpose": OpEntry { n, i, _ in [try Transpose(n.required(i, 0, "data"), perm: n.ints("perm"))] },
            "Squeeze": OpEntry { n, i, opset in
                let axes = opset < 13 ? n.ints("axes") : i.inputAt(1).map(ints)
                return [try Squeeze(n.required(i, 0, "data"), axes: axes)]
            },
            "Unsqueeze": OpEntry { n, i, opset in
                let axes = opset < 13 ? n.ints("axes") : i.inputAt(1).map(ints)
                guard let axes else { throw OpError("Unsqueeze needs axes") }
                return [try Unsqueeze(n.required(i, 0, "data"), axes: axes)]
            },
            "Shape": OpEntry { n, i, _ in [Shape(try n.required(i, 0, "data"), start: n.int("start"), end: n.int("end"))] },
            "Size": OpEntry { n, i, _ in [Size(try n.required(i, 0, "data"))] },
            "Concat": OpEntry(since: 4) { n, i, _ in
                guard let axis = n.int("axis") else { throw OpError("Concat needs an axis") }
                return [try Concat(i.compactMap { $0 }, axis: axis)]
            },
            "Split": OpEntry(since: 2) { n, i, opset in
                let split = opset < 13 ? n.ints("split") : i.inputAt(1).map(ints)
                let count = opset >= 18 ? n.int("num_outputs") ?? n.outputs.count : n.outputs.count
                return try Split(n.required(i, 0, "input"), axis: n.int("axis", default: 0), split: split, numOutputs: count)
            },
            "Expand": OpEntry(since: 8) { n, i, _ in
                [try Expand(n.required(i, 0, "input"), shape: ints(n.required(i, 1, "shape")))]
            },
            "Tile": OpEntry(since: 6) { n, i, _ in
                [try Tile(n.required(i, 0, "input"), repeats: ints(n.required(i, 1, "repeats")))]
            },
        ]
        t.merge(slicingTable) { a, _ in a }
        t.merge(creationTable) { a, _ in a }
        t.merge(indexingTable) { a, _ in a }
        t.merge(blocksTable) { a, _ in a }
        return t
    }()

    /// An integer input (shape, axes, repeats...) as [Int].
    static func ints(_ t: Tensor) -> [Int] { t.asInts.map { Int($0) } }

    /// `0` copies the input's dim (unless `allowzero`), `-1` is inferred from the rest.
    static func Reshape(_ x: Tensor, shape: [Int], allowzero: Int) throws -> Tensor {
        var out = shape
        var inferred: Int? = nil
        for (i, d) in shape.enumerated() {
            if d == 0 && allowzero == 0 {
                guard i < x.rank else { throw OpError("shape \(shape) copies dim \(i) of \(Tensor.describe(x.shape))") }
                out[i] = x.shape[i]
            } else if d == -1 {
                guard inferred == nil else { throw OpError("shape \(shape) has more than one -1") }
                inferred = i
            } else if d < 0 {
                throw OpError("invalid dim \(d) in shape \(shape)")
            }
        }
        if let k = inferred {
            guard let rest = TensorLimits.product(out.enumerated().filter { $0.offset != k }.map(\.element)),
                  rest != 0, x.count % rest == 0 else {
                throw OpError("cannot reshape \(Tensor.describe(x.shape)) to \(shape)")
            }
            out[k] = x.count / rest
        }
        guard TensorLimits.product(out) == x.count else {
            throw OpError("cannot reshape \(Tensor.describe(x.shape)) (\(x.count) values) to \(shape)")
        }
        return x.reshaped(out)
    }

    /// 2-D: dims before `axis` form the rows, the rest the columns. `axis` may equal rank.
    static func Flatten(_ x: Tensor, axis: Int) throws -> Tensor {
        let a = axis < 0 ? axis + x.rank : axis
        guard a >= 0, a <= x.rank else { throw OpError("axis \(axis) out of range for rank \(x.rank)") }
        return x.reshaped([x.shape[..<a].reduce(1, *), x.shape[a...].reduce(1, *)])
    }

    /// The default permutation reverses the dims.
    static func Transpose(_ x: Tensor, perm: [Int]?) throws -> Tensor {
        let p = perm ?? Array((0..<x.rank).reversed())
        guard p.count == x.rank, Set(p) == Set(0..<x.rank) else {
            throw OpError("perm \(p) is not a permutation of the dims of \(Tensor.describe(x.shape))")
        }
        if p == Array(0..<x.rank) { return x }
        let st = stridesOf(x.shape)
        return x.strided(shape: p.map { x.shape[$0] }, strides: p.map { st[$0] }, offset: 0)
    }

    /// Without axes, drops every dim of size 1.
    static func Squeeze(_ x: Tensor, axes: [Int]?) throws -> Tensor {
        guard let axes, !axes.isEmpty else { return x.reshaped(x.shape.filter { $0 != 1 }) }
        let drop = Set(try axes.map { try dimensionAxis($0, rank: x.rank) })
        for a in drop where x.shape[a] != 1 {
            throw OpError("cannot squeeze axis \(a) of size \(x.shape[a]) in \(Tensor.describe(x.shape))")
        }
        return x.reshaped(x.shape.enumerated().filter { !drop.contains($0.offset) }.map(\.element))
    }

    /// Axes refer to the output's rank.
    static func Unsqueeze(_ x: Tensor, axes: [Int]) throws -> Tensor {
        let r = x.rank + axes.count
        let add = Set(try axes.map { try normalizeAxis($0, rank: r) })
        guard add.count == axes.count else { throw OpError("repeated axis in \(axes)") }
        var out: [Int] = []
        var k = 0
        for d in 0..<r {
            if add.contains(d) { out.append(1) } else { out.append(x.shape[k]); k += 1 }
        }
        return x.reshaped(out)
    }

    /// Opset 15's `start`/`end` select a range of dims, clamped to the rank.
    static func Shape(_ x: Tensor, start: Int?, end: Int?) -> Tensor {
        let r = x.rank
        func clamp(_ v: Int) -> Int { Swift.min(Swift.max(v < 0 ? v + r : v, 0), r) }
        let s = clamp(start ?? 0), e = clamp(end ?? r)
        let dims = s < e ? x.shape[s..<e].map { Int64($0) } : []
        return Tensor(shape: [dims.count], ints: dims)
    }

    static func Size(_ x: Tensor) -> Tensor { .scalar(Int64(x.count)) }

    /// All inputs share rank and every dim but `axis`.
    static func Concat(_ xs: [Tensor], axis: Int) throws -> Tensor {
        guard let first = xs.first else { throw OpError("Concat needs at least one input") }
        let a = try dimensionAxis(axis, rank: first.rank)
        for x in xs where x.rank != first.rank || x.shape[..<a] != first.shape[..<a] || x.shape[(a + 1)...] != first.shape[(a + 1)...] {
            throw OpError("cannot concatenate \(Tensor.describe(x.shape)) with \(Tensor.describe(first.shape)) on axis \(axis)")
        }
        var out = first.shape
        out[a] = xs.reduce(0) { $0 + $1.shape[a] }
        let outer = first.shape[..<a].reduce(1, *)
        let inner = first.shape[(a + 1)...].reduce(1, *)
        let chunks = xs.map { $0.shape[a] * inner }
        if first.dtype.isFloating {
            let parts = xs.map { $0.dtype.isFloating ? $0.floats : $0.asFloats }
            return Tensor(shape: out, floats: interleave(parts, chunks, outer), dtype: first.dtype)
        }
        return Tensor(shape: out, ints: interleave(xs.map(\.asInts), chunks, outer), dtype: first.dtype)
    }

    /// Row `o` of the result is row `o` of each part, in order. Filled part by part with
    /// pointer copies into an uninitialised buffer: a detector head concatenates rows of 2-4
    /// values, where an `append(contentsOf:)` per row cost more than the copying.
    private static func interleave<T>(_ parts: [[T]], _ chunks: [Int], _ outer: Int) -> [T] {
        let row = chunks.reduce(0, +), total = row * outer
        return [T](unsafeUninitializedCapacity: total) { buf, count in
            var column = 0
            for (p, c) in zip(parts, chunks) where c > 0 {
                p.withUnsafeBufferPointer { src in
                    let from = src.baseAddress!, to = buf.baseAddress! + column
                    if c == 1 {
                        for o in 0..<outer { (to + o * row).initialize(to: from[o]) }
                    } else {
                        for o in 0..<outer { (to + o * row).initialize(from: from + o * c, count: c) }
                    }
                }
                column += c
            }
            count = total
        }
    }

    /// Explicit `split` sizes, or `numOutputs` equal parts with the last one smaller.
    static func Split(_ x: Tensor, axis: Int, split: [Int]?, numOutputs: Int) throws -> [Tensor] {
        let a = try dimensionAxis(axis, rank: x.rank)
        let dim = x.shape[a]
        var sizes: [Int]
        if let split, !split.isEmpty {
            // Each size bounded first: a sum of file-given sizes like 2^62 would trap.
            guard split.allSatisfy({ $0 >= 0 && $0 <= dim }), split.reduce(0, +) == dim else {
                throw OpError("split \(split) does not sum to dim \(dim) of \(Tensor.describe(x.shape))")
            }
            sizes = split
        } else {
            // Bounded so `dim + numOutputs` and `k * each` below cannot overflow.
            guard numOutputs > 0, numOutputs <= 1 << 20 else { throw OpError("Split needs 1 to 2^20 outputs, got \(numOutputs)") }
            let each = (dim + numOutputs - 1) / numOutputs
            sizes = (0..<numOutputs).map { Swift.max(0, Swift.min(each, dim - $0 * each)) }
        }
        let st = stridesOf(x.shape)
        var start = 0
        return sizes.map { s in
            var shape = x.shape
            shape[a] = s
            defer { start += s }
            return x.strided(shape: shape, strides: st, offset: start * st[a])
        }
    }

    /// Broadcasts the input to `shape` (which may itself be smaller: the result is the
    /// broadcast of both).
    static func Expand(_ x: Tensor, shape: [Int]) throws -> Tensor {
        guard shape.allSatisfy({ $0 >= 0 }) else { throw OpError("Expand shape \(shape) has a negative dim") }
        let out = try Broadcast.shape(x.shape, shape)
        try checkedCount(out, dtype: x.dtype, "Expand output")
        return x.strided(shape: out, strides: Broadcast.strides(x.shape, in: out), offset: 0)
    }

    /// Reads the input as a `[r0, s0, r1, s1, ...]` view with stride 0 on the repeats.
    static func Tile(_ x: Tensor, repeats: [Int]) throws -> Tensor {
        guard repeats.count == x.rank, repeats.allSatisfy({ $0 >= 0 }) else {
            throw OpError("repeats \(repeats) do not match \(Tensor.describe(x.shape))")
        }
        let outShape = try zip(x.shape, repeats).map { s, r in
            let (p, overflow) = s.multipliedReportingOverflow(by: r)
            guard !overflow else { throw OpError("repeats \(repeats) of \(Tensor.describe(x.shape)) overflow") }
            return p
        }
        try checkedCount(outShape, dtype: x.dtype, "Tile output")
        let st = stridesOf(x.shape)
        var shape: [Int] = [], strides: [Int] = []
        for d in 0..<x.rank { shape += [repeats[d], x.shape[d]]; strides += [0, st[d]] }
        return x.strided(shape: shape, strides: strides, offset: 0).reshaped(outShape)
    }
}

extension Tensor {
    /// A copy of the strided view `out[i...] = self[offset + Σ i_d * strides[d]]`: the one
    /// data mover behind Transpose, Slice, Split, Expand and Tile. Strides may be 0
    /// (broadcast) or negative (reversed slices).
    /// A tensor held only as codes (the INT8 runtime's uint8 chains) moves its codes: the
    /// same elements the float form would select (Transpose, Slice on a chain).
    func strided(shape out: [Int], strides: [Int], offset: Int) -> Tensor {
        strided(shape: out, strides: strides, offset: offset, mover: Tensor.defaultMover)
    }

    /// How `strided` moves the elements: `pool` is `mpq_strided_copy` (C, rows split over
    /// the cores from 64k elements up), `reference` the Swift loop below (kept as the
    /// reference the differential tests compare against; `MPQ_KERNEL_PATH=reference` picks it).
    enum StridedMover: Sendable { case reference, pool }

    static let defaultMover: StridedMover =
        mpq_resolve_kernel_path(MPQ_PATH_AUTO) == MPQ_PATH_REFERENCE ? .reference : .pool

    func strided(shape out: [Int], strides: [Int], offset: Int, mover: StridedMover) -> Tensor {
        if isCodesOnly, let c = codes {
            return Tensor(shape: out, codes: QuantizedCodes(values: Tensor.strided(c.values, out, strides, offset, mover),
                                                            scale: c.scale, zeroPoint: c.zeroPoint))
        }
        if dtype.isFloating {
            return Tensor(shape: out, floats: Tensor.strided(floats, out, strides, offset, mover), dtype: dtype)
        }
        return Tensor(shape: out, ints: Tensor.strided(ints, out, strides, offset, mover), dtype: dtype)
    }

    private static func strided<T>(_ src: [T], _ out: [Int], _ strides: [Int], _ offset: Int,
                                   _ mover: StridedMover) -> [T] {
        let n = out.reduce(1, *)
        if n == 0 { return [] }
        // Drop size-1 dims and merge dims that are contiguous with each other.
        var dims: [Int] = [], st: [Int] = []
        for d in 0..<out.count where out[d] != 1 {
            if let last = dims.last, st.last! == strides[d] * out[d] {
                dims[dims.count - 1] = last * out[d]; st[st.count - 1] = strides[d]
            } else { dims.append(out[d]); st.append(strides[d]) }
        }
        if dims.isEmpty { return [src[offset]] }
        let r = dims.count
        if mover == .pool, r <= Int(MPQ_STRIDED_MAX_RANK) {
            let cdims = dims.map { UInt($0) }
            return [T](unsafeUninitializedCapacity: n) { buf, count in
                let rc = src.withUnsafeBufferPointer { p in
                    mpq_strided_copy(MemoryLayout<T>.stride, p.baseAddress, offset, Int32(r), cdims, st,
                                     buf.baseAddress, rowThreads(n))
                }
                precondition(rc == 0, "mpq_strided_copy rejected \(MemoryLayout<T>.stride)-byte elements, rank \(r)")
                count = n
            }
        }
        let inner = dims[r - 1], s = st[r - 1]
        return [T](unsafeUninitializedCapacity: n) { buf, count in
            src.withUnsafeBufferPointer { p in
                var idx = [Int](repeating: 0, count: r)
                var off = offset, o = 0
                let base = p.baseAddress!, dst = buf.baseAddress!
                for _ in 0..<(n / inner) {
                    // Raw pointers per row: the compiler vectorises these, not the array form.
                    let from = base + off, to = dst + o
                    if s == 1 {
                        for j in 0..<inner { to[j] = from[j] }
                    } else {
                        for j in 0..<inner { to[j] = from[j * s] }
                    }
                    o += inner
                    var d = r - 2
                    while d >= 0 {
                        idx[d] += 1; off += st[d]
                        if idx[d] < dims[d] { break }
                        off -= st[d] * dims[d]; idx[d] = 0; d -= 1
                    }
                }
            }
            count = n
        }
    }
}
