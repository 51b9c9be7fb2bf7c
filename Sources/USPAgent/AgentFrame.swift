import USPUnix

/// The agent protocol's messages are `LengthPrefixedMessage`s, in both directions; this maps
/// reading a request into the agent's error codes. A response that carries a descriptor has it
/// attached to its first byte (`LengthPrefixedMessage.write(_:_:descriptor:)`).
public enum AgentFrame {
    /// The length prefix and `body`, which must be 1 to `LengthPrefixedMessage.maximumLength` bytes.
    public static func encode(_ body: [UInt8]) -> [UInt8] {
        guard let frame = LengthPrefixedMessage.encode(body) else { preconditionFailure("agent messages are 1…65536 bytes") }
        return frame
    }

    /// The length a prefix announces, checked: 0 is `malformed_request`, above the maximum `request_too_large`.
    public static func length(_ prefix: [UInt8]) throws(AgentError) -> Int {
        do throws(UnixError) { return try LengthPrefixedMessage.length(prefix) } catch { throw requestError(error) }
    }

    /// Reads one request body from a blocking socket (timeouts are the socket's).
    /// A connection closed before its first byte is `end_of_file` (a liveness probe, not an error).
    public static func read(_ fd: CInt) throws(AgentError) -> [UInt8] {
        let body: [UInt8]?
        do throws(UnixError) { body = try LengthPrefixedMessage.read(fd) } catch { throw requestError(error) }
        guard let body else { throw AgentError(.endOfFile, "closed before sending a request") }
        return body
    }

    /// A request that could not be read, as the agent answers it.
    static func requestError(_ error: UnixError) -> AgentError {
        switch error.code {
        case .emptyMessage: AgentError(.malformedRequest, error.detail)
        case .messageTooLarge: AgentError(.requestTooLarge, error.detail)
        case .timedOut: AgentError(.timedOut, "no complete message within the time allowed")
        default: AgentError(.malformedRequest, "cannot read the message: \(error.detail)")
        }
    }
}
