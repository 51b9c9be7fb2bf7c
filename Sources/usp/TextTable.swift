/// Columns for people: each cell padded to its column's width, two spaces between columns,
/// the last one unpadded, no trailing blanks.
enum TextTable {
    static func render(_ header: [String], _ rows: [[String]]) -> String {
        var widths = header.map(\.count)
        for r in rows { for (i, cell) in r.enumerated() { widths[i] = max(widths[i], cell.count) } }
        func line(_ cells: [String]) -> String {
            var text = cells.enumerated().map { i, cell in i == cells.count - 1 ? cell : cell + String(repeating: " ", count: max(0, widths[i] - cell.count)) }
                .joined(separator: "  ")
            while text.last == " " { text.removeLast() }
            return text + "\n"
        }
        return ([header] + rows).map(line).joined()
    }
}
