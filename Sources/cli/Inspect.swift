import ArgumentParser
import Foundation
import Kernels
import ONNX

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the model's nodes: op, output shape, parameters, MACs, whether it can run in INT8.")

    @Argument(help: "The ONNX model.") var model: String
    @Option(help: "Batch size used for symbolic batch dimensions.") var batch: Int = 1
    @Option(parsing: .singleValue,
            help: "A concrete input shape, NAME=D0,D1,... (repeatable); needed for symbolic dims other than the batch.")
    var inputShape: [String] = []
    @Option(help: "An .npz with arrays named after the inputs: its first --batch rows are run, so symbolic dims take the data's sizes (instead of --input-shape).")
    var data: String?
    @Flag(help: "Show the graph as loaded, without BatchNorm folding and activation fusion.") var noFuse = false
    @Flag(help: "Print JSON.") var json = false

    struct Row: Codable {
        let name: String
        let op: String
        let outputShape: [Int]
        let parameters: Int
        let macs: Int
        let quantizable: Bool
    }

    struct Report: Codable {
        let model: String
        let opset: Int
        let producer: String
        let inputs: [String: [Int]]
        let nodes: [Row]
        let totalParameters: Int
        let totalMacs: Int
        let quantizableLayers: Int
        let quantizableMacs: Int
    }

    func validate() throws {
        try checkRange("--batch", batch, 1...largestCount)
        if data != nil && !inputShape.isEmpty { throw ValidationError("give --data or --input-shape, not both: the data fixes every input's shape") }
    }

    func run() throws {
        let session = try loadSession(model, optimize: !noFuse)
        let graph = session.graph
        var explicit: [String: [Int]] = [:]
        for spec in inputShape {
            let parts = spec.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, let dims = Optional(parts[1].split(separator: ",").compactMap { Int($0) }),
                  dims.count == parts[1].split(separator: ",").count, graph.inputs.contains(where: { $0.name == parts[0] }) else {
                throw ValidationError("--input-shape '\(spec)': expected NAME=D0,D1,... with NAME one of \(graph.inputs.map(\.name).joined(separator: ", "))")
            }
            for d in dims { try checkRange("--input-shape \(parts[0])", d, 1...largestCount) }
            guard dims.reduce(1, { $0.multipliedReportingOverflow(by: $1).overflow ? Int.max : $0 * $1 }) <= largestCount * 64 else {
                throw ValidationError("--input-shape '\(spec)': \(dims.map(String.init).joined(separator: "x")) elements are too many for one input")
            }
            explicit[String(parts[0])] = dims
        }
        var feeds: [String: Tensor] = [:]
        var shapes: [String: [Int]] = [:]
        if let data {
            // Real rows, so symbolic dims (sequence length, image size) are the data's own.
            let d = try Dataset(path: data, graph: graph, allowNonfinite: true)
            feeds = d.batch(0..<min(batch, d.count))
            shapes = feeds.mapValues(\.shape)
        }
        for input in graph.inputs where feeds[input.name] == nil {
            let shape: [Int]
            if let s = explicit[input.name] { shape = s }
            else {
                guard let dims = input.shape else {
                    throw CLIError("input '\(input.name)' has no shape in the model; give --data D.npz or --input-shape \(input.name)=D0,D1,...")
                }
                shape = try dims.enumerated().map { i, d in
                    if let d { return d }
                    if i == 0 { return batch }
                    throw CLIError("input '\(input.name)' has symbolic dimension \(i) (\(input.shapeDescription)); give --data D.npz (its shapes are used) or --input-shape \(input.name)=D0,D1,...")
                }
            }
            feeds[input.name] = Tensor.zeros(shape, dtype: (input.dtype ?? .float32).isFloating ? .float32 : (input.dtype ?? .int64))
            shapes[input.name] = shape
        }
        var rows: [String: Row] = [:]
        _ = try session.run(feeds) { node, ins, outs in
            rows[node.name] = Row(name: node.name, op: node.opType + (FusedActivation(node: node).map { _ in "+" + (node.string(FusedActivation.attributeKey) ?? "") } ?? ""),
                                  outputShape: outs.first?.shape ?? [],
                                  parameters: Layers.parameterCount(node, constants: session.constants),
                                  macs: Layers.macs(node, inputShapes: ins.map { $0?.shape }, outputShapes: outs.map(\.shape)),
                                  quantizable: Layers.isQuantizable(node, constants: session.constants))
        }
        let ordered = session.plan.compactMap { rows[$0.name] }
        let report = Report(model: model, opset: graph.opset, producer: graph.producer, inputs: shapes, nodes: ordered,
                            totalParameters: ordered.map(\.parameters).reduce(0, +),
                            totalMacs: ordered.map(\.macs).reduce(0, +),
                            quantizableLayers: ordered.filter(\.quantizable).count,
                            quantizableMacs: ordered.filter(\.quantizable).map(\.macs).reduce(0, +))
        if json { print(try jsonString(report)); return }
        print("model: \(model)  opset \(graph.opset)  producer \(graph.producer.isEmpty ? "?" : graph.producer)")
        for (name, s) in shapes.sorted(by: { $0.key < $1.key }) { print("input: \(name) \(Tensor.describe(s))") }
        let nameWidth = min(48, max(4, ordered.map(\.name.count).max() ?? 4))
        let opWidth = max(2, ordered.map(\.op.count).max() ?? 2)
        func pad(_ s: String, _ w: Int) -> String { s.count >= w ? s : s + String(repeating: " ", count: w - s.count) }
        func lpad(_ s: String, _ w: Int) -> String { s.count >= w ? s : String(repeating: " ", count: w - s.count) + s }
        print(pad("name", nameWidth), pad("op", opWidth), pad("output", 18), lpad("params", 10), lpad("MACs", 14), "int8")
        for r in ordered {
            print(pad(r.name, nameWidth), pad(r.op, opWidth), pad(Tensor.describe(r.outputShape), 18),
                  lpad(String(r.parameters), 10), lpad(String(r.macs), 14), r.quantizable ? "yes" : "no")
        }
        print("total: \(ordered.count) nodes, \(report.totalParameters) parameters, \(report.totalMacs) MACs; " +
              "\(report.quantizableLayers) quantizable layers holding \(report.quantizableMacs) MACs")
    }
}
