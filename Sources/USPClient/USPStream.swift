import NIOCore
import USPCore

/// One application stream: an async sequence of inbound bytes and a writer that respects the
/// server's flow control (`write` suspends until the server has granted credit for the bytes).
///
/// Inbound credit is returned as the reader takes chunks, so a slow reader holds at most one
/// stream window of data in memory and the server is paused, not the connection.
///
/// For a dedicated connection (`USPConnection.connectDedicated`), the stream owns the connection:
/// it closes when both sides have finished, or on `close()`.
public final class USPStream: Sendable {
    /// The client's stream ID.
    public let id: UInt32
    /// What the server sends, chunk by chunk; ends at the server's FIN, throws a
    /// `USPClientError` if the stream is reset or the connection lost.
    public let inbound: Inbound
    /// For a dedicated connection: whether message 1's early data was acted on.
    public let earlyDataAccepted: Bool
    /// The ID of the application token the stream was opened with (base64url), as the server's
    /// audit trail and the application (`USP_TOKEN_ID`) name it: for a begin by name, the
    /// `result.token_id` of the server's `application_session_reply`; otherwise the ID of the
    /// token that was presented. Nil if the server did not say.
    public let tokenID: String?
    let core: ConnectionCore
    let stream: StreamCore
    let ownsConnection: Bool

    init(core: ConnectionCore, stream: StreamCore, ownsConnection: Bool, earlyDataAccepted: Bool, tokenID: String?) {
        self.core = core
        self.stream = stream
        self.ownsConnection = ownsConnection
        self.earlyDataAccepted = earlyDataAccepted
        self.tokenID = tokenID
        id = stream.id
        inbound = Inbound(base: stream.inbound) { [core, stream] count in
            core.eventLoop.execute { core.consumed(stream, count: count) }
        }
    }

    /// Writes `buffer`; returns once every byte is handed to the session (within credit).
    public func write(_ buffer: ByteBuffer) async throws {
        let core = self.core, stream = self.stream
        let promise = core.eventLoop.makePromise(of: Void.self)
        core.eventLoop.execute { core.write(stream, buffer, promise: promise) }
        try await promise.futureResult.get()
    }

    public func write(_ bytes: some Sequence<UInt8>) async throws {
        try await write(ByteBuffer(bytes: bytes))
    }

    /// Half-closes: sends FIN after every pending write. Reading goes on until the server's FIN.
    public func finish() async throws {
        let core = self.core, stream = self.stream
        let promise = core.eventLoop.makePromise(of: Void.self)
        core.eventLoop.execute { core.finish(stream, promise: promise) }
        try await promise.futureResult.get()
    }

    /// Aborts the stream if it is still open (RESET) and, for a dedicated connection, closes the
    /// connection and waits for it to end.
    public func close() async {
        let core = self.core, stream = self.stream, owns = ownsConnection
        let closed = try? await core.eventLoop.submit { () -> EventLoopFuture<Void>? in
            core.reset(stream, code: .ok)
            guard owns else { return nil }
            core.closeSession()
            return core.channel?.closeFuture
        }.get()
        if let closed { _ = try? await closed.get() }
    }

    /// Waits until the connection of a dedicated stream has ended (after both FINs).
    public func waitUntilClosed() async {
        let core = self.core
        let closed = try? await core.eventLoop.submit { core.channel?.closeFuture }.get()
        if let closed { _ = try? await closed.get() }
    }

    /// The inbound side: chunks as the server sent them.
    public struct Inbound: AsyncSequence, Sendable {
        public typealias Element = ByteBuffer
        let base: AsyncThrowingStream<ByteBuffer, any Error>
        let onConsumed: @Sendable (Int) -> Void

        public func makeAsyncIterator() -> AsyncIterator {
            AsyncIterator(base: base.makeAsyncIterator(), onConsumed: onConsumed)
        }

        public struct AsyncIterator: AsyncIteratorProtocol {
            var base: AsyncThrowingStream<ByteBuffer, any Error>.AsyncIterator
            let onConsumed: @Sendable (Int) -> Void

            public mutating func next() async throws -> ByteBuffer? {
                guard let chunk = try await base.next() else { return nil }
                // The chunk is ours now: give the server its credit back.
                onConsumed(chunk.readableBytes)
                return chunk
            }
        }

        /// Reads everything until the server's FIN (for tests and small replies).
        public func collect(upTo limit: Int = .max) async throws -> [UInt8] {
            var out: [UInt8] = []
            for try await chunk in self {
                out.append(contentsOf: chunk.readableBytesView)
                if out.count >= limit { break }
            }
            return out
        }
    }
}
