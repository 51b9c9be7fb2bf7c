import Foundation
import Testing
import USPCore

/// The spec's error table (docs/PROTOCOL.md §9) and the code agree: every code this build sends
/// or understands has a row with its wire value and name, and every row is a code of this build.
@Suite struct ErrorCodeTableTests {
    static var protocolText: String {
        get throws {
            let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            return try String(contentsOf: root.appendingPathComponent("docs/PROTOCOL.md"), encoding: .utf8)
        }
    }

    /// `| 607 | `store_unavailable` | ...` rows of section 9: value → name.
    static func rows(_ text: String) -> [UInt16: String] {
        var rows: [UInt16: String] = [:]
        guard let start = text.range(of: "\n## 9. Error codes"), let end = text.range(of: "\n## 10.", range: start.upperBound..<text.endIndex) else {
            Issue.record("docs/PROTOCOL.md has no section 9 followed by section 10")
            return [:]
        }
        for line in text[start.upperBound..<end.lowerBound].split(separator: "\n") where line.hasPrefix("| ") {
            let cells = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count >= 2, let value = UInt16(cells[0]), cells[1].hasPrefix("`"), cells[1].hasSuffix("`") else { continue }
            rows[value] = String(cells[1].dropFirst().dropLast())
        }
        return rows
    }

    @Test func everyCodeHasItsRowAndEveryRowIsACode() throws {
        let rows = Self.rows(try Self.protocolText)
        for code in USPError.Code.all {
            #expect(rows[code.wireValue] == code.name, "code \(code.wireValue) \(code.name): the table says \(rows[code.wireValue] ?? "nothing")")
        }
        let known = Set(USPError.Code.all.map(\.wireValue))
        for (value, name) in rows where !known.contains(value) {
            Issue.record("docs/PROTOCOL.md has a row \(value) \(name) that is not a code of this build")
        }
        #expect(rows[607] == "store_unavailable")
    }
}
