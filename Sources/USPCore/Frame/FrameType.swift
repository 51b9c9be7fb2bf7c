/// The one-byte type that starts every frame in a record's plaintext.
public enum FrameType: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    /// No length: runs to the end of the record, every byte 0x00.
    case padding = 0x00
    /// kind u8 + UTF-8 JSON.
    case message = 0x01
    /// sender_stream u32 + JSON application_session (must be an application_session object (an empty body is malformed_message)).
    case open = 0x02
    /// opener_stream u32 + acceptor_stream u32.
    case accept = 0x03
    /// opener_stream u32 + code u16 + UTF-8 message.
    case reject = 0x04
    /// sender_stream u32 + data (at least one byte).
    case data = 0x05
    /// sender_stream u32 + increment u32 (≥ 1).
    case window = 0x06
    /// sender_stream u32: the sender sends no more DATA on this stream.
    case fin = 0x07
    /// sender_stream u32 + code u16: aborts both directions.
    case reset = 0x08
    /// Empty: the sender's key rotates after this record.
    case rekey = 0x09
    /// 8 opaque bytes.
    case ping = 0x0A
    /// 8 opaque bytes, echoing a PING.
    case pong = 0x0B
    /// code u16 + UTF-8 reason: the session is ending.
    case close = 0x0C
    /// tick_ms u16 + record_plaintext u16, server to client: send one record of that size per tick
    /// (0, 0: stop).
    case shape = 0x0D

    /// The upper-case name used in error details and logs.
    public var name: String {
        switch self {
        case .padding: "PADDING"
        case .message: "MESSAGE"
        case .open: "OPEN"
        case .accept: "ACCEPT"
        case .reject: "REJECT"
        case .data: "DATA"
        case .window: "WINDOW"
        case .fin: "FIN"
        case .reset: "RESET"
        case .rekey: "REKEY"
        case .ping: "PING"
        case .pong: "PONG"
        case .close: "CLOSE"
        case .shape: "SHAPE"
        }
    }

    public var description: String { name }
}
