import Foundation
import ONNX

/// What the uint8 chains did since the last `reset` (docs/int8-chains.md): inputs an INT8
/// op read as codes (each a quantize or dequantize pass not made) and outputs it wrote as codes.
///
/// Thread-safe: a batch's image chains run on several threads at once
/// (`Session.runImageChain`), each counting into the same object (`LockedCount`). Before s33
/// the increments raced: counts could come out short.
public final class Int8ChainCounters {
    @LockedCount public var codesRead: Int
    @LockedCount public var codesWritten: Int
    /// Movement ops (Reshape, Transpose, nearest Resize...) run on the codes themselves,
    /// without the round trip through floats (`RegionKernels.codesNativeOps`).
    @LockedCount public var movedAsCodes: Int
    /// AveragePool / GlobalAveragePool run on codes with ONNX Runtime's arithmetic
    /// (`RegionKernels.ortAveragePool`), counted whether the input arrived as codes or not.
    @LockedCount public var pooledAsCodes: Int
    public init() {}
    public func reset() { codesRead = 0; codesWritten = 0; movedAsCodes = 0; pooledAsCodes = 0 }
}

/// A count that several threads update: every read, write and `+=` takes the lock (`_modify`
/// holds it while the caller updates the value in place). A class, so the enclosing object's
/// property is only read (the reference) while the count changes behind the lock.
@propertyWrapper
public final class LockedCount {
    private let lock = NSLock()
    private var value = 0

    public init() {}

    public var wrappedValue: Int {
        get { lock.lock(); defer { lock.unlock() }; return value }
        set { lock.lock(); defer { lock.unlock() }; value = newValue }
        _modify { lock.lock(); defer { lock.unlock() }; yield &value }
    }
}

/// Runs a session with any per-layer mix of INT8 and FP32. Every quantizable layer is
/// prepared once (weights quantized and packed, bias quantized); switching a map only
/// swaps which nodes the session routes to their INT8 kernels, so a search can try
/// hundreds of maps without re-preparing anything.
public final class MixedPrecisionRuntime {
    public let session: Session
    public let calibration: CalibrationTable
    public var path: KernelPath
    /// Prepared INT8 layers by node name, in execution order in `layerNames`.
    public let layers: [String: QuantizedLayer]
    public let layerNames: [String]
    public private(set) var map: PrecisionMap
    /// Where Q/DQ go (docs/quantization.md, "Schemes").
    public let scheme: ExecutionScheme
    /// The range the INT8 layers' weights are quantized to.
    public let weightBits: WeightBits
    /// The `ort` scheme's shared-scale sources (empty under `inputs`).
    public let sources: [String: String]
    /// What the current map executes: INT8 layers, INT8 region ops, requantized tensors.
    public private(set) var plan = QuantPlan(inputsScheme: [])
    /// Under `ort`, carry requantized tensors between INT8 ops as uint8 codes instead of
    /// their dequantized floats (docs/int8-chains.md): the same output bits, fewer passes.
    /// Off (environment `MPQ_INT8_CHAINS=0`, or set here), the float path is the reference.
    /// Takes effect at the next `apply`.
    public var uint8Chains: Bool = ProcessInfo.processInfo.environment["MPQ_INT8_CHAINS"] != "0"
    public let chainCounters = Int8ChainCounters()
    /// Quantize an activation once for all the INT8 linear layers that read it on one grid
    /// (Q, K, V; `SharedInputCodes`): the same codes, fewer passes. Off (or with the uint8
    /// chains off), each layer quantizes its own input: the reference. Takes effect at the
    /// next `apply`.
    public var shareInputCodes = true
    private var sharedCodes: SharedInputCodes?
    /// Quantize passes the shared input codes saved since `resetSharedCount` (tests).
    public var sharedQuantizesSaved: Int { sharedCodes?.saved ?? 0 }
    public func resetSharedCount() { sharedCodes?.resetCount() }

    /// A fused GELU writes its output as codes when every reader is an INT8 linear layer that
    /// reads codes, all on one grid (a transformer's FFN output projection): the codes those
    /// layers would compute, without the float tensor in between. Off: the GELU writes floats
    /// and the readers quantize them (the reference). Takes effect at the next `apply`.
    public var geluWritesCodes = true

    /// A fused scaled masked Softmax writes its output as codes when every reader is an INT8
    /// MatMul of two activations that reads codes, all on one grid for that operand
    /// (attention's probabilities · V): the codes that MatMul would quantize from the floats.
    /// Off (or environment `MPQ_INT8_SOFTMAX_CODES=0`, for an A/B): the Softmax writes floats
    /// (the reference). Takes effect at the next `apply`.
    public var softmaxWritesCodes = ProcessInfo.processInfo.environment["MPQ_INT8_SOFTMAX_CODES"] != "0"

    func fusedOutputCodes(plan: QuantPlan, readsCodes: Set<String>) -> [String: ActivationQuant] {
        var out: [String: ActivationQuant] = [:]
        for f in session.transformerFusions.values {
            let softmax: Bool
            switch f.kind {
            case .gelu: softmax = false
            case .softmax: softmax = true
            case .layerNorm: continue
            }
            if softmax ? !softmaxWritesCodes : !geluWritesCodes { continue }
            guard let o = f.node.outputs.first, let rs = readers[o], !rs.isEmpty else { continue }
            var grid: ActivationQuant?
            var ok = true
            for r in rs {
                guard plan.int8Layers.contains(r), readsCodes.contains(r) else { ok = false; break }
                let q: ActivationQuant?
                if softmax, let l = layers[r] as? QuantizedActivationMatMul {
                    q = l.grid(ofOperand: o)
                } else if !softmax, let l = layers[r] as? QuantizedLinear, l.node.input(0) == o {
                    q = l.inputQuant
                } else {
                    q = nil
                }
                guard let q, grid == nil || grid == q else { ok = false; break }
                grid = q
            }
            if ok, let grid { out[o] = grid }
        }
        return out
    }

    /// Tensors read by two or more INT8 linear layers with the same input grid, and how many.
    static func sharedInputs(_ int8: Set<String>, layers: [String: QuantizedLayer]) -> SharedInputCodes? {
        var groups: [String: (ActivationQuant, Int)] = [:]
        var mixed = Set<String>()
        for name in int8 {
            guard let layer = layers[name] as? QuantizedLinear, let x = layer.node.input(0) else { continue }
            if let (q, n) = groups[x] {
                if q == layer.inputQuant { groups[x] = (q, n + 1) } else { mixed.insert(x) }
            } else {
                groups[x] = (layer.inputQuant, 1)
            }
        }
        var readers: [String: Int] = [:]
        for (x, (_, n)) in groups where n >= 2 && !mixed.contains(x) { readers[x] = n }
        return readers.isEmpty ? nil : SharedInputCodes(readers: readers)
    }
    /// Nodes reading each tensor.
    private let readers: [String: [String]]

    /// Nodes of the session that can run in INT8, in execution order.
    public static func quantizableNodes(_ session: Session) -> [Node] {
        session.plan.filter { Layers.isQuantizable($0, constants: session.constants) }
    }

    public init(session: Session, calibration: CalibrationTable, path: KernelPath = .auto,
                scheme: ExecutionScheme = .inputs, weightBits: WeightBits = .eight) throws {
        self.session = session
        self.weightBits = weightBits
        self.calibration = calibration
        self.path = path
        self.scheme = scheme
        let sources = scheme == .ort ? QuantPlan.sources(session) : [:]
        self.sources = sources
        /// Under `ort` a tensor uses its source's range (shared-scale chains keep one scale).
        func quant(_ t: String) -> ActivationQuant? { calibration.quant(for: sources[t] ?? t) }
        func source(_ t: String) -> String { sources[t] ?? t }
        var layers: [String: QuantizedLayer] = [:]
        var names: [String] = []
        for node in Self.quantizableNodes(session) {
            let family = Int8Ops.family(for: node, constants: session.constants)!
            let quants = try family.quantizedInputs(node, constants: session.constants).map { x in
                guard let q = quant(x) else { throw QuantizationError.missingRange(layer: node.name, tensor: source(x)) }
                return q
            }
            layers[node.name] = try family.prepare(node, constants: session.constants, inputs: quants, weightBits: weightBits)
            names.append(node.name)
        }
        self.layers = layers
        self.layerNames = names
        self.map = PrecisionMap(layers: [:])
        var readers: [String: [String]] = [:]
        for node in session.plan { for i in node.inputs where !i.isEmpty { readers[i, default: []].append(node.name) } }
        self.readers = readers
    }

    /// Routes the map's INT8 layers to their kernels; everything else runs in FP32.
    public func apply(_ map: PrecisionMap) throws {
        for (name, _) in map.layers where layers[name] == nil {
            throw QuantizationError.unknownLayer(layer: name, known: layerNames)
        }
        let plan = self.plan(for: map)
        session.overrides = [:]
        // The uint8 chains: nodes that read codes, and outputs worth writing as codes (one
        // of their readers reads codes; any other reader gets them materialised).
        var readsCodes = Set<String>()
        let pairs = uint8Chains && scheme == .ort ? codesPairs(plan) : []
        if uint8Chains && scheme == .ort {
            readsCodes.formUnion(codesPairReaders(pairs))
            for name in map.int8Layers where layers[name]!.readsCodes { readsCodes.insert(name) }
            for node in session.plan where !plan.int8Layers.contains(node.name) {
                if node.outputs.contains(where: { plan.requantized[$0] != nil }), RegionKernels.hasFastForm(node, plan: plan) {
                    readsCodes.insert(node.name)
                }
            }
        }
        let writesCodes = { [readers] (o: String) in readers[o, default: []].contains(where: readsCodes.contains) }
        let counters = chainCounters
        let shared = shareInputCodes && uint8Chains ? Self.sharedInputs(plan.int8Layers, layers: layers) : nil
        sharedCodes = shared
        for name in map.int8Layers {
            let layer = layers[name]!
            let reads = readsCodes.contains(name)
            // Several INT8 linear layers quantizing one tensor on one grid: quantized once.
            let sharedInput = layer.node.input(0).flatMap { shared?.readers[$0] != nil ? $0 : nil }
            let share = { [unowned self] (inputs: [Tensor?]) -> [Tensor?] in
                guard let shared, let sharedInput else { return inputs }
                return shared.attach(inputs, name: sharedInput, quant: layer.inputQuant, path: self.path)
            }
            if let o = layer.node.outputs.first, let q = plan.requantized[o] {
                // The layer's kernel requantizes its output itself (ORT's QLinear arithmetic).
                if writesCodes(o) {
                    session.overrides[name] = { [unowned self] inputs in
                        if reads, inputs.first??.codes(on: layer.inputQuant) != nil { counters.codesRead += 1 }
                        let outs = try layer.runWritingCodes(share(inputs), path: self.path, output: q)
                        if outs.first?.isCodesOnly == true { counters.codesWritten += 1 }
                        return outs
                    }
                } else {
                    session.overrides[name] = { [unowned self] inputs in
                        if reads, inputs.first??.codes(on: layer.inputQuant) != nil { counters.codesRead += 1 }
                        return try layer.run(share(inputs), path: self.path, output: q)
                    }
                }
            } else {
                session.overrides[name] = { [unowned self] inputs in
                    if reads, inputs.first??.codes(on: layer.inputQuant) != nil { counters.codesRead += 1 }
                    return try layer.run(share(inputs), path: self.path)
                }
            }
        }
        // Other requantized outputs (region ops): the FP32 op runs, then Q -> DQ.
        for node in session.plan where layers[node.name] == nil || !plan.int8Layers.contains(node.name) {
            if node.opType == "Split", plan.int8RegionOps.contains(node.name) {
                // Several requantized outputs, all on the input's grid (QuantPlan rule 5).
                let reads = readsCodes.contains(node.name)
                session.overrides[node.name] = RegionKernels.splitOverride(
                    node, session: session, plan: plan, path: { [unowned self] in self.path },
                    writeCodes: node.outputs.map { reads && !$0.isEmpty && writesCodes($0) }, counters: reads ? counters : nil)
                continue
            }
            guard let o = node.outputs.first, let q = plan.requantized[o] else { continue }
            if session.overrides[node.name] == nil,
               let fast = try RegionKernels.override(node, session: session, plan: plan, output: q, path: { [unowned self] in self.path },
                                                     writeCodes: readsCodes.contains(node.name) && writesCodes(o),
                                                     counters: readsCodes.contains(node.name) ? counters : nil) {
                session.overrides[node.name] = fast
                continue
            }
            let inner = session.overrides[node.name]
            session.overrides[node.name] = { [unowned self] inputs in
                var outs = try inner?(inputs) ?? self.session.runNode(node, inputs: inputs)
                requantize(&outs[0], q, path: self.path)
                return outs
            }
        }
        let fused = try codesPairOverrides(pairs, plan: plan, writesCodes: writesCodes, counters: counters)
        self.map = map
        self.plan = plan
        session.codesInputNodes = readsCodes    // after the overrides: setting them clears it
        session.fusedOverrides = fused          // likewise
        if (geluWritesCodes || softmaxWritesCodes) && uint8Chains && scheme == .ort {
            session.chainOutputCodes = fusedOutputCodes(plan: plan, readsCodes: readsCodes)
            session.chainCodesPath = { [unowned self] in self.path }
        }
    }

    /// What `map` executes under this runtime's scheme.
    public func plan(for map: PrecisionMap) -> QuantPlan {
        let int8 = Set(map.int8Layers.filter { layers[$0] != nil })
        switch scheme {
        case .inputs: return QuantPlan(inputsScheme: int8)
        case .ort:
            return QuantPlan(session: session, int8Layers: int8) { [calibration] t in calibration.requantizable(t) }
        }
    }

    /// Nodes that execute differently under `map` than under `base`: what an incremental
    /// run from `base`'s cached activations must re-execute (under `inputs`, the layers
    /// whose precision differs; under `ort`, also the neighbours whose Q/DQ moved).
    public func changedNodes(from base: PrecisionMap, to map: PrecisionMap) -> Set<String> {
        plan(for: map).changedNodes(comparedTo: plan(for: base), session: session)
    }

    /// The quantization parameters of an activation tensor (its source's calibrated range).
    public func quant(forTensor t: String) -> ActivationQuant? { calibration.quant(for: sources[t] ?? t) }

    public var allInt8: PrecisionMap { PrecisionMap.uniform(.int8, layers: layerNames) }
    public var allFP32: PrecisionMap { PrecisionMap.uniform(.fp32, layers: layerNames) }
}
