import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A file mpq cannot write where asked (OutputFile).
public struct OutputError: Error, CustomStringConvertible, Equatable {
    public let path: String
    public let reason: String
    public init(path: String, reason: String) { self.path = path; self.reason = reason }
    public var description: String { "cannot write \(path): \(reason)" }
}

/// Outputs go to regular files only, written whole or not at all: a temporary file beside
/// the target, fsync'd, then renamed over it. An existing folder, device, pipe or socket is
/// never replaced (`--out /dev/full` used to be deleted and replaced by the map).
public enum OutputFile {
    /// Throws unless `path` is missing or a regular file, in an existing folder.
    public static func checkWritable(_ path: String) throws {
        switch FileKind(path: path) {
        case .regular, .missing: break
        case .directory: throw OutputError(path: path, reason: "it is a folder; mpq writes its outputs only to regular files")
        case .other: throw OutputError(path: path, reason: "it is not a regular file (a device, pipe or socket); mpq writes its outputs only to regular files")
        }
        let dir = URL(fileURLWithPath: path).deletingLastPathComponent().path
        guard FileKind(path: dir) == .directory else { throw OutputError(path: path, reason: "the folder \(dir) does not exist") }
    }

    /// Writes `data` to `path` atomically.
    public static func write(_ data: Data, to path: String) throws {
        try write(to: path) { tmp in
            guard FileManager.default.createFile(atPath: tmp, contents: data) else {
                throw OutputError(path: path, reason: "cannot create a temporary file in its folder")
            }
        }
    }

    /// Lets `produce` write a temporary file beside `path`, then syncs it and renames it
    /// over `path`. The temporary file is removed on any failure.
    public static func write(to path: String, _ produce: (String) throws -> Void) throws {
        try checkWritable(path)
        let url = URL(fileURLWithPath: path)
        let tmp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        do {
            try produce(tmp)
            let fd = open(tmp, O_RDONLY)
            guard fd >= 0 else { throw OutputError(path: path, reason: "cannot reopen the temporary file \(tmp)") }
            let synced = fsync(fd) == 0
            close(fd)
            guard synced else { throw OutputError(path: path, reason: "fsync failed: \(String(cString: strerror(errno)))") }
            // Checked again just before the rename: the target may have changed meanwhile.
            try checkWritable(path)
            guard rename(tmp, path) == 0 else { throw OutputError(path: path, reason: String(cString: strerror(errno))) }
        } catch {
            unlink(tmp)
            if error is OutputError { throw error }
            throw OutputError(path: path, reason: "\(error)")
        }
    }
}
