import Foundation

/// Errors from reading models and data. Every case names the file, node, tensor or
/// input the user has to look at.
public enum ModelError: Error, CustomStringConvertible, Equatable {
    case fileNotFound(path: String)
    case unreadable(path: String, reason: String)
    case corruptModel(path: String, reason: String)
    case invalidGraph(reason: String)
    case unsupportedOp(node: String, opType: String, domain: String, opset: Int)
    case unsupportedDType(tensor: String, code: Int)
    case externalData(tensor: String, reason: String)
    case badData(path: String, reason: String)
    case missingInput(input: String, path: String, available: [String])
    case inputShapeMismatch(input: String, expected: String, actual: String)
    case inputDTypeMismatch(input: String, expected: String, actual: String)
    /// A folder or a device where a file is expected (FileKind.swift).
    case notARegularFile(path: String, expected: String, actual: String)
    /// A data array holds values the run cannot use (NaN/Inf, labels, integer range): Dataset.swift.
    case badArray(path: String, array: String, reason: String)
    /// An initializer or constant that cannot be used as it is: dims, size or values.
    case invalidTensor(tensor: String, reason: String)
    /// An attribute of the wrong type or an impossible value, found at load.
    case invalidAttribute(node: String, opType: String, attribute: String, reason: String)
    /// The model's opset import for a domain is missing or outside what mpq implements.
    case unsupportedOpset(domain: String, version: Int?, supported: ClosedRange<Int>)

    public var description: String {
        switch self {
        case .fileNotFound(let p): return "file not found: \(p)"
        case .unreadable(let p, let r): return "cannot read \(p): \(r)"
        case .corruptModel(let p, let r): return "\(p) is not a valid ONNX model: \(r)"
        case .invalidGraph(let r): return "invalid graph: \(r)"
        case .unsupportedOp(let n, let t, let d, let o):
            return "node '\(n)': op type '\(t)' (domain '\(d.isEmpty ? "ai.onnx" : d)', opset \(o)) is not supported by mpq"
        case .unsupportedDType(let t, let c): return "tensor '\(t)': element type \(c) is not supported"
        case .externalData(let t, let r): return "tensor '\(t)': external data: \(r)"
        case .badData(let p, let r): return "\(p): \(r)"
        case .missingInput(let i, let p, let a):
            return "input '\(i)' is missing from \(p) (arrays there: \(a.sorted().joined(separator: ", ")))"
        case .inputShapeMismatch(let i, let e, let a): return "input '\(i)' expects \(e), the data has \(a)"
        case .inputDTypeMismatch(let i, let e, let a): return "input '\(i)' expects \(e), the data has \(a)"
        case .notARegularFile(let p, let e, let a): return "\(p) is \(a), not \(e)"
        case .badArray(let p, let a, let r): return "\(p): array '\(a)' \(r)"
        case .invalidTensor(let t, let r): return "tensor '\(t)': \(r)"
        case .invalidAttribute(let n, let t, let a, let r): return "node '\(n)' (\(t)): attribute '\(a)' \(r)"
        case .unsupportedOpset(let d, let v, let s):
            let domain = d.isEmpty ? "ai.onnx" : d
            let range = "mpq implements \(domain) opsets \(s.lowerBound) to \(s.upperBound)"
            guard let v else { return "the model imports no \(domain) opset (opset_import is missing it); \(range)" }
            return "the model imports \(domain) opset \(v); \(range)"
        }
    }
}

extension ModelError: LocalizedError {
    public var errorDescription: String? { description }
}
