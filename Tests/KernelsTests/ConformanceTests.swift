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

    /// The totals docs/conformance.md states ("N passed, N failed, N not supported"): a
    /// removed or broken op, or a case that starts loading as "not supported", changes them.
    func documentedTotals() throws -> (passed: Int, failed: Int, unsupported: Int) {
        let doc = try String(contentsOfFile: FixturePaths.root + "/../../docs/conformance.md", encoding: .utf8)
        let pattern = try NSRegularExpression(pattern: #"(\d+) passed, (\d+) failed, (\d+) not supported"#)
        let match = try XCTUnwrap(pattern.firstMatch(in: doc, range: NSRange(doc.startIndex..., in: doc)), "docs/conformance.md states no totals")
        func group(_ i: Int) -> Int { Int((doc as NSString).substring(with: match.range(at: i)))! }
        return (group(1), group(2), group(3))
    }

    func testNodeCases() throws {
        let r = try runAll("conformance/node")
        let doc = try documentedTotals()
        XCTAssertEqual(r.passed, doc.passed, "passed cases differ from docs/conformance.md")
        XCTAssertEqual(r.failed.count, doc.failed, "known failures differ from docs/conformance.md")
        XCTAssertEqual(r.unsupported, doc.unsupported, "'not supported' cases differ from docs/conformance.md")
    }

    func testLightModels() throws {
        let r = try runAll("conformance/light")
        // All nine real architectures load and match (a load failure would count as not supported).
        XCTAssertEqual(r.passed, 9)
        XCTAssertEqual(r.unsupported, 0)
        XCTAssertTrue(r.failed.isEmpty)
    }
}
