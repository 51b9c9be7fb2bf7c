#if canImport(Glibc)
import Glibc
#endif
import USPUnix

/// The framing of the agent protocol, the same in both directions and the same as uspd's unix
/// hand-off: a 4-byte big-endian length N (1 ≤ N ≤ 65536), then N bytes of UTF-8 JSON.
/// A response that carries a descriptor has it attached (SCM_RIGHTS) to its first byte.
public enum AgentFrame {
    public static let maximumLength = 65536

    /// The length prefix and `body`.
    public static func encode(_ body: [UInt8]) -> [UInt8] {
        precondition((1...maximumLength).contains(body.count), "agent messages are 1…65536 bytes")
        let n = UInt32(body.count)
        return [UInt8(n >> 24), UInt8(n >> 16 & 0xff), UInt8(n >> 8 & 0xff), UInt8(n & 0xff)] + body
    }

    /// The length a prefix announces, checked: 0 is `malformed_request`, above the maximum `request_too_large`.
    public static func length(_ prefix: [UInt8]) throws(AgentError) -> Int {
        let n = prefix.prefix(4).reduce(0) { $0 << 8 | Int($1) }
        guard n > 0 else { throw AgentError(.malformedRequest, "the length prefix is 0; a message is 1 to \(maximumLength) bytes of JSON") }
        guard n <= maximumLength else { throw AgentError(.requestTooLarge, "the length prefix announces \(n) bytes; at most \(maximumLength)") }
        return n
    }

    /// Reads one message body from a blocking socket (timeouts are the socket's).
    /// A connection closed before its first byte is `end_of_file` (a liveness probe, not an error).
    public static func read(_ fd: CInt) throws(AgentError) -> [UInt8] {
        let first = try readExactly(fd, 1, endOfFile: AgentError(.endOfFile, "closed before sending a request"))
        let n = try length(first + (try readExactly(fd, 3)))
        return try readExactly(fd, n)
    }

    static func readExactly(_ fd: CInt, _ count: Int, endOfFile: AgentError? = nil) throws(AgentError) -> [UInt8] {
        do throws(UnixError) {
            return try StreamIO.readExactly(fd, count)
        } catch where error.code == .closed && endOfFile != nil {
            throw endOfFile!
        } catch where error.code == .timedOut {
            throw AgentError(.timedOut, "no complete message within the time allowed")
        } catch {
            throw AgentError(.malformedRequest, "cannot read the message: \(error.detail)")
        }
    }

    /// Sends one message, with `descriptor` attached to its first byte if given.
    public static func write(_ fd: CInt, _ body: [UInt8], descriptor: CInt? = nil) throws(UnixError) {
        let frame = encode(body)
        let sent = try DescriptorPassing.send(fd, bytes: frame, descriptors: descriptor.map { [$0] } ?? [])
        if sent < frame.count { try StreamIO.writeAll(fd, Array(frame[sent...])) }
    }
}
