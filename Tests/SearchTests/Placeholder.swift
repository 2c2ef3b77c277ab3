import XCTest

final class SearchTestsPlaceholder: XCTestCase {}
