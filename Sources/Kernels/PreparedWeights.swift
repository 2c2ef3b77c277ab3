import Foundation
import ONNX

/// Weights a session prepares once from its constant inputs for the FP32 kernels (Conv
/// weights packed into the GEMM's panel layout), the FP32 counterpart of the INT8 layers'
/// packed weights. Keyed by the initializer's name, and used only when the tensor a node
/// is given shares its storage with the session's constant of that name (a feed that
/// replaces an initializer, or any other tensor, is packed for its call only), so a
/// cached form always belongs to the values it is used for. Packed on first use, so a
/// session that never runs a Conv in FP32 (or whose Convs stay on OpenBLAS) pays
/// nothing. Thread-safe.
final class PreparedWeights: @unchecked Sendable {
    private let constants: [String: Tensor]
    private let lock = NSLock()
    private var conv: [String: PackedConvWeights] = [:]
    private var linear: [String: PackedLinearWeights] = [:]

    /// `constants`: the session's constants (shared storage, not copied).
    init(constants: [String: Tensor]) { self.constants = constants }

    /// Whether `w` is the session's constant `name` itself (same storage): O(1).
    func isConstant(_ name: String, _ w: Tensor) -> Bool {
        guard let c = constants[name], c.shape == w.shape, c.floats.count == w.floats.count, !w.floats.isEmpty else { return false }
        let a = c.floats.withUnsafeBufferPointer { $0.baseAddress }
        let b = w.floats.withUnsafeBufferPointer { $0.baseAddress }
        return a == b
    }

    /// The packed form of Conv weight `name` (`w`, split in `group` groups): cached for a
    /// session constant, packed for this call otherwise.
    func convWeights(_ name: String, _ w: Tensor, group: Int) -> PackedConvWeights {
        guard isConstant(name, w) else { return PackedConvWeights(w, group: group) }
        lock.lock(); defer { lock.unlock() }
        if let p = conv[name], p.matches(w, group: group) { return p }
        let p = PackedConvWeights(w, group: group)
        conv[name] = p
        return p
    }

    /// The packed form of Gemm / MatMul weight `name` (`b`, K x N, or N x K with `transB`),
    /// cached, when `b` is the session's constant; nil otherwise (the caller's choice then).
    func linearWeights(_ name: String, _ b: Tensor, k: Int, n: Int, transB: Bool) -> PackedLinearWeights? {
        guard isConstant(name, b) else { return nil }
        lock.lock(); defer { lock.unlock() }
        if let p = linear[name], p.matches(k: k, n: n, transB: transB) { return p }
        let p = PackedLinearWeights(b, k: k, n: n, transB: transB)
        linear[name] = p
        return p
    }
}
