import Foundation
import XCTest

/// Runs the built `mpq` executable and captures its output and exit code, as a user
/// would see them.
struct CLIResult {
    let status: Int32
    let stdout: String
    let stderr: String
}

enum CLI {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let fixtures = root.appendingPathComponent("Tests/Fixtures").path
    static let examples = root.appendingPathComponent("Examples").path

    /// The `mpq` binary next to the test bundle (SwiftPM builds it for this test target).
    static var binary: URL {
        let dir = Bundle.main.bundleURL
        let candidates = [dir.appendingPathComponent("mpq"), dir.deletingLastPathComponent().appendingPathComponent("mpq")]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) } ?? candidates[0]
    }

    /// Runs `mpq args`. With `timeout`, a run still going after that many seconds is killed
    /// and reported with status -1 (a hang fails the test instead of the suite).
    static func run(_ args: [String], environment: [String: String] = [:], timeout: Double? = nil) throws -> CLIResult {
        let p = Process()
        p.executableURL = binary
        p.arguments = args
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        p.environment = env
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let watchdog = Watchdog()
        if let timeout {
            let pid = p.processIdentifier
            DispatchQueue.global().asyncAfter(deadline: .now() + timeout) { watchdog.kill(pid, ifRunning: p) }
        }
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return CLIResult(status: watchdog.fired ? -1 : p.terminationStatus, stdout: String(decoding: o, as: UTF8.self),
                         stderr: String(decoding: e, as: UTF8.self))
    }

    /// Kills a run past its timeout and remembers that it did, behind a lock: the timer fires
    /// on another thread (a captured `var` there is a data race Swift 6 refuses).
    final class Watchdog: @unchecked Sendable {
        private let lock = NSLock()
        private var killed = false

        func kill(_ pid: pid_t, ifRunning p: Process) {
            lock.lock(); defer { lock.unlock() }
            if p.isRunning { killed = true; Glibc.kill(pid, SIGKILL) }
        }

        var fired: Bool {
            lock.lock(); defer { lock.unlock() }
            return killed
        }
    }

    /// A fresh temporary folder for files a test writes. Every one lives under one folder per
    /// test process, removed when the test bundle finishes (a run used to leave ~70 behind).
    static func temporaryDirectory() throws -> URL {
        let url = scratchRoot.appendingPathComponent(UUID().uuidString)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// `mpq-tests-<pid>`; the first use registers its removal at the bundle's end.
    static let scratchRoot: URL = {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("mpq-tests-\(ProcessInfo.processInfo.processIdentifier)")
        XCTestObservationCenter.shared.addTestObserver(RemoveAtBundleEnd(url))
        return url
    }()
}

/// Removes a folder when the test bundle finishes.
final class RemoveAtBundleEnd: NSObject, XCTestObservation {
    let url: URL
    init(_ url: URL) { self.url = url }
    func testBundleDidFinish(_ testBundle: Bundle) { try? FileManager.default.removeItem(at: url) }
}
