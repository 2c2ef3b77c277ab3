import ONNX

enum PoolOps {
    static let table: [String: OpEntry] = [:]
}
