/// A strict RFC 8259 parser from UTF-8 bytes to `JSONValue`.
///
/// Stricter than Foundation where it matters for a protocol: duplicate object keys,
/// lone surrogates, raw control characters in strings, trailing bytes, non-finite numbers and
/// nesting deeper than `SessionMessage.Limits.maxJSONDepth` are errors. Every failure is
/// `.malformedMessage` naming the byte offset; nothing here can trap on hostile input.
struct JSONTextParser {
    private let bytes: UnsafeRawBufferPointer
    private var i = 0
    private let context: String

    init(_ bytes: UnsafeRawBufferPointer, context: String) {
        self.bytes = bytes
        self.context = context
    }

    /// Parses one complete document (a single value with optional surrounding whitespace).
    mutating func parseDocument() throws(USPError) -> JSONValue {
        guard String(validating: bytes, as: UTF8.self) != nil else {
            throw USPError(.malformedMessage, "\(context): JSON text is not valid UTF-8")
        }
        skipWhitespace()
        guard i < bytes.count else { throw fail("empty JSON text") }
        let value = try parseValue(depth: 1)
        skipWhitespace()
        guard i == bytes.count else { throw fail("unexpected \(describeByte()) after the JSON value") }
        return value
    }

    private func fail(_ what: String) -> USPError {
        USPError(.malformedMessage, "\(context): invalid JSON at byte \(i): \(what)")
    }

    private func describeByte() -> String {
        guard i < bytes.count else { return "end of input" }
        let b = bytes[i]
        if b >= 0x21 && b < 0x7F { return "'\(Character(Unicode.Scalar(b)))'" }
        return "byte 0x" + String(b, radix: 16)
    }

    private mutating func skipWhitespace() {
        while i < bytes.count {
            switch bytes[i] {
            case 0x20, 0x09, 0x0A, 0x0D: i += 1
            default: return
            }
        }
    }

    private mutating func expectLiteral(_ literal: StaticString, _ value: JSONValue) throws(USPError) -> JSONValue {
        let n = literal.utf8CodeUnitCount
        guard bytes.count - i >= n else { throw fail("truncated literal") }
        let lit = UnsafeRawBufferPointer(start: literal.utf8Start, count: n)
        for k in 0..<n where bytes[i + k] != lit[k] {
            throw fail("invalid literal")
        }
        i += n
        return value
    }

    private mutating func parseValue(depth: Int) throws(USPError) -> JSONValue {
        guard i < bytes.count else { throw fail("unexpected end of input, expected a value") }
        switch bytes[i] {
        case UInt8(ascii: "{"): return try parseObject(depth: depth)
        case UInt8(ascii: "["): return try parseArray(depth: depth)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): return try expectLiteral("true", .bool(true))
        case UInt8(ascii: "f"): return try expectLiteral("false", .bool(false))
        case UInt8(ascii: "n"): return try expectLiteral("null", .null)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
        default: throw fail("unexpected \(describeByte()), expected a value")
        }
    }

    private func checkDepth(_ depth: Int) throws(USPError) {
        guard depth <= SessionMessage.Limits.maxJSONDepth else {
            throw fail("nested deeper than \(SessionMessage.Limits.maxJSONDepth)")
        }
    }

    private mutating func parseObject(depth: Int) throws(USPError) -> JSONValue {
        try checkDepth(depth)
        i += 1  // {
        var object: [String: JSONValue] = [:]
        skipWhitespace()
        if i < bytes.count, bytes[i] == UInt8(ascii: "}") {
            i += 1
            return .object(object)
        }
        while true {
            skipWhitespace()
            guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else {
                throw fail("unexpected \(describeByte()), expected an object key")
            }
            let keyOffset = i
            let key = try parseString()
            skipWhitespace()
            guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else {
                throw fail("unexpected \(describeByte()), expected ':'")
            }
            i += 1
            skipWhitespace()
            let value = try parseValue(depth: depth + 1)
            guard object.updateValue(value, forKey: key) == nil else {
                i = keyOffset
                throw fail("duplicate key \(detailQuoted(key))")
            }
            skipWhitespace()
            guard i < bytes.count else { throw fail("unexpected end of input, expected ',' or '}'") }
            switch bytes[i] {
            case UInt8(ascii: ","): i += 1
            case UInt8(ascii: "}"): i += 1; return .object(object)
            default: throw fail("unexpected \(describeByte()), expected ',' or '}'")
            }
        }
    }

    private mutating func parseArray(depth: Int) throws(USPError) -> JSONValue {
        try checkDepth(depth)
        i += 1  // [
        var array: [JSONValue] = []
        skipWhitespace()
        if i < bytes.count, bytes[i] == UInt8(ascii: "]") {
            i += 1
            return .array(array)
        }
        while true {
            skipWhitespace()
            array.append(try parseValue(depth: depth + 1))
            skipWhitespace()
            guard i < bytes.count else { throw fail("unexpected end of input, expected ',' or ']'") }
            switch bytes[i] {
            case UInt8(ascii: ","): i += 1
            case UInt8(ascii: "]"): i += 1; return .array(array)
            default: throw fail("unexpected \(describeByte()), expected ',' or ']'")
            }
        }
    }

    private static func hexValue(_ b: UInt8) -> UInt32? {
        switch b {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): UInt32(b - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): UInt32(b - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): UInt32(b - UInt8(ascii: "A") + 10)
        default: nil
        }
    }

    private mutating func parseHex4() throws(USPError) -> UInt32 {
        guard bytes.count - i >= 4 else { throw fail("truncated \\u escape") }
        var v: UInt32 = 0
        for k in 0..<4 {
            guard let h = Self.hexValue(bytes[i + k]) else { throw fail("invalid \\u escape") }
            v = v << 4 | h
        }
        i += 4
        return v
    }

    /// Parses a string starting at the opening quote. The whole text was validated as UTF-8
    /// beforehand and quotes/backslashes are ASCII, so every run between them is valid UTF-8.
    private mutating func parseString() throws(USPError) -> String {
        i += 1  // opening quote
        let start = i
        // Fast path: no escapes.
        while i < bytes.count {
            let b = bytes[i]
            if b == UInt8(ascii: "\"") {
                let s = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self)
                i += 1
                return s
            }
            if b == UInt8(ascii: "\\") { break }
            if b < 0x20 { throw fail("raw control character in string") }
            i += 1
        }
        var buffer = Array(bytes[start..<i])
        while i < bytes.count {
            let b = bytes[i]
            switch b {
            case UInt8(ascii: "\""):
                i += 1
                return String(decoding: buffer, as: UTF8.self)
            case UInt8(ascii: "\\"):
                i += 1
                guard i < bytes.count else { throw fail("unterminated string") }
                let e = bytes[i]
                i += 1
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): buffer.append(e)
                case UInt8(ascii: "b"): buffer.append(0x08)
                case UInt8(ascii: "f"): buffer.append(0x0C)
                case UInt8(ascii: "n"): buffer.append(0x0A)
                case UInt8(ascii: "r"): buffer.append(0x0D)
                case UInt8(ascii: "t"): buffer.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try parseHex4()
                    if (0xD800...0xDBFF).contains(scalar) {
                        guard bytes.count - i >= 2, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u")
                        else { throw fail("lone high surrogate in \\u escape") }
                        i += 2
                        let low = try parseHex4()
                        guard (0xDC00...0xDFFF).contains(low) else { throw fail("invalid low surrogate in \\u escape") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00...0xDFFF).contains(scalar) {
                        throw fail("lone low surrogate in \\u escape")
                    }
                    guard let u = Unicode.Scalar(scalar) else { throw fail("invalid \\u escape") }
                    buffer.append(contentsOf: UTF8.encode(u)!)
                default:
                    i -= 1
                    throw fail("invalid escape \(describeByte())")
                }
            default:
                if b < 0x20 { throw fail("raw control character in string") }
                buffer.append(b)
                i += 1
            }
        }
        throw fail("unterminated string")
    }

    private mutating func parseNumber() throws(USPError) -> JSONValue {
        let start = i
        var isInteger = true
        if bytes[i] == UInt8(ascii: "-") { i += 1 }
        guard i < bytes.count, isDigit(bytes[i]) else { throw fail("invalid number") }
        if bytes[i] == UInt8(ascii: "0") {
            i += 1
            if i < bytes.count, isDigit(bytes[i]) { throw fail("number with leading zero") }
        } else {
            while i < bytes.count, isDigit(bytes[i]) { i += 1 }
        }
        if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
            isInteger = false
            i += 1
            guard i < bytes.count, isDigit(bytes[i]) else { throw fail("invalid number: digit expected after '.'") }
            while i < bytes.count, isDigit(bytes[i]) { i += 1 }
        }
        if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
            isInteger = false
            i += 1
            if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
            guard i < bytes.count, isDigit(bytes[i]) else { throw fail("invalid number: digit expected in exponent") }
            while i < bytes.count, isDigit(bytes[i]) { i += 1 }
        }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self)
        if isInteger, let v = Int64(text) { return .integer(v) }
        guard let d = Double(text), d.isFinite else {
            i = start
            throw fail("number out of range")
        }
        return .number(d)
    }

    private func isDigit(_ b: UInt8) -> Bool { b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") }
}

extension JSONValue {
    /// Parses strict JSON text (see `JSONTextParser`); failures are `.malformedMessage`.
    public static func parse(_ bytes: UnsafeRawBufferPointer) throws(USPError) -> JSONValue {
        var p = JSONTextParser(bytes, context: "json")
        return try p.parseDocument()
    }

    /// Parses strict JSON text (see `JSONTextParser`); failures are `.malformedMessage`.
    public static func parse(_ bytes: some Collection<UInt8>) throws(USPError) -> JSONValue {
        try withContiguousBytes(bytes) { (raw) throws(USPError) -> JSONValue in try parse(raw) }
    }
}

/// Runs `body` over the bytes of any collection, copying only when it is not contiguous.
func withContiguousBytes<R>(
    _ bytes: some Collection<UInt8>, _ body: (UnsafeRawBufferPointer) throws(USPError) -> R
) throws(USPError) -> R {
    var result: Result<R, USPError>?
    bytes.withContiguousStorageIfAvailable { buffer in
        result = Result { () throws(USPError) -> R in try body(UnsafeRawBufferPointer(buffer)) }
    }
    if result == nil {
        let copy = Array(bytes)
        copy.withUnsafeBytes { raw in
            result = Result { () throws(USPError) -> R in try body(raw) }
        }
    }
    return try result!.get()
}
