import ArgumentParser
import Foundation
import Search

/// `--shard K/N` (0-based K, as Kubernetes and CI matrices count) or `--shard auto`, which
/// reads the batch system's environment (docs/scale.md, "Shard protocol"):
/// 1. `MPQ_SHARD_INDEX` + `MPQ_SHARD_COUNT` (any system: set them yourself);
/// 2. Kubernetes indexed Job: `JOB_COMPLETION_INDEX` + `MPQ_SHARD_COUNT` (Kubernetes does not
///    export the completion count, so the Job sets it to `.spec.completions`);
/// 3. Slurm job array: `SLURM_ARRAY_TASK_ID` - `SLURM_ARRAY_TASK_MIN` (0 if unset) of
///    `SLURM_ARRAY_TASK_COUNT`.
struct ShardOptions: ParsableArguments {
    @Option(help: "Compute only shard K of N (0-based, K/N), or 'auto' from MPQ_SHARD_INDEX/MPQ_SHARD_COUNT, JOB_COMPLETION_INDEX (Kubernetes indexed Job, with MPQ_SHARD_COUNT) or SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT; combine the parts with mpq merge.")
    var shard: String?

    func validate() throws {
        if let shard, shard != "auto" { _ = try Self.parse(shard) }
    }

    /// The shard to compute, nil without `--shard`.
    func resolved(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Shard? {
        guard let shard else { return nil }
        return shard == "auto" ? try Self.fromEnvironment(environment) : try Self.parse(shard)
    }

    static func parse(_ text: String) throws -> Shard {
        let p = text.split(separator: "/", omittingEmptySubsequences: false)
        guard p.count == 2, let k = Int(p[0]), let n = Int(p[1]), p[0].allSatisfy(\.isASCII), n >= 1, n <= 1_000_000, k >= 0, k < n else {
            throw ValidationError("--shard '\(text)' must be K/N with 0 <= K < N (0-based, e.g. 0/3, 1/3, 2/3) or auto")
        }
        return Shard(index: k, count: n)
    }

    static func fromEnvironment(_ env: [String: String]) throws -> Shard {
        func number(_ name: String) throws -> Int? {
            guard let v = env[name] else { return nil }
            guard let n = Int(v.trimmingCharacters(in: .whitespaces)) else {
                throw CLIError("--shard auto: \(name)='\(v)' is not an integer")
            }
            return n
        }
        func make(_ k: Int, _ n: Int, _ source: String) throws -> Shard {
            guard n >= 1, k >= 0, k < n else {
                throw CLIError("--shard auto: \(source) gives shard \(k) of \(n), outside 0..<\(n)")
            }
            return Shard(index: k, count: n)
        }
        if let k = try number("MPQ_SHARD_INDEX") {
            guard let n = try number("MPQ_SHARD_COUNT") else { throw CLIError("--shard auto: MPQ_SHARD_INDEX is set but MPQ_SHARD_COUNT is not") }
            return try make(k, n, "MPQ_SHARD_INDEX/MPQ_SHARD_COUNT")
        }
        if let k = try number("JOB_COMPLETION_INDEX") {
            guard let n = try number("MPQ_SHARD_COUNT") else {
                throw CLIError("--shard auto: JOB_COMPLETION_INDEX (Kubernetes indexed Job) is set but MPQ_SHARD_COUNT is not; set it to the Job's completions (examples/kubernetes/sensitivity-job.yaml)")
            }
            return try make(k, n, "JOB_COMPLETION_INDEX/MPQ_SHARD_COUNT")
        }
        if let id = try number("SLURM_ARRAY_TASK_ID") {
            guard let n = try number("SLURM_ARRAY_TASK_COUNT") else { throw CLIError("--shard auto: SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not") }
            if let step = try number("SLURM_ARRAY_TASK_STEP"), step != 1 {
                throw CLIError("--shard auto: the Slurm array has step \(step); use a contiguous array such as --array=0-\(n - 1)")
            }
            return try make(id - (try number("SLURM_ARRAY_TASK_MIN") ?? 0), n, "SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN of SLURM_ARRAY_TASK_COUNT")
        }
        throw CLIError("--shard auto: none of MPQ_SHARD_INDEX, JOB_COMPLETION_INDEX or SLURM_ARRAY_TASK_ID is set; give --shard K/N")
    }
}
