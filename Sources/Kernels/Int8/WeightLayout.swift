import ONNX

/// How a layer's weight is laid out as "one row per output channel", the form
/// `QuantizedWeights` quantizes. The INT8 layers and the QDQ export both use these, so
/// the per-channel scales the runtime computes are the ones the export writes.
public enum WeightLayout {
    /// A Gemm/MatMul weight ([K, N], or [N, K] with `transB`) as [N][K] rows.
    public static func linearRows(_ w: Tensor, transB: Bool) -> (rows: [Float], n: Int, k: Int) {
        let (n, k) = transB ? (w.shape[0], w.shape[1]) : (w.shape[1], w.shape[0])
        if transB { return (w.floats, n, k) }
        var rows = [Float](repeating: 0, count: n * k)
        for i in 0..<n { for j in 0..<k { rows[i * k + j] = w.floats[j * n + i] } }
        return (rows, n, k)
    }

    /// A ConvTranspose weight [C, M/group, taps...] as rows per index of axis 1:
    /// [M/group][C * taps] (ONNX Runtime's per-channel axis for ConvTranspose).
    public static func convTransposeRows(_ w: Tensor) -> [Float] {
        let c = w.shape[0], mg = w.shape[1], taps = w.shape.dropFirst(2).reduce(1, *)
        var rows = [Float](repeating: 0, count: w.count)
        for co in 0..<mg { for cin in 0..<c { for t in 0..<taps {
            rows[(co * c + cin) * taps + t] = w.floats[(cin * mg + co) * taps + t]
        } } }
        return rows
    }
}
