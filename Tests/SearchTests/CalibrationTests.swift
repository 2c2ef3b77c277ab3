import XCTest
import Kernels
import ONNX
@testable import Search

/// The committed fixtures, found from this file's path so tests run from any folder.
private enum CalibrationFixtures {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures").path
    static func path(_ name: String) -> String { "\(root)/\(name)" }
}

/// Calibrating the digits CNN end to end, and the table file: JSON bytes, digest and
/// coverage checks.
final class CalibrationTests: XCTestCase {
    var tmp: URL!

    override func setUpWithError() throws {
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("mpq-calibration-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: tmp) }

    /// The digits model as loaded (for its digest) and its optimised session.
    func digits() throws -> (digest: String, session: Session, data: Dataset) {
        let graph = try ModelLoader.load(path: CalibrationFixtures.path("digits_cnn.onnx"))
        let session = try Session(graph: GraphPasses.optimize(graph))
        let data = try Dataset(path: CalibrationFixtures.path("digits_calib.npz"), graph: session.graph)
        return (graph.digest, session, data)
    }

    func testEveryQuantizableLayerInputGetsARange() throws {
        let (digest, session, data) = try digits()
        let calibrator = Calibrator(session: session)
        let layers = session.plan.filter { Layers.isQuantizable($0, constants: session.constants) }
        XCTAssertFalse(layers.isEmpty)
        XCTAssertEqual(Set(calibrator.tensors), Set(layers.compactMap { $0.input(0) }))
        var reports: [CalibrationPass: Int] = [:]
        for method in CalibrationMethod.allCases {
            reports = [:]
            let table = try calibrator.calibrate(dataset: data, options: CalibrationOptions(method: method),
                                                 modelDigest: digest) { pass, done, total in
                XCTAssertEqual(total, data.count)
                reports[pass] = done
            }
            XCTAssertEqual(reports[.ranges], data.count)
            XCTAssertEqual(reports[.histograms], method.needsHistogram ? data.count : nil)
            XCTAssertEqual(table.method, method.rawValue)
            XCTAssertEqual(table.modelDigest, digest)
            XCTAssertEqual(table.samples, data.count)
            XCTAssertEqual(Set(table.ranges.keys), Set(calibrator.tensors))
            for layer in layers {
                let r = try XCTUnwrap(table.ranges[layer.input(0)!], "\(method): \(layer.name)")
                XCTAssertTrue(r.min.isFinite && r.max.isFinite && r.min <= r.max && r.max > 0, "\(method): \(layer.name) \(r)")
            }
            // The normalised image has negatives; ReLU outputs do not.
            XCTAssertLessThan(table.ranges["input"]!.min, 0)
            XCTAssertEqual(table.ranges["/block/relu/Relu_output_0"]?.min, 0)
            XCTAssertNoThrow(try table.validate(modelDigest: digest, required: calibrator.tensors, path: "t.json"))
        }
    }

    func testClippingMethodsStayInsideMinMax() throws {
        let (digest, session, data) = try digits()
        let calibrator = Calibrator(session: session)
        let minmax = try calibrator.calibrate(dataset: data, options: CalibrationOptions(method: .minmax), modelDigest: digest)
        for method in [CalibrationMethod.percentile, .entropy, .mse] {
            let t = try calibrator.calibrate(dataset: data, options: CalibrationOptions(method: method, batchSize: 50),
                                             modelDigest: digest)
            for (name, r) in t.ranges {
                let m = minmax.ranges[name]!
                XCTAssertGreaterThanOrEqual(r.min, m.min, "\(method) \(name)")
                XCTAssertLessThanOrEqual(r.max, m.max, "\(method) \(name)")
            }
        }
    }

    func testMinMaxDoesNotDependOnBatchSize() throws {
        let (digest, session, data) = try digits()
        let calibrator = Calibrator(session: session)
        let a = try calibrator.calibrate(dataset: data, options: CalibrationOptions(batchSize: 64), modelDigest: digest)
        let b = try calibrator.calibrate(dataset: data, options: CalibrationOptions(batchSize: 7), modelDigest: digest)
        // Batches change float rounding in the kernels at most, not which value is largest.
        for (name, r) in a.ranges {
            XCTAssertEqual(r.min, b.ranges[name]!.min, accuracy: 1e-5 * max(1, abs(r.min)), name)
            XCTAssertEqual(r.max, b.ranges[name]!.max, accuracy: 1e-5 * max(1, abs(r.max)), name)
        }
    }

    func testJSONRoundTripIsByteIdentical() throws {
        let table = CalibrationTable(method: "entropy", modelDigest: "0123456789abcdef", samples: 180, ranges: [
            "b/relu": .init(min: 0, max: 5.358974), "a": .init(min: -0.8112236, max: 1.8489277),
            "c": .init(min: -1e-7, max: 3.4028235e38),
        ])
        let path = tmp.appendingPathComponent("calib.json").path
        try table.save(to: path)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        let loaded = try CalibrationTable.load(path: path)
        XCTAssertEqual(loaded, table)
        XCTAssertEqual(try loaded.jsonData(), bytes)
        let again = tmp.appendingPathComponent("again.json").path
        try loaded.save(to: again)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: again)), bytes)
        // Sorted keys: the bytes do not depend on dictionary order.
        let text = String(decoding: bytes, as: UTF8.self)
        let a = try XCTUnwrap(text.range(of: "\"a\"")), b = try XCTUnwrap(text.range(of: "\"b/relu\""))
        XCTAssertLessThan(a.lowerBound, b.lowerBound)
        XCTAssertTrue(text.hasSuffix("}\n"))
    }

    func testCalibratedTableRoundTrips() throws {
        let (digest, session, data) = try digits()
        let table = try Calibrator(session: session).calibrate(dataset: data, options: CalibrationOptions(method: .percentile),
                                                               modelDigest: digest)
        let path = tmp.appendingPathComponent("digits.json").path
        try table.save(to: path)
        let loaded = try CalibrationTable.load(path: path, modelDigest: digest, session: session)
        XCTAssertEqual(loaded, table)
        XCTAssertEqual(try loaded.jsonData(), try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    func testDigestMismatchIsRejected() throws {
        let (digest, session, _) = try digits()
        let required = Calibrator.requiredTensors(session: session)
        let table = CalibrationTable(method: "minmax", modelDigest: "ffffffffffffffff", samples: 1,
                                     ranges: Dictionary(uniqueKeysWithValues: required.map { ($0, .init(min: 0, max: 1)) }))
        let path = tmp.appendingPathComponent("other.json").path
        try table.save(to: path)
        XCTAssertThrowsError(try CalibrationTable.load(path: path, modelDigest: digest, session: session)) { error in
            XCTAssertEqual(error as? CalibrationError, .digestMismatch(path: path, table: "ffffffffffffffff", model: digest))
            XCTAssertTrue("\(error)".contains(path))
        }
    }

    func testMissingTensorIsRejected() throws {
        let (digest, session, _) = try digits()
        let required = Calibrator.requiredTensors(session: session)
        var ranges = Dictionary(uniqueKeysWithValues: required.map { ($0, CalibrationTable.Range(min: 0, max: 1)) })
        ranges[required[2]] = nil
        let path = tmp.appendingPathComponent("partial.json").path
        try CalibrationTable(method: "minmax", modelDigest: digest, samples: 1, ranges: ranges).save(to: path)
        XCTAssertThrowsError(try CalibrationTable.load(path: path, modelDigest: digest, session: session)) { error in
            XCTAssertEqual(error as? CalibrationError, .missingRange(path: path, tensor: required[2]))
            XCTAssertTrue("\(error)".contains(required[2]) && "\(error)".contains(path))
        }
    }

    func testMalformedFilesAreRejected() throws {
        let cases: [(String, String)] = [
            ("notjson.json", "{ nope"),
            ("nokey.json", #"{"method":"minmax","samples":1,"ranges":{},"version":1}"#),
            ("version.json", #"{"method":"minmax","modelDigest":"x","samples":1,"ranges":{},"version":2}"#),
            ("inverted.json", #"{"method":"minmax","modelDigest":"x","samples":1,"ranges":{"t":{"min":2,"max":1}},"version":1}"#),
        ]
        for (name, text) in cases {
            let path = tmp.appendingPathComponent(name).path
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
            XCTAssertThrowsError(try CalibrationTable.load(path: path), name) { error in
                XCTAssertTrue("\(error)".contains(path), "\(error)")
            }
        }
        XCTAssertThrowsError(try CalibrationTable.load(path: tmp.appendingPathComponent("absent.json").path)) { error in
            XCTAssertTrue("\(error)".contains("file not found"), "\(error)")
        }
        XCTAssertThrowsError(try CalibrationTable.load(path: tmp.appendingPathComponent("nokey.json").path)) { error in
            XCTAssertTrue("\(error)".contains("modelDigest"), "\(error)")
        }
    }

    func testEmptyDataAndBadOptionsAreRejected() throws {
        let (digest, session, data) = try digits()
        let calibrator = Calibrator(session: session)
        let empty = data.subset([], path: "empty.npz")
        XCTAssertThrowsError(try calibrator.calibrate(dataset: empty, options: CalibrationOptions(), modelDigest: digest)) {
            XCTAssertEqual($0 as? CalibrationError, .noSamples(path: "empty.npz"))
        }
        XCTAssertThrowsError(try calibrator.calibrate(dataset: data, options: CalibrationOptions(method: .entropy, bins: 100),
                                                      modelDigest: digest)) {
            guard case .badOptions? = $0 as? CalibrationError else { return XCTFail("\($0)") }
        }
    }
}
