import NIOCore
import USPCore

/// The far end of one application stream (an exec'd process, a TCP connection): what the
/// `ServerSessionHandler` tells it. Every call happens on the session channel's event loop.
///
/// Back-pressure, both ways:
/// - client → application: `received` hands over bytes the client sent; the application calls
///   `ServerStreamPort.consumed(_:)` once it has taken them (e.g. its write completed), and only then
///   does the client get that credit back. The bytes buffered for a stream never exceed the window.
/// - application → client: `ServerStreamPort.write(_:)` takes only what the client's credit allows;
///   when it takes less than offered the application stops reading its source until `writable()`.
public protocol ServerStreamApplication: AnyObject {
    /// Bytes from the client.
    func received(_ data: ByteBuffer)
    /// The client half-closed the stream: no more bytes from it.
    func clientFinished()
    /// The client granted credit: `write` may take more.
    func writable()
    /// The stream is gone (both sides finished, a reset, a revocation or the session's end):
    /// stop the application and release it. No other call follows.
    func closed(code: USPError.Code)
    /// Everything one read from the client carried has been handed over by `received`: a good
    /// moment to flush (one write for several records' bytes).
    func receivedBatchEnded()
}

extension ServerStreamApplication {
    public func receivedBatchEnded() {}
}

/// What a relay-free hand-off carries from the session: the snapshot of its transport and stream,
/// and the TCP connection's addresses as the daemon sees them (its local and the client's).
public struct RelayFreeHandoff: Sendable {
    public var snapshot: DedicatedStreamSnapshot
    public let localAddress: SocketAddress
    public let remoteAddress: SocketAddress
}

/// Facts about the session a stream belongs to, for launchers and audit.
public struct ServerSessionInfo: Sendable {
    public let serverSessionID: String
    public let peerAddress: String
    public let clientStatic: [UInt8]?
    public let identity: Identity?
}

/// What an application uses to talk back to the client on its stream. Holds the handler weakly:
/// once the session is gone every call is a no-op. Use only on the session's event loop.
public struct ServerStreamPort {
    public let stream: UInt32
    public let eventLoop: any EventLoop
    weak var handler: ServerSessionHandler?

    init(stream: UInt32, eventLoop: any EventLoop, handler: ServerSessionHandler) {
        self.stream = stream
        self.eventLoop = eventLoop
        self.handler = handler
    }

    /// Sends as much of `buffer` as the client's credit allows and moves its reader index past the
    /// bytes taken. Returns the number taken; if `buffer` still has bytes, wait for `writable()`.
    @discardableResult
    public func write(_ buffer: inout ByteBuffer) -> Int {
        handler?.streamWrite(stream, &buffer) ?? 0
    }

    /// How many bytes `write` would take now.
    public var sendableBytes: Int { handler?.streamSendable(stream) ?? 0 }

    /// The application took `count` bytes of what `received` handed over.
    public func consumed(_ count: Int) {
        handler?.streamConsumed(stream, count)
    }

    /// The application has nothing more to send (half-close, FIN).
    public func finish() {
        handler?.streamFinish(stream)
    }

    /// Aborts the stream in both directions.
    public func reset(code: USPError.Code) {
        handler?.streamReset(stream, code: code)
    }

    /// Starts a relay-free hand-off of this stream's dedicated connection (docs/PROTOCOL.md §14):
    /// the session stops reading and sending, waits until everything it sent is written, and
    /// hands `completion` the snapshot and the connection's addresses (to find its socket). Then
    /// exactly one of `completeHandoff` (the application acknowledged) or `failHandoff` must follow.
    /// A failure (not a dedicated connection, the session ending) changes nothing.
    /// `undelivered`: the client's bytes the application side holds, not yet passed on.
    public func beginHandoff(undelivered: [UInt8], completion: @escaping (Result<RelayFreeHandoff, USPError>) -> Void) {
        guard let handler else { completion(.failure(USPError(.internalError, "the session is gone"))); return }
        handler.streamBeginHandoff(stream, undelivered: undelivered, completion: completion)
    }

    /// The application owns the connection now: the session ends without a word to the client and
    /// the daemon's descriptor is closed (close(2) only, no shutdown).
    public func completeHandoff() {
        handler?.streamCompleteHandoff(stream)
    }

    /// The hand-off did not happen: the session goes on where it stopped.
    public func failHandoff() {
        handler?.streamFailHandoff(stream)
    }

    /// The session this stream belongs to, if it is still there.
    public var session: ServerSessionInfo? { handler?.info }
}
