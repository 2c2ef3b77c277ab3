import Foundation
import XCTest
#if canImport(FoundationXML)
import FoundationXML
#endif
@testable import Search

final class JUnitTests: XCTestCase {
    static let rows = [
        SweepRow(budget: 0.5, int8Share: 0.25, searchDrop: 0.2778, holdoutDrop: 0.5571, ciLow: 0, ciHigh: 1.3928, met: false, required: true),
        SweepRow(budget: 1, int8Share: 0.75, searchDrop: 0.5556, holdoutDrop: 0.2786, ciLow: -0.2786, ciHigh: 0.8357, met: true, required: false),
        SweepRow(budget: 2.5, budgetType: "relative", int8Share: 1, searchDrop: 1.1, holdoutDrop: 1.5, ciLow: 0.5, ciHigh: 2.6, met: false, required: false),
    ]

    func report(digest: String = "sha256:abc") -> JUnitReport {
        JUnitReport(rows: Self.rows, modelDigest: digest, metric: .top1, seed: 7, criterion: .upper, confidence: 0.95)
    }

    func testGoldenBytes() {
        let one = JUnitReport(rows: [Self.rows[1]], modelDigest: "d", metric: .agreement, seed: 0, criterion: .point)
        let want = """
        <?xml version="1.0" encoding="UTF-8"?>
        <testsuites name="mpq sweep" tests="1" failures="0" errors="0">
          <testsuite name="mpq sweep" tests="1" failures="0" errors="0" skipped="0">
            <properties>
              <property name="model_digest" value="d"/>
              <property name="metric" value="agreement"/>
              <property name="seed" value="0"/>
              <property name="criterion" value="point"/>
            </properties>
            <testcase classname="mpq.budget" name="budget 1%">
              <system-out>int8 share 75%, search drop 0.5556, holdout drop 0.2786, CI [-0.2786, 0.8357], budget 1, criterion point</system-out>
            </testcase>
          </testsuite>
        </testsuites>

        """
        XCTAssertEqual(one.xml(), want)
    }

    func testStructureAndCounts() throws {
        let xml = report().xml()
        XCTAssertEqual(xml, report().xml(), "deterministic bytes")
        XCTAssertFalse(xml.contains("timestamp"))
        XCTAssertTrue(xml.contains("<testsuite name=\"mpq sweep\" tests=\"3\" failures=\"2\""))
        XCTAssertTrue(xml.contains("name=\"budget 0.5%\""))
        XCTAssertTrue(xml.contains("name=\"budget 2.5% (relative)\""))
        XCTAssertTrue(xml.contains("<failure message=\"CI upper bound 1.3928 exceeds budget 0.5 (required)\""))
        XCTAssertEqual(xml.components(separatedBy: "<testcase ").count - 1, 3)
        XCTAssertEqual(xml.components(separatedBy: "<failure ").count - 1, 2)
        let point = JUnitReport(rows: Self.rows, modelDigest: "d", metric: .top1, seed: 7, criterion: .point,
                                timestamp: "2026-01-01T00:00:00Z").xml()
        XCTAssertTrue(point.contains("<failure message=\"holdout drop 0.5571 exceeds budget 0.5 (required)\""))
        XCTAssertTrue(point.contains("timestamp=\"2026-01-01T00:00:00Z\""))
    }

    func testEscaping() {
        XCTAssertEqual(JUnitReport.escape("a<b & c>\"d\" 'e'"), "a&lt;b &amp; c&gt;&quot;d&quot; &apos;e&apos;")
        XCTAssertEqual(JUnitReport.escape("x\u{1}y\nz"), "x\u{FFFD}y&#10;z")
        XCTAssertEqual(JUnitReport.number(1), "1")
        XCTAssertEqual(JUnitReport.number(0.25), "0.25")
        XCTAssertEqual(JUnitReport.number(-0.00001), "0")
        XCTAssertEqual(JUnitReport.number(1.23456), "1.2346")
        let xml = report(digest: "<&\"'>").xml()
        XCTAssertTrue(xml.contains("value=\"&lt;&amp;&quot;&apos;&gt;\""))
        XCTAssertFalse(xml.contains("<&"))
    }

    #if canImport(FoundationXML) || os(macOS)
    func testParsesBackWithXMLDocument() throws {
        let nasty = "sha256:<&\"'>\u{7}"
        let text = JUnitReport(rows: Self.rows, modelDigest: nasty, metric: .top5, seed: 7, criterion: .upper,
                               confidence: 0.95, extraProperties: [("note", "a & b < c")]).xml()
        let doc = try XMLDocument(data: Data(text.utf8))
        let root = try XCTUnwrap(doc.rootElement())
        XCTAssertEqual(root.name, "testsuites")
        let suite = try XCTUnwrap(root.elements(forName: "testsuite").first)
        XCTAssertEqual(suite.attribute(forName: "name")?.stringValue, "mpq sweep")
        XCTAssertEqual(suite.attribute(forName: "tests")?.stringValue, "3")
        XCTAssertEqual(suite.attribute(forName: "failures")?.stringValue, "2")
        let props = try XCTUnwrap(suite.elements(forName: "properties").first).elements(forName: "property")
        let values = Dictionary(uniqueKeysWithValues: props.map { ($0.attribute(forName: "name")!.stringValue!, $0.attribute(forName: "value")!.stringValue!) })
        XCTAssertEqual(values["model_digest"], "sha256:<&\"'>\u{FFFD}")
        XCTAssertEqual(values["metric"], "top5")
        XCTAssertEqual(values["seed"], "7")
        XCTAssertEqual(values["criterion"], "upper")
        XCTAssertEqual(values["confidence"], "0.95")
        XCTAssertEqual(values["note"], "a & b < c")
        let cases = suite.elements(forName: "testcase")
        XCTAssertEqual(cases.map { $0.attribute(forName: "name")!.stringValue! },
                       ["budget 0.5%", "budget 1%", "budget 2.5% (relative)"])
        XCTAssertTrue(cases.allSatisfy { $0.attribute(forName: "classname")?.stringValue == "mpq.budget" })
        XCTAssertEqual(cases.map { !$0.elements(forName: "failure").isEmpty }, Self.rows.map { !$0.met })
    }
    #endif

    func testWriteToFile() throws {
        let path = NSTemporaryDirectory() + "mpq-junit-\(ProcessInfo.processInfo.processIdentifier).xml"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try report().write(to: path)
        XCTAssertEqual(try String(contentsOfFile: path, encoding: .utf8), report().xml())
    }
}
