import ONNX

enum ReduceOps {
    static let table: [String: OpEntry] = [:]
}
