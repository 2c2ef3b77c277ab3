import Foundation
import ONNX

/// Where the classes are in one sample's values of a sequence output: the sample shape
/// (the output shape without N) is `outer x classes x inner`, and position `o * inner + i`
/// reads class `c` at `(o * classes + c) * inner + i`. [T, C] with the class axis last is
/// `outer = T, inner = 1`; [C, T] is `outer = 1, inner = T`.
public struct ClassLayout: Equatable, Sendable {
    public let outer: Int
    public let classes: Int
    public let inner: Int

    public var positions: Int { outer * inner }

    /// Outputs with more than one value dimension per sample ([N, T, C], not [N, C]).
    public static func isSequence(_ outputs: Outputs) -> Bool { outputs.sampleShape.count >= 2 }

    /// `classAxis` counts in the full output [N, ...] (negative: from the end); it cannot be the batch axis.
    public init(_ sampleShape: [Int], classAxis: Int, output: String) throws {
        let rank = sampleShape.count + 1
        let axis = classAxis < 0 ? rank + classAxis : classAxis
        guard axis >= 1 && axis < rank else {
            throw MetricError.badOutput(output: output, reason: "--class-axis \(classAxis) is not a class axis of \(Tensor.describe([-1] + sampleShape).replacingOccurrences(of: "-1", with: "N")) (axis 0 is the batch)")
        }
        guard sampleShape[axis - 1] > 0 else {
            throw MetricError.badOutput(output: output, reason: "its class axis \(classAxis) has no classes (\(Tensor.describe([-1] + sampleShape).replacingOccurrences(of: "-1", with: "N")))")
        }
        outer = sampleShape[..<(axis - 1)].reduce(1, *)
        classes = sampleShape[axis - 1]
        inner = sampleShape[axis...].reduce(1, *)
    }

    @inline(__always) func index(_ o: Outputs, _ sample: Int, _ position: Int, _ c: Int) -> Int {
        sample * o.width + ((position / inner) * classes + c) * inner + position % inner
    }

    /// Arg-max over the classes at `position` of `sample`; the first on ties, as numpy's argmax.
    public func argmax(_ o: Outputs, _ sample: Int, _ position: Int) -> Int {
        var best = 0
        var value = o.values[index(o, sample, position, 0)]
        for c in 1..<max(classes, 1) {
            let v = o.values[index(o, sample, position, c)]
            if v > value { value = v; best = c }
        }
        return best
    }

    /// The k best classes at `position` of `sample` (ties to the lower index).
    public func topK(_ o: Outputs, _ sample: Int, _ position: Int, _ k: Int) -> [Int] {
        let v = (0..<classes).map { o.values[index(o, sample, position, $0)] }
        return v.indices.sorted { v[$0] > v[$1] || (v[$0] == v[$1] && $0 < $1) }.prefix(k).map { $0 }
    }

    /// Every label is a class of this layout or `ignoreIndex`.
    func checkLabels(_ labels: [Int64], ignoreIndex: Int64, path: String, output: String, perSample: Int? = nil) throws {
        let width = perSample ?? positions
        if let k = labels.firstIndex(where: { $0 != ignoreIndex && ($0 < 0 || $0 >= Int64(classes)) }) {
            throw MetricError.badLabels(path: path, reason: "row \(k / width) position \(k % width) holds \(labels[k]): output '\(output)' has \(classes) classes (0..<\(classes)), and \(ignoreIndex) (--ignore-index) marks positions that do not count")
        }
    }
}
