import XCTest
import ONNX
@testable import Kernels

/// Op errors name the tensors: a kernel describes an input by its role ("C must be floating
/// point"), so the node's error adds the node's input tensors unless the reason names one
/// (the fuzzer's unnamed-message report: a Gemm bias retyped int32 said only "C").
final class OpErrorNamingTests: XCTestCase {
    func testGemmWithAnIntegerBiasNamesTheBiasTensor() {
        let graph = Graph(nodes: [Node(name: "fc", opType: "Gemm", inputs: ["x", "fc.weight", "fc.bias"], outputs: ["y"],
                                       attributes: ["transB": .int(1)])],
                          initializers: ["fc.weight": Tensor(shape: [3, 4], floats: [Float](repeating: 0.5, count: 12)),
                                         "fc.bias": Tensor(shape: [3], ints: [1, 2, 3], dtype: .int32)],
                          inputs: [ValueInfo(name: "x", dtype: .float32, shape: [nil, 4])],
                          outputs: [ValueInfo(name: "y", dtype: .float32, shape: [nil, 3])], opsets: ["": 17])
        do {
            let session = try Session(graph: graph)
            _ = try session.run(["x": Tensor(shape: [2, 4], floats: [Float](repeating: 1, count: 8))])
            XCTFail("an int32 Gemm bias ran")
        } catch {
            let message = "\(error)"
            XCTAssertTrue(message.contains("'fc.bias'"), message)
            XCTAssertTrue(message.contains("'fc'"), message)
        }
    }

    func testReasonsThatNameAnInputStayAsTheyAre() {
        let node = Node(name: "add", opType: "Add", inputs: ["a", "", "b"], outputs: ["y"])
        XCTAssertEqual(Session.namingInputs("'a' is empty", node), "'a' is empty")
        XCTAssertEqual(Session.namingInputs("shapes [2] and [3] do not broadcast", node),
                       "shapes [2] and [3] do not broadcast (inputs 'a', 'b')")
        XCTAssertEqual(Session.namingInputs("needs axes", Node(name: "n", opType: "Shape", inputs: [], outputs: ["y"])), "needs axes")
    }
}
