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
        guard inputs.count >= 2, let a = inputs[0], let b = inputs[1] else {
            throw OpError("INT8 MatMul needs two inputs")
        }
        var out = try Self.matmul(a: a, b: b, aQuant: inputQuant, bQuant: rightQuant, path: path, note: engineNote)
        if clamp.0 > -.infinity || clamp.1 < .infinity {
            for i in out.floats.indices { out.floats[i] = Swift.min(Swift.max(out.floats[i], clamp.0), clamp.1) }
        }
        return [out]
    }

    /// The product of `a` [..., M, K] and `b` [..., K, N] (batch dimensions broadcast as
    /// numpy's matmul), each quantized with its parameters, as float. `note` hears the GEMM engine.
    static func matmul(a: Tensor, b: Tensor, aQuant: ActivationQuant, bQuant: ActivationQuant,
                       path: KernelPath, note: EngineNote? = nil) throws -> Tensor {
        guard a.dtype.isFloating, b.dtype.isFloating, a.rank >= 2, b.rank >= 2 else {
            throw OpError("INT8 MatMul of two activations needs float operands of rank >= 2, got \(a.dtype.rawValue) \(Tensor.describe(a.shape)) and \(b.dtype.rawValue) \(Tensor.describe(b.shape))")
        }
        let shape = try BatchedShape(a.shape, b.shape)
        let (m, k, n) = (shape.m, shape.k, shape.n)
        guard k <= maxK else { throw OpError("INT8 MatMul: K = \(k) exceeds \(maxK), where int32 accumulators stop being exact") }
        let outCount = shape.batchCount * m * n
        if outCount == 0 || k == 0 { return Tensor(shape: shape.outShape, floats: [Float](repeating: 0, count: outCount)) }
        // Every element below is written by its kernel (the quantizer, the row sums, each
        // batch matrix's corrected product; a failed GEMM throws), so nothing is zero-filled
        // first: the scores of a batch of 16 are 12 MB.
        var out = uninitializedArray(count: outCount, of: Float.self)

        let qa: [UInt8] = a.floats.withUnsafeBufferPointer { px in
            uninitializedArray(count: a.count) { quantizeU8Split(px, aQuant, path: path, into: $0) }
        }
        let qb: [UInt8] = b.floats.withUnsafeBufferPointer { px in
            uninitializedArray(count: b.count) { quantizeU8Split(px, bQuant, path: path, into: $0) }
        }

        let za = Int(aQuant.zeroPoint)
        let zbShifted = Int(bQuant.zeroPoint) - 128
        let scale = aQuant.scale * bQuant.scale

        // With one right matrix for every batch, A's batch folds into M: one call, split by
        // the kernel itself. Otherwise (attention: batch x heads small products) whole
        // matrices are handed out in runs of contiguous matrices, about 4 runs per core, each
        // with its own packed operand, row sums and accumulators and a single-threaded GEMM:
        // concurrentPerform gives the next run to whichever thread is free, so a core that
        // loses time to another process no longer holds up a fixed half. Every output element
        // is computed the same way whatever the split.
        let foldA = shape.bBatchCount == 1
        let calls = foldA ? 1 : shape.batchCount
        let rowsPerCall = foldA ? shape.batchCount * m : m
        let runs = calls > 1 && calls * m * n * k >= 1 << 20 ? min(4 * coreCount, calls) : 1
        let threadsPerCall: Int32 = runs > 1 ? 1 : gemmThreads(m: rowsPerCall, n: n, k: k)
        let packedSize = mpq_pack_b_s8_size(Int32(n), Int32(k))
        var failures = [Int32](repeating: 0, count: runs)
        qa.withUnsafeBufferPointer { pa in qb.withUnsafeBufferPointer { pb in
        out.withUnsafeMutableBufferPointer { outBuffer in failures.withUnsafeMutableBufferPointer { failedBuffer in
            let po = outBuffer.baseAddress!, failed = failedBuffer.baseAddress!
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
                    mpq_row_correct_scale_f32(acc, rowsPerCall, Int32(n), Int32(k), sums, Int64(zbShifted), scale, po + i * m * n)
                }
                note?.set(EngineNote.current)
            }
            if runs > 1 { DispatchQueue.concurrentPerform(iterations: runs, execute: work) } else { work(0) }
        } } } }
        let status = failures.first { $0 != 0 } ?? 0
        if status != 0 { throw OpError("INT8 GEMM kernel rejected its arguments") }
        return Tensor(shape: shape.outShape, floats: out)
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
