import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import USPClient
import USPUnix

/// A program's side of the agent protocol: connect to `agent.sock`, send one request, read one
/// answer (and, for an open, the descriptor that came with it).
public struct AgentClient: Sendable {
    public let socket: AgentSocketPath
    /// How long to wait for the answer: an open includes the agent's connection to the server.
    public var answerTimeout: Double = 60

    public init(socket: AgentSocketPath) { self.socket = socket }

    /// The program's end of a stream the agent opened; the caller owns `descriptor` (a connected
    /// AF_UNIX stream socket, close-on-exec) and closes it.
    public struct OpenedStream: Sendable {
        public let descriptor: CInt
        public let stream: Int
        public let tokenID: String?
        public let server: String
        public let application: String
    }

    /// A connection to the running agent, or nil when none runs (no socket file, or nobody
    /// listening on it). A socket or directory another user could have put there is refused
    /// (`unsafe_socket`) rather than used.
    public func connect() throws(AgentError) -> CInt? {
        guard try socket.checkSocketFile() else { return nil }
        try socket.checkDirectory()
        let address = try socket.address
        do throws(UnixError) {
            let fd = try UnixSocket.connect(to: address)
            try? UnixSocket.setTimeouts(fd, seconds: answerTimeout)
            return fd
        } catch where error.errno == ECONNREFUSED || error.errno == ENOENT {
            return nil
        } catch {
            throw AgentError(.systemCall, "cannot reach the agent: \(error.detail)")
        }
    }

    /// Asks for a stream on `fd` (from `connect()`, which this closes).
    public func open(_ request: AgentRequest.Open, on fd: CInt) throws(AgentError) -> OpenedStream {
        defer { close(fd) }
        let (body, descriptor) = try exchange(fd, AgentRequest(.open(request)))
        switch try AgentResponse.parse(body, expectingStatus: false) {
        case .opened(let stream, let tokenID, let server, let application):
            guard let descriptor else { throw AgentError(.protocolViolation, "the agent answered ok without a descriptor") }
            return OpenedStream(descriptor: descriptor, stream: stream, tokenID: tokenID, server: server, application: application)
        case .failed(let error):
            if let descriptor { close(descriptor) }
            throw error
        case .status:
            if let descriptor { close(descriptor) }
            throw AgentError(.protocolViolation, "the agent answered an open with a status")
        }
    }

    /// Connects and opens in one go, on a thread of its own (the calls block).
    public func open(_ request: AgentRequest.Open) async throws -> OpenedStream {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<OpenedStream, any Error>) in
            PosixThread.detach {
                do throws(AgentError) {
                    guard let fd = try connect() else { throw AgentError(.notRunning, "no agent answers on \(socket.path)") }
                    c.resume(returning: try open(request, on: fd))
                } catch {
                    c.resume(throwing: error)
                }
            }
        }
    }

    /// The agent's pid and the streams it relays now.
    public func status(on fd: CInt) throws(AgentError) -> AgentStatus {
        defer { close(fd) }
        let (body, descriptor) = try exchange(fd, AgentRequest(.status))
        if let descriptor { close(descriptor) }
        switch try AgentResponse.parse(body, expectingStatus: true) {
        case .status(let status): return status
        case .failed(let error): throw error
        case .opened: throw AgentError(.protocolViolation, "the agent answered a status with a stream")
        }
    }

    /// Sends `request`, reads the answer: the descriptor comes with its first byte.
    private func exchange(_ fd: CInt, _ request: AgentRequest) throws(AgentError) -> ([UInt8], CInt?) {
        var descriptors: [CInt] = []
        do throws(UnixError) {
            try StreamIO.writeAll(fd, AgentFrame.encode(request.encoded()))
            guard let n = try LengthPrefixedMessage.readLength(fd, descriptors: &descriptors) else {
                throw UnixError(.closed, "the agent closed the connection without an answer")
            }
            let body = try StreamIO.readExactly(fd, n)
            for extra in descriptors.dropFirst() { close(extra) }
            return (body, descriptors.first)
        } catch {
            for d in descriptors { close(d) }
            let detail = error.code == .emptyMessage || error.code == .messageTooLarge ? "the answer's \(error.detail)" : error.detail
            throw AgentError(error.code == .timedOut ? .timedOut : .protocolViolation, "agent \(socket.path): \(detail)")
        }
    }
}
