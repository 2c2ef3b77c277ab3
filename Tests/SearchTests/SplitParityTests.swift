import Foundation
import XCTest
import Kernels
import ONNX
@testable import Search

/// Split as a multi-output INT8 op under `--scheme ort` (QuantPlan rule 5) against ONNX
/// Runtime (tools/fixtures/generate_split.py, Tests/Fixtures/split): a small CNN with a
/// C2f-style two-way Split and a QKV-style three-way Split inside one INT8 chain. Every
/// Split output is requantized on its input's grid, so ORT's optimizer turns each
/// `DQ -> Split -> Q...` into a uint8 Split (SplitQDQRules); the output `y` is the negated
/// dequantization of the last INT8 Conv's codes in both runtimes and must be equal bit for bit.
final class SplitParityTests: XCTestCase {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures/split").path
    static let splits = ["split_c2f", "split_qkv"]

    func runtime(chains: Bool = true, path: KernelPath = .auto, map name: String = "split_int8") throws -> (MixedPrecisionRuntime, Session, Graph) {
        let graph = try ModelLoader.load(path: "\(Self.folder)/split_cnn.onnx")
        let session = try Session(graph: GraphPasses.optimize(graph))
        let table = try CalibrationTable.load(path: "\(Self.folder)/split_int8.calib.json")
        let runtime = try MixedPrecisionRuntime(session: session, calibration: table, path: path, scheme: .ort)
        runtime.uint8Chains = chains
        let file = try ExportMap(path: "\(Self.folder)/\(name).map.json")
        var map = runtime.allInt8
        for l in file.layers { map.layers[l.name] = l.precision }
        try runtime.apply(map)
        return (runtime, session, graph)
    }

    /// The plan: both Splits run in INT8 and requantize every output with their input's
    /// parameters (ORT's SplitSelector fuses only with equal parameters).
    func testPlanRequantizesEverySplitOutputOnTheInputsGrid() throws {
        let (runtime, session, _) = try runtime()
        for name in Self.splits {
            let node = try XCTUnwrap(session.plan.first { $0.name == name })
            XCTAssertTrue(runtime.plan.int8RegionOps.contains(name), name)
            let x = try XCTUnwrap(node.input(0))
            let qx = try XCTUnwrap(runtime.plan.requantized[x], "\(name)'s input")
            XCTAssertGreaterThan(node.outputs.count, 1)
            for o in node.outputs { XCTAssertEqual(runtime.plan.requantized[o], qx, "\(name) output \(o)") }
        }
    }

    func testAllInt8MatchesOnnxRuntimeBitForBit() throws {
        let golden = try Numpy.readNPZ(path: "\(Self.folder)/split_int8_ort.npz")
        let fused = try OrtGoldens.fusedCounts(golden)
        // What ORT made of the export: the two Splits on uint8 (no DQ/Q around them), one Q
        // at the input, one DQ before the Neg, and every other op a QLinear op.
        XCTAssertEqual(fused["Split"], 2, "\(fused)")
        XCTAssertEqual(fused["QuantizeLinear"], 1, "\(fused)")
        XCTAssertEqual(fused["DequantizeLinear"], 1, "\(fused)")
        XCTAssertEqual(fused["QLinearConv"], 4, "\(fused)")
        XCTAssertEqual(fused["QLinearConcat"], 1, "\(fused)")
        XCTAssertEqual(fused["QLinearMul"], 1, "\(fused)")
        XCTAssertEqual(fused["QLinearAdd"], 1, "\(fused)")

        let want = try XCTUnwrap(golden["y"])
        let test = try Numpy.readNPZ(path: "\(Self.folder)/split_test.npz")
        let x = try XCTUnwrap(test["input"])
        var outputs: [[UInt32]] = []
        for path in KernelPath.available {
            for chains in [true, false] {
                let (runtime, session, _) = try runtime(chains: chains, path: path)
                runtime.chainCounters.reset()
                let y = try XCTUnwrap(try session.run(["input": x])["y"])
                OrtGoldens.assertBitIdentical(y, want, "\(path) chains \(chains)")
                if chains {
                    XCTAssertGreaterThanOrEqual(runtime.chainCounters.movedAsCodes, 2, "\(path): both Splits must move codes")
                }
                outputs.append(y.floats.map(\.bitPattern))
            }
        }
        XCTAssertEqual(Set(outputs).count, 1, "every path, chains on or off, gives the same bytes")
    }

    /// The committed export is what `Exporter` writes today for the same map and table, and
    /// each Split output has its own QuantizeLinear -> DequantizeLinear with the Split input's
    /// Today's `--scheme ort` export of `map`.map.json, asserted equal (nodes, initializers) to
    /// the committed `map`.qdq.onnx that the recorded ORT goldens come from.
    func exportEqualsCommitted(map: String, file: StaticString = #filePath, line: UInt = #line) throws -> Graph {
        let exporter = try Exporter(modelPath: "\(Self.folder)/split_cnn.onnx")
        let table = try CalibrationTable.load(path: "\(Self.folder)/split_int8.calib.json")
        let path = "\(Self.folder)/\(map).map.json"
        let mine = try ModelLoader.load(data: try exporter.qdq(map: try ExportMap(path: path), path: path, calibration: table,
                                                               version: "test", scheme: .ort))
        let committed = try ModelLoader.load(path: "\(Self.folder)/\(map).qdq.onnx")
        XCTAssertEqual(mine.nodes, committed.nodes, "re-run tools/fixtures/generate_split.py", file: file, line: line)
        XCTAssertEqual(mine.initializers, committed.initializers, "re-run tools/fixtures/generate_split.py", file: file, line: line)
        return mine
    }

    /// scale and zero point (the same initializer values), read by every consumer.
    func testCommittedExportIsTodaysAndQuantizesEverySplitOutput() throws {
        let mine = try exportEqualsCommitted(map: "split_int8")

        let producer = Dictionary(mine.nodes.flatMap { n in n.outputs.map { ($0, n) } }, uniquingKeysWith: { a, _ in a })
        var readers: [String: [Node]] = [:]
        for n in mine.nodes { for i in n.inputs where !i.isEmpty { readers[i, default: []].append(n) } }
        func params(_ n: Node) -> [Float] { [mine.initializers[n.inputs[1]]!.floats[0], Float(mine.initializers[n.inputs[2]]!.ints[0])] }
        for name in Self.splits {
            let split = try XCTUnwrap(mine.node(named: name))
            let dq = try XCTUnwrap(producer[split.inputs[0]])
            XCTAssertEqual(dq.opType, "DequantizeLinear", name)
            for o in split.outputs {
                let rs = readers[o] ?? []
                XCTAssertEqual(rs.map(\.opType), ["QuantizeLinear"], "\(name) output \(o): read by its Q only")
                let q = try XCTUnwrap(rs.first)
                XCTAssertEqual(params(q), params(dq), "\(name) output \(o): the input's scale and zero point")
            }
        }
    }

    /// conv1 in FP32 reads the C2f Split's output `b`: the Split still requantizes every
    /// output (rule 5), so ORT keeps both Splits on uint8 (no float Split), and the island's
    /// input is DequantizeLinear of the Split's codes in both runtimes: equal bit for bit.
    func testSplitOutputFeedingAnFP32IslandStaysFused() throws {
        let golden = try Numpy.readNPZ(path: "\(Self.folder)/split_island_ort.npz")
        let fused = try OrtGoldens.fusedCounts(golden)
        XCTAssertEqual(fused["Split"], 2, "\(fused)")
        XCTAssertEqual(fused["QLinearConv"], 3, "\(fused)")
        XCTAssertEqual(fused["Conv"], 1, "the island: \(fused)")
        let (runtime, session, _) = try runtime(map: "split_island")
        XCTAssertEqual(runtime.map.int8Layers.count, 3)
        XCTAssertTrue(runtime.plan.int8RegionOps.contains("split_c2f"))
        let conv1 = try XCTUnwrap(session.plan.first { $0.name == "conv1" })
        let b = try XCTUnwrap(conv1.input(0))
        XCTAssertNotNil(runtime.plan.requantized[b], "the island reads a requantized Split output")
        let x = try XCTUnwrap(try Numpy.readNPZ(path: "\(Self.folder)/split_test.npz")["input"])
        let out = try session.run(["input": x], keep: [b])
        OrtGoldens.assertBitIdentical(try XCTUnwrap(out[b]), try XCTUnwrap(golden["island_input"]), "the island's input \(b)")
        // Downstream of the float island the sums are ordered differently (mpq's FP32 Conv
        // against MLAS): within one quantization step of the output.
        let y = try XCTUnwrap(out["y"]).floats, wy = try XCTUnwrap(golden["y"]).floats
        XCTAssertEqual(y.count, wy.count)
        XCTAssertLessThanOrEqual(zip(y, wy).map { abs($0 - $1) }.max() ?? 1, 0.05)
    }

    /// The island map's committed export is today's, and ORT fuses the Split around the
    /// island too: each Split output has exactly one reader, its QuantizeLinear.
    func testCommittedIslandExportIsTodays() throws {
        let mine = try exportEqualsCommitted(map: "split_island")
        for name in Self.splits {
            let split = try XCTUnwrap(mine.node(named: name))
            for o in split.outputs {
                XCTAssertEqual(mine.nodes.filter { $0.inputs.contains(o) }.map(\.opType), ["QuantizeLinear"], "\(name) output \(o)")
            }
        }
    }
}
