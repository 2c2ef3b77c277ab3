import Foundation
import ONNX

/// Errors raised while preparing or executing a graph. Cases name the node.
public enum RuntimeError: Error, CustomStringConvertible, Equatable {
    /// An op's inputs or attributes are invalid (wrong rank, shapes that do not broadcast...).
    case invalidNode(node: String, opType: String, reason: String)
    /// A value the graph needs was neither fed, produced, nor an initializer.
    case missingValue(name: String, node: String)
    case missingFeed(input: String)

    public var description: String {
        switch self {
        case .invalidNode(let n, let t, let r): return "node '\(n)' (\(t)): \(r)"
        case .missingValue(let v, let n): return "node '\(n)' reads '\(v)', which no node produces and no input feeds"
        case .missingFeed(let i): return "graph input '\(i)' was not fed"
        }
    }
}

extension RuntimeError: LocalizedError { public var errorDescription: String? { description } }

/// Thrown inside op functions, which do not know their node; the session adds the name.
public struct OpError: Error, CustomStringConvertible {
    public let reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}
