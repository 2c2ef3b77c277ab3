import ArgumentParser
import Search

/// Strict parsing for every fractional flag: a plain decimal number (`Budget.decimal`),
/// never hex (`0x10`), `nan` or `inf`, which `Double(_:)` and so ArgumentParser accept.
/// Ranges are checked in each command's `validate()`, with the flag's own message.
func decimal(_ text: String) throws -> Double {
    guard let v = Budget.decimal(text) else {
        throw ValidationError("'\(text)' is not a plain decimal number (such as 0.5 or 30; no hex, nan or inf)")
    }
    return v
}

/// The largest batch, population, generation count... a flag accepts: far above any real
/// use, low enough that sizes computed from it cannot overflow.
let largestCount = 1 << 24

/// Throws when an integer flag lies outside `range`.
func checkRange(_ flag: String, _ value: Int, _ range: ClosedRange<Int>) throws {
    guard range.contains(value) else {
        throw ValidationError("\(flag) must lie in \(range.lowerBound)...\(range.upperBound), got \(value)")
    }
}
