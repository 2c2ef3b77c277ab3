import ONNX

/// Slice, Pad, Gather and GatherElements.
extension ShapeOps {
    static let slicingTable: [String: OpEntry] = [
        "Slice": OpEntry { n, i, opset in
            let x = try n.required(i, 0, "data")
            if opset < 10 {
                guard let s = n.ints("starts"), let e = n.ints("ends") else { throw OpError("Slice needs starts and ends") }
                return [try Slice(x, starts: s, ends: e, axes: n.ints("axes"), steps: nil)]
            }
            return [try Slice(x, starts: ints(n.required(i, 1, "starts")), ends: ints(n.required(i, 2, "ends")),
                              axes: i.inputAt(3).map(ints), steps: i.inputAt(4).map(ints))]
        },
        "Pad": OpEntry(since: 2) { n, i, opset in
            let x = try n.required(i, 0, "data")
            let mode = n.string("mode", default: "constant")
            if opset < 11 {
                guard let pads = n.ints("pads") else { throw OpError("Pad needs pads") }
                return [try Pad(x, pads: pads, mode: mode, value: .scalar(n.float("value", default: 0)), axes: nil)]
            }
            return [try Pad(x, pads: ints(n.required(i, 1, "pads")), mode: mode,
                            value: i.inputAt(2), axes: i.inputAt(3).map(ints))]
        },
        "Gather": OpEntry { n, i, _ in
            [try Gather(n.required(i, 0, "data"), indices: n.required(i, 1, "indices"), axis: n.int("axis", default: 0))]
        },
        "GatherElements": OpEntry(since: 11) { n, i, _ in
            [try GatherElements(n.required(i, 0, "data"), indices: n.required(i, 1, "indices"), axis: n.int("axis", default: 0))]
        },
    ]

    /// Clamps each range as the ONNX spec does (so INT64_MAX/MIN ends mean "to the
    /// end/start"), then reads a strided view; negative steps walk backwards.
    static func Slice(_ x: Tensor, starts: [Int], ends: [Int], axes: [Int]?, steps: [Int]?) throws -> Tensor {
        let axes = axes ?? Array(0..<starts.count)
        let steps = steps ?? [Int](repeating: 1, count: starts.count)
        guard starts.count == ends.count, axes.count == starts.count, steps.count == starts.count else {
            throw OpError("starts \(starts), ends \(ends), axes \(axes) and steps \(steps) differ in length")
        }
        var shape = x.shape
        let st = stridesOf(x.shape)
        var strides = st
        var offset = 0
        var seen = Set<Int>()
        for k in 0..<axes.count {
            let a = try dimensionAxis(axes[k], rank: x.rank)
            guard seen.insert(a).inserted else { throw OpError("axis \(axes[k]) repeated in \(axes)") }
            let dim = x.shape[a], step = Swift.max(steps[k], -Int.max)
            guard step != 0 else { throw OpError("slice step 0 on axis \(a)") }
            var s = starts[k], e = ends[k]
            if s < 0 { s = s &+ dim }
            if e < 0 { e = e &+ dim }
            let count: Int
            if step > 0 {
                s = Swift.min(Swift.max(s, 0), dim); e = Swift.min(Swift.max(e, 0), dim)
                count = e > s ? (e - s - 1) / step + 1 : 0
            } else {
                s = Swift.min(Swift.max(s, 0), dim - 1); e = Swift.min(Swift.max(e, -1), dim - 1)
                count = s > e ? (s - e - 1) / -step + 1 : 0
            }
            shape[a] = count
            // With one element or none the step is never taken; a file's step of 2^62 times
            // the stride would overflow (with two or more, |step| < dim and it cannot).
            strides[a] = count > 1 ? st[a] * step : st[a]
            if count > 0 { offset += s * st[a] }
        }
        return x.strided(shape: shape, strides: strides, offset: offset)
    }

    /// `pads` lists all begins then all ends, for `axes` (default: every axis). Negative
    /// pads crop. Modes: constant, reflect (mirror without the edge), edge, wrap.
    static func Pad(_ x: Tensor, pads: [Int], mode: String, value: Tensor?, axes: [Int]?) throws -> Tensor {
        let r = x.rank
        let axes = try (axes ?? Array(0..<r)).map { try normalizeAxis($0, rank: r) }
        guard pads.count == 2 * axes.count else {
            throw OpError("pads \(pads) need 2 values per axis of \(Tensor.describe(x.shape))")
        }
        var begin = [Int](repeating: 0, count: r), end = begin
        for (k, a) in axes.enumerated() { begin[a] = pads[k]; end[a] = pads[k + axes.count] }
        let out = try (0..<r).map { d in
            let (a, o1) = x.shape[d].addingReportingOverflow(begin[d])
            let (b, o2) = a.addingReportingOverflow(end[d])
            guard !o1, !o2 else { throw OpError("pads \(pads) overflow on axis \(d) of \(Tensor.describe(x.shape))") }
            return b
        }
        guard out.allSatisfy({ $0 >= 0 }) else { throw OpError("pads \(pads) crop more than \(Tensor.describe(x.shape))") }
        try checkedCount(out, dtype: x.dtype, "Pad output")
        // Per dim, the source index each output position reads, or -1 for the constant.
        // Negative pads crop first; the modes then pad the cropped extent, as ONNX
        // Runtime does (wrap and reflect see only the kept values).
        var maps: [[Int]] = []
        for d in 0..<r {
            let lo = Swift.max(0, -begin[d]), n = x.shape[d] - lo - Swift.max(0, -end[d])
            let lead = Swift.max(0, begin[d])
            var m = [Int](repeating: -1, count: out[d])
            for o in 0..<out[d] {
                var i = o - lead
                if i < 0 || i >= n {
                    switch mode {
                    case "constant": m[o] = -1; continue
                    case "edge":
                        guard n > 0 else { throw OpError("edge padding of an empty axis \(d)") }
                        i = Swift.min(Swift.max(i, 0), n - 1)
                    case "reflect":
                        guard n > 0 else { throw OpError("reflect padding of an empty axis \(d)") }
                        if n == 1 { i = 0 } else {
                            let p = 2 * (n - 1)
                            i = ((i % p) + p) % p
                            if i >= n { i = p - i }
                        }
                    case "wrap":
                        guard n > 0 else { throw OpError("wrap padding of an empty axis \(d)") }
                        i = ((i % n) + n) % n
                    default: throw OpError("unknown pad mode '\(mode)'")
                    }
                }
                m[o] = lo + i
            }
            maps.append(m)
        }
        if x.dtype.isFloating {
            let c = value.map { $0.asFloats.first ?? 0 } ?? 0
            return Tensor(shape: out, floats: padded(x.floats, x.shape, out, maps, c), dtype: x.dtype)
        }
        let c = value.map { $0.asInts.first ?? 0 } ?? 0
        return Tensor(shape: out, ints: padded(x.ints, x.shape, out, maps, c), dtype: x.dtype)
    }

    /// Fills `out` from `src` through the per-dim source maps (-1 = `c`), a row at a time.
    private static func padded<T>(_ src: [T], _ shape: [Int], _ out: [Int], _ maps: [[Int]], _ c: T) -> [T] {
        let total = out.reduce(1, *)
        guard total > 0 else { return [] }
        guard let last = maps.last else { return src }
        let r = out.count, st = stridesOf(shape), w = out[r - 1]
        return [T](unsafeUninitializedCapacity: total) { buf, count in
            src.withUnsafeBufferPointer { p in
                var idx = [Int](repeating: 0, count: r)
                var o = 0
                while o < total {
                    var base = 0
                    for d in 0..<(r - 1) {
                        let i = maps[d][idx[d]]
                        if i < 0 { base = -1; break }
                        base += i * st[d]
                    }
                    if base < 0 {
                        for j in 0..<w { buf[o + j] = c }
                    } else {
                        for j in 0..<w { let m = last[j]; buf[o + j] = m < 0 ? c : p[base + m] }
                    }
                    o += w
                    var d = r - 2
                    while d >= 0 { idx[d] += 1; if idx[d] < out[d] { break }; idx[d] = 0; d -= 1 }
                }
            }
            count = total
        }
    }

    /// Output shape: `data[:axis] + indices + data[axis+1:]`. Negative indices count from the end.
    static func Gather(_ x: Tensor, indices: Tensor, axis: Int) throws -> Tensor {
        let a = try dimensionAxis(axis, rank: x.rank)
        let dim = x.shape[a]
        let idx = try indices.asInts.map { v -> Int in
            let i = v < 0 ? Int(v) + dim : Int(v)
            guard i >= 0, i < dim else { throw OpError("index \(v) out of range for axis \(a) of size \(dim)") }
            return i
        }
        let outer = x.shape[..<a].reduce(1, *), inner = x.shape[(a + 1)...].reduce(1, *)
        let out = Array(x.shape[..<a]) + indices.shape + Array(x.shape[(a + 1)...])
        // A tensor held only as codes (the INT8 runtime's uint8 chains) gathers its codes.
        if x.isCodesOnly, let c = x.codes {
            return Tensor(shape: out, codes: QuantizedCodes(values: gatherRows(c.values, idx, outer, dim, inner), scale: c.scale, zeroPoint: c.zeroPoint))
        }
        if x.dtype.isFloating {
            return Tensor(shape: out, floats: gatherRows(x.floats, idx, outer, dim, inner), dtype: x.dtype)
        }
        return Tensor(shape: out, ints: gatherRows(x.ints, idx, outer, dim, inner), dtype: x.dtype)
    }

    /// Copies row `idx[k]` (of `inner` values) of each of the `outer` blocks, in order.
    private static func gatherRows<T>(_ src: [T], _ idx: [Int], _ outer: Int, _ dim: Int, _ inner: Int) -> [T] {
        let n = outer * idx.count * inner
        return [T](unsafeUninitializedCapacity: n) { buf, count in
            src.withUnsafeBufferPointer { p in
                guard n > 0, let base = p.baseAddress, let dst = buf.baseAddress else { return }
                var o = 0
                for b in 0..<outer {
                    for i in idx {
                        (dst + o).initialize(from: base + (b * dim + i) * inner, count: inner)
                        o += inner
                    }
                }
            }
            count = n
        }
    }

    /// `out[i][j][k] = data[i][indices[i][j][k]][k]` (for axis 1): indices shape the output.
    static func GatherElements(_ x: Tensor, indices: Tensor, axis: Int) throws -> Tensor {
        let a = try dimensionAxis(axis, rank: x.rank)
        guard indices.rank == x.rank else {
            throw OpError("indices \(Tensor.describe(indices.shape)) and data \(Tensor.describe(x.shape)) differ in rank")
        }
        let st = stridesOf(x.shape), ist = stridesOf(indices.shape)
        let dim = x.shape[a]
        let iv = indices.asInts
        var src = [Int](repeating: 0, count: iv.count)
        for o in 0..<iv.count {
            var off = 0
            for d in 0..<x.rank {
                let c = (o / ist[d]) % indices.shape[d]
                if d == a {
                    let v = Int(iv[o]), i = v < 0 ? v + dim : v
                    guard i >= 0, i < dim else { throw OpError("index \(v) out of range for axis \(a) of size \(dim)") }
                    off += i * st[d]
                } else {
                    guard c < x.shape[d] else { throw OpError("indices \(Tensor.describe(indices.shape)) exceed data \(Tensor.describe(x.shape))") }
                    off += c * st[d]
                }
            }
            src[o] = off
        }
        return x.gathering(src, shape: indices.shape)
    }
}
