import Foundation
import TOMLKit
import USPErrors
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads one TOML file for a loader: the bytes (at most 1 MiB, UTF-8, no NUL), TOMLKit's parse,
/// the positions of every key (`TOMLPositions`), and typed accessors that record every problem
/// with its position instead of stopping at the first. The loader throws the earliest problem
/// in the file (`firstError`), so the message a person sees is the first thing to fix.
///
/// TOMLKit 0.6.0 never frees a parsed document (its tables have no deinit and the C side has no
/// free function), so each load leaks the parsed tree, about the size of the file. Loads happen
/// at start and when a file changes, so this stays small; a poller must not reload unchanged files.
final class TOMLReader {
    let path: String
    let root: TOMLTable
    let positions: TOMLPositions
    private(set) var errors: [ConfigError] = []

    static let maximumFileSize = 1 << 20

    init(path: String, text: String) throws(ConfigError) {
        self.path = path
        try Self.checkCharacters(text, path: path)
        try Self.checkForTOMLKitTraps(text, path: path)
        do {
            root = try TOMLTable(string: text)
        } catch let e as TOMLParseError {
            throw ConfigError(.syntax, path: path, line: e.source.begin.line, column: e.source.begin.column,
                              Self.syntaxMessage(e.description))
        } catch {
            throw ConfigError(.syntax, path: path, "\(error)")
        }
        positions = TOMLPositions(text)
    }

    convenience init(path: String) throws(ConfigError) {
        try self.init(path: path, text: try Self.readText(path))
    }

    /// The file's text, or `.unreadable` / `.syntax` (invalid UTF-8, with its position).
    static func readText(_ path: String) throws(ConfigError) -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ConfigError(.unreadable, path: path, "cannot open: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw ConfigError(.unreadable, path: path, "cannot stat: \(String(cString: strerror(errno)))") }
        guard st.st_mode & S_IFMT == S_IFREG else { throw ConfigError(.unreadable, path: path, "not a regular file") }
        guard st.st_size <= maximumFileSize else {
            throw ConfigError(.unreadable, path: path, "file is \(st.st_size) bytes, larger than the 1 MiB a configuration file may be")
        }
        var bytes = [UInt8](repeating: 0, count: Int(st.st_size) + 1)
        var count = 0
        while count < bytes.count {
            let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + count, $0.count - count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw ConfigError(.unreadable, path: path, "cannot read: \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            count += n
            if count > maximumFileSize { throw ConfigError(.unreadable, path: path, "file is larger than the 1 MiB a configuration file may be") }
        }
        return try decodeUTF8(bytes[..<count], path: path)
    }

    /// Strict UTF-8, reporting the line and column of the first bad byte.
    static func decodeUTF8(_ bytes: ArraySlice<UInt8>, path: String) throws(ConfigError) -> String {
        var scalars = String.UnicodeScalarView()
        var iterator = bytes.makeIterator()
        var decoder = UTF8()
        var line = 1, column = 1
        loop: while true {
            switch decoder.decode(&iterator) {
            case .scalarValue(let s):
                scalars.append(s)
                if s == "\n" { line += 1; column = 1 } else { column += 1 }
            case .emptyInput:
                break loop
            case .error:
                throw ConfigError(.syntax, path: path, line: line, column: column, "invalid UTF-8")
            }
        }
        return String(scalars)
    }

    /// TOMLKit hands the text to C as a NUL-terminated string, so a NUL would silently end the
    /// file early; other control characters are refused by TOML itself.
    static func checkCharacters(_ text: String, path: String) throws(ConfigError) {
        var line = 1, column = 1
        for s in text.unicodeScalars {
            if s == "\u{0}" { throw ConfigError(.syntax, path: path, line: line, column: column, "NUL character") }
            if s == "\n" { line += 1; column = 1 } else { column += 1 }
        }
    }

    /// toml++ (TOMLKit 0.6.0) fails an assertion, aborting the process (with NDEBUG: undefined
    /// behaviour), on three kinds of malformed text that it does not check itself, so one bad apps.d
    /// file would take uspd down: a table header whose key starts with a character that can start no
    /// key (`[?]`, `[[ é]]`, `[` at the end of a line), a `}` where an array expects a value
    /// (`x = [}`, `x = [1, }`; also U+0085, U+2028 or U+2029 there), and a date followed by a space and one digit (`x = 1979-05-27 0`),
    /// which it starts to read as a date-time. All are refused here first, as the syntax errors they
    /// are. The text is walked as toml++ walks it: strings, comments, and the `[`/`{` nesting of
    /// values; a header is a `[` that starts a line outside any value.
    static func checkForTOMLKitTraps(_ text: String, path: String) throws(ConfigError) {
        let s = Array(text.unicodeScalars)
        var i = 0, line = 1, column = 1
        var open: [Unicode.Scalar] = []  // the `[` and `{` of the values being read
        var lineStart = true
        var previous: Unicode.Scalar = "\n"  // the last character that is not space, line break or comment
        func advance() {
            if s[i] == "\n" { line += 1; column = 1 } else { column += 1 }
            i += 1
        }
        func at(_ k: Int, _ c: Unicode.Scalar) -> Bool { i + k < s.count && s[i + k] == c }
        if at(0, "\u{FEFF}") { i = 1 }  // a byte order mark, which toml++ skips
        func refuse(_ what: String) -> ConfigError {
            let k = s[i]
            let shown = k.properties.generalCategory == .control ? String(format: "U+%04X", k.value) : "'\(k)'"
            return ConfigError(.syntax, path: path, line: line, column: column, "Error while parsing \(what), saw \(shown)")
        }
        /// Skips a string starting at `i` (a quote); stops at the end of the text if it never closes.
        func skipString() {
            let quote = s[i]
            if at(1, quote) && at(2, quote) {
                advance(); advance(); advance()
                while i < s.count, !(s[i] == quote && at(1, quote) && at(2, quote)) {
                    if quote == "\"", s[i] == "\\", i + 1 < s.count { advance() }
                    advance()
                }
                while i < s.count, s[i] == quote { advance() }  // the closing quotes, and up to two more before them
                return
            }
            advance()
            while i < s.count, s[i] != quote, s[i] != "\n" {
                if quote == "\"", s[i] == "\\", i + 1 < s.count { advance() }
                advance()
            }
            if i < s.count, s[i] == quote { advance() }
        }
        while i < s.count {
            let c = s[i]
            switch c {
            case "\n":
                advance()
                lineStart = true
                continue
            case " ", "\t", "\r":
                advance()
                continue
            case "#":
                while i < s.count, s[i] != "\n" { advance() }
                continue
            case "\"", "'":
                skipString()
                lineStart = false
                previous = c
                continue
            case "[" where open.isEmpty && lineStart:
                advance()
                if at(0, "[") { advance() }
                while at(0, " ") || at(0, "\t") { advance() }
                if i < s.count {
                    let k = s[i]
                    let bare = ("a"..."z").contains(k) || ("A"..."Z").contains(k) || ("0"..."9").contains(k) || k == "_" || k == "-"
                    guard bare || k == "\"" || k == "'" || k == "]" else { throw refuse("table header: expected a key") }
                }
                // The rest of the header's line (keys, then at most a comment).
                while i < s.count, s[i] != "\n" {
                    if s[i] == "\"" || s[i] == "'" { skipString() } else { advance() }
                }
                previous = "]"
                continue
            case "[", "{":
                open.append(c)
            case "]":
                if open.last == "[" { open.removeLast() }
            case "}", "\u{85}", "\u{2028}", "\u{2029}":
                // What ends a value for toml++ but is not skipped in an array: `}`, and the Unicode line breaks.
                if open.last == "[", previous == "[" || previous == "," { throw refuse("array: expected a value or ']'") }
                if c == "}", open.last == "{" { open.removeLast() }
            case "0"..."9" where previous == "=" || (open.last == "[" && (previous == "[" || previous == ",")):
                // A value that starts like `dddd-dd-dd d`: toml++ takes it for a date-time with a
                // space and asserts when the value ends right after that one digit.
                var j = i, kept = 0
                var dashes = (false, false)
                while j < s.count, !Self.endsTOMLValue(s[j]), kept <= 10 {
                    if s[j] != "_" {
                        if kept == 4 { dashes.0 = s[j] == "-" } else if kept == 7 { dashes.1 = s[j] == "-" }
                        kept += 1
                    }
                    j += 1
                }
                if kept == 10, dashes.0, dashes.1, j + 2 < s.count, s[j] == " ", ("0"..."9").contains(s[j + 1]), Self.endsTOMLValue(s[j + 2]) {
                    column += j + 1 - i
                    i = j + 1
                    throw refuse("date-time: expected a time after the date")
                }
            default:
                break
            }
            lineStart = false
            previous = c
            advance()
        }
    }

    /// What ends a value for toml++: its whitespace (ASCII and Unicode), `]`, `}`, `,` and `#`.
    static func endsTOMLValue(_ c: Unicode.Scalar) -> Bool {
        switch c.value {
        case 0x09, 0x20, 0x0A...0x0D, 0x85, 0xA0, 0x1680, 0x180E, 0x2000...0x200B, 0x2028, 0x2029, 0x202F, 0x205F, 0x2060, 0x3000, 0xFEFF:
            return true
        default:
            return c == "]" || c == "}" || c == "," || c == "#"
        }
    }

    /// toml++ messages start with "Error while parsing …"; keep them, minus a trailing period.
    static func syntaxMessage(_ description: String) -> String {
        var m = description.trimmingCharacters(in: .whitespacesAndNewlines)
        if m.hasSuffix(".") { m.removeLast() }
        return m.replacingOccurrences(of: "\n", with: " ")
    }

    // MARK: - Problems

    func report(_ code: ConfigError.Code, _ position: TOMLPositions.Position?, _ message: String) {
        errors.append(ConfigError(code, path: path, line: position?.line, column: position?.column, message))
    }

    func reportAtKey(_ code: ConfigError.Code, _ keyPath: [String], _ message: String) {
        report(code, positions.key(keyPath), message)
    }

    func reportAtValue(_ code: ConfigError.Code, _ keyPath: [String], _ message: String) {
        report(code, positions.value(keyPath), message)
    }

    /// The earliest problem in the file (problems without a position come last).
    var firstError: ConfigError? {
        errors.enumerated().min { a, b in
            let ka = (a.element.line ?? Int.max, a.element.column ?? Int.max, a.offset)
            let kb = (b.element.line ?? Int.max, b.element.column ?? Int.max, b.offset)
            return ka < kb
        }?.element
    }

    var sortedErrors: [ConfigError] {
        errors.enumerated().sorted { a, b in
            (a.element.line ?? Int.max, a.element.column ?? Int.max, a.offset) < (b.element.line ?? Int.max, b.element.column ?? Int.max, b.offset)
        }.map(\.element)
    }

    // MARK: - Names

    /// `launch.exec`, `expected_request_body."my field"`, `listen[1]`.
    static func display(_ keyPath: [String]) -> String {
        var out = ""
        for segment in keyPath {
            if segment.hasPrefix("["), segment.hasSuffix("]") {
                out += segment
                continue
            }
            if !out.isEmpty { out += "." }
            if !segment.isEmpty, segment.unicodeScalars.allSatisfy(TOMLPositions.Scanner.isBare) {
                out += segment
            } else {
                out += "\"" + segment.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
            }
        }
        return out
    }

    static func typeName(_ type: TOMLType) -> String {
        switch type {
        case .table: "a table"
        case .array: "an array"
        case .string: "a string"
        case .int: "an integer"
        case .double: "a float"
        case .bool: "a boolean"
        case .date: "a date"
        case .time: "a time"
        case .dateTime: "a date-time"
        }
    }

    // MARK: - Typed access

    /// Reports every key of `table` not in `allowed`, with a suggestion for a near miss.
    func checkKeys(_ table: TOMLTable, at tablePath: [String], allowed: [String]) {
        for key in table.keys where !allowed.contains(key) {
            var message = "unknown key \"\(key)\""
            if !tablePath.isEmpty { message += " in [\(Self.display(tablePath))]" }
            if let near = nearestName(to: key, among: allowed) {
                message += " (did you mean \"\(near)\"?)"
            }
            reportAtKey(.unknownKey, tablePath + [key], message)
        }
    }

    func wrongType(_ keyPath: [String], expected: String, got value: TOMLValueConvertible) {
        reportAtValue(.wrongType, keyPath, "\(Self.display(keyPath)) must be \(expected), not \(Self.typeName(value.type))")
    }

    func string(_ table: TOMLTable, _ tablePath: [String], _ key: String) -> String? {
        guard let v = table[key] else { return nil }
        guard let s = v.string else { wrongType(tablePath + [key], expected: "a string", got: v); return nil }
        return s
    }

    func bool(_ table: TOMLTable, _ tablePath: [String], _ key: String) -> Bool? {
        guard let v = table[key] else { return nil }
        guard let b = v.bool else { wrongType(tablePath + [key], expected: "true or false", got: v); return nil }
        return b
    }

    func integer(_ table: TOMLTable, _ tablePath: [String], _ key: String, in range: ClosedRange<Int>) -> Int? {
        guard let v = table[key] else { return nil }
        guard let i = v.int else { wrongType(tablePath + [key], expected: "an integer", got: v); return nil }
        guard range.contains(i) else {
            reportAtValue(.outOfRange, tablePath + [key], "\(Self.display(tablePath + [key])) must be \(Self.describe(range)), got \(i)")
            return nil
        }
        return i
    }

    /// A number: TOML integers and floats both count. `range` bounds are inclusive unless `lowerOpen`.
    func number(_ table: TOMLTable, _ tablePath: [String], _ key: String, in range: ClosedRange<Double>, lowerOpen: Bool = false) -> Double? {
        guard let v = table[key] else { return nil }
        let d: Double
        if let i = v.int { d = Double(i) } else if let f = v.double { d = f } else {
            wrongType(tablePath + [key], expected: "a number", got: v)
            return nil
        }
        guard d.isFinite, range.contains(d), !(lowerOpen && d == range.lowerBound) else {
            let bounds = lowerOpen ? "more than \(Self.format(range.lowerBound)) and at most \(Self.format(range.upperBound))"
                                   : "\(Self.format(range.lowerBound))…\(Self.format(range.upperBound))"
            reportAtValue(.outOfRange, tablePath + [key], "\(Self.display(tablePath + [key])) must be \(bounds), got \(Self.format(d))")
            return nil
        }
        return d
    }

    func table(_ table: TOMLTable, _ tablePath: [String], _ key: String) -> TOMLTable? {
        guard let v = table[key] else { return nil }
        guard let t = v.table else { wrongType(tablePath + [key], expected: "a table", got: v); return nil }
        return t
    }

    /// An array of strings; wrong elements are reported at their own position.
    func strings(_ table: TOMLTable, _ tablePath: [String], _ key: String) -> [String]? {
        guard let v = table[key] else { return nil }
        guard let a = v.array else { wrongType(tablePath + [key], expected: "an array of strings", got: v); return nil }
        var out: [String] = []
        var ok = true
        for i in 0..<a.count {
            let element = a[i]
            if let s = element.string { out.append(s) } else {
                wrongType(tablePath + [key, "[\(i)]"], expected: "a string", got: element)
                ok = false
            }
        }
        return ok ? out : nil
    }

    static func describe(_ range: ClosedRange<Int>) -> String {
        if range.upperBound == Int.max { return "at least \(range.lowerBound)" }
        return "\(range.lowerBound)…\(range.upperBound)"
    }

    static func format(_ d: Double) -> String {
        d == d.rounded() && abs(d) < 1e15 ? String(Int(d)) : String(d)
    }
}
