import XCTest

final class ONNXTestsPlaceholder: XCTestCase {}
