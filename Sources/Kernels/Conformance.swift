import Foundation
import ONNX

/// Runs test cases in the layout ONNX's own backend tests use:
/// `<case>/model.onnx` and `<case>/test_data_set_<k>/{input,output}_<i>.pb`.
/// Used by `mpq conformance` and by the test suite.
public enum Conformance {
    public enum Outcome: Equatable, Sendable {
        case passed
        case failed(String)
        /// The case uses an op mpq does not claim: not counted against it.
        case unsupported(String)
    }

    public struct CaseResult: Sendable {
        public let name: String
        public let ops: [String]
        public let outcome: Outcome
    }

    /// Tolerances of ONNX's backend runner (`rtol=1e-3`), with a small absolute floor for
    /// float32 results near zero.
    public static let relativeTolerance: Float = 1e-3
    public static let absoluteTolerance: Float = 1e-5

    /// Case folders under `directory`, sorted by name.
    public static func cases(in directory: String) throws -> [String] {
        let fm = FileManager.default
        guard let names = try? fm.contentsOfDirectory(atPath: directory) else { throw ModelError.fileNotFound(path: directory) }
        return names.sorted().filter { fm.fileExists(atPath: "\(directory)/\($0)/model.onnx") }.map { "\(directory)/\($0)" }
    }

    public static func run(caseDirectory dir: String) -> CaseResult {
        let name = URL(fileURLWithPath: dir).lastPathComponent
        let graph: Graph
        do { graph = try ModelLoader.load(path: "\(dir)/model.onnx") } catch {
            return CaseResult(name: name, ops: [], outcome: .unsupported("load: \(error)"))
        }
        let ops = Array(Set(graph.nodes.map(\.opType))).sorted()
        if let v = (graph.inputs + graph.outputs).first(where: { $0.dtype == nil }) {
            return CaseResult(name: name, ops: ops, outcome: .unsupported("'\(v.name)' is not a tensor (sequence/optional/map types are not supported)"))
        }
        let session: Session
        do { session = try Session(graph: graph) } catch let e as ModelError {
            if case .unsupportedOp = e { return CaseResult(name: name, ops: ops, outcome: .unsupported(e.description)) }
            return CaseResult(name: name, ops: ops, outcome: .failed(e.description))
        } catch {
            return CaseResult(name: name, ops: ops, outcome: .failed("\(error)"))
        }
        let fm = FileManager.default
        let sets = ((try? fm.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasPrefix("test_data_set_") }.sorted()
        guard !sets.isEmpty else { return CaseResult(name: name, ops: ops, outcome: .failed("no test_data_set_* folder")) }
        for set in sets {
            do {
                let inputs = try readTensors("\(dir)/\(set)", prefix: "input_")
                let expected = try readTensors("\(dir)/\(set)", prefix: "output_")
                var feeds: [String: Tensor] = [:]
                // Inputs bind by position to the graph inputs that are not initializers.
                for (i, input) in graph.inputs.enumerated() where i < inputs.count { feeds[input.name] = inputs[i] }
                let outs = try session.run(feeds)
                for (i, want) in expected.enumerated() where i < graph.outputs.count {
                    guard let got = outs[graph.outputs[i].name] else { throw OpError("output \(i) missing") }
                    if let problem = compare(got, want) {
                        return CaseResult(name: name, ops: ops, outcome: .failed("\(set) output '\(graph.outputs[i].name)': \(problem)"))
                    }
                }
            } catch let e as ModelError {
                if case .unsupportedDType = e { return CaseResult(name: name, ops: ops, outcome: .unsupported(e.description)) }
                return CaseResult(name: name, ops: ops, outcome: .failed(e.description))
            } catch {
                return CaseResult(name: name, ops: ops, outcome: .failed("\(error)"))
            }
        }
        return CaseResult(name: name, ops: ops, outcome: .passed)
    }

    static func readTensors(_ dir: String, prefix: String) throws -> [Tensor] {
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [])
            .filter { $0.hasPrefix(prefix) && $0.hasSuffix(".pb") }
            .sorted { Int($0.dropFirst(prefix.count).dropLast(3)) ?? 0 < Int($1.dropFirst(prefix.count).dropLast(3)) ?? 0 }
        return try files.map { try loadTensorProto(at: URL(fileURLWithPath: "\(dir)/\($0)")).tensor }
    }

    /// nil when `got` matches `want` (shape, then values within tolerance; integers exactly).
    public static func compare(_ got: Tensor, _ want: Tensor) -> String? {
        guard got.shape == want.shape else {
            return "shape \(Tensor.describe(got.shape)), expected \(Tensor.describe(want.shape))"
        }
        if want.dtype.isFloating {
            guard got.dtype.isFloating else { return "type \(got.dtype), expected \(want.dtype)" }
            for i in 0..<want.count {
                let a = got.floats[i], b = want.floats[i]
                if a.isNaN && b.isNaN { continue }
                if a == b { continue }
                if abs(a - b) > absoluteTolerance + relativeTolerance * abs(b) || a.isNaN != b.isNaN {
                    return "element \(i): \(a), expected \(b)"
                }
            }
        } else {
            let g = got.asInts
            for i in 0..<want.count where g[i] != want.ints[i] { return "element \(i): \(g[i]), expected \(want.ints[i])" }
        }
        return nil
    }
}
