import Foundation
import ONNX

/// One quantize pass for an activation that several INT8 linear layers quantize on the same
/// grid: a transformer's Q, K and V projections all read the attention block's LayerNorm
/// output (MiniLM at batch 16: [2048, 384] floats quantized three times per layer). The
/// first reader of a run quantizes and keeps the codes; the others get the tensor with the
/// codes attached (`Tensor.codes` beside its floats), which `QuantizedLinear` takes as its
/// quantized input. The codes are what each layer would compute (the same quantizer on the
/// same floats), so no output bit changes.
final class SharedInputCodes: @unchecked Sendable {
    private struct Entry {
        let floats: [Float]     // held so its storage (the identity checked) cannot be reused
        let codes: [UInt8]
        let quant: ActivationQuant
        var left: Int           // readers still to come in this run
    }
    /// INT8 linear layers reading each shared tensor (2 or more, all on one grid).
    let readers: [String: Int]
    private var entries: [String: Entry] = [:]
    private let lock = NSLock()
    /// Quantize passes saved since the runtime's counters were reset.
    private(set) var saved = 0

    init(readers: [String: Int]) { self.readers = readers }

    /// `inputs` with input 0 (tensor `name`) carrying its codes on `quant`: computed here by
    /// the first reader of a run, reused by the others. Inputs already holding codes, or
    /// held only as codes, pass through.
    func attach(_ inputs: [Tensor?], name: String, quant: ActivationQuant, path: KernelPath) -> [Tensor?] {
        guard let n = readers[name], var a = inputs.first ?? nil, a.dtype == .float32, a.codes == nil,
              a.floats.count == a.count, a.count > 0 else { return inputs }
        lock.lock(); defer { lock.unlock() }
        if var e = entries[name], e.quant == quant, Self.sameStorage(e.floats, a.floats) {
            e.left -= 1
            entries[name] = e.left > 0 ? e : nil
            a.codes = QuantizedCodes(values: e.codes, scale: quant.scale, zeroPoint: quant.zeroPoint)
            saved += 1
        } else {
            let floats = a.floats
            let codes = uninitializedArray(count: a.count) { py in
                floats.withUnsafeBufferPointer { px in quantizeU8Split(px, quant, path: path, into: py) }
            }
            entries[name] = Entry(floats: floats, codes: codes, quant: quant, left: n - 1)
            a.codes = QuantizedCodes(values: codes, scale: quant.scale, zeroPoint: quant.zeroPoint)
        }
        var out = inputs
        out[0] = a
        return out
    }

    func resetCount() { lock.lock(); saved = 0; lock.unlock() }

    /// The same array storage: arrays are copy-on-write, so a tensor whose floats changed
    /// since (or a new tensor) has another buffer, while this entry keeps its own alive.
    private static func sameStorage(_ x: [Float], _ y: [Float]) -> Bool {
        x.count == y.count && x.withUnsafeBufferPointer { px in y.withUnsafeBufferPointer { py in px.baseAddress == py.baseAddress } }
    }
}
