import Foundation

/// The one JSON encoder for everything mpq writes: pretty, sorted keys, unescaped
/// slashes. Sorted keys make the same value give the same bytes; a plain JSONEncoder
/// orders dictionary and object keys by hash, which changes between runs.
public func deterministicJSONEncoder(snakeCase: Bool = false) -> JSONEncoder {
    let enc = JSONEncoder()
    enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    if snakeCase { enc.keyEncodingStrategy = .convertToSnakeCase }
    return enc
}
