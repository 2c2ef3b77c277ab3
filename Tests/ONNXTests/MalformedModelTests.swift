import Foundation
import XCTest
@testable import ONNX

/// Malformed models found by fuzzing `mpq inspect`/`eval` (issue 10): each must be a
/// thrown ModelError naming the tensor or node, never a trap, and never silently loaded.
final class MalformedModelTests: XCTestCase {
    /// x [1,1,4,4] -> MaxPool 'pool' (2x2, stride 2) -> Add 'add' (+ initializer 'bias') -> y.
    static func graph(opset: Int = 13) -> Graph {
        let pool = Node(name: "pool", opType: "MaxPool", inputs: ["x"], outputs: ["p"],
                        attributes: ["kernel_shape": .ints([2, 2]), "strides": .ints([2, 2])])
        let add = Node(name: "add", opType: "Add", inputs: ["p", "bias"], outputs: ["y"])
        return Graph(nodes: [pool, add], initializers: ["bias": Tensor(shape: [1], floats: [0.5])],
                     inputs: [ValueInfo(name: "x", dtype: .float32, shape: [1, 1, 4, 4])],
                     outputs: [ValueInfo(name: "y", dtype: .float32, shape: nil)], opsets: ["": opset])
    }

    static func proto(_ g: Graph = graph()) throws -> Onnx_ModelProto { try ONNXWriter.modelProto(g) }

    static func load(_ m: Onnx_ModelProto, baseDirectory: URL? = nil) throws -> Graph {
        try ModelLoader.load(data: try m.serializedData(), path: "malformed.onnx", baseDirectory: baseDirectory)
    }

    /// Asserts that loading throws a ModelError whose message contains every fragment.
    func assertRejected(_ m: Onnx_ModelProto, baseDirectory: URL? = nil, _ fragments: [String],
                        file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try Self.load(m, baseDirectory: baseDirectory), file: file, line: line) { error in
            XCTAssertTrue(error is ModelError, "not a ModelError: \(error)", file: file, line: line)
            let text = "\(error)"
            for f in fragments { XCTAssertTrue(text.contains(f), "'\(f)' missing from: \(text)", file: file, line: line) }
        }
    }

    func testTheBaseModelLoads() throws {
        // The control: every mutation below starts from a model that loads.
        let g = try Self.load(try Self.proto())
        XCTAssertEqual(g.nodes.map(\.name), ["pool", "add"])
    }

    // MARK: integer overflow and size limits

    func testInitializerDimsThatOverflowAreRejected() throws {
        for dims: [Int64] in [[1 << 32, 1 << 32, 1, 1], [1 << 62, 4, 1, 1], [Int64.max, 2]] {
            var m = try Self.proto()
            m.graph.initializer[0].dims = dims
            assertRejected(m, ["tensor 'bias'", "more elements than an integer can count"])
        }
    }

    func testNegativeInitializerDimIsRejected() throws {
        var m = try Self.proto()
        m.graph.initializer[0].dims = [-1]
        assertRejected(m, ["tensor 'bias'", "negative dimension -1"])
    }

    func testInitializerOverTheSizeLimitIsRejectedBeforeReadingData() throws {
        var m = try Self.proto()
        m.graph.initializer[0].dims = [1 << 40]     // 4 TiB of float32, with 4 bytes of data
        assertRejected(m, ["tensor 'bias'", "over the limit", "MPQ_MAX_TENSOR_BYTES"])

        // The limit is configurable: 1 KiB rejects a 2 KiB tensor that otherwise loads.
        var big = try Self.proto()
        big.graph.initializer[0] = ONNXWriter.tensorProto(Tensor(shape: [512], floats: [Float](repeating: 1, count: 512)), name: "bias")
        XCTAssertNoThrow(try Self.load(big))
        let saved = TensorLimits.maxBytes
        TensorLimits.maxBytes = 1024
        defer { TensorLimits.maxBytes = saved }
        assertRejected(big, ["tensor 'bias'", "2.0 KiB", "over the limit of 1.0 KiB"])
    }

    func testGraphInputWithAbsurdDimsIsRejected() throws {
        var m = try Self.proto()
        m.graph.input[0].type.tensorType.shape.dim[2].dimValue = 1 << 40
        m.graph.input[0].type.tensorType.shape.dim[3].dimValue = 1 << 40
        assertRejected(m, ["tensor 'x'", "graph input"])
    }

    // MARK: NaN / Inf

    func testNonFiniteInitializerIsRejectedUnlessAllowed() throws {
        var m = try Self.proto()
        m.graph.initializer[0] = ONNXWriter.tensorProto(Tensor(shape: [3], floats: [.nan, .infinity, 1]), name: "bias")
        assertRejected(m, ["tensor 'bias'", "2 of 3 values are not finite", "1 NaN, 1 Inf", "MPQ_ALLOW_NONFINITE"])
        let saved = TensorLimits.allowNonFinite
        TensorLimits.allowNonFinite = true
        defer { TensorLimits.allowNonFinite = saved }
        XCTAssertNoThrow(try Self.load(m))
    }

    func testNonFiniteConstantValueIsRejected() throws {
        var g = Self.graph()
        g.initializers = [:]
        g.nodes.insert(Node(name: "c", opType: "Constant", inputs: [], outputs: ["bias"],
                            attributes: ["value": .tensor(Tensor(shape: [1], floats: [-.infinity]))]), at: 0)
        assertRejected(try Self.proto(g), ["tensor 'c.value'", "1 Inf"])
        // Dims of an unnamed Constant value are checked too, and named after node and attribute.
        var m = try Self.proto(g)
        m.graph.node[0].attribute[0].t.dims = [1 << 62, 4]
        assertRejected(m, ["tensor 'c.value'", "more elements than an integer can count"])
    }

    // MARK: domains, opsets, attribute types

    func testUnknownNodeDomainIsRejected() throws {
        var m = try Self.proto()
        m.graph.node[0].domain = "com.example"
        assertRejected(m, ["node 'pool'", "MaxPool", "domain 'com.example'", "not supported"])
    }

    func testOpsetOutsideTheSupportedRangeIsRejected() throws {
        for version: Int64 in [1, 6, 999] {
            var m = try Self.proto()
            m.opsetImport[0].version = version
            assertRejected(m, ["ai.onnx opset \(version)", "mpq implements ai.onnx opsets 7 to 28"])
        }
        var none = try Self.proto()
        none.opsetImport = []
        assertRejected(none, ["imports no ai.onnx opset"])
        var otherOnly = try Self.proto()
        otherOnly.opsetImport[0].domain = "com.example"
        assertRejected(otherOnly, ["imports no ai.onnx opset"])
    }

    /// Fuzzer reproducer (s39, `opset_duplicate`): ai.onnx imported as 14 and 11 ran as 11 and
    /// failed at an Unsqueeze whose axes are an input since 13, naming neither import.
    func testDomainImportedTwiceIsRejected() throws {
        var m = try Self.proto()
        var again = m.opsetImport[0]
        again.version = 11
        m.opsetImport.append(again)
        assertRejected(m, ["opset_import", "'ai.onnx' twice", "versions \(m.opsetImport[0].version) and 11"])
        var same = try Self.proto()
        same.opsetImport.append(same.opsetImport[0])
        assertRejected(same, ["'ai.onnx' twice"])
    }

    func testAttributeOfTheWrongTypeIsRejected() throws {
        // A string `strides` used to be ignored: the pool silently ran with stride 1.
        var m = try Self.proto()
        let i = m.graph.node[0].attribute.firstIndex { $0.name == "strides" }!
        m.graph.node[0].attribute[i] = ONNXWriter.attributeProto(.string("2,2"), name: "strides")!
        assertRejected(m, ["node 'pool' (MaxPool)", "attribute 'strides'", "must be ints", "string '2,2'"])

        var g = Self.graph()
        g.nodes[0].attributes["ceil_mode"] = .float(1)
        assertRejected(try Self.proto(g), ["attribute 'ceil_mode'", "must be int", "float 1.0"])
        // A flag of 2 or 2^62 used to mean "on" (or "off", where an op tests `== 1`).
        for v in [2, 1 << 62, -1] {
            var flagged = Self.graph()
            flagged.nodes[0].attributes["ceil_mode"] = .int(v)
            assertRejected(try Self.proto(flagged), ["node 'pool' (MaxPool)", "attribute 'ceil_mode'", "must be 0 or 1", "\(v)"])
        }
    }

    func testBatchNormWithIntegerParametersIsNotFolded() {
        // Folding read `.floats` of an int64 running_mean and trapped; now the node stays
        // for the BatchNormalization op to report.
        let conv = Node(name: "conv", opType: "Conv", inputs: ["x", "w"], outputs: ["c"])
        let bn = Node(name: "bn", opType: "BatchNormalization", inputs: ["c", "s", "b", "m", "v"], outputs: ["y"])
        let f = Tensor(shape: [2], floats: [1, 1])
        let g = Graph(nodes: [conv, bn],
                      initializers: ["w": .zeros([2, 1, 1, 1]), "s": f, "b": f, "m": Tensor(shape: [2], ints: [0, 0]), "v": f],
                      inputs: [ValueInfo(name: "x", dtype: .float32, shape: [1, 1, 2, 2])],
                      outputs: [ValueInfo(name: "y", dtype: .float32, shape: nil)], opsets: ["": 13])
        XCTAssertEqual(GraphPasses.optimize(g).nodes.map(\.opType), ["Conv", "BatchNormalization"])
        var floats = g
        floats.initializers["m"] = f
        XCTAssertEqual(GraphPasses.optimize(floats).nodes.map(\.opType), ["Conv"])
    }

    // MARK: external data

    /// A folder with `model.onnx` whose 'bias' lives in `weights.bin` (4 bytes of junk, then the value).
    func externalModel(_ entries: [String: String]) throws -> (Onnx_ModelProto, URL) {
        let dir = try scratchDirectory("mpq-malformed")
        var bytes = Data([0, 0, 0, 0])
        bytes.append(ONNXWriter.rawBytes(Tensor(shape: [1], floats: [0.5])))
        try bytes.write(to: dir.appendingPathComponent("weights.bin"))
        var m = try Self.proto()
        var t = m.graph.initializer[0]
        t.clearRawData()
        t.dataLocation = .external
        t.externalData = entries.sorted(by: { $0.key < $1.key }).map { k, v in
            var e = Onnx_StringStringEntryProto(); e.key = k; e.value = v; return e
        }
        m.graph.initializer[0] = t
        return (m, dir)
    }

    func testValidExternalDataLoads() throws {
        let (m, dir) = try externalModel(["location": "weights.bin", "offset": "4", "length": "4"])
        XCTAssertEqual(try Self.load(m, baseDirectory: dir).initializers["bias"]?.floats, [0.5])
    }

    func testExternalDataLocationThatIsAFolderIsRejected() throws {
        for location in [".", "sub", "./"] {
            let (m, dir) = try externalModel(["location": location])
            try FileManager.default.createDirectory(at: dir.appendingPathComponent("sub"), withIntermediateDirectories: true)
            assertRejected(m, baseDirectory: dir, ["tensor 'bias'", "external data", "not a regular file"])
        }
    }

    func testExternalDataSymlinkOutsideTheFolderIsRejected() throws {
        let (m, dir) = try externalModel(["location": "link.bin", "offset": "4", "length": "4"])
        let outside = try scratchDirectory("mpq-outside").appendingPathComponent("outside.bin")
        try Data(count: 8).write(to: outside)
        try FileManager.default.createSymbolicLink(at: dir.appendingPathComponent("link.bin"), withDestinationURL: outside)
        assertRejected(m, baseDirectory: dir, ["tensor 'bias'", "outside the model's folder"])
        for location in ["/etc/passwd", "../weights.bin"] {
            let (m2, dir2) = try externalModel(["location": location])
            assertRejected(m2, baseDirectory: dir2, ["tensor 'bias'", "must stay inside the model's folder"])
        }
    }

    func testExternalDataOffsetsMustBeValid() throws {
        for offset in ["-1", "abc", "", "0x4", "+4"] {
            let (m, dir) = try externalModel(["location": "weights.bin", "offset": offset, "length": "4"])
            assertRejected(m, baseDirectory: dir, ["tensor 'bias'", "offset '\(offset)' is not a non-negative integer"])
        }
        let (huge, dir) = try externalModel(["location": "weights.bin", "offset": "18446744073709551615", "length": "4"])
        assertRejected(huge, baseDirectory: dir, ["tensor 'bias'", "offset 18446744073709551615 is past the end"])
        let (long, dir2) = try externalModel(["location": "weights.bin", "offset": "4", "length": "18446744073709551615"])
        assertRejected(long, baseDirectory: dir2, ["tensor 'bias'", "weights.bin has 8 bytes"])
        let (bad, dir3) = try externalModel(["location": "weights.bin", "offset": "4", "length": "-4"])
        assertRejected(bad, baseDirectory: dir3, ["tensor 'bias'", "length '-4' is not a non-negative integer"])
    }
}
