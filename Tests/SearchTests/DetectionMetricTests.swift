import Foundation
import XCTest
import Kernels
import ONNX
@testable import Search

/// IoU, NMS, decoding and COCO mAP on hand-made boxes with known values (docs/detection.md).
final class DetectionMetricTests: XCTestCase {
    /// Decoded outputs: one row per image, each detection (x1, y1, x2, y2, score, class).
    func decoded(_ images: [[(Box, Float, Int)]], k: Int = 100) -> Outputs {
        var v = [Float]()
        for dets in images {
            var row = [Float](repeating: 0, count: k * 6)
            for j in 0..<k { row[j * 6 + 5] = -1 }
            for (j, d) in dets.enumerated() {
                row.replaceSubrange(j * 6..<(j + 1) * 6, with: [d.0.x1, d.0.y1, d.0.x2, d.0.y2, d.1, Float(d.2)])
            }
            v += row
        }
        return Outputs(values: v, rows: images.count, width: k * 6)
    }

    func truth(_ images: [[(Box, Int)]]) -> DetectionTruth {
        DetectionTruth(images: images.map { $0.map { Detection(box: $0.0, score: 1, cls: $0.1) } })
    }

    func map(_ m: Metric, _ o: Outputs, _ t: DetectionTruth) -> Double {
        DetectionMetrics.score(m, outputs: o, reference: nil, truth: t)
    }

    let a = Box(0, 0, 10, 10), b = Box(20, 20, 40, 40), far = Box(100, 100, 110, 110)

    func testIoU() {
        XCTAssertEqual(Box.iou(a, a), 1)
        XCTAssertEqual(Box.iou(a, Box(5, 0, 15, 10)), 50.0 / 150.0, accuracy: 1e-12)
        XCTAssertEqual(Box.iou(a, Box(10, 0, 20, 10)), 0)      // touching edges
        XCTAssertEqual(Box.iou(a, far), 0)
        XCTAssertEqual(Box.iou(Box(0, 0, 0, 0), Box(0, 0, 0, 0)), 0)
    }

    func testNMSKeepsHighestAndBreaksTiesByIndex() {
        let dets = [Detection(box: a, score: 0.5, cls: 0, index: 0),
                    Detection(box: Box(1, 0, 11, 10), score: 0.9, cls: 0, index: 1),   // IoU 0.818 with a
                    Detection(box: far, score: 0.3, cls: 0, index: 2),
                    Detection(box: far, score: 0.3, cls: 0, index: 3)]                  // tie: index 2 wins
        let kept = DetectionOptions.nms(dets, iou: 0.5)
        XCTAssertEqual(kept.map(\.index), [1, 2])
        // At IoU 0.9 the overlapping box survives.
        XCTAssertEqual(DetectionOptions.nms(dets, iou: 0.9).map(\.index), [1, 0, 2])
    }

    func testYoloDecodeAndTransposedLayout() throws {
        // 3 anchors, 2 classes: (cx, cy, w, h, obj, p0, p1).
        let rows: [[Float]] = [[5, 5, 10, 10, 0.9, 0.9, 0.1],
                               [6, 5, 10, 10, 0.8, 0.9, 0.1],
                               [55, 55, 10, 10, 0.5, 0.2, 0.8]]
        let y = Tensor(shape: [1, 3, 7], floats: rows.flatMap { $0 })
        let opts = DetectionOptions(maxDetections: 4)
        let d = try opts.decode(y)
        XCTAssertEqual(d.shape, [1, 4, 6])
        let o = Outputs(values: d.floats, rows: 1, width: 24)
        let dets = DetectionMetrics.detections(o, 0)
        XCTAssertEqual(dets.map(\.cls), [0, 1, 0, 1])
        XCTAssertEqual(dets.map(\.score), [0.9 * 0.9, 0.5 * 0.8, 0.5 * 0.2, Float(0.9) * Float(0.1)])
        XCTAssertEqual(dets[0].box, Box(0, 0, 10, 10))
        XCTAssertEqual(dets[1].box, Box(50, 50, 60, 60))
        // [N, 5+C, A] gives the same detections, with or without --num-classes.
        let t = Tensor(shape: [1, 7, 3], floats: (0..<7).flatMap { f in (0..<3).map { rows[$0][f] } })
        XCTAssertEqual(try opts.decode(t), d)
        XCTAssertEqual(try DetectionOptions(numClasses: 2, maxDetections: 4).decode(t), d)
        // The score threshold drops low products; the cap keeps the best.
        let strict = try DetectionOptions(scoreThreshold: 0.3, maxDetections: 4).decode(y)
        XCTAssertEqual(DetectionMetrics.detections(Outputs(values: strict.floats, rows: 1, width: 24), 0).count, 2)
        let one = try DetectionOptions(maxDetections: 1).decode(y)
        XCTAssertEqual(one.floats[4], 0.81, accuracy: 1e-6)
        XCTAssertThrowsError(try DetectionOptions(numClasses: 5).decode(y))
    }

    func testBoxesScoresClassesDecode() throws {
        let y = Tensor(shape: [1, 3, 6], floats: [0, 0, 10, 10, 0.4, 1,
                                                  -1, -1, -1, -1, 0, -1,       // padding
                                                  20, 20, 40, 40, 0.7, 0])
        let d = try DetectionOptions(format: .boxesScoresClasses, maxDetections: 3).decode(y)
        let dets = DetectionMetrics.detections(Outputs(values: d.floats, rows: 1, width: 18), 0)
        XCTAssertEqual(dets.map(\.score), [0.7, 0.4])
        XCTAssertEqual(dets.map(\.cls), [0, 1])
        XCTAssertThrowsError(try DetectionOptions(format: .boxesScoresClasses).decode(Tensor(shape: [1, 3, 7], floats: [Float](repeating: 0, count: 21))))
    }

    func testPerfectDetectionsScore100() {
        let t = truth([[(a, 0), (b, 1)], [(far, 0)]])
        let o = decoded([[(a, 0.9, 0), (b, 0.8, 1)], [(far, 0.7, 0)]])
        XCTAssertEqual(map(.map50, o, t), 100, accuracy: 1e-9)
        XCTAssertEqual(map(.map50_95, o, t), 100, accuracy: 1e-9)
    }

    func testFalsePositiveAtHigherScoreHalvesAP() {
        // FP (0.9) then TP (0.8): precision 0.5 at every recall -> AP 0.5.
        let t = truth([[(a, 0)]])
        let o = decoded([[(far, 0.9, 0), (a, 0.8, 0)]])
        XCTAssertEqual(map(.map50, o, t), 50, accuracy: 1e-9)
        // After the TP it costs nothing.
        XCTAssertEqual(map(.map50, decoded([[(a, 0.9, 0), (far, 0.8, 0)]]), t), 100, accuracy: 1e-9)
    }

    func testMissedGroundTruth() {
        // 2 GT, one found with precision 1: recall 0.5 -> 51 of 101 recall points.
        let t = truth([[(a, 0)], [(b, 0)]])
        XCTAssertEqual(map(.map50, decoded([[(a, 0.9, 0)], []]), t), 100 * 51.0 / 101.0, accuracy: 1e-9)
        XCTAssertEqual(map(.map50, decoded([[], []]), t), 0)
    }

    func testTwoClassesAndClassesWithoutTruth() {
        // Class 0 perfect, class 1 missed (and detected as class 0 elsewhere); class 2 has no GT: ignored.
        let t = truth([[(a, 0), (b, 1)]])
        let o = decoded([[(a, 0.9, 0), (far, 0.5, 2)]])
        XCTAssertEqual(map(.map50, o, t), 50, accuracy: 1e-9)
        // A wrong class is a false positive, not a match.
        XCTAssertEqual(map(.map50, decoded([[(b, 0.9, 0)]]), truth([[(b, 1)]])), 0)
    }

    func testMap50_95CountsThresholds() {
        // IoU 0.72: a true positive at 0.50 ... 0.70 (5 of 10 thresholds).
        let t = truth([[(a, 0)]])
        let o = decoded([[(Box(0, 0, 10, 7.2), 0.9, 0)]])
        XCTAssertEqual(map(.map50, o, t), 100, accuracy: 1e-9)
        XCTAssertEqual(map(.map50_95, o, t), 50, accuracy: 1e-9)
    }

    func testMatchingPrefersHighestIoU() {
        // Two GT; the best detection overlaps both, it must take the one with the higher IoU.
        let g1 = Box(0, 0, 10, 10), g2 = Box(4, 0, 14, 10)
        let t = truth([[(g1, 0), (g2, 0)]])
        let o = decoded([[(Box(3, 0, 13, 10), 0.9, 0), (Box(0, 0, 10, 10), 0.8, 0)]])
        XCTAssertEqual(map(.map50, o, t), 100, accuracy: 1e-9)
    }

    func testBoxAgreementOfIdenticalOutputsIs100() {
        let o = decoded([[(a, 0.9, 0), (b, 0.3, 1), (far, 0.1, 0)], [(b, 0.6, 2)]])
        XCTAssertEqual(DetectionMetrics.score(.boxAgreement, outputs: o, reference: o, truth: nil), 100, accuracy: 1e-9)
        XCTAssertEqual(score(.boxAgreement, outputs: o, labels: nil, reference: o), 100, accuracy: 1e-9)
        // Losing the 0.3 box (pseudo ground truth, class 1 of 3 classes) costs that class's AP.
        let c = decoded([[(a, 0.9, 0), (far, 0.1, 0)], [(b, 0.6, 2)]])
        XCTAssertEqual(DetectionMetrics.score(.boxAgreement, outputs: c, reference: o, truth: nil), 200.0 / 3, accuracy: 1e-9)
        XCTAssertFalse(Metric.boxAgreement.isPerSample)
        XCTAssertFalse(Metric.map50.needsReference)
    }

    func testBootstrapOfIdenticalOutputsIsZero() {
        let t = truth([[(a, 0)], [(b, 0)], [(far, 1)]])
        let o = decoded([[(a, 0.9, 0)], [(far, 0.5, 0)], [(far, 0.4, 1)]])
        let ci = DetectionMetrics.pairedBootstrapCI(.map50, reference: o, candidate: o, truth: t, resamples: 50, confidence: 0.95, seed: 1)
        XCTAssertEqual(ci.low, 0); XCTAssertEqual(ci.high, 0)
        let worse = decoded([[], [(far, 0.5, 0)], [(far, 0.4, 1)]])
        let ci2 = DetectionMetrics.pairedBootstrapCI(.map50, reference: o, candidate: worse, truth: t, resamples: 50, confidence: 0.95, seed: 1)
        XCTAssertGreaterThanOrEqual(ci2.high, ci2.low)
        XCTAssertGreaterThan(ci2.high, 0)
    }

    func testMissingGroundTruthIsABadInputError() throws {
        let graph = Graph(nodes: [Node(name: "id", opType: "Identity", inputs: ["x"], outputs: ["y"])], initializers: [:],
                          inputs: [ValueInfo(name: "x", dtype: .float32, shape: [nil, 2])],
                          outputs: [ValueInfo(name: "y", dtype: .float32, shape: [nil, 2])], opsets: ["": 17])
        let data = try Dataset(arrays: ["x": Tensor(shape: [2, 2], floats: [0, 0, 0, 0])], path: "det.npz", graph: graph)
        XCTAssertThrowsError(try DetectionTruth(dataset: data)) { error in
            guard let e = error as? MetricError, case .missingGroundTruth(let p, _) = e else { return XCTFail("\(error)") }
            XCTAssertEqual(p, "det.npz")
            XCTAssertTrue(e.description.contains("gt_boxes"))
            XCTAssertTrue(e.description.contains("gt_classes"))
        }
        let withGT = try Dataset(arrays: ["x": Tensor(shape: [2, 2], floats: [0, 0, 0, 0]),
                                          "gt_boxes": Tensor(shape: [2, 2, 4], floats: [0, 0, 10, 10, -1, -1, -1, -1,
                                                                                         20, 20, 40, 40, 0, 0, 10, 10]),
                                          "gt_classes": Tensor(shape: [2, 2], ints: [3, -1, 1, 0])], path: "det.npz", graph: graph)
        let t = try DetectionTruth(dataset: withGT)
        XCTAssertEqual(t.images.map { $0.map(\.cls) }, [[3], [1, 0]])
        XCTAssertEqual(t.images[1][0].box, b)
    }
}
