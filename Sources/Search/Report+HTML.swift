import Foundation

/// One self-contained HTML page: inline CSS and SVG, no scripts, no external requests.
public enum HTMLReport {
    typealias F = ReportFormat

    public static func render(_ input: ReportInput) -> String {
        let m = input.map, h = m.result.holdout, s = m.result.search
        let size = input.sizes
        let latency = input.latency.map { "\(F.millis($0.fp32)) → \(F.millis($0.mixed))" } ?? "not measured"
        let verdict = m.budgetMet
            ? "<p class=\"ok\">Budget met on the holdout split (\(h.criterion) estimate).</p>"
            : "<p class=\"bad\">Budget NOT met on the holdout split (\(h.criterion) estimate); this is the best map found.</p>"
        var html = """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8">
        <title>mpq report: \(F.escape(F.modelName(m.model.path)))</title>
        <style>
        body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:1000px;color:#1d2329;padding:0 1rem}
        h1{font-size:1.5rem;margin-bottom:.2rem} h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #dde2e6;padding-bottom:.3rem}
        .sub{color:#5b6670;margin-top:0} table{border-collapse:collapse;width:100%;font-size:.92rem}
        th,td{padding:.35rem .6rem;border-bottom:1px solid #e6eaed;text-align:right} th{background:#f4f6f8}
        td:first-child,th:first-child{text-align:left} .ok{color:#17692f;font-weight:600} .bad{color:#b3261e;font-weight:600}
        .int8{color:#1f5fa8} .fp32{color:#b35c00} code{font-size:.88em} .legend span{margin-right:1.2rem}
        .sw{display:inline-block;width:.8rem;height:.8rem;border-radius:2px;vertical-align:-1px;margin-right:.3rem}
        svg text{font-family:system-ui,sans-serif}
        </style></head><body>
        <h1>mpq: \(F.escape(F.modelName(m.model.path)))</h1>
        <p class="sub">metric <b>\(F.escape(m.metric))</b> · budget <b>\(F.budget(m.budget.value))% (\(F.escape(m.budget.type)), \(m.budget.points) points)</b> · \(F.escape(m.strategy)) search, objective \(F.escape(m.objective)) · calibration \(F.escape(m.calibration.method)) on \(m.calibration.samples) samples · seed \(m.seed) · kernels \(F.escape(m.kernelPath))</p>
        \(verdict)
        <h2>Summary (holdout split, \(h.samples) samples)</h2>
        <table><tr><th>model</th><th>FP32</th><th>INT8 (all)</th><th>mixed</th><th>drop (\(Int(h.confidence * 100))% CI)</th><th>INT8 share of MACs</th><th>weights</th><th>latency / sample</th></tr>
        <tr><td>\(F.escape(F.modelName(m.model.path)))</td><td>\(F.points(h.fp32))</td><td>\(F.points(h.int8All))</td><td>\(F.points(h.mixed))</td>
        <td>\(F.points(h.drop)) (\(F.points(h.ci95[0])) … \(F.points(h.ci95[1])))</td><td>\(F.percent(m.int8MacFraction))</td>
        <td>\(F.bytes(size.fp32)) → \(F.bytes(size.mixed))</td><td>\(latency)</td></tr></table>
        <p class="sub">Search split (\(s.samples) samples): FP32 \(F.points(s.fp32)), all-INT8 \(F.points(s.int8All)), mixed \(F.points(s.mixed)), drop \(F.points(s.drop)).
        \(m.evaluations) candidate evaluations, \(String(format: "%.1f", m.fullModelEquivalents)) full-model equivalents.\(h.mcnemarP.map { " McNemar p = \(String(format: "%.4g", $0))." } ?? "")</p>
        <h2>Per-layer sensitivity</h2>
        <p class="legend"><span><i class="sw" style="background:#1f5fa8"></i>INT8</span><span><i class="sw" style="background:#e08a1e"></i>kept in FP32</span>
        bar: drop (points) with only that layer in INT8</p>
        \(sensitivityChart(m))
        \(layerTable(m))
        """
        html += "<h2>\(input.sweep.isEmpty ? "Pareto front (search split)" : "Budget sweep")</h2>\n"
        html += input.sweep.isEmpty ? paretoChart(m) : sweepChart(input.sweep) + sweepTable(input.sweep)
        html += "\n<p class=\"sub\">mpq \(F.escape(m.mpqVersion)) · model sha256 <code>\(F.escape(m.model.sha256))</code> · \(F.escape(m.data))</p>\n</body></html>\n"
        return html
    }

    static func sensitivityChart(_ m: PrecisionMapDocument) -> String {
        let rows = m.layers
        if rows.allSatisfy({ $0.sensitivity == nil }) {
            return "<p class=\"sub\">Not measured: every layer in INT8 already met the budget on the search split, so the search skipped the analysis (run with <code>--sensitivity always</code> to measure it).</p>"
        }
        let barH = 22, labelW = 260, chartW = 560, top = 10
        let maxDrop = max(rows.map { $0.sensitivity?.dropAlone ?? 0 }.max() ?? 0, 1e-9)
        let height = top + rows.count * barH + 30
        var svg = "<svg role=\"img\" aria-label=\"per-layer sensitivity\" width=\"\(labelW + chartW + 90)\" height=\"\(height)\" viewBox=\"0 0 \(labelW + chartW + 90) \(height)\">\n"
        for (i, l) in rows.enumerated() {
            let y = top + i * barH
            let drop = max(l.sensitivity?.dropAlone ?? 0, 0)
            let w = Int((drop / maxDrop * Double(chartW)).rounded())
            let color = l.precision == .int8 ? "#1f5fa8" : "#e08a1e"
            let name = l.name.count > 38 ? "…" + l.name.suffix(37) : l.name
            svg += "<text x=\"\(labelW - 8)\" y=\"\(y + 15)\" font-size=\"12\" text-anchor=\"end\">\(F.escape(String(name)))</text>"
            svg += "<rect x=\"\(labelW)\" y=\"\(y + 3)\" width=\"\(max(w, 1))\" height=\"\(barH - 6)\" fill=\"\(color)\"><title>\(F.escape(l.name)): \(String(format: "%.4f", drop)) points</title></rect>"
            svg += "<text x=\"\(labelW + max(w, 1) + 6)\" y=\"\(y + 15)\" font-size=\"11\" fill=\"#5b6670\">\(String(format: "%.3f", drop))</text>\n"
        }
        let axisY = top + rows.count * barH + 4
        svg += "<line x1=\"\(labelW)\" y1=\"\(axisY)\" x2=\"\(labelW + chartW)\" y2=\"\(axisY)\" stroke=\"#9aa4ad\"/>"
        svg += "<text x=\"\(labelW)\" y=\"\(axisY + 16)\" font-size=\"11\" fill=\"#5b6670\">0</text>"
        svg += "<text x=\"\(labelW + chartW)\" y=\"\(axisY + 16)\" font-size=\"11\" fill=\"#5b6670\" text-anchor=\"end\">\(String(format: "%.3f", maxDrop)) points</text>\n</svg>"
        return svg
    }

    static func layerTable(_ m: PrecisionMapDocument) -> String {
        var t = "<table><tr><th>layer</th><th>op</th><th>precision</th><th>MACs</th><th>weights</th><th>drop alone</th><th>recovery</th><th>SQNR dB</th><th>act. scale / zp</th></tr>\n"
        for l in m.layers {
            let s = l.sensitivity
            t += "<tr><td><code>\(F.escape(l.name))</code></td><td>\(F.escape(l.op))</td><td class=\"\(l.precision.rawValue)\">\(l.precision == .int8 ? "INT8" : "FP32")</td>"
            t += "<td>\(l.macs)</td><td>\(F.bytes(l.weightBytes))</td><td>\(s.map { String(format: "%.3f", $0.dropAlone) } ?? "")</td>"
            t += "<td>\(s.map { String(format: "%.3f", $0.recovery) } ?? "")</td><td>\(s?.sqnrDb.map { String(format: "%.1f", $0) } ?? "")</td>"
            t += "<td>\(String(format: "%.4g", l.activation.scale)) / \(l.activation.zeroPoint)</td></tr>\n"
        }
        return t + "</table>"
    }

    /// A scatter of (INT8 share, drop) points, with a dashed budget line.
    static func scatter(_ points: [(x: Double, y: Double, highlight: Bool, label: String)], budget: Double?, xLabel: String, yLabel: String) -> String {
        let w = 640, h = 320, left = 60, bottom = 40, top = 14, right = 20
        let maxY = max((points.map(\.y) + [budget ?? 0]).max() ?? 0, 1e-6) * 1.1
        func px(_ x: Double) -> Int { left + Int((x * Double(w - left - right)).rounded()) }
        func py(_ y: Double) -> Int { h - bottom - Int((max(y, 0) / maxY * Double(h - bottom - top)).rounded()) }
        var svg = "<svg role=\"img\" aria-label=\"\(F.escape(yLabel)) against \(F.escape(xLabel))\" width=\"\(w)\" height=\"\(h)\" viewBox=\"0 0 \(w) \(h)\">\n"
        svg += "<line x1=\"\(left)\" y1=\"\(h - bottom)\" x2=\"\(w - right)\" y2=\"\(h - bottom)\" stroke=\"#9aa4ad\"/><line x1=\"\(left)\" y1=\"\(top)\" x2=\"\(left)\" y2=\"\(h - bottom)\" stroke=\"#9aa4ad\"/>\n"
        for t in [0.0, 0.25, 0.5, 0.75, 1.0] {
            svg += "<text x=\"\(px(t))\" y=\"\(h - bottom + 16)\" font-size=\"11\" text-anchor=\"middle\" fill=\"#5b6670\">\(Int(t * 100))%</text>"
        }
        for t in [0.0, 0.5, 1.0] {
            svg += "<text x=\"\(left - 6)\" y=\"\(py(t * maxY) + 4)\" font-size=\"11\" text-anchor=\"end\" fill=\"#5b6670\">\(String(format: "%.2f", t * maxY))</text>"
        }
        svg += "<text x=\"\((w + left) / 2)\" y=\"\(h - 6)\" font-size=\"12\" text-anchor=\"middle\">\(F.escape(xLabel))</text>"
        svg += "<text x=\"14\" y=\"\((h - bottom + top) / 2)\" font-size=\"12\" text-anchor=\"middle\" transform=\"rotate(-90 14 \((h - bottom + top) / 2))\">\(F.escape(yLabel))</text>\n"
        if let budget {
            svg += "<line x1=\"\(left)\" y1=\"\(py(budget))\" x2=\"\(w - right)\" y2=\"\(py(budget))\" stroke=\"#b3261e\" stroke-dasharray=\"5 4\"/>"
            svg += "<text x=\"\(w - right)\" y=\"\(py(budget) - 5)\" font-size=\"11\" text-anchor=\"end\" fill=\"#b3261e\">budget \(String(format: "%.2f", budget))</text>\n"
        }
        let path = points.sorted { $0.x < $1.x }.map { "\(px($0.x)),\(py($0.y))" }.joined(separator: " ")
        if points.count > 1 { svg += "<polyline points=\"\(path)\" fill=\"none\" stroke=\"#9aa4ad\"/>\n" }
        for p in points {
            svg += "<circle cx=\"\(px(p.x))\" cy=\"\(py(p.y))\" r=\"\(p.highlight ? 6 : 4)\" fill=\"\(p.highlight ? "#1f5fa8" : "#7ea6d6")\"><title>\(F.escape(p.label))</title></circle>\n"
        }
        return svg + "</svg>"
    }

    static func paretoChart(_ m: PrecisionMapDocument) -> String {
        let chosen = Set(m.layers.filter { $0.precision == .int8 }.map(\.name))
        let pts = m.pareto.map { p in
            (x: p.objective, y: p.drop, highlight: Set(p.int8Layers) == chosen,
             label: "\(p.int8Layers.count) INT8 layers, objective \(String(format: "%.3f", p.objective)), drop \(String(format: "%.3f", p.drop))")
        }
        guard !pts.isEmpty else { return "<p class=\"sub\">No Pareto points recorded.</p>" }
        return scatter(pts, budget: m.budget.points, xLabel: "INT8 share (\(m.objective))", yLabel: "drop (points, search split)")
            + "<p class=\"sub\">Each point is a non-dominated map measured on the search split; the large point is the chosen map.</p>"
    }

    static func sweepChart(_ rows: [SweepRow]) -> String {
        scatter(rows.map { (x: $0.int8Share, y: $0.holdoutDrop, highlight: $0.met,
                            label: "budget \($0.budget): INT8 \(String(format: "%.1f", $0.int8Share * 100))%, holdout drop \(String(format: "%.2f", $0.holdoutDrop))") },
                budget: nil, xLabel: "INT8 share of MACs", yLabel: "holdout drop (points)")
    }

    static func sweepTable(_ rows: [SweepRow]) -> String {
        var t = "<table><tr><th>budget</th><th>INT8 share</th><th>search drop</th><th>holdout drop (CI)</th><th>met</th></tr>\n"
        for r in rows {
            t += "<tr><td>\(F.budget(r.budget))%\(r.required ? " (required)" : "")</td><td>\(F.percent(r.int8Share))</td><td>\(F.points(r.searchDrop))</td>"
            t += "<td>\(F.points(r.holdoutDrop)) (\(F.points(r.ciLow)) … \(F.points(r.ciHigh)))</td><td class=\"\(r.met ? "ok" : "bad")\">\(r.met ? "yes" : "no")</td></tr>\n"
        }
        return t + "</table>"
    }
}
