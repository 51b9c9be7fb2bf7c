/// A USP session message: the body of a MESSAGE frame, `kind: u8` followed by UTF-8 JSON.
///
/// `encode()` writes compact JSON with sorted keys, so equal messages give identical bytes.
/// `decode` is strict and total: any input either decodes or throws a `USPError`
/// (`.malformedMessage`, `.unsupportedVersion` or `.messageTooLarge`) whose `detail` names
/// the message kind and the place, e.g.
/// `service_request: requested_services["x"]: index is not a decimal u32`.
public enum SessionMessage: Hashable, Sendable {
    case initialRequest(InitialRequest)
    case menu(ApplicationMenu)
    case serviceRequest(ServiceRequest)
    case serviceReply(ServiceReply)
    case applicationSessionReply(ApplicationSessionReply)
    case error(SessionErrorMessage)

    /// The kind byte that starts an encoded message.
    public enum Kind: UInt8, CaseIterable, Sendable, CustomStringConvertible {
        case initialRequest = 1
        case menu = 2
        case serviceRequest = 3
        case serviceReply = 4
        case applicationSessionReply = 5
        case error = 6

        /// The snake_case name used in error details.
        public var name: String {
            switch self {
            case .initialRequest: "initial_request"
            case .menu: "menu"
            case .serviceRequest: "service_request"
            case .serviceReply: "service_reply"
            case .applicationSessionReply: "application_session_reply"
            case .error: "error"
            }
        }

        /// True for the kinds a client sends (initial_request, service_request).
        public var isClientToServer: Bool { self == .initialRequest || self == .serviceRequest }

        public var description: String { name }
    }

    public var kind: Kind {
        switch self {
        case .initialRequest: .initialRequest
        case .menu: .menu
        case .serviceRequest: .serviceRequest
        case .serviceReply: .serviceReply
        case .applicationSessionReply: .applicationSessionReply
        case .error: .error
        }
    }

    private var body: any SessionMessageBody {
        switch self {
        case .initialRequest(let m): m
        case .menu(let m): m
        case .serviceRequest(let m): m
        case .serviceReply(let m): m
        case .applicationSessionReply(let m): m
        case .error(let m): m
        }
    }

    /// The message as a JSON value (what follows the kind byte), after the same checks
    /// `encode()` makes.
    public func jsonValue() throws(USPError) -> JSONValue {
        try body.toJSON(MessagePath(kind.name))
    }

    /// Kind byte plus compact JSON. Throws `.malformedMessage` when a field breaks a rule the
    /// decoder enforces (empty or over-long id, index 0 among applications, …) and
    /// `.messageTooLarge` beyond `Limits.maxEncodedSize` bytes.
    public func encode() throws(USPError) -> [UInt8] {
        var writer = WireWriter()
        try encode(into: &writer)
        return writer.bytes
    }

    /// Appends kind byte plus compact JSON to `writer`; on failure `writer` is left as it was.
    public func encode(into writer: inout WireWriter) throws(USPError) {
        let json = try jsonValue()
        let start = writer.bytes.count
        writer.writeUInt8(kind.rawValue)
        var text = JSONTextWriter(context: kind.name, into: writer.bytes)
        writer.bytes = []
        defer { writer.bytes = text.out }
        do {
            try text.write(json)
        } catch {
            text.out.removeSubrange(start...)
            throw error
        }
        let size = text.out.count - start
        guard size <= Limits.maxEncodedSize else {
            text.out.removeSubrange(start...)
            throw USPError(.messageTooLarge, "\(kind.name): encoded message is \(size) bytes, limit \(Limits.maxEncodedSize)")
        }
    }

    /// Decodes kind byte plus JSON.
    public static func decode(_ bytes: UnsafeRawBufferPointer) throws(USPError) -> SessionMessage {
        guard let first = bytes.first else {
            throw USPError(.malformedMessage, "session message: empty")
        }
        guard bytes.count <= Limits.maxEncodedSize else {
            throw USPError(.messageTooLarge, "session message: \(bytes.count) bytes, limit \(Limits.maxEncodedSize)")
        }
        guard let kind = Kind(rawValue: first) else {
            throw USPError(.malformedMessage, "unknown message kind \(first)")
        }
        var parser = JSONTextParser(UnsafeRawBufferPointer(rebasing: bytes[1...]), context: kind.name)
        let json = try parser.parseDocument()
        let path = MessagePath(kind.name)
        switch kind {
        case .initialRequest: return .initialRequest(try InitialRequest(json: json, path))
        case .menu: return .menu(try ApplicationMenu(json: json, path))
        case .serviceRequest: return .serviceRequest(try ServiceRequest(json: json, path))
        case .serviceReply: return .serviceReply(try ServiceReply(json: json, path))
        case .applicationSessionReply: return .applicationSessionReply(try ApplicationSessionReply(json: json, path))
        case .error: return .error(try SessionErrorMessage(json: json, path))
        }
    }

    /// Decodes kind byte plus JSON from any byte collection (copied only if not contiguous).
    public static func decode(_ bytes: some Collection<UInt8>) throws(USPError) -> SessionMessage {
        try withContiguousBytes(bytes) { (raw) throws(USPError) -> SessionMessage in try decode(raw) }
    }
}

/// One message kind's JSON mapping. Both directions check the same rules, so whatever
/// encodes also decodes.
protocol SessionMessageBody: Sendable {
    static var kind: SessionMessage.Kind { get }
    init(json: JSONValue, _ path: MessagePath) throws(USPError)
    func toJSON(_ path: MessagePath) throws(USPError) -> JSONValue
}
