import ONNX

/// SpaceToDepth and DepthToSpace: blocks of pixels moved to channels and back. mpq's `ort`
/// export writes SpaceToDepth in front of a stride-2 stem (docs/export.md, "Space-to-depth
/// stems"), and mpq runs its own exports, so it executes both ops (real graphs use them too).
/// Each is a reshape to 6-D, one strided copy and a reshape back, as the ONNX spec defines it.
extension ShapeOps {
    static let blocksTable: [String: OpEntry] = [
        "SpaceToDepth": OpEntry { n, i, opset in
            // Opset 28 added the mode (CRD); DCR is the default and the only order before it.
            let mode = opset < 28 ? "DCR" : n.string("mode", default: "DCR")
            return [try SpaceToDepth(n.required(i, 0, "input"), blocksize: n.int("blocksize") ?? 0, mode: mode)]
        },
        "DepthToSpace": OpEntry { n, i, opset in
            // Opset 11 added CRD; DCR is the default and the only order before it.
            let mode = opset < 11 ? "DCR" : n.string("mode", default: "DCR")
            return [try DepthToSpace(n.required(i, 0, "input"), blocksize: n.int("blocksize") ?? 0, mode: mode)]
        },
    ]

    /// [N, C, H, W] -> [N, C * b * b, H / b, W / b]: input pixel (y * b + by, x * b + bx) of
    /// channel c goes to output channel (by * b + bx) * C + c (DCR) or (c * b + by) * b + bx (CRD).
    static func SpaceToDepth(_ x: Tensor, blocksize b: Int, mode: String = "DCR") throws -> Tensor {
        guard x.rank == 4, b >= 1 else {
            throw OpError("SpaceToDepth needs a 4-D input and blocksize >= 1, got \(Tensor.describe(x.shape)) and \(b)")
        }
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        guard h % b == 0, w % b == 0 else {
            throw OpError("SpaceToDepth: height \(h) and width \(w) must be multiples of blocksize \(b)")
        }
        let perm: [Int]
        switch mode {
        case "DCR": perm = [0, 3, 5, 1, 2, 4]
        case "CRD": perm = [0, 1, 3, 5, 2, 4]
        default: throw OpError("SpaceToDepth mode '\(mode)' is neither DCR nor CRD")
        }
        return try Transpose(x.reshaped([n, c, h / b, b, w / b, b]), perm: perm).reshaped([n, c * b * b, h / b, w / b])
    }

    /// [N, C, H, W] -> [N, C / (b * b), H * b, W * b]. DCR reads the channel as
    /// (by * b + bx) * C' + c (the inverse of SpaceToDepth), CRD as (c * b + by) * b + bx.
    static func DepthToSpace(_ x: Tensor, blocksize b: Int, mode: String) throws -> Tensor {
        guard x.rank == 4, b >= 1 else {
            throw OpError("DepthToSpace needs a 4-D input and blocksize >= 1, got \(Tensor.describe(x.shape)) and \(b)")
        }
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        guard c % (b * b) == 0 else { throw OpError("DepthToSpace: \(c) channels are not a multiple of blocksize² \(b * b)") }
        let cOut = c / (b * b)
        let moved: Tensor
        switch mode {
        case "DCR": moved = try Transpose(x.reshaped([n, b, b, cOut, h, w]), perm: [0, 3, 4, 1, 5, 2])
        case "CRD": moved = try Transpose(x.reshaped([n, cOut, b, b, h, w]), perm: [0, 1, 4, 2, 5, 3])
        default: throw OpError("DepthToSpace mode '\(mode)' is neither DCR nor CRD")
        }
        return moved.reshaped([n, cOut, h * b, w * b])
    }
}
