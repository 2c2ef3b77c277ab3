import Foundation
import XCTest

/// The batch-system examples (docs/scale.md) must at least parse: the YAML files pass a
/// small structural check (no real YAML parser is a dependency of mpq), the Slurm script
/// passes `bash -n`, and each runs the shards and the merge.
final class ExampleSyntaxTests: XCTestCase {
    let examples = CLI.root.appendingPathComponent("examples").path

    func testYAMLExamplesAreWellFormedAndShardThenMerge() throws {
        for file in ["kubernetes/sensitivity-job.yaml", "ci/sharded-sensitivity.yml", "ci/budget-sweep.yml"] {
            let text = try String(contentsOfFile: "\(examples)/\(file)", encoding: .utf8)
            XCTAssertEqual(YAMLShape.problems(text), [], file)
        }
        let k8s = try String(contentsOfFile: "\(examples)/kubernetes/sensitivity-job.yaml", encoding: .utf8)
        for needle in ["kind: Job", "completionMode: Indexed", "MPQ_SHARD_COUNT", "mpq sensitivity", "--shard auto", "mpq merge"] {
            XCTAssertTrue(k8s.contains(needle), "kubernetes example lacks \(needle)")
        }
        let actions = try String(contentsOfFile: "\(examples)/ci/sharded-sensitivity.yml", encoding: .utf8)
        for needle in ["matrix:", "--shard ${{ matrix.shard }}/4", "mpq merge", "needs: shard", "--sensitivity sensitivity.json"] {
            XCTAssertTrue(actions.contains(needle), "actions example lacks \(needle)")
        }
    }

    func testTheChecksCatchBrokenYAML() {
        XCTAssertFalse(YAMLShape.problems("a:\n\tb: 1\n").isEmpty, "tab indentation")
        XCTAssertFalse(YAMLShape.problems("a: 1\n  b: 2\n").isEmpty, "indented under a scalar")
        XCTAssertFalse(YAMLShape.problems("a:\n  b: 1\n  b: 2\n").isEmpty, "duplicate key")
        XCTAssertFalse(YAMLShape.problems("a: [1, 2\n").isEmpty, "unclosed flow sequence")
        XCTAssertFalse(YAMLShape.problems("a:\n    b: 1\n  c: 2\n").isEmpty, "dedent to a column never opened")
        XCTAssertEqual(YAMLShape.problems("a:\n  - b: 1\n    c: |\n      x: y: z\n  - d\n"), [])
    }

    func testSlurmScriptPassesBashSyntaxCheck() throws {
        let script = "\(examples)/slurm/sensitivity.sbatch"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = ["-n", script]
        let err = Pipe()
        p.standardError = err
        try p.run()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))
        let text = try String(contentsOfFile: script, encoding: .utf8)
        for needle in ["#SBATCH --array=", "--shard auto", "mpq merge", "afterok"] {
            XCTAssertTrue(text.contains(needle), "slurm example lacks \(needle)")
        }
    }
}

/// The block-structure rules of YAML that hand-written job files break: indentation by
/// spaces only, a deeper line only under a key that opens a node or inside a list item,
/// no duplicate keys in one mapping, block scalars
/// (`|`, `>`) skipped, flow brackets and quotes closed. Not a YAML parser.
enum YAMLShape {
    static func problems(_ text: String) -> [String] {
        var problems: [String] = []
        // Open nodes, outermost first: the column their keys or items start at, and the keys seen.
        var stack: [(column: Int, keys: Set<String>)] = [(0, [])]
        var opensNode = false
        var blockScalarParent: Int?
        let blockIndicators: Set<String> = ["|", "|-", "|+", ">", ">-", ">+"]
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = String(raw), n = i + 1
            let indent = line.prefix { $0 == " " }.count
            let body = line.dropFirst(indent)
            if let parent = blockScalarParent {
                if body.isEmpty || indent > parent { continue }
                blockScalarParent = nil
            }
            if body.first == "\t" { problems.append("line \(n): tab in indentation"); continue }
            if body.isEmpty || body.hasPrefix("#") { continue }
            if body == "---" { stack = [(0, [])]; opensNode = false; continue }
            while stack.count > 1, stack.last!.column > indent { stack.removeLast() }
            if indent > stack.last!.column {
                guard opensNode else { problems.append("line \(n): indented under a line that opens no node"); opensNode = false; continue }
                stack.append((indent, []))
            }
            var content = stripComment(String(body))
            let isItem = content.hasPrefix("- ") || content == "-"
            if isItem { content = String(content.dropFirst(2)).trimmingCharacters(in: .whitespaces) }
            if let colon = keySeparator(content) {
                let key = String(content[..<colon]).trimmingCharacters(in: .whitespaces)
                let value = content[content.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                if isItem {
                    // `- key: value` starts the item's mapping two columns to the right.
                    stack.append((indent + 2, [key]))
                } else {
                    if stack[stack.count - 1].keys.contains(key) { problems.append("line \(n): duplicate key '\(key)'") }
                    stack[stack.count - 1].keys.insert(key)
                }
                opensNode = value.isEmpty
                if blockIndicators.contains(value) { blockScalarParent = isItem ? indent + 2 : indent }
                if let p = unbalanced(value) { problems.append("line \(n): \(p)") }
            } else {
                opensNode = isItem && content.isEmpty
                if isItem && blockIndicators.contains(content) { blockScalarParent = indent }
                else if !isItem { problems.append("line \(n): neither 'key: value' nor a '- ' list item: \(content)") }
                if let p = unbalanced(content) { problems.append("line \(n): \(p)") }
            }
        }
        return problems
    }

    /// The `:` that ends a mapping key (followed by a space or the end), outside quotes and brackets.
    static func keySeparator(_ s: String) -> String.Index? {
        var quote: Character?
        var depth = 0
        var i = s.startIndex
        while i < s.endIndex {
            let c = s[i]
            if let q = quote { if c == q { quote = nil } }
            else if c == "\"" || c == "'" { if i == s.startIndex { quote = c } }
            else if c == "[" || c == "{" { depth += 1 }
            else if c == "]" || c == "}" { depth -= 1 }
            else if c == ":" && depth == 0 {
                let next = s.index(after: i)
                if next == s.endIndex || s[next] == " " { return i }
            }
            i = s.index(after: i)
        }
        return nil
    }

    static func stripComment(_ s: String) -> String {
        guard let r = s.range(of: " #") else { return s }
        let before = s[..<r.lowerBound]
        // A '#' inside quotes is text.
        return before.filter { $0 == "\"" }.count % 2 == 0 && before.filter { $0 == "'" }.count % 2 == 0 ? String(before) : s
    }

    static func unbalanced(_ value: String) -> String? {
        guard let first = value.first, first == "[" || first == "{" || first == "\"" || first == "'" else { return nil }
        if first == "\"" || first == "'" {
            return value.count >= 2 && value.last == first ? nil : "unclosed quote in \(value)"
        }
        var depth = 0
        for c in value { if c == "[" || c == "{" { depth += 1 } else if c == "]" || c == "}" { depth -= 1 } }
        return depth == 0 ? nil : "unbalanced brackets in \(value)"
    }
}
