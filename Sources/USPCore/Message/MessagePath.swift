/// Where in a session message a value sits, for one-line error details such as
/// `service_request: requested_services["x"]: index is not a decimal u32`.
struct MessagePath: Sendable, CustomStringConvertible {
    /// The message kind name, e.g. "service_request".
    let message: String
    /// The location inside the message, e.g. `requested_services["1"].token`; empty at top level.
    let location: String

    init(_ message: String, _ location: String = "") {
        self.message = message
        self.location = location
    }

    func field(_ name: String) -> MessagePath {
        MessagePath(message, location.isEmpty ? name : "\(location).\(name)")
    }

    func key(_ key: String) -> MessagePath {
        MessagePath(message, "\(location)[\(detailQuoted(key))]")
    }

    func element(_ n: Int) -> MessagePath {
        MessagePath(message, "\(location)[\(n)]")
    }

    var description: String { location.isEmpty ? message : "\(message): \(location)" }

    func malformed(_ what: String) -> USPError {
        USPError(.malformedMessage, "\(self): \(what)")
    }

    func wrongType(_ expected: String, _ got: JSONValue) -> USPError {
        malformed("expected \(expected), got \(got.typeName)")
    }
}

/// A peer-supplied string made safe for a one-line log detail: quoted, control characters
/// and quotes escaped, and cut after `limit` characters.
func detailQuoted(_ s: String, limit: Int = 40) -> String {
    var out = "\""
    var n = 0
    for scalar in s.unicodeScalars {
        if n == limit {
            out += "…"
            break
        }
        n += 1
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case _ where scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value)
            || scalar == "\u{2028}" || scalar == "\u{2029}":
            out += "\\u{" + String(scalar.value, radix: 16) + "}"
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out + "\""
}
