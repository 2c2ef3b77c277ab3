import CKernels
import ONNX

/// Materialising the INT8 runtime's uint8 chains (docs/int8-chains.md) where they meet
/// code that reads floats.
extension Tensor {
    /// The tensor with its float values: itself, or for one held only as codes,
    /// `(q - z) * s + 0` per element (`mpq_dequantize_u8`), bit for bit the floats the
    /// requantizing kernel that wrote the codes writes in float mode.
    public func materialized() -> Tensor {
        guard isCodesOnly, let c = codes else { return self }
        var out = [Float].uninitialized(count: c.values.count)
        c.values.withUnsafeBufferPointer { q in
            out.withUnsafeMutableBufferPointer { y in mpq_dequantize_u8(MPQ_PATH_AUTO, q.baseAddress, q.count, c.scale, c.zeroPoint, y.baseAddress) }
        }
        return Tensor(shape: shape, floats: out, dtype: dtype)
    }

    /// The codes, when they are on exactly the grid `q`: what an INT8 consumer quantizing
    /// the materialised floats with `q` would compute (on the grid, x / s rounds back to
    /// q - z, so quantizing is the identity), without the pass.
    func codes(on q: ActivationQuant) -> [UInt8]? {
        guard let c = codes, c.scale == q.scale, c.zeroPoint == q.zeroPoint else { return nil }
        return c.values
    }
}

extension Session {
    // Index loops, not `contains(where:)`: its closure took a copy of every tensor (four
    // retains and releases each, per node per run).
    static func materialized(_ ts: [Tensor?]) -> [Tensor?] {
        var any = false
        for i in ts.indices where ts[i]?.isCodesOnly == true { any = true; break }
        guard any else { return ts }
        return ts.map { $0?.materialized() }
    }

    static func materialized(_ ts: [Tensor]) -> [Tensor] {
        var any = false
        for i in ts.indices where ts[i].isCodesOnly { any = true; break }
        guard any else { return ts }
        return ts.map { $0.materialized() }
    }
}
