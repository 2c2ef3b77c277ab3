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
    static let version = "0.2.0"
    static let configuration = CommandConfiguration(
        commandName: "mpq",
        abstract: "Find which layers of an ONNX model can run in INT8 within an accuracy budget.",
        version: version,
        subcommands: [Inspect.self, Eval.self, Sensitivity.self, SearchCommand.self, Sweep.self, Merge.self, Conformance.self, Calibrate.self, Export.self, Report.self, Profile.self])

    /// Parses, runs, and exits with the status the error calls for.
    static func runAndExit() -> Never {
        do {
            var command = try parseAsRoot()
            try command.run()
            Foundation.exit(ExitStatus.success.rawValue)
        } catch let e as UserFacingError {
            fail(e.description, e.exitStatus)
        } catch let e as ExitCode {
            Foundation.exit(e.rawValue)
        } catch {
            let code = exitCode(for: error)
            if code == .success { exit(withError: error) }      // --help, --version
            if error is ValidationError || code == .validationFailure || isParseError(error) {
                let message = negativeValueMessage(CommandLine.arguments) ?? fullMessage(for: error)
                FileHandle.standardError.write(Data((message + "\n").utf8))
                FileHandle.standardError.write(Data((helpMessage(for: MPQ.self).split(separator: "\n").prefix(2).joined(separator: "\n") + "\n").utf8))
                Foundation.exit(ExitStatus.badInput.rawValue)
            }
            fail("internal error: \(error)", .internalError)
        }
    }

    /// ArgumentParser reads `--budget -1` as a flag `-1` and says "Missing value": name the
    /// real problem instead. No mpq option takes a negative number.
    static func negativeValueMessage(_ arguments: [String]) -> String? {
        for (flag, value) in zip(arguments, arguments.dropFirst())
        where flag.hasPrefix("--") && !flag.contains("=") && value.count > 1 && value.hasPrefix("-")
            && (value.dropFirst().first.map { $0.isNumber || $0 == "." } ?? false) {
            return "error: \(flag) \(value): negative values are not allowed (a value starting with '-' must be written \(flag)=\(value), and is then refused with the range the option accepts)"
        }
        return nil
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

/// An error whose message is for the user, with the exit status it calls for. Every error
/// type the libraries throw is listed here, in one place; anything else is an internal
/// error (exit 1).
protocol UserFacingError: Error, CustomStringConvertible {
    var exitStatus: ExitStatus { get }
}

extension UserFacingError {
    var exitStatus: ExitStatus { .badInput }
}

extension ModelError: UserFacingError {}
extension OutputError: UserFacingError {}
extension RuntimeError: UserFacingError {}
extension OpError: UserFacingError {}
extension QuantizationError: UserFacingError {}
extension MetricError: UserFacingError {}
extension DetectionLayoutError: UserFacingError {}
extension DataSplitError: UserFacingError {}
extension CalibrationError: UserFacingError {}
extension SensitivityError: UserFacingError {}
extension SearchStateError: UserFacingError {}
extension HoldoutError: UserFacingError {}
extension PipelineError: UserFacingError {}
extension CacheError: UserFacingError {}
extension ExportError: UserFacingError {}
extension QDQExportError: UserFacingError {}
extension MergeError: UserFacingError {}
extension CLIError: UserFacingError {
    var exitStatus: ExitStatus { status }
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
    try FileKind.requireRegularFile(path, expected: "an ONNX file")
    let graph = try ModelLoader.load(path: path)
    return LoadedModel(graph: graph, session: try Session(graph: optimize ? GraphPasses.optimize(graph) : graph))
}

/// Writes a file atomically: a failed run leaves no partial output behind.
/// Only regular files are written (OutputFile): never a device, pipe or folder.
func writeAtomically(_ text: String, to path: String) throws {
    try OutputFile.write(Data(text.utf8), to: path)
}

/// Fails early, before any work, when an output path cannot be written.
func checkOutputs(_ paths: String?...) throws {
    for case let p? in paths { try OutputFile.checkWritable(p) }
}

/// Deterministic JSON for `--json` output: sorted keys, snake_case, so the same inputs give
/// the same bytes and every command's keys read alike.
func jsonString<T: Encodable>(_ value: T) throws -> String {
    String(decoding: try deterministicJSONEncoder(snakeCase: true).encode(value), as: UTF8.self)
}
