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
