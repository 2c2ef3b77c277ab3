import Foundation
import ONNX

/// What a bound Conv node (`ConvOps.ConvAttributes`, one per node and session) keeps from
/// one run to the next. At batch 1 on small images a Conv's checks and geometry (the shape
/// checks, `WindowGeometry`, `auto_pad`, the output and im2col size limits: eight arrays
/// built and freed) and the lookup of its packed weights (two dictionary lookups by name and
/// a lock) cost more than its kernel: 16 allocations and ~85 retains per 8-channel 1x1 Conv
/// in `perf` (s15-small). A run with the inputs' shapes of the last one reuses what that
/// run checked; anything else (a new shape, a non-float input, a residual that does not fit)
/// takes the full path, which checks and reports errors exactly as before.
/// Thread-safe: image chains run one node on several threads.
final class ConvRunMemo: @unchecked Sendable {
    /// The checked geometry for one set of input shapes, on the packed GEMM. A class: handing
    /// it out costs one retain, not one per array.
    final class Plan: Sendable {
        /// What it was checked for: X's and W's shapes and the bias's count (-1: no bias).
        let xShape: [Int], wShape: [Int], biasCount: Int
        let g: WindowGeometry
        /// The output shape, one array for every run's output.
        let outShape: [Int]

        init(xShape: [Int], wShape: [Int], biasCount: Int, g: WindowGeometry, outShape: [Int]) {
            self.xShape = xShape; self.wShape = wShape; self.biasCount = biasCount; self.g = g; self.outShape = outShape
        }
    }

    /// Packed weights remembered with the constant they came from (`weights`).
    final class Weights: @unchecked Sendable {
        let source: Tensor, base: UnsafeRawPointer, group: Int, packed: PackedConvWeights
        init(source: Tensor, base: UnsafeRawPointer, group: Int, packed: PackedConvWeights) {
            self.source = source; self.base = base; self.group = group; self.packed = packed
        }
    }

    private let lock = NSLock()
    private var plan: Plan?
    /// The packed weights of a session constant, with that constant held (`source`) so
    /// that its storage, and so its address `base`, stay its own while remembered: a tensor
    /// with the same storage address is that constant.
    private var weights: Weights?

    /// The plan checked for these inputs' shapes, if the last remembered one was.
    func plan(x: Tensor, w: Tensor, b: Tensor?) -> Plan? {
        let biasCount = b?.count ?? -1
        lock.lock(); defer { lock.unlock() }
        guard let p = plan, p.biasCount == biasCount, p.xShape == x.shape, p.wShape == w.shape else { return nil }
        return p
    }

    func remember(_ p: Plan) {
        lock.lock(); plan = p; lock.unlock()
    }

    /// `w` packed: the remembered form when `w` is the constant it was packed from, else
    /// the session's (`PreparedWeights.convWeights`, cached by name for a constant, then
    /// remembered here), else packed for this call.
    func packed(_ w: Tensor, group: Int, name: String, prepared: PreparedWeights?) -> PackedConvWeights {
        let base = w.floats.withUnsafeBufferPointer { $0.baseAddress.map(UnsafeRawPointer.init) }
        lock.lock()
        if let m = weights, let base, m.base == base, m.group == group, m.source.floats.count == w.floats.count,
           m.source.shape == w.shape {
            lock.unlock()
            return m.packed
        }
        lock.unlock()
        guard let prepared else { return PackedConvWeights(w, group: group) }
        let p = prepared.convWeights(name, w, group: group)
        if let base, prepared.isConstant(name, w) {
            let remembered = Weights(source: w, base: base, group: group, packed: p)
            lock.lock(); weights = remembered; lock.unlock()
        }
        return p
    }
}
