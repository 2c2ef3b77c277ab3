import ArgumentParser
import Foundation
import Kernels
import ONNX
import Search

/// Exit codes, everywhere: 0 success, 1 internal error, 2 bad input or usage,
/// 3 budget not met (results still written).
enum ExitStatus: Int32 {
    case success = 0, internalError = 1, badInput = 2, budgetNotMet = 3
}

struct MPQ: ParsableCommand {
    static let version = "0.1.0"
    static let configuration = CommandConfiguration(
        commandName: "mpq",
        abstract: "Find which layers of an ONNX model can run in INT8 within an accuracy budget.",
        version: version,
        subcommands: [Inspect.self, Eval.self, Sensitivity.self, SearchCommand.self, Sweep.self, Conformance.self, Calibrate.self, Export.self, Report.self])

    /// Parses, runs, and exits with the status the error calls for.
    static func runAndExit() -> Never {
        do {
            var command = try parseAsRoot()
            try command.run()
            Foundation.exit(ExitStatus.success.rawValue)
        } catch let e as ModelError {
            fail(e.description, .badInput)
        } catch let e as MetricError {
            fail(e.description, .badInput)
        } catch let e as RuntimeError {
            fail(e.description, .badInput)
        } catch let e as CalibrationError {
            fail(e.description, .badInput)
        } catch let e as QuantizationError {
            fail(e.description, .badInput)
        } catch let e as ExitCode {
            Foundation.exit(e.rawValue)
        } catch let e as CLIError {
            fail(e.description, e.status)
        } catch {
            let code = exitCode(for: error)
            if code == .success { exit(withError: error) }      // --help, --version
            if error is ValidationError || code == .validationFailure || isParseError(error) {
                FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
                FileHandle.standardError.write(Data((helpMessage(for: MPQ.self).split(separator: "\n").prefix(2).joined(separator: "\n") + "\n").utf8))
                Foundation.exit(ExitStatus.badInput.rawValue)
            }
            fail("internal error: \(error)", .internalError)
        }
    }

    static func isParseError(_ error: Error) -> Bool {
        // ArgumentParser reports usage errors with exit code 64 (EX_USAGE).
        exitCode(for: error).rawValue == 64
    }

    static func fail(_ message: String, _ status: ExitStatus) -> Never {
        FileHandle.standardError.write(Data("error: \(message)\n".utf8))
        Foundation.exit(status.rawValue)
    }
}

/// Errors raised by the command layer itself.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    let status: ExitStatus
    init(_ description: String, status: ExitStatus = .badInput) {
        self.description = description; self.status = status
    }
}

/// Loads a model and prepares it for execution (BatchNorm folded, activations fused).
func loadSession(_ path: String, optimize: Bool = true) throws -> Session {
    try loadModel(path, optimize: optimize).session
}

/// A model as loaded (its digest keys calibration tables and maps) and its session.
struct LoadedModel {
    let graph: Graph
    let session: Session
    var digest: String { graph.digest }
}

func loadModel(_ path: String, optimize: Bool = true) throws -> LoadedModel {
    let graph = try ModelLoader.load(path: path)
    return LoadedModel(graph: graph, session: try Session(graph: optimize ? GraphPasses.optimize(graph) : graph))
}

/// Writes a file atomically: a failed run leaves no partial output behind.
func writeAtomically(_ text: String, to path: String) throws {
    do { try Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
        throw CLIError("cannot write \(path): \(error.localizedDescription)")
    }
}

/// Deterministic JSON: sorted keys, so the same inputs give the same bytes.
func jsonString<T: Encodable>(_ value: T) throws -> String {
    let enc = JSONEncoder()
    enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    return String(decoding: try enc.encode(value), as: UTF8.self)
}

/// Progress on stderr, only when a person is watching.
struct Progress {
    let label: String
    let enabled = isatty(2) != 0
    func update(_ done: Int, _ total: Int) {
        guard enabled else { return }
        FileHandle.standardError.write(Data("\r\(label): \(done)/\(total)".utf8))
        if done >= total { FileHandle.standardError.write(Data("\n".utf8)) }
    }
    /// A line of progress text (search steps).
    func note(_ text: String) {
        guard enabled else { return }
        FileHandle.standardError.write(Data("\(label): \(text)\n".utf8))
    }
}
