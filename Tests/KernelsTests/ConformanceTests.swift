import Foundation
import XCTest
import Kernels

/// ONNX's own backend node tests and light real-architecture models (exported by
/// tools/conformance/export_node_tests.py). Failures of claimed ops must be listed with a
/// reason in docs/conformance.md and Tests/Fixtures/conformance/known_failures.txt.
final class ConformanceTests: XCTestCase {
    func knownFailures() -> Set<String> {
        let text = (try? String(contentsOfFile: FixturePaths.path("conformance/known_failures.txt"), encoding: .utf8)) ?? ""
        return Set(text.split(separator: "\n").compactMap { line in
            let name = line.split(separator: "#")[...].first?.trimmingCharacters(in: .whitespaces) ?? ""
            return name.isEmpty ? nil : name
        })
    }

    func runAll(_ folder: String) throws -> (passed: Int, failed: [String], unsupported: Int) {
        let known = knownFailures()
        var passed = 0, unsupported = 0
        var failed: [String] = []
        for dir in try Conformance.cases(in: FixturePaths.path(folder)) {
            let r = Conformance.run(caseDirectory: dir)
            switch r.outcome {
            case .passed:
                passed += 1
                XCTAssertFalse(known.contains(r.name), "\(r.name) passes now: remove it from known_failures.txt")
            case .failed(let why):
                failed.append(r.name)
                if !known.contains(r.name) { XCTFail("\(r.name): \(why)") }
            case .unsupported:
                unsupported += 1
            }
        }
        print("conformance \(folder): \(passed) passed, \(failed.count) failed (known), \(unsupported) not supported")
        return (passed, failed, unsupported)
    }

    func testNodeCases() throws {
        let r = try runAll("conformance/node")
        XCTAssertGreaterThan(r.passed, 300)
    }

    func testLightModels() throws {
        let r = try runAll("conformance/light")
        XCTAssertGreaterThanOrEqual(r.passed, 3)
    }
}
