import Foundation
import XCTest
@testable import ONNX

/// BatchNorm folding on the trained ResNet-shaped fixture (tools/fixtures/generate_resnet.py),
/// whose torch export feeds three downsample BatchNorms' biases through Identity nodes.
final class BatchNormFoldTests: XCTestCase {
    static let resnet = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/resnet/resnet_digits.onnx").path

    func testParametersBehindIdentityNodesFold() throws {
        let g = try ModelLoader.load(path: Self.resnet)
        XCTAssertEqual(g.nodes.filter { $0.opType == "Identity" }.count, 3, "the export this test is about")
        XCTAssertEqual(g.nodes.filter { $0.opType == "BatchNormalization" }.count, 20)
        let folded = GraphPasses.foldBatchNorm(g)
        // Every BatchNorm folds into its Conv (none is left for a QDQ export to put between a
        // Conv and its QuantizeLinear, which kept ORT from fusing 9 of 20 Conv), and the
        // Identity nodes that only fed them go.
        XCTAssertEqual(folded.nodes.filter { $0.opType == "BatchNormalization" }.count, 0)
        XCTAssertEqual(folded.nodes.filter { $0.opType == "Identity" }.count, 0)
        XCTAssertEqual(folded.nodes.filter { $0.opType == "Conv" }.count, 20)
        let downsample = try XCTUnwrap(folded.nodes.first { $0.name == "/layer2/layer2.0/downsample/downsample.0/Conv" })
        XCTAssertEqual(downsample.outputs, ["/layer2/layer2.0/downsample/downsample.1/BatchNormalization_output_0"])
        XCTAssertNotNil(folded.initializers[downsample.inputs[2]], "folded bias")
    }
}
