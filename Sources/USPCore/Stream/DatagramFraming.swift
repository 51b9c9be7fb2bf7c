/// Datagrams on a stream (docs/PROTOCOL.md §7.5): a UDP application's stream carries each
/// datagram as `length: u16 ‖ payload`, back to back in the stream's DATA bytes. A datagram is
/// never split by the sender's choice of record, and the receiver delivers only whole ones.
public enum DatagramFraming {
    /// The largest payload a length prefix can describe (a UDP payload is at most 65507 over IPv4).
    public static let maxPayload = 65535
    public static let prefixLength = 2

    /// `payload` with its length prefix, appended to `out`.
    public static func append(_ payload: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        precondition(payload.count <= maxPayload, "a datagram is at most 65535 bytes")
        out.append(UInt8(payload.count >> 8))
        out.append(UInt8(payload.count & 0xFF))
        out.append(contentsOf: payload)
    }

    /// The framed size of a payload of `count` bytes.
    public static func framedLength(_ count: Int) -> Int { prefixLength + count }
}

/// Collects a stream's bytes and hands out the whole datagrams in them, in order; a partial one
/// waits for the rest. Bounded by one datagram (65537 bytes) plus what one call hands in.
public struct DatagramReassembler: Sendable {
    private var pending: [UInt8] = []

    public init() {}

    /// Bytes of a datagram begun and not yet complete.
    public var partialByteCount: Int { pending.count }

    /// Adds `bytes` and calls `deliver` with each datagram they complete.
    public mutating func feed(_ bytes: UnsafeRawBufferPointer, _ deliver: (UnsafeRawBufferPointer) -> Void) {
        var input = bytes[...]
        // Finish the datagram begun earlier.
        if !pending.isEmpty {
            if pending.count < DatagramFraming.prefixLength {
                let take = min(DatagramFraming.prefixLength - pending.count, input.count)
                pending.append(contentsOf: input.prefix(take))
                input = input.dropFirst(take)
                guard pending.count == DatagramFraming.prefixLength else { return }
            }
            let need = DatagramFraming.framedLength(Int(pending[0]) << 8 | Int(pending[1])) - pending.count
            let take = min(need, input.count)
            pending.append(contentsOf: input.prefix(take))
            input = input.dropFirst(take)
            guard take == need else { return }
            pending.withUnsafeBytes { deliver(UnsafeRawBufferPointer(rebasing: $0[DatagramFraming.prefixLength...])) }
            pending.removeAll(keepingCapacity: true)
        }
        // Whole datagrams straight from the input, without copying.
        let base = input.startIndex
        var offset = base
        while input.endIndex - offset >= DatagramFraming.prefixLength {
            let length = Int(bytes[offset]) << 8 | Int(bytes[offset + 1])
            let end = offset + DatagramFraming.framedLength(length)
            guard end <= input.endIndex else { break }
            deliver(UnsafeRawBufferPointer(rebasing: bytes[(offset + DatagramFraming.prefixLength)..<end]))
            offset = end
        }
        pending.append(contentsOf: bytes[offset..<input.endIndex])
    }
}
