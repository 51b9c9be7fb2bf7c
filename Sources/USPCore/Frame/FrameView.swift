/// A decoded frame that borrows its variable-length parts from the record buffer given to
/// `FrameReader`. The buffers are valid only as long as that record buffer is; copy with
/// `Frame(view)` to keep one. REJECT and CLOSE text has been checked to be valid UTF-8.
public enum FrameView {
    case padding(length: Int)
    case message(kind: UInt8, json: UnsafeRawBufferPointer)
    case open(stream: UInt32, session: UnsafeRawBufferPointer)
    case accept(opener: UInt32, acceptor: UInt32)
    case reject(opener: UInt32, code: UInt16, message: UnsafeRawBufferPointer)
    case data(stream: UInt32, data: UnsafeRawBufferPointer)
    case window(stream: UInt32, increment: UInt32)
    case fin(stream: UInt32)
    case reset(stream: UInt32, code: UInt16)
    case rekey
    case ping(UInt64)
    case pong(UInt64)
    case close(code: UInt16, reason: UnsafeRawBufferPointer)
    case shape(tickMilliseconds: UInt16, recordLength: UInt16)

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
}
