import XCTest
import Kernels
import ONNX
@testable import Search

/// The detector's neck and head move INT8 chains through Resize (nearest), Reshape and
/// Transpose: those run on the codes themselves (`Int8ChainCounters.movedAsCodes`), with
/// outputs bit-identical to the float path (`uint8Chains` off).
final class Int8CodesMovementChainTests: XCTestCase {
    func testDetectorMovesCodesWithoutTheFloatRoundTrip() throws {
        let m = try Int8ChainTests.detector()
        let rt = m.runtime
        var outputs: [Bool: [UInt32]] = [:]
        for chains in [false, true] {
            rt.uint8Chains = chains
            try rt.apply(rt.allInt8)
            rt.chainCounters.reset()
            var bits: [UInt32] = []
            for r in m.data.batches(size: 4) + [0..<1] {
                let outs = try rt.session.run(m.data.batch(r))
                for o in rt.session.graph.outputs { bits += try XCTUnwrap(outs[o.name]).floats.map(\.bitPattern) }
            }
            outputs[chains] = bits
            if chains {
                // Resize, Reshape and Transpose per batch (3 batches of 4, 1 of 1).
                let moving = rt.session.plan.filter { ["Resize", "Reshape", "Transpose", "Flatten"].contains($0.opType) }
                let inRegion = moving.filter { rt.session.codesInputNodes.contains($0.name) }
                XCTAssertTrue(inRegion.contains { $0.opType == "Resize" })
                XCTAssertEqual(rt.chainCounters.movedAsCodes, inRegion.count * 4)
            } else {
                XCTAssertEqual(rt.chainCounters.movedAsCodes, 0)
            }
        }
        XCTAssertEqual(outputs[true], outputs[false])
    }
}
