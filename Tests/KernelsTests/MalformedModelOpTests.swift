import XCTest
import ONNX
@testable import Kernels

/// Shapes and attributes from malformed models (issue 10's fuzzer): each used to trap
/// (integer overflow) or abort (an absurd allocation) in shape computation. Now each is a
/// RuntimeError naming the node, raised before anything is allocated.
final class MalformedModelOpTests: XCTestCase {
    static let huge = 1 << 40
    static let overflowing = 1 << 62

    /// One node `name` reading graph input `x` (zeros of `xShape`) and constant inputs.
    func assertNodeFails(_ node: Node, xShape: [Int]?, constants: [String: Tensor] = [:], opset: Int = 17,
                         _ fragments: [String], file: StaticString = #filePath, line: UInt = #line) {
        let inputs = xShape.map { [ValueInfo(name: "x", dtype: .float32, shape: $0)] } ?? []
        let g = Graph(nodes: [node], initializers: constants, inputs: inputs,
                      outputs: [ValueInfo(name: node.outputs[0], dtype: nil, shape: nil)], opsets: ["": opset])
        do {
            let session = try Session(graph: g)
            _ = try session.run(xShape.map { ["x": Tensor.zeros($0)] } ?? [:])
            XCTFail("\(node.opType) ran", file: file, line: line)
        } catch let e as RuntimeError {
            let text = e.description
            for f in ["node '\(node.name)'", node.opType] + fragments {
                XCTAssertTrue(text.contains(f), "'\(f)' missing from: \(text)", file: file, line: line)
            }
        } catch {
            XCTFail("not a RuntimeError: \(error)", file: file, line: line)
        }
    }

    func ints(_ v: [Int]) -> Tensor { Tensor(shape: [v.count], ints: v.map { Int64($0) }) }

    func testTileWithHugeRepeats() {
        assertNodeFails(Node(name: "tile", opType: "Tile", inputs: ["x", "r"], outputs: ["y"]), xShape: [1, 1, 8, 8],
                        constants: ["r": ints([1, Self.huge, 1, 1])], ["Tile output", "over the limit"])
        assertNodeFails(Node(name: "tile", opType: "Tile", inputs: ["x", "r"], outputs: ["y"]), xShape: [1, 1, 8, 8],
                        constants: ["r": ints([1, Self.overflowing, 1, 1])], ["Tile output", "more elements than an integer can count"])
    }

    func testRangeWithAHugeLength() {
        let node = Node(name: "range", opType: "Range", inputs: ["s", "l", "d"], outputs: ["y"])
        assertNodeFails(node, xShape: nil, constants: ["s": .scalar(Float(0)), "l": .scalar(Float(1e12)), "d": .scalar(Float(1))],
                        ["over the limit"])
        assertNodeFails(node, xShape: nil, constants: ["s": .scalar(Float(0)), "l": .scalar(Float.infinity), "d": .scalar(Float(1))],
                        ["over the limit"])
        assertNodeFails(node, xShape: nil, constants: ["s": .scalar(Int64(0)), "l": .scalar(Int64(1_000_000_000_000)), "d": .scalar(Int64(1))],
                        ["Range output", "over the limit"])
        assertNodeFails(node, xShape: nil, constants: ["s": .scalar(Int64.min), "l": .scalar(Int64.max), "d": .scalar(Int64(1))],
                        ["overflows"])
    }

    func testResizeWithHugeScales() {
        let node = Node(name: "resize", opType: "Resize", inputs: ["x", "", "s"], outputs: ["y"])
        assertNodeFails(node, xShape: [1, 1, 8, 8], constants: ["s": Tensor(shape: [4], floats: [1, 1, 1e6, 1e6])],
                        ["Resize output", "over the limit"])
        assertNodeFails(node, xShape: [1, 1, 8, 8], constants: ["s": Tensor(shape: [4], floats: [1, 1, 1e30, 1])],
                        ["make axis 2", "over the limit"])
    }

    func testPadWithHugePads() {
        let node = Node(name: "pad", opType: "Pad", inputs: ["x", "p"], outputs: ["y"])
        assertNodeFails(node, xShape: [1, 1, 8, 8], constants: ["p": ints([0, 0, Self.huge, 0, 0, 0, 0, 0])],
                        ["Pad output", "over the limit"])
        assertNodeFails(node, xShape: [1, 1, 8, 8], constants: ["p": ints([0, 0, Int.max, 0, 0, 0, 1, 0])], ["overflow"])
        // An empty tensor with one enormous axis: per-axis tables would still be enormous.
        assertNodeFails(node, xShape: [0, 1, 8, 8], constants: ["p": ints([0, 0, Self.huge, 0, 0, 0, 0, 0])],
                        ["has dimension"])
    }

    func testExpandToAHugeShape() {
        assertNodeFails(Node(name: "expand", opType: "Expand", inputs: ["x", "s"], outputs: ["y"]), xShape: [1, 1, 8, 8],
                        constants: ["s": ints([Self.huge, 1, 8, 8])], ["over the limit"])
        assertNodeFails(Node(name: "expand", opType: "Expand", inputs: ["x", "s"], outputs: ["y"]), xShape: [1, 1, 8, 8],
                        constants: ["s": ints([-3, 1, 8, 8])], ["negative"])
    }

    func testBroadcastOfTwoSmallInputsToAHugeOutput() {
        let a = Tensor(shape: [1 << 20, 1], floats: [Float](repeating: 1, count: 1 << 20))
        let b = Tensor(shape: [1, 1 << 20], floats: [Float](repeating: 1, count: 1 << 20))
        assertNodeFails(Node(name: "add", opType: "Add", inputs: ["a", "b"], outputs: ["y"]), xShape: nil,
                        constants: ["a": a, "b": b], ["broadcast of [1048576,1] and [1,1048576]", "over the limit"])
    }

    func testConstantOfShapeHuge() {
        assertNodeFails(Node(name: "fill", opType: "ConstantOfShape", inputs: ["s"], outputs: ["y"]), xShape: nil,
                        constants: ["s": ints([1 << 31, 1 << 31])], ["ConstantOfShape output", "[2147483648,2147483648]"])
        assertNodeFails(Node(name: "fill", opType: "ConstantOfShape", inputs: ["s"], outputs: ["y"]), xShape: nil,
                        constants: ["s": ints([1 << 20, 1 << 20])], ["ConstantOfShape output", "4.0 TiB", "over the limit"])
        assertNodeFails(Node(name: "fill", opType: "ConstantOfShape", inputs: ["s"], outputs: ["y"]), xShape: nil,
                        constants: ["s": ints([1 << 32, 1 << 32])], ["more elements than an integer can count"])
    }

    func testReshapeToAnOverflowingShape() {
        let node = Node(name: "reshape", opType: "Reshape", inputs: ["x", "s"], outputs: ["y"])
        assertNodeFails(node, xShape: [1, 16], constants: ["s": ints([Self.overflowing, 4])], ["cannot reshape"])
        assertNodeFails(node, xShape: [1, 16], constants: ["s": ints([Self.overflowing, 4, -1])], ["cannot reshape"])
    }

    func testSplitWithOverflowingSizes() {
        let node = Node(name: "split", opType: "Split", inputs: ["x", "s"], outputs: ["a", "b"], attributes: ["axis": .int(1)])
        assertNodeFails(node, xShape: [1, 16], constants: ["s": ints([Self.overflowing, Self.overflowing, Self.overflowing, Self.overflowing + 16])],
                        ["does not sum to dim 16"])
        let many = Node(name: "split", opType: "Split", inputs: ["x"], outputs: ["a"], attributes: ["axis": .int(1), "num_outputs": .int(Int.max)])
        assertNodeFails(many, xShape: [1, 16], opset: 18, ["outputs"])
    }

    func testSliceAndEyeLikeWithExtremeAttributes() throws {
        // A step of 2^62 on a one-element slice used to overflow `stride * step`.
        let slice = Node(name: "slice", opType: "Slice", inputs: ["x", "s", "e", "a", "st"], outputs: ["y"])
        let g = Graph(nodes: [slice], initializers: ["s": ints([Int.min]), "e": ints([3]), "a": ints([-3]), "st": ints([Self.overflowing])],
                      inputs: [ValueInfo(name: "x", dtype: .float32, shape: [1, 2, 4, 4])],
                      outputs: [ValueInfo(name: "y", dtype: nil, shape: nil)], opsets: ["": 17])
        XCTAssertEqual(try Session(graph: g).run(["x": .zeros([1, 2, 4, 4])])["y"]?.shape, [1, 1, 4, 4])
        // EyeLike's k of Int.max used to overflow `i + k`: the diagonal is simply off the matrix.
        let eye = Node(name: "eye", opType: "EyeLike", inputs: ["x"], outputs: ["y"], attributes: ["k": .int(Int.max)])
        let g2 = Graph(nodes: [eye], initializers: [:], inputs: [ValueInfo(name: "x", dtype: .float32, shape: [3, 3])],
                       outputs: [ValueInfo(name: "y", dtype: nil, shape: nil)], opsets: ["": 17])
        XCTAssertEqual(try Session(graph: g2).run(["x": .zeros([3, 3])])["y"]?.floats, [Float](repeating: 0, count: 9))
    }

    func testBitwiseOpsOnFloatsAndCumSumOverflow() throws {
        // Float inputs to bitwise ops used to trip Tensor's storage precondition.
        assertNodeFails(Node(name: "xor", opType: "BitwiseXor", inputs: ["x", "c"], outputs: ["y"]), xShape: [1, 2, 4, 4],
                        constants: ["c": ints([3])], opset: 18, ["needs integer tensors, got float32 and int64"])
        assertNodeFails(Node(name: "not", opType: "BitwiseNot", inputs: ["x"], outputs: ["y"]), xShape: [1, 2, 4, 4],
                        opset: 18, ["needs an integer tensor"])
        // int64 extremes wrap (as Add does) instead of trapping.
        let cum = Node(name: "cum", opType: "CumSum", inputs: ["v", "a"], outputs: ["y"])
        let g = Graph(nodes: [cum], initializers: ["v": ints([Int.max, 1]), "a": .scalar(Int64(0))], inputs: [],
                      outputs: [ValueInfo(name: "y", dtype: nil, shape: nil)], opsets: ["": 17])
        XCTAssertEqual(try Session(graph: g).run([:])["y"]?.ints, [Int64.max, Int64.min])
    }

    func testAxisOpsOnAScalar() {
        // Size gives a scalar; Gather on it indexed shape[0] of an empty shape.
        let size = Node(name: "size", opType: "Size", inputs: ["x"], outputs: ["n"])
        let gather = Node(name: "gather", opType: "Gather", inputs: ["n", "i"], outputs: ["y"])
        let g = Graph(nodes: [size, gather], initializers: ["i": ints([0])],
                      inputs: [ValueInfo(name: "x", dtype: .float32, shape: [1, 2])],
                      outputs: [ValueInfo(name: "y", dtype: nil, shape: nil)], opsets: ["": 17])
        XCTAssertThrowsError(try Session(graph: g).run(["x": .zeros([1, 2])])) {
            XCTAssertTrue("\($0)".contains("node 'gather' (Gather)") && "\($0)".contains("got a scalar"), "\($0)")
        }
        for op in ["CumSum", "Split", "Concat"] {
            let inputs = op == "CumSum" ? ["s", "a"] : ["s"]
            assertNodeFails(Node(name: "op", opType: op, inputs: inputs, outputs: ["y"], attributes: op == "Concat" ? ["axis": .int(0)] : [:]),
                            xShape: nil, constants: ["s": .scalar(Float(1)), "a": .scalar(Int64(0))], ["got a scalar"])
        }
    }

    func testOneHotWithAHugeDepth() {
        assertNodeFails(Node(name: "onehot", opType: "OneHot", inputs: ["i", "d", "v"], outputs: ["y"]), xShape: nil,
                        constants: ["i": ints([1, 2]), "d": .scalar(Float(1e30)), "v": Tensor(shape: [2], floats: [0, 1])],
                        ["depth"])
    }

    func testConvWithOverflowingAttributes() {
        let w = Tensor.zeros([1, 1, 3, 3])
        for (attr, value) in [("pads", Attribute.ints([Self.overflowing, 0, 0, 0])),
                              ("dilations", .ints([Self.overflowing, 1])),
                              ("strides", .ints([Self.overflowing, 1]))] {
            assertNodeFails(Node(name: "conv", opType: "Conv", inputs: ["x", "w"], outputs: ["y"], attributes: [attr: value]),
                            xShape: [1, 1, 8, 8], constants: ["w": w], ["must be at most"])
        }
        assertNodeFails(Node(name: "conv", opType: "Conv", inputs: ["x", "w"], outputs: ["y"], attributes: ["group": .int(Self.overflowing)]),
                        xShape: [1, 1, 8, 8], constants: ["w": w], ["group"])
    }

    func testPoolWithOverflowingPadsOrAKernelLargerThanTheInput() {
        assertNodeFails(Node(name: "pool", opType: "MaxPool", inputs: ["x"], outputs: ["y"],
                             attributes: ["kernel_shape": .ints([2, 2]), "pads": .ints([Self.overflowing, 0, 0, 0])]),
                        xShape: [1, 1, 8, 8], ["must be at most"])
        assertNodeFails(Node(name: "pool", opType: "MaxPool", inputs: ["x"], outputs: ["y"],
                             attributes: ["kernel_shape": .ints([9, 9])]),
                        xShape: [1, 1, 8, 8], ["larger than the padded input"])
        assertNodeFails(Node(name: "pool", opType: "AveragePool", inputs: ["x"], outputs: ["y"],
                             attributes: ["kernel_shape": .ints([12, 2]), "pads": .ints([1, 0, 1, 0])]),
                        xShape: [1, 1, 8, 8], ["larger than the padded input"])
        // The boundary: a kernel exactly the padded input's size still runs.
        let g = Graph(nodes: [Node(name: "pool", opType: "MaxPool", inputs: ["x"], outputs: ["y"],
                                   attributes: ["kernel_shape": .ints([10, 8]), "pads": .ints([1, 0, 1, 0])])],
                      initializers: [:], inputs: [ValueInfo(name: "x", dtype: .float32, shape: [1, 1, 8, 8])],
                      outputs: [ValueInfo(name: "y", dtype: nil, shape: nil)], opsets: ["": 17])
        XCTAssertEqual(try Session(graph: g).run(["x": .zeros([1, 1, 8, 8])])["y"]?.shape, [1, 1, 1, 1])
    }

    func testTheLimitIsConfigurable() {
        let saved = TensorLimits.maxBytes
        TensorLimits.maxBytes = 1 << 20
        defer { TensorLimits.maxBytes = saved }
        // 512 KiB of float32 is allowed, 2 MiB is not.
        let node = Node(name: "fill", opType: "ConstantOfShape", inputs: ["s"], outputs: ["y"])
        let ok = Graph(nodes: [node], initializers: ["s": ints([512, 256])], inputs: [],
                       outputs: [ValueInfo(name: "y", dtype: nil, shape: nil)], opsets: ["": 17])
        XCTAssertNoThrow(try Session(graph: ok))
        assertNodeFails(node, xShape: nil, constants: ["s": ints([512, 1024])], ["2.0 MiB", "over the limit of 1.0 MiB"])
    }
}
