/// The `{"code":"…","message":"…"}` object that session messages carry as `error`:
/// a machine-readable `USPError.Code` name beside a human sentence.
///
/// Only the code's name and the message go to the peer; a `USPError.detail` never does.
/// A code name this build does not know (a newer peer's) decodes to
/// `USPError.Code(WireError.unknownCodeWireValue, name)`, keeping the name.
public struct WireError: Hashable, Sendable, CustomStringConvertible {
    public var code: USPError.Code
    public var message: String

    /// The wire value given to code names this build does not know.
    public static let unknownCodeWireValue: UInt16 = 0xFFFF

    /// A code name: 1...64 characters of `a-z`, `0-9` and `_`.
    public static let maxCodeNameLength = 64

    /// - Parameter message: human text for the peer; by default derived from the code name
    ///   (`authorization_token_missing` → "Authorization token missing").
    public init(_ code: USPError.Code, _ message: String? = nil) {
        self.code = code
        self.message = message ?? WireError.humanMessage(for: code)
    }

    /// The wire form of a local error: its code and a message derived from the code name.
    /// The error's `detail` is deliberately not used.
    public init(_ error: USPError) {
        self.init(error.code)
    }

    /// "authorization_token_missing" → "Authorization token missing".
    public static func humanMessage(for code: USPError.Code) -> String {
        let words = code.name.split(separator: "_").joined(separator: " ")
        return words.prefix(1).uppercased() + words.dropFirst()
    }

    /// The code name alone is not enough to tell unknown codes apart (they share a wire
    /// value), so equality compares the name too.
    public static func == (lhs: WireError, rhs: WireError) -> Bool {
        lhs.code.wireValue == rhs.code.wireValue && lhs.code.name == rhs.code.name && lhs.message == rhs.message
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(code.name)
        hasher.combine(message)
    }

    public var description: String { "\(code.name): \(message)" }
}

extension WireError {
    static func isValidCodeName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= maxCodeNameLength
            && name.utf8.allSatisfy { b in
                (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z"))
                    || (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9")) || b == UInt8(ascii: "_")
            }
    }

    init(json: JSONValue, _ path: MessagePath) throws(USPError) {
        var r = try FieldReader(json, path)
        let name = try r.requiredString(MessageKeys.code)
        let message = try r.requiredString(MessageKeys.message)
        try r.rejectUnknown()
        guard WireError.isValidCodeName(name) else {
            throw path.field(MessageKeys.code).malformed("invalid code name \(detailQuoted(name))")
        }
        self.code = USPError.Code.fromName(name) ?? USPError.Code(WireError.unknownCodeWireValue, name)
        self.message = message
    }

    func toJSON(_ path: MessagePath) throws(USPError) -> JSONValue {
        guard WireError.isValidCodeName(code.name) else {
            throw path.field(MessageKeys.code).malformed("invalid code name \(detailQuoted(code.name))")
        }
        return .object([MessageKeys.code: .string(code.name), MessageKeys.message: .string(message)])
    }
}
