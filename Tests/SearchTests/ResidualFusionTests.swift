import Foundation
import XCTest
@testable import Kernels
import ONNX
@testable import Search

/// A residual Add -> Relu runs as one pass (`ResidualReluFusion`): in FP32 without
/// overrides, and under the INT8 `ort` scheme on uint8 codes (`mpq_binary_u8` with its Relu,
/// the Relu folded as ORT folds it). Fused runs (no observer) must give the bits of unfused
/// ones (an observer turns fusion off) and of the float-chain reference.
final class ResidualFusionTests: XCTestCase {
    func bits(_ outs: [String: Tensor]) -> [UInt32] {
        outs.keys.sorted().flatMap { outs[$0]!.floats.map(\.bitPattern) }
    }

    func testDigitsFP32AndInt8FusedEqualsUnfused() throws {
        let m = try Int8ChainTests.digits()
        let session = m.runtime.session
        XCTAssertEqual(session.pairFusions.values.filter { $0.kind == .residualRelu }.count, 1, "digits_cnn ends its residual block with Add -> Relu")
        let feeds = m.data.batch(0..<8)

        // FP32: no overrides, so the FP32 kernel fuses.
        try m.runtime.apply(m.runtime.allFP32)
        var sawFused = false
        _ = try session.run(feeds, keep: [], fusing: true, observeCodes: true) { node, _, outs in
            if node.opType == "Add" { sawFused = node.outputs == ["/block/relu_1/Relu_output_0"] }
        }
        XCTAssertTrue(sawFused, "the Add writes the Relu's output when fused")
        XCTAssertEqual(bits(try session.run(feeds)), bits(try session.run(feeds) { _, _, _ in }), "FP32 fused != unfused")

        // All-INT8 with chains: the pair has a fused codes form, and it reads codes.
        m.runtime.uint8Chains = true
        try m.runtime.apply(m.runtime.allInt8)
        XCTAssertEqual(Array(session.fusedOverrides.keys), ["/block/Add"])
        XCTAssertTrue(session.codesInputNodes.contains("/block/Add"))
        m.runtime.chainCounters.reset()
        let fused = bits(try session.run(feeds))
        let readFused = m.runtime.chainCounters.codesRead
        m.runtime.chainCounters.reset()
        let unfused = bits(try session.run(feeds) { _, _, _ in })
        XCTAssertEqual(fused, unfused, "INT8 fused != unfused")
        // Fused: both Add inputs read as codes (and the MaxPool after the Relu reads codes too).
        XCTAssertGreaterThanOrEqual(readFused - m.runtime.chainCounters.codesRead, 2, "the fused pair reads its inputs as codes")
        m.runtime.uint8Chains = false
        try m.runtime.apply(m.runtime.allInt8)
        XCTAssertTrue(session.fusedOverrides.isEmpty)
        XCTAssertEqual(fused, bits(try session.run(feeds)), "INT8 fused != float chain")
        m.runtime.uint8Chains = true
    }

    /// The detector's SiLUs after INT8 Convs run as one code table each.
    func testDetectorInt8SiluTablesEqualUnfused() throws {
        let m = try Int8ChainTests.detector()
        let session = m.runtime.session
        let feeds = m.data.batch(0..<3)
        m.runtime.uint8Chains = true
        try m.runtime.apply(m.runtime.allInt8)
        let sigmoids = session.plan.filter { $0.opType == "Sigmoid" && session.fusedOverrides[$0.name] != nil }
        XCTAssertGreaterThanOrEqual(sigmoids.count, 9, "every SiLU after an INT8 Conv has a code table")
        var fusedNodes = 0
        let fused = bits(try session.run(feeds, keep: [], fusing: true, observeCodes: true) { node, _, _ in
            if node.opType == "Sigmoid" && node.outputs.first?.hasSuffix("Mul_output_0") == true { fusedNodes += 1 }
        })
        XCTAssertEqual(fusedNodes, sigmoids.count, "each fused Sigmoid writes its Mul's output")
        XCTAssertEqual(fused, bits(try session.run(feeds) { _, _, _ in }), "fused SiLUs != unfused")
        m.runtime.uint8Chains = false
        try m.runtime.apply(m.runtime.allInt8)
        XCTAssertEqual(fused, bits(try session.run(feeds)), "fused SiLUs != float chain")
        m.runtime.uint8Chains = true
    }
}
