import ArgumentParser
import Foundation
import Kernels
import ONNX
import Search

/// `--precision`, `--calibration`, `--calibrate`, `--kernel-path`: how to build the
/// mixed-precision runtime. Shared by the commands that execute INT8.
struct PrecisionOptions: ParsableArguments {
    @Option(help: "fp32, int8 (every quantizable layer), or a precision map JSON file.")
    var precision: String = "fp32"
    @Option(help: "A calibration table (calib.json from mpq calibrate) or calibration data (.npz, or .npy for a single-input model): needed for int8 and for a map without quantization parameters (a map from mpq search carries them).")
    var calibration: String?
    @Option(help: "Method used when --calibration is .npz data: minmax, percentile, entropy, mse.")
    var calibrate: CalibrationMethod = .minmax
    @Option(help: "INT8 kernel path: auto, vnni, avx2, reference.")
    var kernelPath: KernelPath = .auto
    @Option(help: "Q/DQ placement: ort (INT8 chains as ONNX Runtime runs them) or inputs (layer inputs only, TensorRT's placement). Default: the map's scheme, else ort.")
    var scheme: ExecutionScheme?
    @Option(help: "Weight range of the INT8 layers: 8 ([-127, 127]) or 7 ([-64, 64], ONNX Runtime's reduce_range: exact and about 1.4x faster INT8 GEMMs on AVX2 CPUs without VNNI, in mpq and in ORT, for one bit of weight resolution). Default: the map's, else 8.")
    var weightBits: WeightBits?
    @Flag(help: "Accept NaN and infinite values in float input arrays (by default they are an error naming the array and row).")
    var allowNonfinite = false

    var isFP32: Bool { precision == "fp32" }

    func validate() throws {
        // A map file may carry its own parameters: checked when it is read (`makeRuntime`).
        if precision == "int8" && calibration == nil {
            throw ValidationError("--precision int8 needs --calibration (a calib.json or calibration .npz data)")
        }
        if kernelPath != .auto && !kernelPath.isAvailable {
            throw ValidationError("--kernel-path \(kernelPath.rawValue) is not supported by this CPU (available: \(KernelPath.available.map(\.rawValue).joined(separator: ", ")))")
        }
    }

    /// The calibration table: loaded and checked against the model, or computed from data.
    func calibrationTable(for model: LoadedModel, batchSize: Int) throws -> CalibrationTable {
        guard let calibration else { throw ValidationError("--calibration is required") }
        if calibration.hasSuffix(".npz") || calibration.hasSuffix(".npy") {
            let data = try Dataset(path: calibration, graph: model.graph, allowNonfinite: allowNonfinite)
            let progress = Progress(label: "calibrate")
            return try Calibrator(session: model.session, scheme: resolvedScheme).calibrate(
                dataset: data, options: CalibrationOptions(method: calibrate, batchSize: batchSize),
                modelDigest: model.digest) { _, done, total in progress.update(done, total) }
        }
        return try CalibrationTable.load(path: calibration, modelDigest: model.digest, session: model.session,
                                         scheme: resolvedScheme)
    }

    /// --scheme, else the scheme the map file records (a search document from before
    /// schemes existed: `inputs`), else `ort`.
    var resolvedScheme: ExecutionScheme {
        if let scheme { return scheme }
        if precision != "fp32" && precision != "int8", let data = FileManager.default.contents(atPath: precision),
           let doc = try? JSONDecoder().decode(SchemeField.self, from: data) {
            if let s = doc.scheme.flatMap(ExecutionScheme.init(rawValue:)) { return s }
            if doc.schema != nil { return .inputs }
        }
        return .ort
    }
    private struct SchemeField: Decodable { var scheme: String?; var schema: String? }

    /// The map to run: uniform, or read from a file and checked against the model.
    func precisionMap(for runtime: MixedPrecisionRuntime, model: LoadedModel) throws -> PrecisionMap {
        switch precision {
        case "fp32": return runtime.allFP32
        case "int8": return runtime.allInt8
        default:
            if FileKind(path: precision) != .missing { try FileKind.requireRegularFile(precision, expected: "a precision map (.json)") }
            guard let data = FileManager.default.contents(atPath: precision) else {
                throw CLIError("--precision: \(precision) is neither fp32, int8 nor a readable precision map file")
            }
            let map: PrecisionMap
            do { map = try JSONDecoder().decode(PrecisionMap.self, from: data) } catch {
                throw CLIError("\(precision) is not a precision map (\(error))")
            }
            if let d = map.modelDigest, d != model.digest {
                throw CLIError("\(precision) was made for another model (model digest \(d), this model's is \(model.digest))")
            }
            return map
        }
    }

    /// Session routed to INT8 kernels as the options say. A map file's recorded parameters
    /// come first; `--calibration` fills in what a bare map lacks.
    func makeRuntime(_ model: LoadedModel, batchSize: Int) throws -> MixedPrecisionRuntime? {
        if isFP32 { return nil }
        var recorded: RecordedQuantization?
        var bits = weightBits ?? .eight
        if precision != "int8" {
            if FileKind(path: precision) == .missing {
                throw CLIError("--precision: \(precision) is neither fp32, int8 nor a readable precision map file")
            }
            let map: ExportMap
            do { map = try ExportMap(path: precision) } catch let e as ExportError { throw CLIError("--precision: \(e.description)") }
            if let d = map.modelDigest, d != model.digest {
                throw CLIError("\(precision) was made for another model (model digest \(d), this model's is \(model.digest))")
            }
            // --weight-bits, else the map's `weight_bits`, else 8; against the map's own, an error.
            do { bits = try map.resolvedWeightBits(requested: weightBits) } catch let e as ExportError {
                throw CLIError("--weight-bits: \(precision): \(e.description)")
            }
            recorded = map.recordedQuantization(session: model.session, scheme: resolvedScheme)
            let missing = ExportMap.missingParameters(recorded, session: model.session, scheme: resolvedScheme)
            if calibration == nil && !missing.isEmpty {
                let why = recorded == nil ? "records no quantization parameters (a bare map, or one made under another --scheme)"
                    : "has no quantization parameters for \(missing.prefix(4).joined(separator: ", "))\(missing.count > 4 ? ", ..." : "")"
                throw CLIError("--precision \(precision) \(why): pass --calibration (a calib.json or calibration .npz data)")
            }
        }
        var table: CalibrationTable
        if calibration != nil {
            table = try calibrationTable(for: model, batchSize: batchSize)
        } else {
            table = CalibrationTable(method: "map", modelDigest: model.digest, samples: 0, ranges: [:])
        }
        table.recorded = recorded
        let runtime = try MixedPrecisionRuntime(session: model.session, calibration: table, path: kernelPath,
                                                scheme: resolvedScheme, weightBits: bits)
        try runtime.apply(try precisionMap(for: runtime, model: model))
        return runtime
    }
}

extension KernelPath: ExpressibleByArgument {}
extension WeightBits: ExpressibleByArgument {
    public init?(argument: String) { self.init(rawValue: Int(argument) ?? 0) }
    public static var allValueStrings: [String] { allCases.map { String($0.rawValue) } }
}
