import ArgumentParser
import Foundation
import Kernels
import ONNX
import Search

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a precision map for other tools: a QDQ ONNX model, ONNX Runtime / TensorRT / NNCF options, or the map.",
        discussion: """
        qdq           ONNX model with Q/DQ around the INT8 layers (mpq's numbers)
        ort-exclude   quantize_static options, the FP32 layers in nodes_to_exclude
        trtexec       --precisionConstraints=obey --layerPrecisions=<FP32 layers>:fp32
        nncf-ignored  NNCF ignored_scope.names = the FP32 layers
        json          the map as is
        See docs/export.md.
        """)

    @Argument(help: "The ONNX model the map was made for.") var model: String
    @Option(help: "The precision map (JSON from mpq search, or a bare {\"layers\": {...}} map).") var precision: String
    @Option(help: "qdq, ort-exclude, trtexec, nncf-ignored or json.") var format: ExportFormat
    @Option(help: "Where to write the result.") var out: String
    @Option(help: "qdq with a map lacking quantization parameters: a calibration table (calib.json) or calibration data (.npz).")
    var calibration: String?
    @Option(help: "Method used when --calibration is .npz data: minmax, percentile, entropy, mse.")
    var calibrate: CalibrationMethod = .minmax
    @Option(help: "Samples per batch when calibrating.") var batchSize: Int = 64
    @Option(help: "Q/DQ placement: ort (INT8 chains ONNX Runtime fuses) or inputs (layer inputs only). Default: the map's scheme, else ort.")
    var scheme: ExecutionScheme?
    @Option(help: "qdq / ort-exclude weights: int8 (zero point 0, fastest in ONNX Runtime) or uint8 (zero point 128, the same integers; ONNX Runtime computes them exactly on CPUs without VNNI, where its int8 path saturates). See docs/export.md.")
    var weightType: QDQWeightType?
    @Option(help: "qdq / ort-exclude: the weight range, 8 or 7 (--weight-bits of eval/search; 7 sets reduce_range in ort-exclude). Default: the map's, else 8.")
    var weightBits: WeightBits?
    @Flag(help: "Print nothing but errors.") var quiet = false
    @Flag(help: "Accept NaN and infinite values in float input arrays (by default they are an error naming the array and row).")
    var allowNonfinite = false

    func validate() throws {
        try checkRange("--batch-size", batchSize, 1...largestCount)
        if weightType != nil && format != .qdq && format != .ortExclude {
            throw ValidationError("--weight-type applies to --format qdq and ort-exclude only (got --format \(format.rawValue))")
        }
        if weightBits != nil && format != .qdq && format != .ortExclude {
            throw ValidationError("--weight-bits applies to --format qdq and ort-exclude only (got --format \(format.rawValue))")
        }
    }

    func run() throws {
        try checkOutputs(out)
        Progress.quiet = quiet
        try FileKind.requireRegularFile(model, expected: "an ONNX file")
        do {
            let exporter = try Exporter(modelPath: model)
            let map = try ExportMap(path: precision)
            _ = try exporter.layers(for: map, path: precision)       // a wrong map fails before calibrating
            let used = scheme ?? map.scheme ?? .ort
            let table: CalibrationTable? = try calibration.map { try calibrationTable($0, exporter, used) }
            let result = try exporter.export(format, map: map, mapPath: precision, calibration: table, version: MPQ.version,
                                             scheme: used, weightType: weightType ?? .int8, weightBits: weightBits)
            try OutputFile.write(result.data, to: out)
            var warnings = result.warnings
            // 7-bit weights keep every pair sum within int16, so ORT is exact there either way.
            if format == .qdq, (weightType ?? .int8) == .int8, try map.resolvedWeightBits(requested: weightBits) == .eight,
               map.layers.contains(where: { $0.precision == .int8 }), !KernelPath.vnni.isAvailable {
                warnings.append("this CPU has no AVX-512 VNNI: ONNX Runtime on a CPU like it sums u8 x s8 product pairs in saturating int16, so its scores of this int8-weight export can differ from mpq's; --weight-type uint8 encodes the same integers and ORT computes them exactly, and maps searched with --weight-bits 7 are exact with int8 weights too (docs/export.md, \"Weight type\")")
            }
            for w in warnings { FileHandle.standardError.write(Data("warning: \(w)\n".utf8)) }
            if !quiet { print("\(format.rawValue): \(result.summary); written to \(out)") }
        } catch let e as ExportError {
            throw CLIError(e.description)
        } catch let e as QDQExportError {
            throw CLIError(e.description)
        }
    }

    /// A calibration table, loaded and checked against the model or computed from data.
    func calibrationTable(_ path: String, _ exporter: Exporter, _ scheme: ExecutionScheme) throws -> CalibrationTable {
        if path.hasSuffix(".npz") {
            let data = try Dataset(path: path, graph: exporter.graph, allowNonfinite: allowNonfinite)
            let progress = Progress(label: "calibrate")
            return try Calibrator(session: exporter.session, scheme: scheme).calibrate(
                dataset: data, options: CalibrationOptions(method: calibrate, batchSize: batchSize),
                modelDigest: exporter.digest) { _, done, total in progress.update(done, total) }
        }
        return try CalibrationTable.load(path: path, modelDigest: exporter.digest, session: exporter.session,
                                         scheme: scheme)
    }
}

extension ExportFormat: ExpressibleByArgument {}
extension ExecutionScheme: ExpressibleByArgument {}
extension QDQWeightType: ExpressibleByArgument {}
