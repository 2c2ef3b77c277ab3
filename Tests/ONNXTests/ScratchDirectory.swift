import Foundation
import XCTest

extension XCTestCase {
    /// A fresh folder under the system's temporary directory, removed when the test ends
    /// (the suite used to leave every one behind).
    func scratchDirectory(_ prefix: String) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }
}
