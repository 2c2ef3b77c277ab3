import Foundation
import Kernels
import ONNX

/// One tensor's calibration state across both passes: pass-1 statistics, then (for the
/// histogram methods) a fixed-size histogram over the pass-1 range. Bounded memory:
/// a few numbers plus `2 * bins + 1` doubles, never the values themselves.
public final class TensorCalibration {
    public private(set) var statistics = RangeStatistics()
    private var histogram: UniformHistogram?
    public let options: CalibrationOptions

    public init(options: CalibrationOptions) { self.options = options }

    /// Pass 1: min, max, min |x|, counts.
    public func observeRange(_ values: UnsafeBufferPointer<Float>) { statistics.observe(values) }

    /// Sets up pass 2's histogram from the pass-1 statistics (nothing for minmax or a constant tensor).
    public func beginHistogram() {
        guard let layout = options.histogramLayout(statistics) else { return }
        histogram = UniformHistogram(bins: options.bins, lo: layout.lo, hi: layout.hi, absolute: layout.absolute)
    }

    /// Pass 2: the values binned over the pass-1 range.
    public func observeHistogram(_ values: UnsafeBufferPointer<Float>) { histogram?.add(values) }

    public var histogramCounts: HistogramCounts? { histogram?.snapshot }

    /// The calibrated range.
    public var range: CalibrationTable.Range {
        CalibrationMethods.range(statistics, histogram: histogramCounts, options: options)
    }

    /// Both passes over in-memory batches (tests, small tools).
    public static func range(of batches: [[Float]], options: CalibrationOptions) -> CalibrationTable.Range {
        let c = TensorCalibration(options: options)
        for b in batches { b.withUnsafeBufferPointer(c.observeRange) }
        if options.method.needsHistogram {
            c.beginHistogram()
            for b in batches { b.withUnsafeBufferPointer(c.observeHistogram) }
        }
        return c.range
    }
}

/// Which pass a progress report is about.
public enum CalibrationPass: Int, Sendable {
    case ranges = 1, histograms = 2
}

/// Streams a calibration data set through a session (optimised with `GraphPasses`) and
/// computes a range for every tensor an INT8 layer quantizes: input 0 of each quantizable
/// node and input 1 of a MatMul of two activations, constants excepted. One batch of
/// activations lives at a time (the session frees intermediates as it goes); per tensor
/// only `TensorCalibration`'s state is kept.
public struct Calibrator {
    public let session: Session
    /// Tensors calibrated, in execution order.
    public let tensors: [String]

    public init(session: Session, scheme: ExecutionScheme = .inputs) {
        self.session = session
        self.tensors = Calibrator.requiredTensors(session: session, scheme: scheme)
    }

    /// The activation tensors a scheme quantizes. `inputs`: input 0 of every quantizable
    /// node in the plan (and input 1 of an activation MatMul), deduplicated, constants
    /// skipped. `ort`: also the layers' outputs and the activations around region ops
    /// (`QuantPlan.calibratedTensors`).
    public static func requiredTensors(session: Session, scheme: ExecutionScheme = .inputs) -> [String] {
        if scheme == .ort { return QuantPlan.calibratedTensors(session) }
        var seen = Set<String>(), out: [String] = []
        for node in session.plan where Layers.isQuantizable(node, constants: session.constants) {
            for x in calibratedInputs(node, constants: session.constants) where seen.insert(x).inserted { out.append(x) }
        }
        return out
    }

    /// Inputs of a quantizable node that get a range: input 0, and input 1 of a MatMul of
    /// two activations; constants skipped.
    static func calibratedInputs(_ node: Node, constants: [String: Tensor]) -> [String] {
        (Int8Ops.family(for: node, constants: constants)?.quantizedInputs(node, constants: constants) ?? [])
            .filter { constants[$0] == nil }
    }

    /// Calibrates on every sample of `dataset`. `modelDigest` is recorded in the table (the
    /// digest of the graph as loaded, before GraphPasses: docs/calibration.md); `progress`
    /// gets (pass, samples done, samples in the data set).
    public func calibrate(dataset: Dataset, options: CalibrationOptions, modelDigest: String,
                          progress: ((CalibrationPass, Int, Int) -> Void)? = nil) throws -> CalibrationTable {
        if let problem = options.problem { throw CalibrationError.badOptions(reason: problem) }
        guard dataset.count > 0 else { throw CalibrationError.noSamples(path: dataset.path) }
        let state = Dictionary(uniqueKeysWithValues: tensors.map { ($0, TensorCalibration(options: options)) })
        var seen = Set<String>()
        try stream(dataset, options.batchSize, pass: .ranges, progress: progress) { name, values in
            state[name]!.observeRange(values); seen.insert(name)
        }
        if let missing = tensors.first(where: { !seen.contains($0) }) {
            throw CalibrationError.notObserved(tensor: missing)
        }
        if options.method.needsHistogram {
            for c in state.values { c.beginHistogram() }
            try stream(dataset, options.batchSize, pass: .histograms, progress: progress) { name, values in
                state[name]!.observeHistogram(values)
            }
        }
        var table = CalibrationTable(method: options.method.rawValue, modelDigest: modelDigest,
                                     samples: dataset.count, ranges: state.mapValues(\.range))
        table.dataDigest = dataset.contentDigest()
        return table
    }

    /// Runs every batch, handing each calibrated tensor's values to `visit` once per batch.
    private func stream(_ dataset: Dataset, _ batchSize: Int, pass: CalibrationPass,
                        progress: ((CalibrationPass, Int, Int) -> Void)?,
                        visit: @escaping (String, UnsafeBufferPointer<Float>) -> Void) throws {
        let wanted = Set(tensors)
        for range in dataset.batches(size: batchSize) {
            var done = Set<String>()            // a tensor read by several layers counts once
            func see(_ name: String, _ t: Tensor?) {
                guard wanted.contains(name), !done.contains(name), let t else { return }
                done.insert(name)
                if t.dtype.isFloating { t.floats.withUnsafeBufferPointer { visit(name, $0) } }
                else { t.asFloats.withUnsafeBufferPointer { visit(name, $0) } }
            }
            // Inputs and outputs of every node: graph inputs are seen as inputs, the
            // `ort` scheme's layer and region-op outputs as outputs.
            _ = try session.run(dataset.batch(range)) { node, ins, outs in
                for (name, t) in zip(node.inputs, ins) where !name.isEmpty { see(name, t) }
                for (name, t) in zip(node.outputs, outs) where !name.isEmpty { see(name, t) }
            }
            progress?(pass, range.upperBound, dataset.count)
        }
    }
}
