import CKernels
import Foundation
import ONNX

/// Fast forms of the `ort` scheme's region ops, bit for bit what the generic form (the FP32
/// op, then `requantize`) gives:
/// - a unary elementwise op whose input is requantized sees at most 256 distinct values, so
///   it is a 256-entry table, computed once per map by running the op itself on the grid
///   and requantizing (ONNX Runtime's QLinearSigmoid/QLinearLeakyRelu are tables too);
/// - Add and Mul of two same-shape tensors compute and requantize in one pass, without the
///   FP32 op's intermediate tensor.
/// Anything else (broadcasting, other ops, an input not on a grid) takes the generic form.
/// Both fast forms also run on the uint8 chains (docs/int8-chains.md): inputs held as codes
/// are read as codes, and with `writeCodes` the output is written as codes.
enum RegionKernels {
    static let tableOps: Set<String> = ["Sigmoid", "LeakyRelu", "Relu", "HardSigmoid", "HardSwish", "Tanh"]

    /// Ops that only move or select values (and Concat, which also requantizes each input):
    /// on codes they run as the FP32 op on the codes themselves (`movement`).
    static let movementOps: Set<String> = ["MaxPool", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "Identity",
                                           "Resize", "Upsample", "Concat", "Slice", "Gather"]

    /// Whether `override` gives `node` a fast form, which then reads inputs held as codes.
    static func hasFastForm(_ node: Node, plan: QuantPlan) -> Bool {
        if tableOps.contains(node.opType), let x = node.input(0), plan.requantized[x] != nil { return true }
        if isMovement(node) || isOrtAveragePool(node, plan: plan) || node.opType == "Split" { return true }
        return (node.opType == "Add" || node.opType == "Mul") && node.inputs.count == 2
    }

    static func isMovement(_ node: Node) -> Bool {
        movementOps.contains(node.opType) && RegionOpKind.of(node) != nil && FusedActivation(node: node) == nil
    }

    /// `path()` is read at every run, so changing the runtime's kernel path takes effect
    /// without re-applying the map (as for the INT8 layers). `counters`, when given, hears
    /// of every input read as codes and every output written as codes.
    static func override(_ node: Node, session: Session, plan: QuantPlan, output q: ActivationQuant,
                         path: @escaping () -> KernelPath = { .auto }, writeCodes: Bool = false,
                         counters: Int8ChainCounters? = nil) throws -> NodeOverride? {
        if tableOps.contains(node.opType), let x = node.input(0), let qi = plan.requantized[x] {
            let grid = (0..<256).map { (Float($0) - Float(qi.zeroPoint)) * qi.scale + 0 }
            var ys = try session.runNode(node, inputs: [Tensor(shape: [256], floats: grid)])[0]
            requantize(&ys, q, path: .reference)
            let table = ys.floats
            // The output codes of the table: on the grid, quantizing gives the codes back.
            var codeTable = [UInt8](repeating: 0, count: 256)
            table.withUnsafeBufferPointer { p in codeTable.withUnsafeMutableBufferPointer { quantizeU8(p, q, path: .reference, into: $0.baseAddress!) } }
            return { inputs in
                guard let t = inputs.first ?? nil, t.dtype.isFloating else { throw OpError("\(node.opType) needs a float input") }
                if let xs = t.codes(on: qi) {
                    counters?.codesRead += 1
                    if writeCodes {
                        counters?.codesWritten += 1
                        var ys = [UInt8].uninitialized(count: xs.count)
                        xs.withUnsafeBufferPointer { px in codeTable.withUnsafeBufferPointer { pt in ys.withUnsafeMutableBufferPointer { py in
                            mpq_lookup_u8_threads(px.baseAddress, px.count, pt.baseAddress, py.baseAddress, lookupThreads(px.count))
                        } } }
                        return [Tensor(shape: t.shape, codes: QuantizedCodes(values: ys, scale: q.scale, zeroPoint: q.zeroPoint))]
                    }
                    return [Tensor(shape: t.shape, floats: xs.map { table[Int($0)] }, dtype: t.dtype)]
                }
                return [lookup(t.materialized(), table, qi, path: path())]
            }
        }
        if isOrtAveragePool(node, plan: plan), let x = node.input(0), let qi = plan.requantized[x] {
            return averagePoolOverride(node, session: session, input: qi, output: q, path: path, writeCodes: writeCodes, counters: counters)
        }
        if isMovement(node) {
            let isConcat = node.opType == "Concat"
            // Requantizing tables by input grid, filled on first use. Shared by every call of
            // this closure, and a batch's image chains call it from several threads at once
            // (Session.runImageChain): the lock guards the dictionary (s33: two chains
            // inserting at once crashed the suite in Int8ImageChainTests.testFixturesAllInt8).
            let remaps = RemapTables()
            return { inputs in
                // Codes in (on the output's grid, or any grid for Concat, whose inputs are
                // requantized): the op moves codes; anything else takes the generic form.
                let data = isConcat ? inputs.indices.filter { inputs[$0] != nil } : [0]
                let onCodes = !data.isEmpty && data.allSatisfy { i in
                    guard let t = inputs[i], t.isCodesOnly, let c = t.codes else { return false }
                    return isConcat || (c.scale == q.scale && c.zeroPoint == q.zeroPoint)
                }
                guard onCodes else {
                    var outs = try session.runNode(node, inputs: Session.materialized(inputs))
                    requantize(&outs[0], q, path: path())
                    return outs
                }
                if let x = inputs[0], let c = x.codes, let pooled = try maxPoolOnCodes(node, x, c, path: path()) {
                    counters?.codesRead += 1
                    if writeCodes { counters?.codesWritten += 1 }
                    return [writeCodes ? pooled : pooled.materialized()]
                }
                if let moved = try moveCodes(node, inputs, session: session) {
                    counters?.codesRead += 1
                    counters?.movedAsCodes += 1
                    if writeCodes { counters?.codesWritten += 1 }
                    return [writeCodes ? moved : moved.materialized()]
                }
                var ins = inputs
                var remapped: [[UInt8]] = []
                for i in data {
                    let c = inputs[i]!.codes!
                    var values = c.values
                    if c.scale != q.scale || c.zeroPoint != q.zeroPoint {
                        // Requantizing a code is a function of the code: a 256-entry table.
                        let table = remaps.table(from: ActivationQuant(scale: c.scale, zeroPoint: c.zeroPoint), to: q)
                        let src = values
                        src.withUnsafeBufferPointer { x in table.withUnsafeBufferPointer { t in values.withUnsafeMutableBufferPointer { y in
                            mpq_lookup_u8(x.baseAddress, x.count, t.baseAddress, y.baseAddress)
                        } } }
                    }
                    counters?.codesRead += 1
                    if isConcat { remapped.append(values); continue }
                    // The codes as floats: dequantizing with scale 1 and zero point 0 is exact.
                    var floats = [Float].uninitialized(count: values.count)
                    values.withUnsafeBufferPointer { x in floats.withUnsafeMutableBufferPointer { y in
                        mpq_dequantize_u8(path().c, x.baseAddress, x.count, 1, 0, y.baseAddress)
                    } }
                    ins[i] = Tensor(shape: inputs[i]!.shape, floats: floats)
                }
                if isConcat {
                    // Every input is on the output's grid now: the Concat is byte copies.
                    guard let t = try concatCodes(node, data.map { inputs[$0]!.shape }, remapped, q) else {
                        var outs = try session.runNode(node, inputs: Session.materialized(inputs))
                        requantize(&outs[0], q, path: path())
                        return outs
                    }
                    if writeCodes { counters?.codesWritten += 1 }
                    return [writeCodes ? t : t.materialized()]
                }
                // The op only moves values, so its output holds codes (or, for a MaxPool window
                // wholly in padding, -inf: code 0, as requantizing the float -inf gives).
                let moved = try session.runNode(node, inputs: ins)
                var codes = [UInt8].uninitialized(count: moved[0].floats.count)
                moved[0].floats.withUnsafeBufferPointer { p in
                    codes.withUnsafeMutableBufferPointer { quantizeU8(p, ActivationQuant(scale: 1, zeroPoint: 0), path: path(), into: $0.baseAddress!) }
                }
                let t = Tensor(shape: moved[0].shape, codes: QuantizedCodes(values: codes, scale: q.scale, zeroPoint: q.zeroPoint))
                if writeCodes { counters?.codesWritten += 1 }
                return [writeCodes ? t : t.materialized()] + moved.dropFirst()
            }
        }
        if node.opType == "Add" || node.opType == "Mul", node.inputs.count == 2 {
            let isAdd = node.opType == "Add"
            return { inputs in
                guard let a = inputs[0], let b = inputs[1], a.dtype.isFloating, b.dtype.isFloating, a.shape == b.shape else {
                    var outs = try session.runNode(node, inputs: Session.materialized(inputs))
                    requantize(&outs[0], q, path: path())
                    return outs
                }
                if let ca = a.codes, let cb = b.codes, a.isCodesOnly, b.isCodesOnly {
                    counters?.codesRead += 2
                    let out = binary(ca, cb, isAdd: isAdd, q, path: path())
                    let t = Tensor(shape: a.shape, codes: out)
                    if writeCodes { counters?.codesWritten += 1; return [t] }
                    return [t.materialized()]
                }
                return [binary(a.materialized(), b.materialized(), isAdd: isAdd, q, path: path())]
            }
        }
        return nil
    }

    /// For every code on grid `a`, its code after requantizing its value to grid `b`
    /// (dequantize as the producer writes it, then `requantize`, whose result is on `b`).
    static func requantizedCodes(from a: ActivationQuant, to b: ActivationQuant) -> [UInt8] {
        var grid = [Float](repeating: 0, count: 256)
        let codes = (0...255).map { UInt8($0) }
        mpq_dequantize_u8(MPQ_PATH_REFERENCE, codes, 256, a.scale, a.zeroPoint, &grid)
        var t = Tensor(shape: [256], floats: grid)
        requantize(&t, b, path: .reference)
        var out = [UInt8](repeating: 0, count: 256)
        t.floats.withUnsafeBufferPointer { p in out.withUnsafeMutableBufferPointer { quantizeU8(p, b, path: .reference, into: $0.baseAddress!) } }
        return out
    }

    /// `table[q]` for every element, `q` recovered from the value on its input's grid
    /// (`mpq_lookup_u8grid_f32`: on the grid x = (q - z) * s exactly, so x / s rounds back to q - z).
    static func lookup(_ t: Tensor, _ table: [Float], _ qi: ActivationQuant, path: KernelPath) -> Tensor {
        var out = [Float].uninitialized(count: t.floats.count)
        t.floats.withUnsafeBufferPointer { x in
            table.withUnsafeBufferPointer { tab in
                out.withUnsafeMutableBufferPointer { y in
                    mpq_lookup_u8grid_f32(path.c, x.baseAddress, x.count, qi.scale, qi.zeroPoint, tab.baseAddress, y.baseAddress)
                }
            }
        }
        return Tensor(shape: t.shape, floats: out, dtype: t.dtype)
    }

    /// Threads for an elementwise pass over `count` codes: all cores from 16K codes (a few
    /// microseconds of work per core at ~0.2 ns per code), else the calling thread.
    static func codesThreads(_ count: Int) -> Int32 {
        count >= 1 << 14 ? Int32(coreCount) : 1
    }

    /// `binary` on inputs held as codes, writing codes (`mpq_requantize_binary_u8`: each
    /// input dequantized as its producer would have written it, then the same float
    /// operation and requantization).
    static func binary(_ a: QuantizedCodes, _ b: QuantizedCodes, isAdd: Bool, _ q: ActivationQuant, path: KernelPath) -> QuantizedCodes {
        var out = [UInt8].uninitialized(count: a.values.count)
        a.values.withUnsafeBufferPointer { pa in
            b.values.withUnsafeBufferPointer { pb in
                out.withUnsafeMutableBufferPointer { y in
                    mpq_requantize_binary_u8_threads(path.c, isAdd ? 0 : 1, pa.baseAddress, a.scale, a.zeroPoint, pb.baseAddress, b.scale,
                                                     b.zeroPoint, pa.count, q.scale, q.zeroPoint, y.baseAddress, codesThreads(pa.count))
                }
            }
        }
        return QuantizedCodes(values: out, scale: q.scale, zeroPoint: q.zeroPoint)
    }

    /// `requantize(a op b)` in one pass (the same float operation as the FP32 op),
    /// `mpq_requantize_binary_f32`.
    static func binary(_ a: Tensor, _ b: Tensor, isAdd: Bool, _ q: ActivationQuant, path: KernelPath) -> Tensor {
        var out = [Float].uninitialized(count: a.floats.count)
        a.floats.withUnsafeBufferPointer { pa in
            b.floats.withUnsafeBufferPointer { pb in
                out.withUnsafeMutableBufferPointer { y in
                    mpq_requantize_binary_f32(path.c, isAdd ? 0 : 1, pa.baseAddress, pb.baseAddress, pa.count, q.scale, q.zeroPoint,
                                              y.baseAddress)
                }
            }
        }
        return Tensor(shape: a.shape, floats: out, dtype: a.dtype)
    }
}

/// A movement op's requantizing tables (`RegionKernels.override`), one per input grid, made on
/// first use; safe to use from several threads at once.
final class RemapTables {
    private let lock = NSLock()
    private var tables: [ActivationQuant: [UInt8]] = [:]

    func table(from key: ActivationQuant, to q: ActivationQuant) -> [UInt8] {
        lock.lock()
        defer { lock.unlock() }
        if let t = tables[key] { return t }
        let t = RegionKernels.requantizedCodes(from: key, to: q)
        tables[key] = t
        return t
    }
}
