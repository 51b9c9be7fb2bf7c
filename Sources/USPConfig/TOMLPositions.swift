/// Where each key, value and table header of a TOML document is written.
///
/// TOMLKit 0.6.0 gives line and column for syntax errors only; its tables are toml++ maps with no
/// source positions. So after TOMLKit has accepted a document, this small scanner walks the same
/// text once and records positions by key path, for messages like `ssh.toml:12:3: unknown key`.
/// It assumes valid TOML (TOMLKit checked it first) and never fails: on anything it does not
/// expect it skips a character, so at worst a position is missing and the message has none.
///
/// Paths are key segments as TOMLKit shows them; array elements add a segment `"[i]"`, and the
/// i-th table of an array of tables `[[x]]` is `["x", "[i]"]`.
struct TOMLPositions {
    struct Position: Hashable, Sendable {
        var line: Int
        var column: Int
    }

    /// The first place each key path is written (the key itself, for dotted keys each segment).
    private(set) var keys: [[String]: Position] = [:]
    /// Where each key path's value starts.
    private(set) var values: [[String]: Position] = [:]
    /// `[table]` and `[[array]]` headers.
    private(set) var tables: [[String]: Position] = [:]

    /// The key, else its table header.
    func key(_ path: [String]) -> Position? { keys[path] ?? tables[path] }
    /// The value, else the key, else the header.
    func value(_ path: [String]) -> Position? { values[path] ?? key(path) }

    init(_ text: String) {
        var s = Scanner(Array(text.unicodeScalars))
        scanDocument(&s)
    }

    // MARK: - Scanner

    struct Scanner {
        let chars: [Unicode.Scalar]
        var i = 0
        var line = 1
        var column = 1

        init(_ chars: [Unicode.Scalar]) { self.chars = chars }

        var atEnd: Bool { i >= chars.count }
        var here: Position { Position(line: line, column: column) }
        func peek(_ k: Int = 0) -> Unicode.Scalar? { i + k < chars.count ? chars[i + k] : nil }

        mutating func advance() {
            guard i < chars.count else { return }
            if chars[i] == "\n" {
                line += 1
                column = 1
            } else {
                column += 1
            }
            i += 1
        }

        mutating func skipSpaces() {
            while let c = peek(), c == " " || c == "\t" { advance() }
        }

        mutating func skipComment() {
            if peek() == "#" { while let c = peek(), c != "\n" { advance() } }
        }

        /// Spaces, comments and newlines.
        mutating func skipBlank() {
            while let c = peek() {
                if c == " " || c == "\t" || c == "\n" || c == "\r" { advance() } else if c == "#" { skipComment() } else { break }
            }
        }

        mutating func consume(_ c: Unicode.Scalar) -> Bool {
            if peek() == c { advance(); return true }
            return false
        }

        static func isBare(_ c: Unicode.Scalar) -> Bool {
            switch c {
            case "A"..."Z", "a"..."z", "0"..."9", "_", "-": true
            default: false
            }
        }
    }

    private mutating func scanDocument(_ s: inout Scanner) {
        var current: [String] = []
        var arrayCounts: [[String]: Int] = [:]
        while true {
            s.skipBlank()
            guard let c = s.peek() else { return }
            let start = s.i
            if c == "[" {
                let pos = s.here
                s.advance()
                let isArray = s.consume("[")
                let names = scanKeyPath(&s, prefix: nil).map(\.0)
                s.skipSpaces()
                _ = s.consume("]")
                if isArray { _ = s.consume("]") }
                if isArray {
                    let n = (arrayCounts[names] ?? -1) + 1
                    arrayCounts[names] = n
                    if tables[names] == nil { tables[names] = pos }
                    current = names + ["[\(n)]"]
                    if tables[current] == nil { tables[current] = pos }
                } else {
                    current = resolve(names, arrayCounts)
                    if tables[current] == nil { tables[current] = pos }
                }
            } else {
                scanKeyValue(&s, prefix: current)
            }
            s.skipSpaces()
            s.skipComment()
            if s.i == start { s.advance() }  // never stall on something unexpected
        }
    }

    /// `[a.b]` after `[[a]]` means the last element of `a`.
    private func resolve(_ names: [String], _ arrayCounts: [[String]: Int]) -> [String] {
        var out: [String] = []
        for name in names {
            out.append(name)
            if let n = arrayCounts[out] { out.append("[\(n)]") }
        }
        return out
    }

    private mutating func scanKeyValue(_ s: inout Scanner, prefix: [String]) {
        let segments = scanKeyPath(&s, prefix: prefix)
        guard !segments.isEmpty else { return }
        s.skipSpaces()
        guard s.consume("=") else { return }
        s.skipSpaces()
        scanValue(&s, path: prefix + segments.map(\.0))
    }

    /// Reads `a."b c".'d'` and records each segment's position under `prefix` (unless prefix is nil: a header).
    private mutating func scanKeyPath(_ s: inout Scanner, prefix: [String]?) -> [(String, Position)] {
        var segments: [(String, Position)] = []
        while true {
            s.skipSpaces()
            let pos = s.here
            let name: String
            if s.peek() == "\"" {
                name = scanBasicString(&s)
            } else if s.peek() == "'" {
                name = scanLiteralString(&s)
            } else {
                var n = ""
                while let c = s.peek(), Scanner.isBare(c) { n.unicodeScalars.append(c); s.advance() }
                if n.isEmpty { return segments }
                name = n
            }
            segments.append((name, pos))
            if let prefix {
                let path = prefix + segments.map(\.0)
                if keys[path] == nil { keys[path] = pos }
            }
            s.skipSpaces()
            if !s.consume(".") { return segments }
        }
    }

    private mutating func scanValue(_ s: inout Scanner, path: [String]) {
        if values[path] == nil { values[path] = s.here }
        guard let c = s.peek() else { return }
        switch c {
        case "\"":
            if s.peek(1) == "\"" && s.peek(2) == "\"" { skipMultiline(&s, quote: "\"") } else { _ = scanBasicString(&s) }
        case "'":
            if s.peek(1) == "'" && s.peek(2) == "'" { skipMultiline(&s, quote: "'") } else { _ = scanLiteralString(&s) }
        case "[":
            s.advance()
            var index = 0
            while true {
                s.skipBlank()
                guard let d = s.peek() else { return }
                if d == "]" { s.advance(); return }
                let before = s.i
                scanValue(&s, path: path + ["[\(index)]"])
                index += 1
                s.skipBlank()
                _ = s.consume(",")
                if s.i == before { s.advance() }
            }
        case "{":
            s.advance()
            while true {
                s.skipSpaces()
                guard let d = s.peek() else { return }
                if d == "}" { s.advance(); return }
                let before = s.i
                scanKeyValue(&s, prefix: path)
                s.skipSpaces()
                _ = s.consume(",")
                if s.i == before { s.advance() }
            }
        default:
            var token = ""
            while let d = s.peek() {
                if d == " " || d == "\t" || d == "\n" || d == "\r" || d == "," || d == "]" || d == "}" || d == "#" {
                    // A date-time may use a space between date and time: 1979-05-27 07:32:00Z.
                    if d == " ", token.count == 10, token.unicodeScalars.filter({ $0 == "-" }).count == 2,
                       let next = s.peek(1), ("0"..."9").contains(next) {
                        token.unicodeScalars.append(d)
                        s.advance()
                        continue
                    }
                    break
                }
                token.unicodeScalars.append(d)
                s.advance()
            }
        }
    }

    /// `"…"` with escapes decoded (for quoted keys).
    private func scanBasicString(_ s: inout Scanner) -> String {
        var out = ""
        s.advance()
        while let c = s.peek(), c != "\n" {
            s.advance()
            if c == "\"" { return out }
            if c == "\\", let e = s.peek() {
                s.advance()
                switch e {
                case "n": out += "\n"
                case "t": out += "\t"
                case "r": out += "\r"
                case "b": out += "\u{8}"
                case "f": out += "\u{C}"
                case "e": out += "\u{1B}"
                case "u", "U":
                    var hex = ""
                    for _ in 0..<(e == "u" ? 4 : 8) {
                        if let h = s.peek() { hex.unicodeScalars.append(h); s.advance() }
                    }
                    if let v = UInt32(hex, radix: 16), let scalar = Unicode.Scalar(v) { out.unicodeScalars.append(scalar) }
                default: out.unicodeScalars.append(e)
                }
            } else {
                out.unicodeScalars.append(c)
            }
        }
        return out
    }

    private func scanLiteralString(_ s: inout Scanner) -> String {
        var out = ""
        s.advance()
        while let c = s.peek(), c != "\n" {
            s.advance()
            if c == "'" { return out }
            out.unicodeScalars.append(c)
        }
        return out
    }

    private func skipMultiline(_ s: inout Scanner, quote: Unicode.Scalar) {
        s.advance(); s.advance(); s.advance()
        while let c = s.peek() {
            if c == "\\" && quote == "\"" {
                s.advance()
                s.advance()
                continue
            }
            if c == quote && s.peek(1) == quote && s.peek(2) == quote {
                s.advance(); s.advance(); s.advance()
                // Up to two more quotes belong to the content: """a"""" ends with a quote.
                var extra = 0
                while extra < 2, s.peek() == quote { s.advance(); extra += 1 }
                return
            }
            s.advance()
        }
    }
}
