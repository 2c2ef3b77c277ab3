import Kernels
import ONNX

/// A precision map's recorded quantization parameters as the runtime reads them, so that
/// `mpq eval --precision map.json` runs the map exactly as the search scored it, without
/// calibration data (docs/precision-map.md, "Self-contained maps").
extension ExportMap {
    /// The parameters the map records, keyed by source tensor under `scheme`, or nil when
    /// it records none (a bare `{"layers": ...}` map). Recorded parameters hold only for
    /// the scheme the map was made under: another scheme shares scales differently.
    public func recordedQuantization(session: Session, scheme: ExecutionScheme) -> RecordedQuantization? {
        if let made = self.scheme, made != scheme { return nil }
        let sources = scheme == .ort ? QuantPlan.sources(session) : [:]
        var quant: [String: ActivationQuant] = [:]
        func add(_ a: PrecisionMapDocument.ActivationRef?) {
            guard let a, !a.tensor.isEmpty, (0...255).contains(a.zeroPoint), a.scale > 0, a.scale.isFinite else { return }
            quant[sources[a.tensor] ?? a.tensor] = ActivationQuant(scale: a.scale, zeroPoint: UInt8(a.zeroPoint))
        }
        for l in layers { add(l.activation); add(l.activation2) }
        for t in tensors ?? [] { add(t) }
        guard !quant.isEmpty else { return nil }
        let requantized = scheme == .ort ? tensors.map { Set($0.map { sources[$0.tensor] ?? $0.tensor }) } : nil
        return RecordedQuantization(quant: quant, requantized: requantized)
    }

    /// The activation tensors every quantizable layer of `session` reads that `recorded`
    /// gives no parameters for, plus, under `ort`, a note when the map lacks the list of
    /// requantized tensors; empty when the map alone can build the runtime.
    public static func missingParameters(_ recorded: RecordedQuantization?, session: Session,
                                         scheme: ExecutionScheme) -> [String] {
        let sources = scheme == .ort ? QuantPlan.sources(session) : [:]
        var missing: [String] = []
        for node in MixedPrecisionRuntime.quantizableNodes(session) {
            guard let family = Int8Ops.family(for: node, constants: session.constants) else { continue }
            for x in family.quantizedInputs(node, constants: session.constants) {
                let s = sources[x] ?? x
                if recorded?.quant[s] == nil && !missing.contains(s) { missing.append(s) }
            }
        }
        if scheme == .ort && recorded?.requantized == nil { missing.append("(the list of requantized tensors, `tensors`)") }
        return missing
    }
}
