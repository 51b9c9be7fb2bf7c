/// Writes a `JSONValue` as compact JSON text: no whitespace, object keys sorted by their UTF-8
/// bytes, so equal values always give identical bytes.
struct JSONTextWriter {
    var out: [UInt8]
    let context: String

    init(context: String, into out: [UInt8] = []) {
        self.out = out
        self.context = context
    }

    mutating func write(_ value: JSONValue) throws(USPError) {
        try write(value, depth: 1)
    }

    private mutating func write(_ value: JSONValue, depth: Int) throws(USPError) {
        switch value {
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(let b): out.append(contentsOf: (b ? "true" : "false").utf8)
        case .integer(let i): out.append(contentsOf: String(i).utf8)
        case .number(let d):
            guard d.isFinite else {
                throw USPError(.malformedMessage, "\(context): cannot encode non-finite number \(d)")
            }
            // Swift prints the shortest text that reads back to the same Double, always with a
            // fraction or an exponent ("1.0", "1e-05", "1e+20"), all valid JSON.
            out.append(contentsOf: d.description.utf8)
        case .string(let s): writeString(s)
        case .array(let a):
            try checkDepth(depth)
            out.append(UInt8(ascii: "["))
            for (n, element) in a.enumerated() {
                if n > 0 { out.append(UInt8(ascii: ",")) }
                try write(element, depth: depth + 1)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let o):
            try checkDepth(depth)
            out.append(UInt8(ascii: "{"))
            for (n, key) in o.keys.sorted(by: JSONTextWriter.keyOrder).enumerated() {
                if n > 0 { out.append(UInt8(ascii: ",")) }
                writeString(key)
                out.append(UInt8(ascii: ":"))
                try write(o[key]!, depth: depth + 1)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    private func checkDepth(_ depth: Int) throws(USPError) {
        guard depth <= SessionMessage.Limits.maxJSONDepth else {
            throw USPError(.malformedMessage,
                           "\(context): JSON nested deeper than \(SessionMessage.Limits.maxJSONDepth)")
        }
    }

    /// Byte-wise UTF-8 order: independent of locale and of Unicode canonical equivalence.
    static func keyOrder(_ a: String, _ b: String) -> Bool {
        a.utf8.lexicographicallyPrecedes(b.utf8)
    }

    private static let hex: [UInt8] = Array("0123456789abcdef".utf8)

    private mutating func writeString(_ s: String) {
        out.append(UInt8(ascii: "\""))
        for byte in s.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append(UInt8(ascii: "\\")); out.append(byte)
            case UInt8(ascii: "\\"): out.append(UInt8(ascii: "\\")); out.append(byte)
            case 0x0A: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "n"))
            case 0x0D: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "r"))
            case 0x09: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "t"))
            case 0x08: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "b"))
            case 0x0C: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "f"))
            case 0..<0x20:
                out.append(contentsOf: "\\u00".utf8)
                out.append(Self.hex[Int(byte >> 4)])
                out.append(Self.hex[Int(byte & 0xF)])
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}

extension JSONValue {
    /// Compact JSON text for this value (sorted keys, no whitespace).
    /// Throws `.malformedMessage` for a non-finite number or nesting deeper than
    /// `SessionMessage.Limits.maxJSONDepth`.
    public func encoded() throws(USPError) -> [UInt8] {
        var w = JSONTextWriter(context: "json")
        try w.write(self)
        return w.out
    }
}
