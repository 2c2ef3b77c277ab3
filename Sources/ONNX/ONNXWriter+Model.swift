import Foundation

extension ONNXWriter {
    /// A whole ModelProto for a graph built in code: the inverse of `ModelLoader.load`
    /// for graphs without subgraphs. Tests build small (and deliberately malformed)
    /// models from it; initializers are written inline in name order.
    static func modelProto(_ g: Graph) throws -> Onnx_ModelProto {
        var m = Onnx_ModelProto()
        m.irVersion = 8
        m.producerName = g.producer.isEmpty ? "mpq" : g.producer
        for (domain, version) in g.opsets.sorted(by: { $0.key < $1.key }) {
            var o = Onnx_OperatorSetIdProto()
            o.domain = domain; o.version = Int64(version)
            m.opsetImport.append(o)
        }
        var gp = Onnx_GraphProto()
        gp.name = g.name
        gp.node = try g.nodes.map(nodeProto)
        gp.initializer = g.initializers.keys.sorted().map { tensorProto(g.initializers[$0]!, name: $0) }
        gp.input = g.inputs.map(valueInfoProto)
        gp.output = g.outputs.map(valueInfoProto)
        m.graph = gp
        return m
    }

    /// A tensor-typed ValueInfoProto; a nil dim is written as the symbol `N`.
    static func valueInfoProto(_ v: ValueInfo) -> Onnx_ValueInfoProto {
        var p = Onnx_ValueInfoProto()
        p.name = v.name
        var tt = Onnx_TypeProto.Tensor()
        tt.elemType = Int32((v.dtype ?? .float32).onnxCode)
        if let shape = v.shape {
            var s = Onnx_TensorShapeProto()
            s.dim = shape.map { d in
                var dim = Onnx_TensorShapeProto.Dimension()
                if let d { dim.dimValue = Int64(d) } else { dim.dimParam = "N" }
                return dim
            }
            tt.shape = s
        }
        p.type.tensorType = tt
        return p
    }
}
