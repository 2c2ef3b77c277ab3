/// An activation folded into the Conv/Gemm/MatMul that feeds it, recorded on the node as
/// attributes (`mpq_activation`, `mpq_clip_min`, `mpq_clip_max`) by `GraphPasses.fuseActivations`.
/// The pair is then one layer: one precision choice, one kernel epilogue.
public enum FusedActivation: Sendable, Equatable {
    case relu
    case clip(min: Float, max: Float)

    public static let attributeKey = "mpq_activation"

    public init?(node: Node) {
        switch node.string(FusedActivation.attributeKey) {
        case "Relu": self = .relu
        case "Clip": self = .clip(min: node.float("mpq_clip_min", default: -.infinity),
                                  max: node.float("mpq_clip_max", default: .infinity))
        default: return nil
        }
    }

    /// Lower and upper bounds the activation clamps to.
    public var bounds: (lo: Float, hi: Float) {
        switch self {
        case .relu: return (0, .infinity)
        case .clip(let lo, let hi): return (lo, hi)
        }
    }

    /// Clamps in place. NaN stays NaN, as in ONNX Relu/Clip.
    public func apply(_ v: inout [Float]) {
        let (lo, hi) = bounds
        v.withUnsafeMutableBufferPointer { p in
            for i in p.indices { let x = p[i]; if x < lo { p[i] = lo } else if x > hi { p[i] = hi } }
        }
    }
}
