import ONNX

enum ConvOps {
    static let table: [String: OpEntry] = [:]
}
