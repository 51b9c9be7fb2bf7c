#if canImport(Glibc)
import Glibc
#endif

/// The framing of uspd's `unix` hand-off and of the client agent's protocol, the same in both
/// directions: a 4-byte big-endian length N (1 ≤ N ≤ `maximumLength`), then N bytes of UTF-8
/// JSON. A message that carries a descriptor has it attached (SCM_RIGHTS) to its first byte.
///
/// Reads are on blocking sockets (timeouts are the socket's). Errors are `UnixError`s: `closed`
/// for an end of file inside a message, `emptyMessage` and `messageTooLarge` for a length prefix
/// out of range, and those of the failed call.
public enum LengthPrefixedMessage {
    /// The size cap: the largest body a prefix may announce.
    public static let maximumLength = 65536
    /// The length prefix's size.
    public static let prefixLength = 4

    /// The length prefix and `body`; nil if `body` is empty or longer than `maximumLength`.
    public static func encode(_ body: [UInt8]) -> [UInt8]? {
        guard (1...maximumLength).contains(body.count) else { return nil }
        let n = UInt32(body.count)
        return [UInt8(n >> 24), UInt8(n >> 16 & 0xff), UInt8(n >> 8 & 0xff), UInt8(n & 0xff)] + body
    }

    /// The length `prefix` announces, checked against the cap.
    public static func length(_ prefix: [UInt8]) throws(UnixError) -> Int {
        let n = prefix.prefix(prefixLength).reduce(0) { $0 << 8 | Int($1) }
        guard n > 0 else { throw UnixError(.emptyMessage, "the length prefix is 0; a message is 1 to \(maximumLength) bytes of JSON") }
        guard n <= maximumLength else { throw UnixError(.messageTooLarge, "the length prefix announces \(n) bytes; at most \(maximumLength)") }
        return n
    }

    /// Sends one message, with `descriptor` attached to its first byte if given.
    public static func write(_ fd: CInt, _ body: [UInt8], descriptor: CInt? = nil) throws(UnixError) {
        guard let frame = encode(body) else { preconditionFailure("a length-prefixed message is 1…\(maximumLength) bytes") }
        let sent = try DescriptorPassing.send(fd, bytes: frame, descriptors: descriptor.map { [$0] } ?? [])
        if sent < frame.count { try StreamIO.writeAll(fd, Array(frame[sent...])) }
    }

    /// Reads one message body; nil when the peer closed before sending anything. Descriptors sent
    /// along are not taken (the kernel closes them).
    public static func read(_ fd: CInt) throws(UnixError) -> [UInt8]? {
        // The first byte alone, so that a connection closed before anything is told apart.
        let first: [UInt8]
        do throws(UnixError) { first = try StreamIO.readExactly(fd, 1) } catch where error.code == .closed { return nil }
        let n = try length(first + (try StreamIO.readExactly(fd, prefixLength - 1)))
        return try StreamIO.readExactly(fd, n)
    }

    /// Reads one message's length prefix and the descriptors that come with it (close-on-exec,
    /// owned by the caller, added to `descriptors` even when this throws); nil when the peer closed
    /// before sending anything. The body follows: `StreamIO.readExactly(fd, length)`.
    public static func readLength(_ fd: CInt, descriptors: inout [CInt]) throws(UnixError) -> Int? {
        // The prefix may arrive in pieces.
        var prefix: [UInt8] = []
        while prefix.count < prefixLength {
            let got = try DescriptorPassing.receive(fd, maxBytes: prefixLength - prefix.count, maxDescriptors: 1)
            descriptors += got.descriptors
            if got.isEndOfFile {
                if prefix.isEmpty { return nil }
                throw UnixError(.closed, "end of file after \(prefix.count) of \(prefixLength) length bytes")
            }
            prefix += got.bytes
        }
        return try length(prefix)
    }
}
