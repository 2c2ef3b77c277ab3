import Foundation

/// Where the committed fixtures live, found from this file's path so tests run from any folder.
enum FixturePaths {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures").path

    static func path(_ name: String) -> String { "\(root)/\(name)" }
}
