import Foundation
import ONNX

/// How a detector's output is laid out (docs/detection.md).
public enum DetectionFormat: String, CaseIterable, Codable, Sendable {
    /// Chosen from the output shapes and the ground truth's class count (`DetectionOptions.resolved`).
    case auto
    /// [N, A, 5+C] (or transposed [N, 5+C, A]): cx, cy, w, h in input pixels, objectness, C class probabilities.
    case yolo
    /// [N, 4+C, A] (or [N, A, 4+C]), Ultralytics YOLOv8: cx, cy, w, h in input pixels, then C class
    /// scores; no objectness.
    case yolov8
    /// Two outputs: boxes [N, A, 4] (x1, y1, x2, y2 in pixels) and class scores [N, A, C] or [N, C, A].
    case boxesScores = "boxes-scores"
    /// [N, K, 6] rows already decoded per image: x1, y1, x2, y2, score, class; score <= 0 is padding.
    case boxesScoresClasses = "boxes-scores-classes"
}

/// Post-processing of a detector's raw output into at most `maxDetections` boxes per image.
public struct DetectionOptions: Equatable, Sendable {
    public var format: DetectionFormat
    /// Per-class NMS IoU threshold: a box is suppressed when its IoU with a kept box is above it.
    public var iou: Double
    /// Boxes scoring below it are dropped before NMS (COCO-eval style 0.001 by default).
    public var scoreThreshold: Double
    /// C; nil infers it from the output shape.
    public var numClasses: Int?
    public var maxDetections: Int
    /// The graph outputs decoded (boxes then scores for `boxesScores`); empty: the first output.
    public var outputNames: [String] = []
    /// Classes (features) on dimension 1 rather than 2; nil: inferred from the shape.
    public var classesFirst: Bool?

    public init(format: DetectionFormat = .yolo, iou: Double = 0.5, scoreThreshold: Double = 0.001,
                numClasses: Int? = nil, maxDetections: Int = 100) {
        self.format = format; self.iou = iou; self.scoreThreshold = scoreThreshold
        self.numClasses = numClasses; self.maxDetections = maxDetections
    }

    /// Floats per decoded detection: x1, y1, x2, y2, score, class.
    public static let fields = 6

    /// Decodes one single-output batch (yolo, yolov8, boxes-scores-classes).
    public func decode(_ y: Tensor) throws -> Tensor {
        try decode(["": y], order: [""])
    }

    /// Decodes a batch's graph outputs into [n, maxDetections, 6] (x1, y1, x2, y2, score, class),
    /// best first; unused rows are zeros with class -1. `order` is the graph's output order.
    public func decode(_ outputs: [String: Tensor], order: [String]) throws -> Tensor {
        let d = !isResolved ? try resolved(outputs: outputs, order: order, truthClasses: []) : self
        let tensors = try d.outputNames.map { name -> Tensor in
            guard let t = outputs[name] else { throw MetricError.badOutput(output: name, reason: "the graph did not produce it") }
            return t
        }
        let y = tensors[0]
        let n = y.shape[0]
        var out = [Float](repeating: 0, count: n * maxDetections * Self.fields)
        for i in 0..<n { for k in 0..<maxDetections { out[(i * maxDetections + k) * Self.fields + 5] = -1 } }
        let shape = try d.layoutShape(tensors)
        switch d.format {
        case .auto:
            preconditionFailure("resolved() never returns auto")
        case .boxesScoresClasses:
            let x = y.asFloats
            let k = y.shape[1]
            for i in 0..<n {
                var dets: [Detection] = []
                for j in 0..<k {
                    let b = (i * k + j) * 6
                    let s = x[b + 4]
                    guard s > 0, Double(s) >= scoreThreshold else { continue }
                    dets.append(Detection(box: Box(x[b], x[b + 1], x[b + 2], x[b + 3]), score: s, cls: Int(x[b + 5]), index: j))
                }
                write(Self.topK(dets, maxDetections), image: i, into: &out)
            }
        case .yolo, .yolov8:
            let x = y.asFloats
            let (a, f, first) = (shape.anchors, shape.classes + (d.format == .yolo ? 5 : 4), shape.classesFirst)
            let c0 = d.format == .yolo ? 5 : 4
            for i in 0..<n {
                let base = i * a * f
                func at(_ j: Int, _ k: Int) -> Float { first ? x[base + k * a + j] : x[base + j * f + k] }
                decodeImage(i, anchors: a, classes: shape.classes, into: &out,
                            box: { j in let cx = at(j, 0), cy = at(j, 1), w = at(j, 2), h = at(j, 3)
                                   return Box(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2) },
                            score: d.format == .yolo ? { j, k in at(j, 4) * at(j, 5 + k) } : { j, k in at(j, c0 + k) })
            }
        case .boxesScores:
            let bx = tensors[0].asFloats, sc = tensors[1].asFloats
            let (a, c, first) = (shape.anchors, shape.classes, shape.classesFirst)
            for i in 0..<n {
                let bb = i * a * 4, sb = i * a * c
                decodeImage(i, anchors: a, classes: c, into: &out,
                            box: { j in Box(bx[bb + j * 4], bx[bb + j * 4 + 1], bx[bb + j * 4 + 2], bx[bb + j * 4 + 3]) },
                            score: { j, k in first ? sc[sb + k * a + j] : sc[sb + j * c + k] })
            }
        }
        return Tensor(shape: [n, maxDetections, Self.fields], floats: out)
    }

    /// Steps 3-5 of docs/detection-format.md for one image of dense (box, per-class score) candidates:
    /// threshold, per-class NMS, best `maxDetections` of all classes.
    private func decodeImage(_ i: Int, anchors: Int, classes c: Int, into out: inout [Float],
                             box: (Int) -> Box, score: (Int, Int) -> Float) {
        var byClass = [[Detection]](repeating: [], count: c)
        for a in 0..<anchors {
            var b: Box?
            for k in 0..<c {
                let s = score(a, k)
                guard Double(s) >= scoreThreshold else { continue }
                if b == nil { b = box(a) }
                byClass[k].append(Detection(box: b!, score: s, cls: k, index: a * c + k))
            }
        }
        var kept: [Detection] = []
        for dets in byClass where !dets.isEmpty { kept += Self.nms(dets, iou: iou) }
        write(Self.topK(kept, maxDetections), image: i, into: &out)
    }

    private func write(_ dets: [Detection], image i: Int, into out: inout [Float]) {
        for (k, d) in dets.enumerated() {
            let b = (i * maxDetections + k) * Self.fields
            out[b] = d.box.x1; out[b + 1] = d.box.y1; out[b + 2] = d.box.x2; out[b + 3] = d.box.y2
            out[b + 4] = d.score; out[b + 5] = Float(d.cls)
        }
    }

    /// Highest score first, ties by lower index.
    static func ordered(_ a: Detection, _ b: Detection) -> Bool { a.score > b.score || (a.score == b.score && a.index < b.index) }

    static func topK(_ dets: [Detection], _ k: Int) -> [Detection] { Array(dets.sorted(by: ordered).prefix(k)) }

    /// Greedy NMS over one class: highest score first (ties by lower index); a box is
    /// dropped when its IoU with a kept box is above `iou`.
    public static func nms(_ dets: [Detection], iou: Double) -> [Detection] {
        var kept: [Detection] = []
        for d in dets.sorted(by: ordered) where !kept.contains(where: { Box.iou($0.box, d.box) > iou }) { kept.append(d) }
        return kept
    }
}

/// An axis-aligned box, corners in pixels.
public struct Box: Equatable, Sendable {
    public var x1, y1, x2, y2: Float
    public init(_ x1: Float, _ y1: Float, _ x2: Float, _ y2: Float) { self.x1 = x1; self.y1 = y1; self.x2 = x2; self.y2 = y2 }

    public var area: Double { Double(max(x2 - x1, 0)) * Double(max(y2 - y1, 0)) }

    /// Intersection over union; 0 when the union is empty.
    public static func iou(_ a: Box, _ b: Box) -> Double {
        let w = Double(min(a.x2, b.x2)) - Double(max(a.x1, b.x1)), h = Double(min(a.y2, b.y2)) - Double(max(a.y1, b.y1))
        guard w > 0, h > 0 else { return 0 }
        let inter = w * h
        let union = a.area + b.area - inter
        return union > 0 ? inter / union : 0
    }
}

/// One detection: box, score, class, and its index in the output (for tie-breaking).
public struct Detection: Equatable, Sendable {
    public var box: Box
    public var score: Float
    public var cls: Int
    public var index: Int
    public init(box: Box, score: Float, cls: Int, index: Int = 0) { self.box = box; self.score = score; self.cls = cls; self.index = index }
}

extension Metric {
    public var isDetection: Bool { self == .map50 || self == .map50_95 || self == .boxAgreement }
    /// map50 and map50_95 read `gt_boxes`/`gt_classes` from the data.
    public var needsBoxes: Bool { self == .map50 || self == .map50_95 }
}

/// Ground-truth boxes per image, from a data set's `gt_boxes` [N, M, 4] (xyxy pixels) and
/// `gt_classes` [N, M] (padding: class < 0).
public struct DetectionTruth: Sendable {
    public var images: [[Detection]]

    public init(images: [[Detection]]) { self.images = images }

    /// Reads the arrays; throws `MetricError.missingGroundTruth` naming the file when absent.
    public init(dataset: Dataset) throws {
        guard let b = dataset.extras["gt_boxes"], let c = dataset.extras["gt_classes"] else {
            throw MetricError.missingGroundTruth(path: dataset.path, available: dataset.extras.keys.sorted())
        }
        let n = dataset.count
        guard b.rank == 3, b.shape[0] == n, b.shape[2] == 4, c.rank == 2, c.shape[0] == n, c.shape[1] == b.shape[1] else {
            throw MetricError.badOutput(output: "gt_boxes", reason: "\(dataset.path): gt_boxes must be [\(n), M, 4] and gt_classes [\(n), M], they are \(Tensor.describe(b.shape)) and \(Tensor.describe(c.shape))")
        }
        let m = b.shape[1], bx = b.asFloats, cl = c.asInts
        images = (0..<n).map { i in
            (0..<m).compactMap { j in
                let k = Int(cl[i * m + j])
                guard k >= 0 else { return nil }
                let o = (i * m + j) * 4
                return Detection(box: Box(bx[o], bx[o + 1], bx[o + 2], bx[o + 3]), score: 1, cls: k, index: j)
            }
        }
    }

    /// FP32 detections scoring at least `threshold` as pseudo ground truth (box-agreement).
    public init(pseudo reference: Outputs, threshold: Float = DetectionMetrics.pseudoTruthThreshold) {
        images = (0..<reference.rows).map { DetectionMetrics.detections(reference, $0).filter { $0.score >= threshold } }
    }
}

/// COCO-style mAP over decoded detections (`DetectionOptions.decode` rows), in points.
public enum DetectionMetrics {
    /// FP32 detections at or above this score are box-agreement's ground truth.
    public static let pseudoTruthThreshold: Float = 0.25
    /// IoU thresholds of map50_95: 0.50, 0.55, ..., 0.95, computed as numpy's
    /// `linspace(0.5, 0.95, 10)` (pycocotools) so that boundary IoUs compare alike.
    public static let thresholds50_95: [Double] = (0..<10).map { (i: Int) -> Double in
        let step: Double = 0.45 / 9
        return i == 9 ? 0.95 : Double(i) * step + 0.5
    }
    /// Bootstrap replicates at most for detection metrics (each recomputes mAP).
    public static let maxResamples = 200

    /// The valid detections of image `i` (score > 0), in stored order (best first).
    public static func detections(_ o: Outputs, _ i: Int) -> [Detection] {
        let f = DetectionOptions.fields
        let k = o.width / f
        return (0..<k).compactMap { j in
            let b = i * o.width + j * f
            let v = o.values
            guard v[b + 4] > 0, v[b + 5] >= 0 else { return nil }
            return Detection(box: Box(v[b], v[b + 1], v[b + 2], v[b + 3]), score: v[b + 4], cls: Int(v[b + 5]), index: j)
        }
    }

    /// Per-detection matching results of one split at a set of IoU thresholds.
    struct Matched {
        /// (image, class, score, tp flag per threshold), in image order then stored order.
        var dets: [(image: Int, cls: Int, score: Float, tp: [Bool])]
        /// GT count per image per class.
        var gtCounts: [[Int: Int]]
        var thresholds: [Double]
        /// Indices into `dets` per class, sorted by score across the split (stable: image order on ties).
        var byClass: [Int: [Int]] = [:]

        init(dets: [(image: Int, cls: Int, score: Float, tp: [Bool])], gtCounts: [[Int: Int]], thresholds: [Double]) {
            self.dets = dets; self.gtCounts = gtCounts; self.thresholds = thresholds
            let order = dets.indices.sorted { dets[$0].score > dets[$1].score || (dets[$0].score == dets[$1].score && $0 < $1) }
            for j in order { byClass[dets[j].cls, default: []].append(j) }
        }
    }

    /// Matches every image's detections (by score, ties by stored order) to the
    /// highest-IoU unmatched GT of its class at or above each threshold.
    static func match(_ outputs: Outputs, truth: DetectionTruth, thresholds: [Double]) -> Matched {
        var dets: [(image: Int, cls: Int, score: Float, tp: [Bool])] = []
        var counts: [[Int: Int]] = []
        for i in 0..<outputs.rows {
            let gt = i < truth.images.count ? truth.images[i] : []
            var c: [Int: Int] = [:]
            for g in gt { c[g.cls, default: 0] += 1 }
            counts.append(c)
            let ds = detections(outputs, i).enumerated().sorted { $0.element.score > $1.element.score || ($0.element.score == $1.element.score && $0.offset < $1.offset) }.map(\.element)
            var used = [[Bool]](repeating: [Bool](repeating: false, count: gt.count), count: thresholds.count)
            for d in ds {
                var tp = [Bool](repeating: false, count: thresholds.count)
                let ious = gt.map { $0.cls == d.cls ? Box.iou($0.box, d.box) : -1 }
                for (t, thr) in thresholds.enumerated() {
                    var best = -1, bestIoU = min(thr, 1 - 1e-10)
                    for (g, v) in ious.enumerated() where !used[t][g] && v >= bestIoU { best = g; bestIoU = v }
                    if best >= 0 { used[t][best] = true; tp[t] = true }
                }
                dets.append((i, d.cls, d.score, tp))
            }
        }
        return Matched(dets: dets, gtCounts: counts, thresholds: thresholds)
    }

    /// mAP in points over `matched` with image multiplicities `weights` (nil: each once).
    static func meanAP(_ m: Matched, weights: [Int]? = nil) -> Double {
        var gt: [Int: Int] = [:]
        for (i, c) in m.gtCounts.enumerated() {
            let w = weights?[i] ?? 1
            guard w > 0 else { continue }
            for (k, v) in c { gt[k, default: 0] += v * w }
        }
        let classes = gt.filter { $0.value > 0 }.keys.sorted()
        guard !classes.isEmpty else { return 0 }
        var total = 0.0
        // One pair of buffers for every (threshold, class): the bootstrap calls this twice
        // per replicate, and fresh arrays per class were most of its time.
        var tps: [Double] = [], fps: [Double] = []
        for t in m.thresholds.indices {
            for k in classes {
                tps.removeAll(keepingCapacity: true); fps.removeAll(keepingCapacity: true)
                var tp = 0.0, fp = 0.0
                for j in m.byClass[k] ?? [] {
                    let w = weights?[m.dets[j].image] ?? 1
                    for _ in 0..<w {
                        if m.dets[j].tp[t] { tp += 1 } else { fp += 1 }
                        tps.append(tp); fps.append(fp)
                    }
                }
                total += averagePrecision(tp: tps, fp: fps, gt: gt[k]!)
            }
        }
        return 100 * total / Double(classes.count * m.thresholds.count)
    }

    /// COCO's 101-point interpolated AP from cumulative TP/FP counts in score order.
    public static func averagePrecision(tp: [Double], fp: [Double], gt: Int) -> Double {
        let n = tp.count
        guard n > 0, gt > 0 else { return 0 }
        var pr = (0..<n).map { tp[$0] / max(tp[$0] + fp[$0], .ulpOfOne) }
        for i in stride(from: n - 1, to: 0, by: -1) where pr[i] > pr[i - 1] { pr[i - 1] = pr[i] }
        var sum = 0.0
        var p = 0
        let g = Double(gt)
        for r in 0...100 {
            let thr = Double(r) / 100
            while p < n && tp[p] / g < thr { p += 1 }      // recall tp / gt; numpy searchsorted, side='left'
            if p < n { sum += pr[p] }
        }
        return sum / 101
    }

    static func thresholds(_ metric: Metric) -> [Double] { metric == .map50_95 ? thresholds50_95 : [0.5] }

    static func truth(_ metric: Metric, reference: Outputs?, outputs: Outputs, truth: DetectionTruth?) -> DetectionTruth {
        if metric == .boxAgreement { return DetectionTruth(pseudo: reference ?? outputs) }
        return truth ?? DetectionTruth(images: [])
    }

    /// The metric in points over the whole split. `truth` is needed for map50/map50_95,
    /// `reference` (FP32 detections) for box-agreement.
    public static func score(_ metric: Metric, outputs: Outputs, reference: Outputs?, truth: DetectionTruth?) -> Double {
        let t = Self.truth(metric, reference: reference, outputs: outputs, truth: truth)
        return meanAP(match(outputs, truth: t, thresholds: thresholds(metric)))
    }

    /// Paired bootstrap over images of `score(reference) - score(candidate)`: each replicate
    /// resamples images with replacement and recomputes both mAPs (at most `maxResamples`).
    public static func pairedBootstrapCI(_ metric: Metric, reference: Outputs, candidate: Outputs, truth: DetectionTruth?,
                                         resamples: Int, confidence: Double, seed: UInt64) -> ConfidenceInterval {
        let n = reference.rows
        guard n > 0 else { return ConfidenceInterval(low: 0, high: 0, confidence: confidence) }
        let th = thresholds(metric)
        let t = Self.truth(metric, reference: reference, outputs: reference, truth: truth)
        let mr = match(reference, truth: t, thresholds: th), mc = match(candidate, truth: t, thresholds: th)
        let rng = SeededRandom(seed: seed)
        var drops: [Double] = []
        for _ in 0..<max(1, min(resamples, maxResamples)) {
            var w = [Int](repeating: 0, count: n)
            for _ in 0..<n { w[rng.int(n)] += 1 }
            drops.append(meanAP(mr, weights: w) - meanAP(mc, weights: w))
        }
        drops.sort()
        let alpha = 1 - confidence
        return ConfidenceInterval(low: Statistics.quantile(sorted: drops, alpha / 2),
                                  high: Statistics.quantile(sorted: drops, 1 - alpha / 2), confidence: confidence)
    }
}
