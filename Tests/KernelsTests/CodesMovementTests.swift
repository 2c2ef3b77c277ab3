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

    func testSliceAndGatherMoveTheCodes() throws {
        let x = codes([2, 6, 5, 7])
        let ints = { (v: [Int64]) in Tensor(shape: [v.count], ints: v) }
        try check(node("Slice", inputs: 5), x, [ints([1, 2]), ints([5, 7]), ints([1, 3]), ints([1, 2])])
        try check(node("Slice", inputs: 5), x, [ints([-1]), ints([-100]), ints([2]), ints([-2])])
        try check(node("Gather", ["axis": .int(1)], inputs: 2), x, [ints([0, 5, -1, 2])])
        try check(node("Gather", ["axis": .int(3)], inputs: 2), x, [Tensor(shape: [2, 2], ints: [6, 0, 3, 3])])
        try check(node("Gather", inputs: 2), x, [Tensor(shape: [], ints: [1])])
    }

    /// Conv -> Slice -> Gather -> Conv under the `ort` scheme: Slice and Gather join the INT8
    /// region sharing the first Conv's output scale (ORT drops their DQ/Q pair), and their
    /// overrides move codes (`movedAsCodes`), the codes the FP32 op gives on the floats.
    func testSliceAndGatherRunInTheRegionOnCodes() throws {
        var rng = TestRNG(seed: 4)
        func t(_ shape: [Int]) -> Tensor { Tensor(shape: shape, floats: (0..<shape.reduce(1, *)).map { _ in rng.float(-0.5...0.5) }) }
        let ints = { (v: [Int64]) in Tensor(shape: [v.count], ints: v) }
        let graph = Graph(nodes: [
            Node(name: "c1", opType: "Conv", inputs: ["x", "w1"], outputs: ["a"]),
            Node(name: "slice", opType: "Slice", inputs: ["a", "st", "en", "ax"], outputs: ["b"]),
            Node(name: "gather", opType: "Gather", inputs: ["b", "idx"], outputs: ["c"], attributes: ["axis": .int(1)]),
            Node(name: "c2", opType: "Conv", inputs: ["c", "w2"], outputs: ["y"]),
        ], initializers: ["w1": t([8, 3, 1, 1]), "w2": t([4, 3, 1, 1]), "st": ints([1]), "en": ints([6]), "ax": ints([3]),
                          "idx": ints([7, 0, 2])],
           inputs: [ValueInfo(name: "x", dtype: .float32, shape: [1, 3, 5, 8])],
           outputs: [ValueInfo(name: "y", dtype: .float32, shape: nil)], opsets: ["": 17])
        let session = try Session(graph: graph)
        let qa = ActivationQuant(scale: 0.02, zeroPoint: 100)
        let plan = QuantPlan(session: session, int8Layers: ["c1", "c2"]) { $0 == "a" ? qa : ActivationQuant(scale: 0.05, zeroPoint: 7) }
        XCTAssertEqual(plan.int8RegionOps, ["slice", "gather"])
        XCTAssertEqual(plan.requantized["b"], qa, "Slice shares its input's scale")
        XCTAssertEqual(plan.requantized["c"], qa, "Gather shares its input's scale")
        XCTAssertEqual(QuantPlan.sources(session)["c"], "a")
        let counters = Int8ChainCounters()
        let xs = codes([1, 8, 5, 8])
        let a = Tensor(shape: xs.shape, codes: QuantizedCodes(values: xs.codes!.values, scale: qa.scale, zeroPoint: qa.zeroPoint))
        var moved = a
        for name in ["slice", "gather"] {
            let n = try XCTUnwrap(session.plan.first { $0.name == name })
            guard let run = try RegionKernels.override(n, session: session, plan: plan, output: qa, writeCodes: true, counters: counters) else {
                return XCTFail("\(name) has no region override")
            }
            let extra = n.inputs.dropFirst().map { session.constants[$0] }
            let out = try run([moved] + extra)[0]
            XCTAssertTrue(out.isCodesOnly, name)
            let floatOut = try session.runNode(n, inputs: [moved.materialized()] + extra)[0]
            XCTAssertEqual(out.materialized().floats, floatOut.floats, "\(name): the codes of the float op's values")
            moved = out
        }
        XCTAssertEqual(counters.movedAsCodes, 2, "Slice and Gather must move codes, not round-trip through floats")
        XCTAssertEqual(counters.codesWritten, 2)
    }

    /// A scalar Split of `x`'s codes along `axis` into `sizes` (index arithmetic only): the
    /// reference for the Split on codes (QuantPlan rule 5).
    func scalarSplit(_ x: [UInt8], _ shape: [Int], axis: Int, sizes: [Int]) -> [[UInt8]] {
        let outer = shape[..<axis].reduce(1, *), dim = shape[axis], inner = shape[(axis + 1)...].reduce(1, *)
        var start = 0
        return sizes.map { s in
            var out: [UInt8] = []
            for o in 0..<outer { for j in 0..<s { for i in 0..<inner { out.append(x[(o * dim + start + j) * inner + i]) } } }
            start += s
            return out
        }
    }

    /// Split on a tensor held as codes returns every output as codes on the input's grid,
    /// equal to the scalar reference and to the op on the codes as floats, for explicit sizes
    /// (opset 13 input, opset 11 attribute, empty parts) and equal parts.
    func testSplitMovesTheCodesToEveryOutput() throws {
        let shape = [2, 6, 3, 5]
        let x = codes(shape)
        let cases: [(axis: Int, sizes: [Int], explicit: Bool)] = [
            (1, [2, 4], true), (1, [2, 2, 2], false), (3, [1, 0, 4], true), (0, [1, 1], false), (2, [3], true), (3, [5], false),
        ]
        for opset in [11, 13] {
            for c in cases {
                let outs = (0..<c.sizes.count).map { "y\($0)" }
                var attrs: [String: Attribute] = ["axis": .int(c.axis)]
                var extra: [Tensor?] = []
                if c.explicit {
                    if opset < 13 { attrs["split"] = .ints(c.sizes) } else { extra = [Tensor(shape: [c.sizes.count], ints: c.sizes.map(Int64.init))] }
                }
                let n = Node(name: "split", opType: "Split", inputs: ["x"] + (extra.isEmpty ? [] : ["sizes"]), outputs: outs, attributes: attrs)
                let entry = try OpRegistry.entry(for: n, opset: opset)
                let onCodes = try entry.run(n, [x] + extra, opset)
                let asFloats = try entry.run(n, [Tensor(shape: shape, floats: x.codes!.values.map { Float($0) })] + extra, opset)
                let want = scalarSplit(x.codes!.values, shape, axis: c.axis, sizes: c.sizes)
                XCTAssertEqual(onCodes.count, c.sizes.count)
                for k in onCodes.indices {
                    let what = "opset \(opset) axis \(c.axis) sizes \(c.sizes) output \(k)"
                    var outShape = shape
                    outShape[c.axis] = c.sizes[k]
                    XCTAssertEqual(onCodes[k].shape, outShape, what)
                    XCTAssertEqual(onCodes[k].codes?.values ?? [], want[k], what)
                    XCTAssertEqual(asFloats[k].floats.map { UInt8($0) }, want[k], what)
                    if c.sizes[k] > 0 { XCTAssertTrue(onCodes[k].isCodesOnly, what) }
                    XCTAssertEqual(onCodes[k].codes?.scale, grid.scale, what)
                    XCTAssertEqual(onCodes[k].codes?.zeroPoint, grid.zeroPoint, what)
                }
            }
        }
    }

    /// Conv -> Split -> (Conv, Concat) under the `ort` scheme (QuantPlan rule 5): the Split
    /// joins the INT8 region, every output requantized on its input's grid (ORT's
    /// SplitSelector requires equal parameters), its override moves codes and writes codes
    /// to the readers that read them, and the run equals the float path (chains off) byte
    /// for byte, on every kernel path.
    func testSplitRunsInTheRegionOnCodes() throws {
        var rng = TestRNG(seed: 14)
        func t(_ shape: [Int]) -> Tensor { Tensor(shape: shape, floats: (0..<shape.reduce(1, *)).map { _ in rng.float(-0.5...0.5) }) }
        let graph = Graph(nodes: [
            Node(name: "c1", opType: "Conv", inputs: ["x", "w1"], outputs: ["a"]),
            Node(name: "split", opType: "Split", inputs: ["a", "sizes"], outputs: ["p", "q", "r"], attributes: ["axis": .int(1)]),
            Node(name: "c2", opType: "Conv", inputs: ["q", "w2"], outputs: ["b"]),
            Node(name: "cat", opType: "Concat", inputs: ["p", "b", "r"], outputs: ["c"], attributes: ["axis": .int(1)]),
            Node(name: "c3", opType: "Conv", inputs: ["c", "w3"], outputs: ["y"]),
        ], initializers: ["w1": t([8, 3, 1, 1]), "w2": t([3, 3, 1, 1]), "w3": t([2, 8, 1, 1]),
                          "sizes": Tensor(shape: [3], ints: [2, 3, 3])],
           inputs: [ValueInfo(name: "x", dtype: .float32, shape: [2, 3, 4, 5])],
           outputs: [ValueInfo(name: "y", dtype: .float32, shape: nil)], opsets: ["": 17])
        let session = try Session(graph: graph)
        let qa = ActivationQuant(scale: 0.02, zeroPoint: 100)
        let other = ActivationQuant(scale: 0.05, zeroPoint: 7)
        let plan = QuantPlan(session: session, int8Layers: ["c1", "c2", "c3"]) { $0 == "a" ? qa : other }
        XCTAssertEqual(plan.int8RegionOps, ["split", "cat"])
        for o in ["p", "q", "r"] { XCTAssertEqual(plan.requantized[o], qa, "Split output \(o) shares its input's scale") }
        XCTAssertEqual(QuantPlan.sources(session)["r"], "a")
        XCTAssertNotNil(plan.behaviour(session.plan.first { $0.name == "split" }!))
        // c1 in FP32: the Split's input comes from an FP32 node, so it stays FP32 (rule 2).
        let fp32First = QuantPlan(session: session, int8Layers: ["c2", "c3"]) { $0 == "a" ? qa : other }
        XCTAssertFalse(fp32First.int8RegionOps.contains("split"), "a region only grows out of INT8 layers")
        XCTAssertNil(fp32First.requantized["q"])

        let table = CalibrationTable(method: "minmax", modelDigest: "", samples: 1, ranges: ["x": .init(min: -0.5, max: 0.5), "a": .init(min: -2, max: 3.1), "b": .init(min: -1, max: 1.5),
                                              "q": .init(min: -2, max: 3.1), "c": .init(min: -2, max: 3.1), "y": .init(min: -1, max: 1)])
        let feeds = ["x": t([2, 3, 4, 5])]
        for path in KernelPath.available {
            var outputs: [[UInt32]] = []
            for chains in [true, false] {
                let runtime = try MixedPrecisionRuntime(session: session, calibration: table, path: path, scheme: .ort)
                runtime.uint8Chains = chains
                try runtime.apply(runtime.allInt8)
                XCTAssertTrue(runtime.plan.int8RegionOps.contains("split"))
                runtime.chainCounters.reset()
                outputs.append(try session.run(feeds)["y"]!.floats.map(\.bitPattern))
                if chains {
                    XCTAssertGreaterThan(runtime.chainCounters.movedAsCodes, 0, "\(path): the Split must move codes")
                    XCTAssertTrue(session.codesInputNodes.contains("split"))
                }
            }
            XCTAssertEqual(outputs[0], outputs[1], "\(path): chains on and off must give the same bytes")
        }
    }
}
