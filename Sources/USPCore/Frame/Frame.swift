/// One frame of a record's plaintext, owning its bytes.
///
/// Wire form: `type: u8 | length: u16 (big-endian) | body[length]`, except PADDING, which is
/// a run of 0x00 bytes (its type byte included) to the end of the record. Stream frames name
/// the stream by the *sender's* own id, except ACCEPT and REJECT, which name the opener's id.
/// Stream ids start at 1; 0 is never valid.
///
/// For the hot receive path use `FrameReader`, which yields non-owning `FrameView`s and does
/// not allocate; for the hot send path use `FrameWriter.writeDataHeader`.
public enum Frame: Equatable, Sendable {
    /// `length` zero bytes, the type byte included (≥ 1). Must be the last frame of a record.
    case padding(length: Int)
    /// A session message: a kind byte and JSON bytes (opaque here).
    case message(kind: UInt8, json: [UInt8])
    /// Opens a stream; `session` is the JSON application_session object (opaque, must be an application_session object (an empty body is malformed_message)).
    case open(stream: UInt32, session: [UInt8])
    /// Accepts the opener's stream `opener`; `acceptor` is the acceptor's own id for it.
    case accept(opener: UInt32, acceptor: UInt32)
    /// Refuses the opener's stream `opener`.
    case reject(opener: UInt32, code: UInt16, message: String)
    /// Stream payload, at least one byte.
    case data(stream: UInt32, data: [UInt8])
    /// Grants the peer `increment` (≥ 1) more bytes of send credit on the sender's stream.
    case window(stream: UInt32, increment: UInt32)
    /// Half-close: the sender sends no more DATA on its stream.
    case fin(stream: UInt32)
    /// Aborts the sender's stream in both directions.
    case reset(stream: UInt32, code: UInt16)
    /// The sender's key rotates after the record that carries this frame.
    case rekey
    /// 8 opaque bytes, read and written big-endian.
    case ping(UInt64)
    /// Echo of a PING's 8 bytes.
    case pong(UInt64)
    /// The session is ending.
    case close(code: UInt16, reason: String)
    /// Server to client: from now on send one record of `recordLength` plaintext bytes every
    /// `tickMilliseconds` (padding-only when there is nothing to send); 0, 0 stops (§4.1).
    case shape(tickMilliseconds: UInt16, recordLength: UInt16)

    /// type + length + stream id.
    public static let dataHeaderLength = 7
    /// Length of the `type | length` header of every frame but PADDING.
    public static let headerLength = 3
    /// The largest body the u16 length can describe.
    public static let maxBodyLength = 65535
    /// The most payload one DATA frame can describe (the record size limits it further).
    public static let maxDataLength = maxBodyLength - 4

    public var type: FrameType {
        switch self {
        case .padding: .padding
        case .message: .message
        case .open: .open
        case .accept: .accept
        case .reject: .reject
        case .data: .data
        case .window: .window
        case .fin: .fin
        case .reset: .reset
        case .rekey: .rekey
        case .ping: .ping
        case .pong: .pong
        case .close: .close
        case .shape: .shape
        }
    }

    /// The body length this frame encodes with (PADDING: its whole length minus the type byte).
    public var bodyLength: Int {
        switch self {
        case .padding(let length): length - 1
        case .message(_, let json): 1 + json.count
        case .open(_, let session): 4 + session.count
        case .accept: 8
        case .reject(_, _, let message): 6 + message.utf8.count
        case .data(_, let data): 4 + data.count
        case .window: 8
        case .fin: 4
        case .reset: 6
        case .rekey: 0
        case .ping, .pong: 8
        case .close(_, let reason): 2 + reason.utf8.count
        case .shape: 4
        }
    }

    /// The number of bytes `encode(into:)` appends.
    public var encodedLength: Int {
        if case .padding(let length) = self { return length }
        return Self.headerLength + bodyLength
    }

    /// Appends the wire form. Encoding a frame the reader would reject (stream id 0, empty DATA,
    /// WINDOW increment 0, PADDING shorter than 1, a body over `maxBodyLength`) is a programming
    /// error and traps. PADDING must be the last frame written into a record.
    public func encode(into writer: inout WireWriter) {
        if case .padding(let length) = self {
            precondition(length >= 1, "PADDING length must be at least 1")
            writer.writeZeros(length)
            return
        }
        let body = bodyLength
        precondition(body <= Self.maxBodyLength, "\(type) frame body of \(body) bytes exceeds \(Self.maxBodyLength)")
        switch self {
        case .data(let stream, let data):
            FrameWriter.writeDataHeader(stream: stream, count: data.count, into: &writer)
            writer.writeBytes(data)
            return
        default:
            break
        }
        writer.writeUInt8(type.rawValue)
        writer.writeUInt16(UInt16(body))
        switch self {
        case .padding, .data, .rekey:
            break
        case .message(let kind, let json):
            writer.writeUInt8(kind)
            writer.writeBytes(json)
        case .open(let stream, let session):
            Self.checkStream(stream, .open)
            writer.writeUInt32(stream)
            writer.writeBytes(session)
        case .accept(let opener, let acceptor):
            Self.checkStream(opener, .accept)
            Self.checkStream(acceptor, .accept)
            writer.writeUInt32(opener)
            writer.writeUInt32(acceptor)
        case .reject(let opener, let code, let message):
            Self.checkStream(opener, .reject)
            writer.writeUInt32(opener)
            writer.writeUInt16(code)
            writer.writeBytes(message.utf8)
        case .window(let stream, let increment):
            Self.checkStream(stream, .window)
            precondition(increment >= 1, "WINDOW increment must be at least 1")
            writer.writeUInt32(stream)
            writer.writeUInt32(increment)
        case .fin(let stream):
            Self.checkStream(stream, .fin)
            writer.writeUInt32(stream)
        case .reset(let stream, let code):
            Self.checkStream(stream, .reset)
            writer.writeUInt32(stream)
            writer.writeUInt16(code)
        case .ping(let v), .pong(let v):
            writer.writeUInt64(v)
        case .close(let code, let reason):
            writer.writeUInt16(code)
            writer.writeBytes(reason.utf8)
        case .shape(let tick, let length):
            writer.writeUInt16(tick)
            writer.writeUInt16(length)
        }
    }

    /// The wire form as a new array.
    public var encoded: [UInt8] {
        var w = WireWriter(capacity: encodedLength)
        encode(into: &w)
        return w.bytes
    }

    /// Decodes every frame of a record's plaintext (allocating; tests and cold paths).
    public static func decodeAll(_ record: [UInt8]) throws(USPError) -> [Frame] {
        let result = record.withUnsafeBytes { buf in
            Result { () throws(USPError) -> [Frame] in
                var reader = FrameReader(buf)
                var frames: [Frame] = []
                while let view = try reader.next() { frames.append(Frame(view)) }
                return frames
            }
        }
        return try result.get()
    }

    /// An owning copy of a view.
    public init(_ view: FrameView) {
        switch view {
        case .padding(let length): self = .padding(length: length)
        case .message(let kind, let json): self = .message(kind: kind, json: Array(json))
        case .open(let stream, let session): self = .open(stream: stream, session: Array(session))
        case .accept(let opener, let acceptor): self = .accept(opener: opener, acceptor: acceptor)
        case .reject(let opener, let code, let message):
            self = .reject(opener: opener, code: code, message: String(decoding: message, as: UTF8.self))
        case .data(let stream, let data): self = .data(stream: stream, data: Array(data))
        case .window(let stream, let increment): self = .window(stream: stream, increment: increment)
        case .fin(let stream): self = .fin(stream: stream)
        case .reset(let stream, let code): self = .reset(stream: stream, code: code)
        case .rekey: self = .rekey
        case .ping(let v): self = .ping(v)
        case .pong(let v): self = .pong(v)
        case .close(let code, let reason): self = .close(code: code, reason: String(decoding: reason, as: UTF8.self))
        case .shape(let tick, let length): self = .shape(tickMilliseconds: tick, recordLength: length)
        }
    }

    private static func checkStream(_ id: UInt32, _ type: FrameType) {
        precondition(id != 0, "\(type) frame with stream id 0")
    }
}
