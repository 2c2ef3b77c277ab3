import CKernels
import ONNX

/// What an FP32 Conv applies to each image's output right after its GEMM, while the block
/// is in cache: the bias, then a Relu/Clip fused by `GraphPasses.fuseActivations` or a SiLU
/// (Conv -> Sigmoid -> Mul(x, sigmoid(x))) fused by the session at run time
/// (`Session.siluFusions`). The values are those of the unfused ops, bit for bit
/// (`mpq_conv_epilogue_f32`).
enum ConvEpilogue: Equatable {
    case none
    case clamp(lo: Float, hi: Float)
    case silu

    /// Attribute the session sets on its private copy of a Conv whose SiLU it fuses.
    /// Never written to a model: the graph keeps Sigmoid and Mul (they are layers of
    /// their own for calibration, search and export).
    static let runtimeKey = "mpq_runtime_epilogue"

    init(node: Node) {
        if node.string(ConvEpilogue.runtimeKey) == "SiLU" {
            self = .silu
        } else if let act = FusedActivation(node: node) {
            self = .clamp(lo: act.bounds.lo, hi: act.bounds.hi)
        } else {
            self = .none
        }
    }

    /// Bias and activation over `rows` channels of `cols` values, `ld` apart.
    func apply(_ y: UnsafeMutablePointer<Float>, rows: Int, cols: Int, ld: Int, bias: UnsafePointer<Float>?) {
        let (act, lo, hi): (mpq_activation, Float, Float)
        switch self {
        case .none:
            if bias == nil { return }
            (act, lo, hi) = (MPQ_ACT_NONE, 0, 0)
        case .clamp(let l, let h): (act, lo, hi) = (MPQ_ACT_CLAMP, l, h)
        case .silu: (act, lo, hi) = (MPQ_ACT_SILU, 0, 0)
        }
        mpq_conv_epilogue_f32(MPQ_PATH_AUTO, y, rows, cols, ld, bias, act, lo, hi)
    }
}

/// A residual Add (+ Relu) fused into an FP32 Conv at run time (`ResidualFusion`): after the
/// Conv's epilogue, y = shortcut + y or y + shortcut (the Add's operand order), then the Relu
/// as its op does, by `mpq_binary_f32` (`mpq_sconv2d_f32_residual`): the unfused bits.
struct ConvResidual {
    /// Attribute the session sets on its private copy of a Conv whose residual Add it fuses:
    /// "first" when the shortcut is the Add's first input, "second" otherwise. Never written
    /// to a model.
    static let runtimeKey = "mpq_runtime_residual"
    /// Set (to "Relu") when the Relu after the Add is fused too.
    static let reluKey = "mpq_runtime_residual_relu"

    let shortcut: Tensor
    let shortcutFirst: Bool
    let relu: Bool

    /// The residual of a fused Conv node (its fourth input), nil for any other node: `side` and
    /// `relu` are the node's two attributes above, read once (`ConvOps.ConvAttributes`).
    init?(side: String?, relu: Bool, inputs: [Tensor?]) {
        guard let side, inputs.count > 3, let s = inputs[3] else { return nil }
        shortcut = s
        shortcutFirst = side == "first"
        self.relu = relu
    }

    /// Whether the in-kernel form applies to an output of `shape`: same shape, float32.
    func fits(_ shape: [Int]) -> Bool {
        shortcut.dtype == .float32 && shortcut.shape == shape && shortcut.floats.count == shape.reduce(1, *)
    }

    /// The unfused ops on a finished Conv output: the Add (broadcasting as its op does),
    /// then the Relu.
    func applySeparately(_ y: Tensor) throws -> Tensor {
        let sum = shortcutFirst ? try ElementwiseOps.Add(shortcut, y) : try ElementwiseOps.Add(y, shortcut)
        return relu ? ActivationOps.Relu(sum) : sum
    }

    /// y = y + shortcut (+ Relu) in place over a finished output of the same shape.
    func applyInPlace(_ y: UnsafeMutablePointer<Float>, count: Int) {
        shortcut.floats.withUnsafeBufferPointer { ps in
            let s = ps.baseAddress!
            mpq_binary_f32(MPQ_PATH_AUTO, 0, relu ? 1 : 0, shortcutFirst ? s : UnsafePointer(y), shortcutFirst ? UnsafePointer(y) : s,
                           count, y, rowThreads(count))
        }
    }
}
