import XCTest
import ONNX
@testable import Kernels

/// The fast region-op forms (`RegionKernels`: 256-entry tables for unary ops, one-pass
/// Add/Mul) give the bytes of the generic form: the FP32 op, then quantize -> dequantize.
final class RegionKernelTests: XCTestCase {
    func session(_ node: Node, inputs: [String]) throws -> Session {
        let g = Graph(nodes: [node], initializers: [:],
                      inputs: inputs.map { ValueInfo(name: $0, dtype: .float32, shape: nil) },
                      outputs: [ValueInfo(name: "y", dtype: .float32, shape: nil)], opsets: ["": 17], name: "t")
        return try Session(graph: g)
    }

    /// Values on the grid of `q` (what a requantized tensor holds), plus clamped extremes.
    func grid(_ n: Int, _ q: ActivationQuant, seed: UInt64) -> Tensor {
        var rng = TestRNG(seed: seed)
        return Tensor(shape: [2, n / 2], floats: (0..<n).map { _ in (Float(rng.int(0...255)) - Float(q.zeroPoint)) * q.scale + 0 })
    }

    func generic(_ s: Session, _ node: Node, _ ins: [Tensor], _ q: ActivationQuant) throws -> Tensor {
        var outs = try s.runNode(node, inputs: ins)
        requantize(&outs[0], q, path: .reference)
        return outs[0]
    }

    func testUnaryTablesEqualTheOpThenRequantize() throws {
        let qi = ActivationQuant(scale: 0.0713, zeroPoint: 131)
        for (op, attrs, q) in [("Sigmoid", [String: Attribute](), ActivationQuant(scale: 1 / 255, zeroPoint: 0)),
                               ("LeakyRelu", ["alpha": .float(0.1)], ActivationQuant(scale: 0.05, zeroPoint: 20)),
                               ("Relu", [:], ActivationQuant(scale: 0.04, zeroPoint: 0)),
                               ("HardSigmoid", ["alpha": .float(0.2), "beta": .float(0.5)], ActivationQuant(scale: 1 / 255, zeroPoint: 0))] {
            let node = Node(name: op, opType: op, inputs: ["x"], outputs: ["y"], attributes: attrs)
            let s = try session(node, inputs: ["x"])
            var plan = QuantPlan(inputsScheme: [])
            plan.requantized["x"] = qi
            let fast = try XCTUnwrap(try RegionKernels.override(node, session: s, plan: plan, output: q), op)
            let x = grid(4000, qi, seed: 5)
            let got = try fast([x])[0]
            XCTAssertEqual(got.floats.map(\.bitPattern), try generic(s, node, [x], q).floats.map(\.bitPattern), op)
        }
    }

    func testOnePassAddAndMulEqualTheOpThenRequantize() throws {
        let qa = ActivationQuant(scale: 0.03, zeroPoint: 17), qb = ActivationQuant(scale: 0.011, zeroPoint: 200)
        for op in ["Add", "Mul"] {
            let node = Node(name: op, opType: op, inputs: ["a", "b"], outputs: ["y"], attributes: [:])
            let s = try session(node, inputs: ["a", "b"])
            let q = ActivationQuant(scale: 0.045, zeroPoint: 90)
            let fast = try XCTUnwrap(try RegionKernels.override(node, session: s, plan: QuantPlan(inputsScheme: []), output: q))
            let a = grid(3000, qa, seed: 1), b = grid(3000, qb, seed: 2)
            XCTAssertEqual(try fast([a, b])[0].floats.map(\.bitPattern), try generic(s, node, [a, b], q).floats.map(\.bitPattern), op)
            // Broadcasting takes the generic form.
            let c = Tensor(shape: [1, 1], floats: [0.37])
            XCTAssertEqual(try fast([a, c])[0].floats.map(\.bitPattern), try generic(s, node, [a, c], q).floats.map(\.bitPattern), op)
        }
    }
}
