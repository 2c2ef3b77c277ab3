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
