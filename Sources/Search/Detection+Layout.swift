import Foundation
import Kernels
import ONNX

/// Where the candidates and classes lie in a resolved detection layout.
struct DetectionShape: Equatable {
    var anchors: Int
    /// C (0 for boxes-scores-classes, whose rows carry their class).
    var classes: Int
    var classesFirst: Bool
}

/// A detection layout that cannot score the data: reading the output so would silently
/// give a wrong mAP (docs/detection.md, "Choosing the layout").
public enum DetectionLayoutError: Error, CustomStringConvertible {
    /// The ground truth holds class ids the layout cannot produce.
    case classOutOfRange(layout: String, truthPath: String, ids: [Int], classes: Int)
    /// An explicit layout yields a class count other than the ground truth's, and another layout fits it.
    case contradicted(layout: String, truthPath: String, ids: [Int], other: String)
    /// `auto` found no layout, or several, that fit the shapes and the class count.
    case undecided(shapes: String, hint: String, candidates: [String])

    public var description: String {
        switch self {
        case .classOutOfRange(let l, let p, let ids, let c):
            let bad = ids.filter { $0 >= c }.map(String.init).joined(separator: ", ")
            let hint = l.hasPrefix("yolo ") ? " If the output has no objectness row (Ultralytics YOLOv8 export), use --detection-format yolov8 or auto." : " Check --detection-format and --num-classes."
            return "\(l) yields \(c) classes (ids 0..\(c - 1)), but the ground truth in \(p) has class ids \(DetectionOptions.span(ids)): the output cannot produce \(bad).\(hint)"
        case .contradicted(let l, let p, let ids, let o):
            return "\(l) does not match the ground truth in \(p) (class ids \(DetectionOptions.span(ids))); \(o) does. Use --detection-format auto (or that layout), or confirm the reading with --num-classes."
        case .undecided(let s, let h, let c):
            let found = c.isEmpty ? "no detection layout fits" : "several layouts fit (\(c.joined(separator: "; ")))"
            return "--detection-format auto: \(found) outputs \(s) with \(h); give --detection-format and --num-classes"
        }
    }
}

extension DetectionTruth {
    /// The distinct class ids of a data set's `gt_classes`, ascending (empty without them).
    public static func classIDs(_ dataset: Dataset) -> [Int] {
        guard let c = dataset.extras["gt_classes"] else { return [] }
        return Set(c.asInts.map { Int($0) }.filter { $0 >= 0 }).sorted()
    }
}

extension DetectionOptions {
    /// True when `outputNames`, `numClasses` and the orientation are fixed.
    public var isResolved: Bool { format != .auto && !outputNames.isEmpty && (numClasses != nil || format == .boxesScoresClasses) }

    /// Resolves the layout from the FP32 outputs of the first row of `dataset` (one sample run)
    /// and checks it against the data's ground-truth classes. `outputName`: the output to read
    /// (single-output layouts); nil tries the graph's outputs in order.
    public func resolved(session: Session, dataset: Dataset, outputName: String? = nil) throws -> DetectionOptions {
        guard dataset.count > 0 else { return self }
        var me = self
        if let outputName, outputNames.isEmpty { me.outputNames = [outputName] }
        let outs = try session.run(dataset.batch(0..<1))
        return try me.resolved(outputs: outs, order: session.graph.outputs.map(\.name),
                               truthClasses: DetectionTruth.classIDs(dataset), truthPath: dataset.path)
    }

    /// The layout fixed for `outputs` (one batch of graph outputs, `order` as in the graph):
    /// `auto` picks the only layout whose shape fits and whose class count C equals
    /// `numClasses`, else the ground truth's largest id + 1. Throws when the truth holds a
    /// class id >= C, so that a wrong layout never scores silently.
    public func resolved(outputs: [String: Tensor], order: [String], truthClasses: [Int] = [],
                         truthPath: String = "the data") throws -> DetectionOptions {
        let shapes = order.compactMap { n in outputs[n].map { "'\(n)' \(Tensor.describe($0.shape))" } }.joined(separator: ", ")
        var r: DetectionOptions
        if isResolved {
            r = self
        } else {
            let all = candidates(outputs, order: order)
            let picked: [DetectionOptions]
            if format != .auto {
                picked = Array(all.prefix(1))      // candidates() lists the conventional reading first
            } else if numClasses != nil {
                picked = all
            } else if let g = truthClasses.last.map({ $0 + 1 }) {
                let exact = all.filter { $0.numClasses == g }
                picked = exact.isEmpty ? all.filter { $0.format == .boxesScoresClasses } : exact
            } else {
                // No class count: a dense layout must have fewer features than candidates.
                picked = all.filter { o in
                    guard o.format == .yolo || o.format == .yolov8, let t = outputs[o.outputNames[0]] else { return true }
                    let f = t.shape[o.classesFirst! ? 1 : 2], a = t.shape[o.classesFirst! ? 2 : 1]
                    return f < a
                }
            }
            guard picked.count == 1 else {
                let hint = numClasses.map { "--num-classes \($0)" }
                    ?? (truthClasses.isEmpty ? "no ground truth" : "ground-truth class ids \(Self.span(truthClasses)) in \(truthPath)")
                if format != .auto { throw MetricError.badOutput(output: outputNames.first ?? order.first ?? "", reason: "--detection-format \(format.rawValue) does not fit \(shapes)\(numClasses.map { " with --num-classes \($0)" } ?? "")") }
                throw DetectionLayoutError.undecided(shapes: shapes, hint: hint, candidates: picked.map(\.summary))
            }
            r = picked[0]
            try r.checkClasses(truthClasses, truthPath: truthPath, shapes: shapes)
            // An explicit format that disagrees with the class count while another layout
            // matches it exactly is the yolo-vs-yolov8 mix-up (row 4 read as objectness or as
            // class 0): refuse it; --num-classes confirms an intended reading.
            if format != .auto, numClasses == nil, let g = truthClasses.last.map({ $0 + 1 }), let c = r.numClasses, c != g {
                var auto = self
                auto.format = .auto
                if let other = auto.candidates(outputs, order: order).first(where: { $0.numClasses == g && $0.format != r.format }) {
                    throw DetectionLayoutError.contradicted(layout: "\(r.summary) (outputs \(shapes))", truthPath: truthPath,
                                                            ids: truthClasses, other: other.summary)
                }
            }
        }
        try r.checkClasses(truthClasses, truthPath: truthPath, shapes: shapes)
        return r
    }

    private func checkClasses(_ ids: [Int], truthPath: String, shapes: String) throws {
        if let c = numClasses, let top = ids.last, top >= c {
            throw DetectionLayoutError.classOutOfRange(layout: "\(summary) (outputs \(shapes))", truthPath: truthPath, ids: ids, classes: c)
        }
    }

    /// Every reading of the outputs the format allows (all formats for auto), conventional first.
    func candidates(_ outputs: [String: Tensor], order: [String]) -> [DetectionOptions] {
        var found: [DetectionOptions] = []
        func allowed(_ f: DetectionFormat) -> Bool { format == .auto || format == f }
        func add(_ f: DetectionFormat, _ names: [String], _ c: Int?, _ first: Bool?) {
            if let n = numClasses, let c, c != n { return }
            if let cf = classesFirst, let first, cf != first { return }
            var o = self
            o.format = f; o.outputNames = names; o.numClasses = c; o.classesFirst = first
            found.append(o)
        }
        let single = outputNames.first ?? order.first ?? ""
        if let y = outputs[single], y.rank == 3 {
            let (d1, d2) = (y.shape[1], y.shape[2])
            for f in [DetectionFormat.yolo, .yolov8] where allowed(f) {
                let extra = f == .yolo ? 5 : 4
                // Features last unless only the middle dimension can hold them or it is the
                // smaller one (candidates outnumber features): the order of the old rule.
                let lastFirst = d2 > extra && (d2 <= d1 || d1 <= extra)
                let readings = lastFirst ? [false, true] : [true, false]
                for first in readings where !(first && d1 == d2) {
                    let c = (first ? d1 : d2) - extra
                    if c >= 1 { add(f, [single], c, first) }
                }
            }
            if allowed(.boxesScoresClasses) && d2 == 6 { add(.boxesScoresClasses, [single], nil, nil) }
        }
        if allowed(.boxesScores) {
            let names = outputNames.count == 2 ? [outputNames] : order.flatMap { b in order.filter { $0 != b }.map { [b, $0] } }
            for pair in names {
                guard let b = outputs[pair[0]], let s = outputs[pair[1]], b.rank == 3, s.rank == 3, b.shape[2] == 4,
                      s.shape[0] == b.shape[0] else { continue }
                let a = b.shape[1]
                if s.shape[1] == a { add(.boxesScores, pair, s.shape[2], false) } else if s.shape[2] == a { add(.boxesScores, pair, s.shape[1], true) }
            }
        }
        return found
    }

    /// Checks a batch against the resolved layout and returns where candidates and classes lie.
    func layoutShape(_ t: [Tensor]) throws -> DetectionShape {
        func fail(_ want: String) -> MetricError {
            .badOutput(output: outputNames.joined(separator: "', '"),
                       reason: "--detection-format \(format.rawValue) needs \(want), the model gives \(t.map { Tensor.describe($0.shape) }.joined(separator: " and "))")
        }
        switch format {
        case .auto: throw fail("a resolved layout")
        case .boxesScoresClasses:
            guard t[0].rank == 3, t[0].shape[2] == 6 else { throw fail("[N, K, 6] rows (x1, y1, x2, y2, score, class)") }
            return DetectionShape(anchors: t[0].shape[1], classes: 0, classesFirst: false)
        case .yolo, .yolov8:
            let f = (numClasses ?? 0) + (format == .yolo ? 5 : 4)
            let first = classesFirst ?? false
            let want = first ? "[N, \(f), A]" : "[N, A, \(f)]"
            guard t[0].rank == 3, t[0].shape[first ? 1 : 2] == f else { throw fail(want) }
            return DetectionShape(anchors: t[0].shape[first ? 2 : 1], classes: f - (format == .yolo ? 5 : 4), classesFirst: first)
        case .boxesScores:
            let c = numClasses ?? 0, first = classesFirst ?? false
            guard t.count == 2, t[0].rank == 3, t[0].shape[2] == 4, t[1].rank == 3, t[1].shape[0] == t[0].shape[0] else {
                throw fail("boxes [N, A, 4] and scores [N, A, C] or [N, C, A]")
            }
            let a = t[0].shape[1]
            guard t[1].shape == (first ? [t[0].shape[0], c, a] : [t[0].shape[0], a, c]) else {
                throw fail(first ? "scores [N, \(c), \(a)]" : "scores [N, \(a), \(c)]")
            }
            return DetectionShape(anchors: a, classes: c, classesFirst: first)
        }
    }

    /// One line saying how the output is read, e.g. "yolov8: output 'output0' as [N, 4+C, A], C = 3".
    public var summary: String {
        let names = outputNames.map { "'\($0)'" }.joined(separator: " + ")
        let c = numClasses.map { ", C = \($0)" } ?? ""
        switch format {
        case .auto: return "auto"
        case .yolo: return "yolo (cx, cy, w, h, objectness, C class probabilities): output \(names) as \(classesFirst == true ? "[N, 5+C, A]" : "[N, A, 5+C]")\(c)"
        case .yolov8: return "yolov8 (cx, cy, w, h, C class scores, no objectness): output \(names) as \(classesFirst == true ? "[N, 4+C, A]" : "[N, A, 4+C]")\(c)"
        case .boxesScores: return "boxes-scores (x1, y1, x2, y2 + class scores): outputs \(names) as [N, A, 4] + \(classesFirst == true ? "[N, C, A]" : "[N, A, C]")\(c)"
        case .boxesScoresClasses: return "boxes-scores-classes: output \(names) as [N, K, 6] rows"
        }
    }

    /// "0..2" for consecutive ids, else the list.
    static func span(_ ids: [Int]) -> String {
        guard let lo = ids.first, let hi = ids.last else { return "none" }
        return ids.count == hi - lo + 1 && ids.count > 2 ? "\(lo)..\(hi)" : ids.map(String.init).joined(separator: ", ")
    }
}
