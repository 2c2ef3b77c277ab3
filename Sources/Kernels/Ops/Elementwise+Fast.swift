import CKernels
import ONNX

/// Same-shape float32 Add and Mul in C (`mpq_binary_f32`): SIMD, split over the kernel pool
/// from 64k elements (`rowThreads`). Each element is one IEEE add or multiply, as the Swift
/// loop computes it, so the bits are the same; broadcasting and other types take `Broadcast`.
extension ElementwiseOps {
    /// `a + b` or `a * b` (then `r < 0 ? 0 : r` with `relu`) for same-shape float32 tensors.
    static func binaryFloats(_ a: Tensor, _ b: Tensor, multiply: Bool, relu: Bool, path: KernelPath = .auto) -> Tensor {
        precondition(a.shape == b.shape && a.dtype == .float32 && b.dtype == .float32)
        let n = a.floats.count
        let y = [Float](unsafeUninitializedCapacity: n) { buf, count in
            a.floats.withUnsafeBufferPointer { pa in
                b.floats.withUnsafeBufferPointer { pb in
                    mpq_binary_f32(path.c, multiply ? 1 : 0, relu ? 1 : 0, pa.baseAddress, pb.baseAddress, n,
                                   buf.baseAddress, rowThreads(n))
                }
            }
            count = n
        }
        return Tensor(shape: a.shape, floats: y)
    }

    /// Whether `binaryFloats` serves a binary op on `a` and `b`: same shape, both float32,
    /// and large enough that the C call pays (below, the Swift loop is as fast).
    static func takesFastBinary(_ a: Tensor, _ b: Tensor) -> Bool {
        a.dtype == .float32 && b.dtype == .float32 && a.shape == b.shape && a.floats.count >= 4096
    }
}
