/// Prints the demo's story: a heading per connection, one line per step with the bytes that
/// step put on the wire. `--quiet` keeps only the summary.
struct Narrator {
    let quiet: Bool
    static let width = 84

    func line(_ text: String = "") {
        if !quiet { print(text) }
    }

    func section(_ title: String) {
        line()
        line(title)
    }

    /// One step, with the wire traffic it caused aligned on the right.
    func step(_ text: String, _ wire: WireMeter.Delta? = nil) {
        let head = "  " + text
        guard let wire else { return line(head) }
        let pad = max(2, Self.width - head.count)
        let traffic = wire.sent == 0 && wire.received == 0 ? "(same flight)" : wire.description
        line(head + String(repeating: " ", count: pad) + traffic)
    }

    /// The last line, printed even with `--quiet`.
    func summary(_ text: String) { print(text) }
}

extension String {
    /// The first `n` characters followed by an ellipsis, for secrets shown in passing.
    func abbreviated(_ n: Int) -> String { count <= n ? self : prefix(n) + "…" }
}
