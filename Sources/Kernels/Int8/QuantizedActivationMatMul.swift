import CKernels
import Foundation
import ONNX

/// INT8 MatMul of two activations (attention scores Q·Kᵀ, probabilities·V): both operands
/// are quantized per tensor to uint8 asymmetric, as ONNX Runtime's QDQ quantizer does for
/// both MatMul inputs. The kernel is u8 x s8, so the right operand is shifted to int8
/// (b' = b - 128, zero point zb' = zb - 128), transposed to [N][K] and packed per batch
/// matrix; the kernel corrects A's zero point and B's is corrected here:
///
///     sum_k (a - za)(b - zb) = sum_k (a - za) b' - zb' * sum_k (a - za)
///
/// exactly, in integers, then scaled by s_a * s_b to float (docs/transformers.md).
final class QuantizedActivationMatMul: QuantizedLayer {
    private let engineNote = EngineNote()
    var engine: String? { engineNote.value }
    let node: Node
    /// Quantization of input 0 (A, [..., M, K]).
    let inputQuant: ActivationQuant
    /// Quantization of input 1 (B, [..., K, N]).
    let rightQuant: ActivationQuant
    /// Empty: neither operand is a weight.
    let weightScales: [Float] = []
    var secondInputQuant: ActivationQuant? { rightQuant }
    private let clamp: (Float, Float)

    /// Largest K for which the kernel's int32 accumulator is exact (mpq_kernels.h).
    static let maxK = 65792

    init(node: Node, inputQuant: ActivationQuant, rightQuant: ActivationQuant) {
        self.node = node
        self.inputQuant = inputQuant
        self.rightQuant = rightQuant
        self.clamp = clampBounds(node)
    }

    func run(_ inputs: [Tensor?], path: KernelPath) throws -> [Tensor] {
        let (a, b) = try operands(inputs)
        var out = try Self.matmul(a: a, b: b, aQuant: inputQuant, bQuant: rightQuant, path: path, note: engineNote)
        if clamp.0 > -.infinity || clamp.1 < .infinity {
            for i in out.floats.indices { out.floats[i] = Swift.min(Swift.max(out.floats[i], clamp.0), clamp.1) }
        }
        return [out]
    }

    /// Requantized as ONNX Runtime's QLinearMatMul does (the `ort` scheme when a Q follows):
    /// a fused Relu/Clip lies in the output grid's range, as for `QuantizedLinear`.
    func run(_ inputs: [Tensor?], path: KernelPath, output: ActivationQuant) throws -> [Tensor] {
        let (a, b) = try operands(inputs)
        return [try Self.matmul(a: a, b: b, aQuant: inputQuant, bQuant: rightQuant, path: path, note: engineNote,
                                requantize: output).materialized()]
    }

    /// Both operands may arrive as codes (on their grids: used as they are).
    var readsCodes: Bool { true }

    func runWritingCodes(_ inputs: [Tensor?], path: KernelPath, output: ActivationQuant) throws -> [Tensor] {
        let (a, b) = try operands(inputs)
        return [try Self.matmul(a: a, b: b, aQuant: inputQuant, bQuant: rightQuant, path: path, note: engineNote, requantize: output)]
    }

    /// The grid the MatMul reads tensor `name` on: A's, B's, or (both operands) theirs if they
    /// agree; nil if it reads `name` on two grids or not at all.
    func grid(ofOperand name: String) -> ActivationQuant? {
        switch (node.input(0) == name, node.input(1) == name) {
        case (true, true): return inputQuant == rightQuant ? inputQuant : nil
        case (true, false): return inputQuant
        case (false, true): return rightQuant
        case (false, false): return nil
        }
    }

    private func operands(_ inputs: [Tensor?]) throws -> (Tensor, Tensor) {
        guard inputs.count >= 2, let a = inputs[0], let b = inputs[1] else {
            throw OpError("INT8 MatMul needs two inputs")
        }
        return (a, b)
    }

    /// The product of `a` [..., M, K] and `b` [..., K, N] (batch dimensions broadcast as
    /// numpy's matmul), each quantized with its parameters (operands held as codes on those
    /// grids are used as they are), as float; with `requantize`, the output's uint8 codes on
    /// that grid (QLinearMatMul's arithmetic), as a codes tensor. `note` hears the GEMM engine.
    static func matmul(a: Tensor, b: Tensor, aQuant: ActivationQuant, bQuant: ActivationQuant,
                       path: KernelPath, note: EngineNote? = nil, requantize: ActivationQuant? = nil) throws -> Tensor {
        guard a.dtype.isFloating, b.dtype.isFloating, a.rank >= 2, b.rank >= 2 else {
            throw OpError("INT8 MatMul of two activations needs float operands of rank >= 2, got \(a.dtype.rawValue) \(Tensor.describe(a.shape)) and \(b.dtype.rawValue) \(Tensor.describe(b.shape))")
        }
        let shape = try BatchedShape(a.shape, b.shape)
        let (m, k, n) = (shape.m, shape.k, shape.n)
        guard k <= maxK else { throw OpError("INT8 MatMul: K = \(k) exceeds \(maxK), where int32 accumulators stop being exact") }
        let outCount = shape.batchCount * m * n
        if outCount == 0 || k == 0 {
            guard let q = requantize else { return Tensor(shape: shape.outShape, floats: [Float](repeating: 0, count: outCount)) }
            // An empty sum is 0: every output is the zero point.
            let codes = [UInt8](repeating: q.zeroPoint, count: outCount)
            return Tensor(shape: shape.outShape, codes: QuantizedCodes(values: codes, scale: q.scale, zeroPoint: q.zeroPoint))
        }
        // Every element below is written by its kernel (the quantizer, the row sums, each
        // batch matrix's corrected product; a failed GEMM throws), so nothing is zero-filled
        // first: the scores of a batch of 16 are 12 MB.
        var out = uninitializedArray(count: requantize == nil ? outCount : 0, of: Float.self)
        var outCodes = uninitializedArray(count: requantize == nil ? 0 : outCount, of: UInt8.self)

        let qa = Self.codes(a, aQuant, path: path), qb = Self.codes(b, bQuant, path: path)

        let za = Int(aQuant.zeroPoint)
        let zbShifted = Int(bQuant.zeroPoint) - 128
        let scale = aQuant.scale * bQuant.scale
        // ORT's QLinearMatMul: output_scales = a_scale * b_scale / y_scale, in that order.
        let multiplier = requantize.map { aQuant.scale * bQuant.scale / $0.scale } ?? 0
        let outZero = requantize?.zeroPoint ?? 0

        // With one right matrix for every batch, A's batch folds into M: one call, split by
        // the kernel itself. Otherwise (attention: batch x heads small products) whole
        // matrices are handed out in runs of contiguous matrices, about 4 runs per core, each
        // with its own packed operand, row sums and accumulators and a single-threaded GEMM:
        // the kernel pool gives the next run to whichever thread is free, so a core that
        // loses time to another process no longer holds up a fixed half. The pool, not
        // DispatchQueue.concurrentPerform: GCD's threads park between calls and competed with
        // the pool's spinning workers for the two cores (MiniLM's 12 attention MatMuls at
        // batch 1 took 0.26-0.36 ms each in the model against 0.15-0.18 alone). Every output
        // element is computed the same way whatever the split.
        let foldA = shape.bBatchCount == 1
        let calls = foldA ? 1 : shape.batchCount
        let rowsPerCall = foldA ? shape.batchCount * m : m
        let runs = calls > 1 && calls * m * n * k >= 1 << 20 ? min(4 * coreCount, calls) : 1
        let threadsPerCall: Int32 = runs > 1 ? 1 : gemmThreads(m: rowsPerCall, n: n, k: k)
        let packedSize = mpq_pack_b_s8_size(Int32(n), Int32(k))
        var failures = [Int32](repeating: 0, count: runs)
        qa.withUnsafeBufferPointer { pa in qb.withUnsafeBufferPointer { pb in
        out.withUnsafeMutableBufferPointer { outBuffer in outCodes.withUnsafeMutableBufferPointer { codesBuffer in
        failures.withUnsafeMutableBufferPointer { failedBuffer in
            // An empty array's buffer may still have a base address: the output kind decides.
            let po = requantize == nil ? outBuffer.baseAddress : nil
            let pc = requantize == nil ? nil : codesBuffer.baseAddress
            let failed = failedBuffer.baseAddress!
            let work = { (t: Int) in
                let packed = UnsafeMutableRawPointer.allocate(byteCount: packedSize, alignment: 64)
                let acc = UnsafeMutablePointer<Int32>.allocate(capacity: rowsPerCall * n)
                let sums = UnsafeMutablePointer<Int64>.allocate(capacity: rowsPerCall)
                defer { packed.deallocate(); acc.deallocate(); sums.deallocate() }
                var lastPacked = -1, lastSummed = -1
                for i in (calls * t / runs)..<(calls * (t + 1) / runs) {
                    let (ai, bi) = foldA ? (0, 0) : shape.operandIndices(i)
                    let a = pa.baseAddress! + ai * m * k
                    if bi != lastPacked {
                        // B[bi] is [K][N] uint8; rows of the packed operand are its columns, shifted to
                        // int8: packed straight from B (the bytes of transpose-shift + mpq_pack_b_s8).
                        let rc = mpq_pack_b_shift_u8(pb.baseAddress! + bi * k * n, Int32(k), Int32(n), Int32(n), packed)
                        if rc != 0 { failed[t] = rc; return }
                        lastPacked = bi
                    }
                    if ai != lastSummed {
                        // sum_k (a - za) per row of this A matrix, for B's zero-point correction.
                        mpq_row_sums_u8(a, rowsPerCall, Int32(k), Int32(za), sums)
                        lastSummed = ai
                    }
                    let rc = mpq_qgemm_u8s8(path.c, Int32(rowsPerCall), Int32(n), Int32(k), a, Int32(k),
                                            packed, Int32(za), acc, Int32(n), threadsPerCall)
                    if rc != 0 { failed[t] = rc; return }
                    if let pc {
                        mpq_row_correct_requant_u8(acc, rowsPerCall, Int32(n), Int32(k), sums, Int64(zbShifted), multiplier,
                                                   outZero, pc + i * m * n)
                    } else {
                        mpq_row_correct_scale_f32(acc, rowsPerCall, Int32(n), Int32(k), sums, Int64(zbShifted), scale, po! + i * m * n)
                    }
                }
                note?.set(EngineNote.current)
            }
            poolPerform(threads: runs > 1 ? coreCount : 1, chunks: runs, work)
        } } } } }
        let status = failures.first { $0 != 0 } ?? 0
        if status != 0 { throw OpError("INT8 GEMM kernel rejected its arguments") }
        if let q = requantize {
            return Tensor(shape: shape.outShape, codes: QuantizedCodes(values: outCodes, scale: q.scale, zeroPoint: q.zeroPoint))
        }
        return Tensor(shape: shape.outShape, floats: out)
    }

    /// An operand's uint8 codes on `q`: codes it already holds on that grid, else its
    /// (materialised) floats quantized.
    private static func codes(_ t: Tensor, _ q: ActivationQuant, path: KernelPath) -> [UInt8] {
        if let c = t.codes(on: q), c.count == t.count { return c }
        let floats = t.materialized().floats
        return floats.withUnsafeBufferPointer { px in
            uninitializedArray(count: t.count) { quantizeU8Split(px, q, path: path, into: $0) }
        }
    }
}

extension QuantizedActivationMatMul {
    func qdq() throws -> QDQLayer {
        QDQLayer(node: node.name, activation: node.input(0) ?? "", activationScale: inputQuant.scale,
                 activationZeroPoint: inputQuant.zeroPoint, weightValues: [], weightShape: [], weightScales: [], weightAxis: 0,
                 biasValues: nil, biasScales: nil, secondActivation: node.input(1) ?? "", secondScale: rightQuant.scale,
                 secondZeroPoint: rightQuant.zeroPoint)
    }
}

/// MatMul of two activations (attention's Q·Kᵀ and probabilities·V): both inputs quantized per tensor.
public enum ActivationMatMulFamily: Int8OpFamily {
    public static let opTypes: Set<String> = ["MatMul"]
    /// DQ -> MatMul -> (no Q) is MatMulIntegerToFloat in ORT, unless an activation follows
    /// (as for `LinearFamily`).
    public static func fusesOnlyWithOutputQuantize(_ node: Node) -> Bool { FusedActivation(node: node) != nil }

    public static func accepts(_ node: Node, constants: [String: Tensor]) -> Bool {
        guard let a = node.input(0), let b = node.input(1) else { return false }
        return constants[a] == nil && constants[b] == nil
    }

    public static func quantizedInputs(_ node: Node, constants: [String: Tensor]) -> [String] {
        [node.input(0), node.input(1)].compactMap { $0 }
    }

    public static func macs(_ node: Node, inputShapes: [[Int]?], outputShapes: [[Int]]) -> Int {
        LinearFamily.macs(node, inputShapes: inputShapes, outputShapes: outputShapes)
    }

    public static func prepare(_ node: Node, constants: [String: Tensor], inputs: [ActivationQuant],
                               weightBits: WeightBits) throws -> QuantizedLayer {
        QuantizedActivationMatMul(node: node, inputQuant: inputs[0], rightQuant: inputs[1])
    }
}
