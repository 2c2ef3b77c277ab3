import Foundation
import XCTest
@testable import ONNX

final class ModelLoaderTests: XCTestCase {
    static let fixtures = NumpyTests.fixtures

    func testNodesGetStableUniqueNames() throws {
        let g = try ModelLoader.load(path: "\(Self.fixtures)/conformance/light/squeezenet/model.onnx")
        XCTAssertEqual(Set(g.nodes.map(\.name)).count, g.nodes.count)
        // The file has no node names: each gets <OpType>_<index in the file>.
        XCTAssertEqual(Array(g.nodes.prefix(2).map(\.name)), ["ConstantOfShape_0", "ConstantOfShape_1"])
        XCTAssertTrue(g.nodes.contains { $0.name == "n0" && $0.opType == "Conv" })   // named in the file: kept
        let again = try ModelLoader.load(path: "\(Self.fixtures)/conformance/light/squeezenet/model.onnx")
        XCTAssertEqual(g.nodes.map(\.name), again.nodes.map(\.name))
    }

    func testExternalDataMatchesInlineWeights() throws {
        let inline = try ModelLoader.load(path: "\(Self.fixtures)/digits_cnn.onnx")
        let external = try ModelLoader.load(path: "\(Self.fixtures)/digits_cnn_extdata.onnx")
        XCTAssertEqual(inline.initializers, external.initializers)
        XCTAssertEqual(inline.digest, external.digest)
    }

    func testConstantNodeWeightsLoad() throws {
        let g = try ModelLoader.load(path: "\(Self.fixtures)/tabular_mlp_const.onnx")
        XCTAssertEqual(g.opset, 11)
        XCTAssertTrue(g.nodes.contains { $0.opType == "Constant" })
    }

    func testSymbolicBatchIsKept() throws {
        let g = try ModelLoader.load(path: "\(Self.fixtures)/digits_cnn.onnx")
        XCTAssertEqual(g.inputs.map(\.name), ["input"])
        XCTAssertEqual(g.inputs[0].shape?.first ?? 0, nil)
        XCTAssertEqual(g.inputs[0].shapeDescription, "[N,1,16,16]")
    }

    func testDanglingInputIsReported() throws {
        let n = Node(name: "a", opType: "Relu", inputs: ["nowhere"], outputs: ["y"])
        XCTAssertThrowsError(try ModelLoader.topologicalOrder([n], available: [])) {
            XCTAssertTrue("\($0)".contains("'nowhere'") && "\($0)".contains("'a'"), "\($0)")
        }
    }

    func testTopologicalOrderFixesFileOrder() throws {
        let b = Node(name: "b", opType: "Relu", inputs: ["h"], outputs: ["y"])
        let a = Node(name: "a", opType: "Relu", inputs: ["x"], outputs: ["h"])
        XCTAssertEqual(try ModelLoader.topologicalOrder([b, a], available: ["x"]).map(\.name), ["a", "b"])
    }

    func testGraphPassesFoldBatchNormAndFuseRelu() throws {
        let g = try ModelLoader.load(path: "\(Self.fixtures)/digits_cnn.onnx")
        let o = GraphPasses.optimize(g)
        XCTAssertTrue(g.nodes.contains { $0.opType == "BatchNormalization" })
        XCTAssertFalse(o.nodes.contains { $0.opType == "BatchNormalization" })
        XCTAssertLessThan(o.nodes.filter { $0.opType == "Relu" }.count, g.nodes.filter { $0.opType == "Relu" }.count)
        XCTAssertEqual(o.outputs, g.outputs)
    }
}
