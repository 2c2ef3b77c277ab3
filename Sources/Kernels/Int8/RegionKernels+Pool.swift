import ONNX

/// Region ops that move codes run on the bytes themselves where that is simple, instead of
/// the movement form's round trip (codes to floats, the FP32 op, quantize back).
extension RegionKernels {
    /// MaxPool of a tensor held as codes on the output's grid, in C on the bytes
    /// (`mpq_maxpool2d_u8`): the codes the generic movement form gives (which pools the
    /// codes as floats and quantizes them back: -inf, a window wholly in padding, to 0)
    /// without its two float passes. Nil for what the kernel does not cover (3-D windows,
    /// the indices output), which then takes the movement form.
    static func maxPoolOnCodes(_ node: Node, _ x: Tensor, _ c: QuantizedCodes, path: KernelPath) throws -> Tensor? {
        guard node.opType == "MaxPool", node.outputs.count == 1 || node.outputs[1].isEmpty else { return nil }
        let (nc, g) = try PoolOps.poolGeometry(x, "MaxPool", node.string("auto_pad", default: "NOTSET"),
                                               node.int("ceil_mode", default: 0) != 0, node.ints("dilations"),
                                               node.ints("kernel_shape"), node.ints("pads"), node.ints("strides"))
        guard let y = PoolOps.maxPoolCodes(c.values, nc, g, path: path) else { return nil }
        return Tensor(shape: nc + g.outputShape, codes: QuantizedCodes(values: y, scale: c.scale, zeroPoint: c.zeroPoint))
    }

    /// Movement ops whose FP32 kernels also take a tensor held only as codes and return its
    /// codes moved (`Tensor.reshaped` keeps them; `Tensor.strided` and the nearest Resize
    /// gather move them), so on a chain they run on the bytes, without the round trip.
    static let codesNativeOps: Set<String> = ["Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Transpose",
                                              "Resize", "Upsample", "Slice", "Gather"]

    /// `node` run on its input held as codes on the output's grid (the caller checked),
    /// giving the codes the movement form's round trip gives: these ops only select
    /// elements. Nil for ops outside `codesNativeOps` or a result not held as codes (a
    /// Resize that had to materialise), which then take the movement form.
    static func moveCodes(_ node: Node, _ inputs: [Tensor?], session: Session) throws -> Tensor? {
        guard codesNativeOps.contains(node.opType), node.outputs.count == 1 else { return nil }
        let outs = try session.runNode(node, inputs: inputs)
        guard outs.count == 1, let y = outs.first, y.isCodesOnly, let c = y.codes, c.values.count == y.count else { return nil }
        return y
    }

    /// Concat of code arrays already on the output grid `q`: for each outer index, each
    /// input's contiguous block in turn. Nil when the shapes do not concatenate (the FP32
    /// op then reports the error, naming the node).
    static func concatCodes(_ node: Node, _ shapes: [[Int]], _ codes: [[UInt8]], _ q: ActivationQuant) throws -> Tensor? {
        guard let first = shapes.first, !first.isEmpty else { return nil }
        let rank = first.count
        var axis = node.int("axis", default: 0)
        if axis < 0 { axis += rank }
        guard (0..<rank).contains(axis),
              shapes.allSatisfy({ s in s.count == rank && (0..<rank).allSatisfy { $0 == axis || s[$0] == first[$0] } }) else { return nil }
        var outShape = first
        outShape[axis] = shapes.map { $0[axis] }.reduce(0, +)
        let outer = first[..<axis].reduce(1, *), inner = first[(axis + 1)...].reduce(1, *)
        let blocks = shapes.map { $0[axis] * inner }
        var out = [UInt8].uninitialized(count: outShape.reduce(1, *))
        out.withUnsafeMutableBufferPointer { po in
            var at = 0
            for o in 0..<outer {
                for (k, c) in codes.enumerated() where blocks[k] > 0 {
                    c.withUnsafeBufferPointer { pc in
                        (po.baseAddress! + at).update(from: pc.baseAddress! + o * blocks[k], count: blocks[k])
                    }
                    at += blocks[k]
                }
            }
        }
        return Tensor(shape: outShape, codes: QuantizedCodes(values: out, scale: q.scale, zeroPoint: q.zeroPoint))
    }
}
