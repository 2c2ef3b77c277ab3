import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What a path names on disk, so that a folder or a device given where a file is expected
/// is refused with a message instead of hanging (a FIFO, /dev/zero) or failing inside
/// Foundation.
public enum FileKind: Equatable, Sendable {
    case missing, regular, directory, other

    /// The kind of `path`, following symlinks.
    public init(path: String) {
        var st = stat()
        guard stat(path, &st) == 0 else { self = .missing; return }
        switch st.st_mode & S_IFMT {
        case S_IFREG: self = .regular
        case S_IFDIR: self = .directory
        default: self = .other
        }
    }

    /// Throws unless `path` is a regular file; `expected` names what it should be ("an .npz file").
    public static func requireRegularFile(_ path: String, expected: String) throws {
        switch FileKind(path: path) {
        case .regular: return
        case .missing: throw ModelError.fileNotFound(path: path)
        case .directory: throw ModelError.notARegularFile(path: path, expected: expected, actual: "a folder")
        case .other: throw ModelError.notARegularFile(path: path, expected: expected, actual: "not a regular file (a device, pipe or socket)")
        }
    }
}
