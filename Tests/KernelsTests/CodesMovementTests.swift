import XCTest
@testable import Kernels
import ONNX

/// The movement ops the INT8 chains run on uint8 codes (`RegionKernels.codesNativeOps`,
/// docs/int8-chains.md): given a tensor held only as codes, each FP32 op must return the
/// codes the former round trip gave (the codes as floats through the op, back to bytes),
/// on the input's grid, and never read the (empty) floats.
final class CodesMovementTests: XCTestCase {
    let grid = (scale: Float(0.037), zeroPoint: UInt8(131))

    func codes(_ shape: [Int]) -> Tensor {
        let n = shape.reduce(1, *)
        let values = (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 97 &+ ($0 >> 3) &* 13) }
        return Tensor(shape: shape, codes: QuantizedCodes(values: values, scale: grid.scale, zeroPoint: grid.zeroPoint))
    }

    /// Runs `node` on the codes and on the codes as floats (the round trip's input).
    func check(_ node: Node, _ x: Tensor, _ extra: [Tensor?] = [], opset: Int = 13, file: StaticString = #filePath, line: UInt = #line) throws {
        let entry = try OpRegistry.entry(for: node, opset: opset)
        let onCodes = try entry.run(node, [x] + extra, opset)[0]
        let asFloats = Tensor(shape: x.shape, floats: x.codes!.values.map { Float($0) })
        let reference = try entry.run(node, [asFloats] + extra, opset)[0]
        XCTAssertTrue(onCodes.isCodesOnly, "\(node.opType) returned floats", file: file, line: line)
        XCTAssertEqual(onCodes.shape, reference.shape, file: file, line: line)
        XCTAssertEqual(onCodes.codes?.values, reference.floats.map { UInt8($0) }, "\(node.opType)", file: file, line: line)
        XCTAssertEqual(onCodes.codes?.scale, grid.scale, file: file, line: line)
        XCTAssertEqual(onCodes.codes?.zeroPoint, grid.zeroPoint, file: file, line: line)
    }

    func node(_ op: String, _ attributes: [String: Attribute] = [:], inputs: Int = 1) -> Node {
        Node(name: op, opType: op, inputs: (0..<inputs).map { "i\($0)" }, outputs: ["y"], attributes: attributes)
    }

    func testReshapeFamilyKeepsTheCodes() throws {
        let x = codes([2, 3, 4, 5])
        try check(node("Reshape", inputs: 2), x, [Tensor(shape: [3], ints: [2, -1, 5])])
        try check(node("Flatten", ["axis": .int(2)]), x)
        try check(node("Unsqueeze", inputs: 2), x, [Tensor(shape: [1], ints: [1])])
        try check(node("Squeeze", inputs: 2), codes([2, 1, 7]), [Tensor(shape: [1], ints: [1])])
        try check(node("Identity"), x)
    }

    func testTransposeMovesTheCodes() throws {
        let x = codes([2, 3, 4, 5])
        for perm in [[0, 2, 3, 1], [0, 3, 1, 2], [3, 2, 1, 0], [1, 0, 2, 3], [0, 1, 2, 3]] {
            try check(node("Transpose", ["perm": .ints(perm)]), x)
        }
        try check(node("Transpose"), codes([1, 6, 1, 9]))
    }

    func testNearestResizeGathersTheCodes() throws {
        let x = codes([2, 3, 5, 7])
        let none = Tensor(shape: [0], floats: [])
        for mode in ["asymmetric", "half_pixel", "align_corners", "pytorch_half_pixel"] {
            for nearest in ["floor", "round_prefer_floor", "round_prefer_ceil", "ceil"] {
                let n = node("Resize", ["mode": .string("nearest"), "coordinate_transformation_mode": .string(mode),
                                        "nearest_mode": .string(nearest)], inputs: 3)
                try check(n, x, [none, Tensor(shape: [4], floats: [1, 1, 2, 2])])
                try check(n, x, [none, Tensor(shape: [4], floats: [1, 1, 0.6, 1.5])])
                let sized = node("Resize", ["mode": .string("nearest"), "coordinate_transformation_mode": .string(mode),
                                            "nearest_mode": .string(nearest)], inputs: 4)
                try check(sized, x, [none, nil, Tensor(shape: [4], ints: [2, 3, 9, 4])])
            }
        }
        try check(node("Upsample", ["mode": .string("nearest")], inputs: 2), x, [Tensor(shape: [4], floats: [1, 1, 2, 3])], opset: 9)
    }

    /// The float path's nearest Resize now gathers rows (`nearestAxis`); linear keeps the
    /// weighted form. Both against the per-axis reference `resampleAxis`, bit for bit.
    func testNearestGatherMatchesTheWeightedForm() throws {
        let shape = [2, 3, 5, 7]
        let x = (0..<shape.reduce(1, *)).map { Float($0 % 29) * 0.25 - 3 }
        let opt = ResampleOptions(mode: .nearest, transform: .asymmetric, nearestMode: .floor, cubicCoeffA: -0.75,
                                  excludeOutside: false, extrapolationValue: 0, antialias: false)
        for axis in 0..<4 {
            let taps = AxisTaps(inLen: shape[axis], outLen: shape[axis] * 2 + 1, scale: 2.2, roiStart: 0, roiEnd: 1, opt)
            let gathered = ResizeOps.nearestAxis(x, shape, axis: axis, taps.index)
            let weighted = ResizeOps.resampleAxis(x, shape, axis: axis, taps, extrapolation: 0)
            XCTAssertEqual(gathered.map(\.bitPattern), weighted.map(\.bitPattern), "axis \(axis)")
        }
    }
}
