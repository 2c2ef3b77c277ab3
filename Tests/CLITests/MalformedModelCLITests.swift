import Foundation
import XCTest
@testable import ONNX

/// Malformed models from issue 10's fuzzer, run through the `mpq` binary as a user would:
/// each must exit 2 with a message naming the tensor or node (they used to die of a
/// signal, or exit 0 with a wrong answer).
final class MalformedModelCLITests: XCTestCase {
    let model = "\(CLI.examples)/digits_cnn.onnx"
    let holdout = "\(CLI.examples)/digits_holdout.npz"

    /// digits_cnn changed by `mutate`, written to a fresh folder.
    func mutated(_ mutate: (inout Onnx_ModelProto) throws -> Void) throws -> String {
        var m = try Onnx_ModelProto(serializedBytes: try Data(contentsOf: URL(fileURLWithPath: model)))
        try mutate(&m)
        let path = try CLI.temporaryDirectory().appendingPathComponent("model.onnx").path
        try m.serializedData().write(to: URL(fileURLWithPath: path))
        return path
    }

    func assertExit2(_ args: [String], environment: [String: String] = [:], _ fragments: [String],
                     file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try CLI.run(args, environment: environment)
        XCTAssertEqual(r.status, 2, "stderr: \(r.stderr)", file: file, line: line)
        for f in fragments { XCTAssertTrue(r.stderr.contains(f), "'\(f)' missing from: \(r.stderr)", file: file, line: line) }
    }

    static func setAttribute(_ m: inout Onnx_ModelProto, node: String, _ value: Attribute, name: String) {
        let n = m.graph.node.firstIndex { $0.name == node }!
        m.graph.node[n].attribute.removeAll { $0.name == name }
        m.graph.node[n].attribute.append(ONNXWriter.attributeProto(value, name: name)!)
    }

    func testOverflowingInitializerDims() throws {
        var name = ""
        let path = try mutated { m in
            name = m.graph.initializer[0].name
            m.graph.initializer[0].dims = [1 << 32, 1 << 32, 1, 1]
        }
        try assertExit2(["inspect", path], ["tensor '\(name)'", "more elements than an integer can count"])
        try assertExit2(["eval", path, "--data", holdout], ["tensor '\(name)'"])
    }

    func testOverflowingConvAttributes() throws {
        let conv = "/stem/stem.0/Conv"
        for (attr, value) in [("pads", Attribute.ints([1 << 62, 1, 1, 1])), ("dilations", .ints([1 << 62, 1])),
                              ("group", .int(1 << 62))] {
            let path = try mutated { Self.setAttribute(&$0, node: conv, value, name: attr) }
            try assertExit2(["inspect", path], ["node '\(conv)'"])
        }
    }

    func testMaxPoolStridesGivenAsAStringIsAnError() throws {
        // This used to run with stride 1 and score 80.5 instead of 98.89.
        let path = try mutated { Self.setAttribute(&$0, node: "/pool1/MaxPool", .string("2"), name: "strides") }
        try assertExit2(["eval", path, "--data", holdout], ["node '/pool1/MaxPool' (MaxPool)", "attribute 'strides'", "must be ints"])
    }

    func testPoolKernelLargerThanThePaddedInput() throws {
        let path = try mutated { Self.setAttribute(&$0, node: "/pool1/MaxPool", .ints([64, 64]), name: "kernel_shape") }
        try assertExit2(["inspect", path], ["node '/pool1/MaxPool'", "larger than the padded input"])
    }

    func testNonFiniteInitializerIsAnErrorUnlessAllowed() throws {
        var name = ""
        let path = try mutated { m in
            let i = m.graph.initializer.firstIndex { $0.dataType == 1 && $0.dims.count == 4 }!
            name = m.graph.initializer[i].name
            var t = try TensorDecoder.decode(m.graph.initializer[i], baseDirectory: nil)
            t.floats[0] = .nan
            m.graph.initializer[i] = ONNXWriter.tensorProto(t, name: name)
        }
        try assertExit2(["eval", path, "--data", holdout], ["tensor '\(name)'", "1 NaN", "MPQ_ALLOW_NONFINITE"])
        let allowed = try CLI.run(["inspect", path], environment: ["MPQ_ALLOW_NONFINITE": "1"])
        XCTAssertEqual(allowed.status, 0, allowed.stderr)
    }

    func testUnknownDomainAndOpsetOutOfRange() throws {
        let custom = try mutated { m in
            let i = m.graph.node.firstIndex { $0.name == "/block/relu/Relu" }!
            m.graph.node[i].domain = "com.example"
        }
        try assertExit2(["inspect", custom], ["node '/block/relu/Relu'", "com.example"])
        for version: Int64 in [1, 999] {
            let path = try mutated { $0.opsetImport[0].version = version }
            try assertExit2(["inspect", path], ["ai.onnx opset \(version)", "mpq implements"])
        }
        let none = try mutated { $0.opsetImport = [] }
        try assertExit2(["inspect", none], ["imports no ai.onnx opset"])
    }

    func testTensorLimitFromTheEnvironment() throws {
        try assertExit2(["inspect", model], environment: ["MPQ_MAX_TENSOR_BYTES": "256"], ["over the limit of 256 bytes"])
        let bad = try CLI.run(["inspect", model], environment: ["MPQ_MAX_TENSOR_BYTES": "16G"])
        XCTAssertEqual(bad.status, 0, bad.stderr)
        XCTAssertTrue(bad.stderr.contains("warning: MPQ_MAX_TENSOR_BYTES='16G' is not a positive number of bytes"), bad.stderr)
    }

    func testTileWithHugeRepeatsNamesTheNode() throws {
        let tile = Node(name: "tile", opType: "Tile", inputs: ["x", "repeats"], outputs: ["y"])
        let g = Graph(nodes: [tile], initializers: ["repeats": Tensor(shape: [4], ints: [1, 1 << 40, 1, 1])],
                      inputs: [ValueInfo(name: "x", dtype: .float32, shape: [1, 1, 8, 8])],
                      outputs: [ValueInfo(name: "y", dtype: .float32, shape: nil)], opsets: ["": 17])
        let path = try CLI.temporaryDirectory().appendingPathComponent("tile.onnx").path
        try ONNXWriter.modelProto(g).serializedData().write(to: URL(fileURLWithPath: path))
        try assertExit2(["inspect", path], ["node 'tile' (Tile)", "over the limit"])
    }

    // MARK: external data

    /// digits_cnn_extdata and its weights file copied to a fresh folder, every external
    /// tensor's `key` entry set to `value` (added when absent).
    func externalCopy(_ key: String, _ value: String) throws -> (model: String, folder: URL) {
        let dir = try CLI.temporaryDirectory()
        try FileManager.default.copyItem(atPath: "\(CLI.fixtures)/digits_cnn.weights", toPath: dir.appendingPathComponent("digits_cnn.weights").path)
        var m = try Onnx_ModelProto(serializedBytes: try Data(contentsOf: URL(fileURLWithPath: "\(CLI.fixtures)/digits_cnn_extdata.onnx")))
        for i in m.graph.initializer.indices where m.graph.initializer[i].dataLocation == .external {
            m.graph.initializer[i].externalData.removeAll { $0.key == key }
            var e = Onnx_StringStringEntryProto(); e.key = key; e.value = value
            m.graph.initializer[i].externalData.append(e)
        }
        let path = dir.appendingPathComponent("model.onnx").path
        try m.serializedData().write(to: URL(fileURLWithPath: path))
        return (path, dir)
    }

    func testExternalDataCopyLoads() throws {
        // The control for the cases below.
        let (path, _) = try externalCopy("location", "digits_cnn.weights")
        XCTAssertEqual(try CLI.run(["inspect", path]).status, 0)
    }

    func testExternalDataLocationThatIsAFolder() throws {
        for location in [".", "sub"] {
            let (path, dir) = try externalCopy("location", location)
            try FileManager.default.createDirectory(at: dir.appendingPathComponent("sub"), withIntermediateDirectories: true)
            try assertExit2(["inspect", path], ["external data", "not a regular file"])
        }
    }

    func testExternalDataSymlinkPointingOutside() throws {
        let (path, dir) = try externalCopy("location", "link.weights")
        let outside = try CLI.temporaryDirectory().appendingPathComponent("digits_cnn.weights")
        try FileManager.default.copyItem(atPath: "\(CLI.fixtures)/digits_cnn.weights", toPath: outside.path)
        try FileManager.default.createSymbolicLink(at: dir.appendingPathComponent("link.weights"), withDestinationURL: outside)
        try assertExit2(["inspect", path], ["external data", "outside the model's folder"])
    }

    func testExternalDataBadOffsets() throws {
        for offset in ["-1", "abc"] {
            let (path, _) = try externalCopy("offset", offset)
            try assertExit2(["inspect", path], ["external data", "offset '\(offset)' is not a non-negative integer"])
        }
        let (path, _) = try externalCopy("offset", "18446744073709551615")
        try assertExit2(["inspect", path], ["external data", "past the end"])
    }
}
