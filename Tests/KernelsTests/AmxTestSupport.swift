import CKernels
import XCTest

/// Xorshift64 (13, 7, 17): the byte source of the AMX GEMM and Conv engine tests. Kept apart
/// from TestRNG so that those tests' data stay what they were when their AMX runs were checked.
struct XorShiftRng {
    var state: UInt64
    mutating func next() -> UInt64 { state ^= state << 13; state ^= state >> 7; state ^= state << 17; return state }
}

/// Tests that switch the AMX mode (`mpq_set_qgemm_amx`) derive from this: the mode is a process
/// global, so each test puts back the environment's default (`MPQ_QGEMM_AMX`) when it ends.
class AmxModeTestCase: XCTestCase {
    override func tearDown() {
        _ = mpq_set_qgemm_amx(-1)
        super.tearDown()
    }
}

/// Random operands of an INT8 Conv against its reference (activation codes, weights, per-channel
/// scales, int32 bias), drawn from `rng` in the order the AMX and engine tests drew them.
struct RandomInt8ConvOperands {
    let x: [UInt8], w: [Int8], scales: [Float], biasI32: [Int32]

    /// `c` x `hw` x `hw` codes, `cout` x `k` weights.
    init(c: Int, hw: Int, k: Int, cout: Int, rng: inout XorShiftRng) {
        x = (0..<(c * hw * hw)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        w = (0..<(cout * k)).map { _ in Int8(truncatingIfNeeded: rng.next()) }
        scales = (0..<cout).map { _ in Float(rng.next() % 1000 + 1) * 1e-5 }
        biasI32 = (0..<cout).map { _ in Int32(Int(rng.next() % 4000) - 2000) }
    }
}
