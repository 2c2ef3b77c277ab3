import Foundation
import ONNX

/// Object-detection ops: NonMaxSuppression (opset 10+), as ONNX Runtime runs it.
enum DetectionOps {
    static let table: [String: OpEntry] = [
        "NonMaxSuppression": OpEntry(since: 10) { n, i, _ in
            let maxOut = i.inputAt(2).flatMap { $0.asInts.first } ?? 0
            let iou = i.inputAt(3).flatMap { $0.asFloats.first } ?? 0
            let scoreThreshold = i.inputAt(4).flatMap { $0.asFloats.first }
            return [try NonMaxSuppression(boxes: n.required(i, 0, "boxes"), scores: n.required(i, 1, "scores"),
                                          maxOutputBoxesPerClass: Int(maxOut), iouThreshold: iou,
                                          scoreThreshold: scoreThreshold, centerPointBox: n.int("center_point_box", default: 0))]
        },
    ]

    /// Selected indices [K, 3] (batch, class, box): per batch and class, boxes by score
    /// (ties: lower index first), dropping those whose IoU with a selected box is above
    /// `iouThreshold` and, with a score threshold, those not scoring above it.
    /// `centerPointBox` 0: boxes are corners [y1, x1, y2, x2] (either diagonal); 1: [cx, cy, w, h].
    static func NonMaxSuppression(boxes: Tensor, scores: Tensor, maxOutputBoxesPerClass: Int, iouThreshold: Float,
                                  scoreThreshold: Float?, centerPointBox: Int) throws -> Tensor {
        guard boxes.rank == 3, boxes.shape[2] == 4 else {
            throw OpError("NonMaxSuppression: boxes must be [batches, boxes, 4], got \(Tensor.describe(boxes.shape))")
        }
        let b = boxes.shape[0], s = boxes.shape[1]
        guard scores.rank == 3, scores.shape[0] == b, scores.shape[2] == s else {
            throw OpError("NonMaxSuppression: scores must be [\(b), classes, \(s)], got \(Tensor.describe(scores.shape))")
        }
        guard centerPointBox == 0 || centerPointBox == 1 else {
            throw OpError("NonMaxSuppression: center_point_box must be 0 or 1, got \(centerPointBox)")
        }
        let c = scores.shape[1]
        let bx = boxes.asFloats, sc = scores.asFloats
        var selected: [Int64] = []
        guard maxOutputBoxesPerClass > 0 else { return Tensor(shape: [0, 3], ints: []) }
        // Corners (ymin, xmin, ymax, xmax) per box.
        func corners(_ batch: Int, _ k: Int) -> (Float, Float, Float, Float) {
            let o = (batch * s + k) * 4
            if centerPointBox == 1 {
                let cx = bx[o], cy = bx[o + 1], hw = bx[o + 2] / 2, hh = bx[o + 3] / 2
                return (cy - hh, cx - hw, cy + hh, cx + hw)
            }
            return (min(bx[o], bx[o + 2]), min(bx[o + 1], bx[o + 3]), max(bx[o], bx[o + 2]), max(bx[o + 1], bx[o + 3]))
        }
        func suppresses(_ p: (Float, Float, Float, Float), _ q: (Float, Float, Float, Float)) -> Bool {
            let ih = min(p.2, q.2) - max(p.0, q.0), iw = min(p.3, q.3) - max(p.1, q.1)
            guard ih > 0, iw > 0 else { return false }
            let areaP = (p.2 - p.0) * (p.3 - p.1), areaQ = (q.2 - q.0) * (q.3 - q.1)
            guard areaP > 0, areaQ > 0 else { return false }
            let inter = ih * iw
            return inter / (areaP + areaQ - inter) > iouThreshold
        }
        for batch in 0..<b {
            for cls in 0..<c {
                let base = (batch * c + cls) * s
                var candidates = (0..<s).filter { scoreThreshold == nil || sc[base + $0] > scoreThreshold! }
                candidates.sort { sc[base + $0] > sc[base + $1] || (sc[base + $0] == sc[base + $1] && $0 < $1) }
                var kept: [(Float, Float, Float, Float)] = []
                for k in candidates {
                    if kept.count >= maxOutputBoxesPerClass { break }
                    let box = corners(batch, k)
                    if kept.contains(where: { suppresses($0, box) }) { continue }
                    kept.append(box)
                    selected += [Int64(batch), Int64(cls), Int64(k)]
                }
            }
        }
        return Tensor(shape: [selected.count / 3, 3], ints: selected)
    }
}
