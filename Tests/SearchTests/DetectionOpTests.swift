import Foundation
import XCTest
import ONNX
@testable import Kernels

/// NonMaxSuppression on the ONNX backend test cases (nonmaxsuppression_*), worked by hand.
final class DetectionOpTests: XCTestCase {
    func nms(_ boxes: [Float], _ scores: [Float], classes: Int = 1, max: Int64 = 3, iou: Float = 0.5, score: Float? = 0,
             center: Int = 0) throws -> [Int64] {
        let node = Node(name: "nms", opType: "NonMaxSuppression", inputs: ["b", "s", "m", "i", "t"], outputs: ["y"],
                        attributes: ["center_point_box": .int(center)])
        let s = boxes.count / 4
        let inputs: [Tensor?] = [Tensor(shape: [1, s, 4], floats: boxes), Tensor(shape: [1, classes, s], floats: scores),
                                 Tensor(shape: [1], ints: [max]), Tensor(shape: [1], floats: [iou]),
                                 score.map { Tensor(shape: [1], floats: [$0]) }]
        let y = try XCTUnwrap(OpRegistry.table["NonMaxSuppression"]).run(node, inputs, 11)[0]
        XCTAssertEqual(y.dtype, .int64)
        XCTAssertEqual(y.shape, [y.count / 3, 3])
        return y.ints
    }

    let corners: [Float] = [0, 0, 1, 1, 0, 0.1, 1, 1.1, 0, -0.1, 1, 0.9, 0, 10, 1, 11, 0, 10.1, 1, 11.1, 0, 100, 1, 101]
    let scores: [Float] = [0.9, 0.75, 0.6, 0.95, 0.5, 0.3]

    func testSuppressByIoU() throws {
        // Box 3 (0.95) first, then 0 (0.9) suppresses 1 and 2, 3 suppresses 4, then 5.
        XCTAssertEqual(try nms(corners, scores), [0, 0, 3, 0, 0, 0, 0, 0, 5])
        XCTAssertEqual(try nms(corners, scores, max: 2), [0, 0, 3, 0, 0, 0])
        XCTAssertEqual(try nms(corners, scores, score: 0.4), [0, 0, 3, 0, 0, 0])
        XCTAssertEqual(try nms(corners, scores, max: 0), [])
    }

    func testCenterPointAndFlippedCorners() throws {
        let centers: [Float] = [0.5, 0.5, 1, 1, 0.5, 0.6, 1, 1, 0.5, 0.4, 1, 1, 0.5, 10.5, 1, 1, 0.5, 10.6, 1, 1, 0.5, 100.5, 1, 1]
        XCTAssertEqual(try nms(centers, scores, center: 1), [0, 0, 3, 0, 0, 0, 0, 0, 5])
        let flipped: [Float] = [1, 1, 0, 0, 0, 0.1, 1, 1.1, 0, 0.9, 1, -0.1, 0, 10, 1, 11, 1, 10.1, 0, 11.1, 1, 101, 0, 100]
        XCTAssertEqual(try nms(flipped, scores), [0, 0, 3, 0, 0, 0, 0, 0, 5])
    }

    func testTwoClassesAndTies() throws {
        XCTAssertEqual(try nms(corners, scores + scores, classes: 2, max: 2), [0, 0, 3, 0, 0, 0, 0, 1, 3, 0, 1, 0])
        // Identical boxes with equal scores: the lower index is kept.
        XCTAssertEqual(try nms([0, 0, 1, 1, 0, 0, 1, 1], [0.5, 0.5], max: 10), [0, 0, 0])
        // Without a score threshold input every box is a candidate.
        XCTAssertEqual(try nms([0, 0, 1, 1, 0, 2, 1, 3], [0, 0.1], max: 10, score: nil), [0, 0, 1, 0, 0, 0])
    }
}
