import Foundation

/// Progress of one phase on stderr. On a terminal: a line rewritten in place, as before.
/// Elsewhere (a CI log, a pipe): one full line at most every `interval` seconds, with the
/// phase, done/total, elapsed time and an ETA, so a long search shows it is alive without
/// flooding the log. `--quiet` silences every phase (`Progress.quiet`).
final class Progress: @unchecked Sendable {
    /// Set once by a command's `--quiet` before any phase starts.
    nonisolated(unsafe) static var quiet = false

    /// Seconds between lines on a non-terminal: 10, or `MPQ_PROGRESS_INTERVAL` (meant for
    /// tests, which set 0 to see every line without waiting).
    static var interval: Double {
        if let v = ProcessInfo.processInfo.environment["MPQ_PROGRESS_INTERVAL"], let s = Double(v), s >= 0, s.isFinite { return s }
        return 10
    }

    let label: String
    private let tty = isatty(2) != 0
    private let start = Date()
    private let interval = Progress.interval
    private var lastLine: Date?
    private let lock = NSLock()

    init(label: String) { self.label = label }

    func update(_ done: Int, _ total: Int) {
        if Progress.quiet { return }
        if tty {
            FileHandle.standardError.write(Data("\r\(label): \(done)/\(total)".utf8))
            if done >= total { FileHandle.standardError.write(Data("\n".utf8)) }
            return
        }
        lock.lock(); defer { lock.unlock() }
        let now = Date()
        // The first line waits a full interval too: a phase shorter than that prints nothing.
        guard now.timeIntervalSince(lastLine ?? start) >= interval else { return }
        lastLine = now
        FileHandle.standardError.write(Data((Progress.line(label, done, total, elapsed: now.timeIntervalSince(start)) + "\n").utf8))
    }

    /// A line of progress text (search steps): on a terminal always, elsewhere the first at
    /// once (the phase has started) and then at most one every interval.
    func note(_ text: String) {
        if Progress.quiet { return }
        if !tty {
            lock.lock(); defer { lock.unlock() }
            let now = Date()
            if let lastLine, now.timeIntervalSince(lastLine) < interval { return }
            lastLine = now
            FileHandle.standardError.write(Data("\(label) [\(Progress.duration(now.timeIntervalSince(start)))]: \(text)\n".utf8))
            return
        }
        FileHandle.standardError.write(Data("\(label): \(text)\n".utf8))
    }

    /// `phase: 640/1797 (35.6%), elapsed 12s, ETA 22s`.
    static func line(_ label: String, _ done: Int, _ total: Int, elapsed: Double) -> String {
        let share = total > 0 ? Double(done) / Double(total) : 0
        let eta = done > 0 && done < total ? ", ETA \(duration(elapsed / Double(done) * Double(total - done)))" : ""
        return "\(label): \(done)/\(total) (\(String(format: "%.1f", share * 100))%), elapsed \(duration(elapsed))\(eta)"
    }

    /// 7s, 3m05s, 1h02m.
    static func duration(_ s: Double) -> String {
        let t = Int(s.rounded())
        if t < 60 { return "\(t)s" }
        if t < 3600 { return String(format: "%dm%02ds", t / 60, t % 60) }
        return String(format: "%dh%02dm", t / 3600, (t % 3600) / 60)
    }
}
