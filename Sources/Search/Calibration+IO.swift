import Foundation
import Kernels
import ONNX

/// Errors from calibrating or from reading a calibration table. Every case names the
/// file or tensor to look at.
public enum CalibrationError: Error, CustomStringConvertible, Equatable {
    case badOptions(reason: String)
    case noSamples(path: String)
    case notObserved(tensor: String)
    case unreadable(path: String, reason: String)
    case unsupportedVersion(path: String, version: Int)
    case digestMismatch(path: String, table: String, model: String)
    case missingRange(path: String, tensor: String)
    case invalidRange(path: String, tensor: String, min: Float, max: Float)

    public var description: String {
        switch self {
        case .badOptions(let r): return "calibration: \(r)"
        case .noSamples(let p): return "\(p): no samples to calibrate on"
        case .notObserved(let t): return "tensor '\(t)' read by an INT8 layer was never computed while calibrating"
        case .unreadable(let p, let r): return "cannot read calibration table \(p): \(r)"
        case .unsupportedVersion(let p, let v): return "\(p): calibration table version \(v) is not supported (expected 1)"
        case .digestMismatch(let p, let t, let m):
            return "\(p) was calibrated for another model (model digest \(t), this model's is \(m)); run mpq calibrate again"
        case .missingRange(let p, let t): return "\(p) has no range for tensor '\(t)', which an INT8 layer reads"
        case .invalidRange(let p, let t, let lo, let hi): return "\(p): tensor '\(t)' has an invalid range [\(lo), \(hi)]"
        }
    }
}

extension CalibrationError: LocalizedError {
    public var errorDescription: String? { description }
}

extension CalibrationTable {
    /// Deterministic JSON: sorted keys, shortest round-trip floats, a final newline.
    /// Saving a loaded table gives the same bytes.
    public func jsonData() throws -> Data {
        var data = try deterministicJSONEncoder().encode(self)
        data.append(0x0A)
        return data
    }

    /// Writes the table atomically: a failed run leaves no partial file.
    public func save(to path: String) throws {
        do { try OutputFile.write(try jsonData(), to: path) } catch {
            throw CalibrationError.unreadable(path: path, reason: "cannot write: \(error.localizedDescription)")
        }
    }

    /// Reads a table and checks it is well formed (version, finite ranges with min <= max).
    public static func load(path: String) throws -> CalibrationTable {
        if FileKind(path: path) != .missing { try FileKind.requireRegularFile(path, expected: "a calibration table (.json)") }
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw CalibrationError.unreadable(path: path, reason: FileManager.default.fileExists(atPath: path)
                                              ? error.localizedDescription : "file not found")
        }
        let table: CalibrationTable
        do { table = try JSONDecoder().decode(CalibrationTable.self, from: data) } catch {
            throw CalibrationError.unreadable(path: path, reason: "not a calibration table: \(describe(error))")
        }
        guard table.version == 1 else { throw CalibrationError.unsupportedVersion(path: path, version: table.version) }
        for (name, r) in table.ranges.sorted(by: { $0.key < $1.key })
        where !(r.min.isFinite && r.max.isFinite && r.min <= r.max) {
            throw CalibrationError.invalidRange(path: path, tensor: name, min: r.min, max: r.max)
        }
        return table
    }

    /// Reads a table and checks it belongs to the model: same digest (of the graph as
    /// loaded, before GraphPasses) and a range for every tensor in `required`.
    public static func load(path: String, modelDigest: String, required: [String]) throws -> CalibrationTable {
        let table = try load(path: path)
        try table.validate(modelDigest: modelDigest, required: required, path: path)
        return table
    }

    /// Reads a table for `session`, whose graph was optimised from a graph with `modelDigest`.
    public static func load(path: String, modelDigest: String, session: Session,
                            scheme: ExecutionScheme = .inputs) throws -> CalibrationTable {
        try load(path: path, modelDigest: modelDigest, required: Calibrator.requiredTensors(session: session, scheme: scheme))
    }

    /// Throws unless the table was made for the model with `modelDigest` and covers `required`.
    public func validate(modelDigest digest: String, required: [String], path: String) throws {
        guard modelDigest == digest else {
            throw CalibrationError.digestMismatch(path: path, table: modelDigest, model: digest)
        }
        if let missing = required.first(where: { ranges[$0] == nil }) {
            throw CalibrationError.missingRange(path: path, tensor: missing)
        }
    }

    private static func describe(_ error: Error) -> String {
        switch error as? DecodingError {
        case .keyNotFound(let key, let c)?:
            return "missing key '\((c.codingPath + [key]).map(\.stringValue).joined(separator: "."))'"
        case .typeMismatch(_, let c)?, .valueNotFound(_, let c)?, .dataCorrupted(let c)?:
            let at = c.codingPath.map(\.stringValue).joined(separator: ".")
            return at.isEmpty ? c.debugDescription : "at '\(at)': \(c.debugDescription)"
        default: return "\(error)"
        }
    }
}
