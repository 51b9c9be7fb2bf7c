import Glibc
import NIOCore
import USPCore
import USPNIO

/// One connection of `StdioPollSession`: connect, message 1, the reply, then the relay between
/// stdin/stdout and stream 1, all in one `poll(2)` loop on the calling thread.
///
/// Flow control is the session's: stdin is read only while the stream has credit and the socket
/// has taken what was sealed before; the socket is read only while less than `outputLimit` bytes
/// wait for stdout, and credit goes back to the server as stdout takes them.
final class PollAttempt {
    let plan: Plan
    let trust: ServerKeyTrust
    private let start: ClientStart
    private let stdio: StdioEnds
    private var session: ClientSession!
    private var actions = ClientActions()
    private var socket: CInt = -1

    /// Stream 1, the dedicated connection's stream.
    private let stream: UInt32 = 1
    private(set) var handshakeDone = false
    private var facts: Facts?
    private var replied = false
    private var accepted = false
    private var remoteFinished = false
    private var inputEnded: Bool
    private var finishSent = false
    /// stdin bytes not yet taken by the stream (no credit).
    private var waitingForCredit = false
    /// Sealed bytes the socket has not taken yet.
    private var toSocket: [UInt8] = []
    private var toSocketOffset = 0
    /// Stream bytes stdout has not taken yet.
    private var toOutput: [UInt8] = []
    private var toOutputOffset = 0
    /// How the attempt ends: nil while it runs.
    private var outcome: Result<Void, USPClientError>?
    private var serverError: WireError?
    private var endOverride: USPClientError?
    private var socketError: CInt?
    private var tickPeriod: Int64?
    private var nextTick = NIODeadline.distantFuture

    static let readSize = 256 << 10
    static let outputLimit = 1 << 20
    private var readBuffer: [UInt8] = []

    /// A read buffer of `count` bytes, not zeroed: only what `read(2)` wrote into it is ever used.
    /// Zeroing the two 256 KiB buffers touched 128 fresh pages, a fifth of the page faults of a
    /// short `usp connect`; left as they are, a page is touched only when data lands in it.
    static func scratch(_ count: Int) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: count) { _, initialized in initialized = count }
    }

    init(plan: Plan, start: ClientStart, stdio: StdioEnds, inputEnded: Bool) {
        self.plan = plan
        self.start = start
        self.stdio = stdio
        self.inputEnded = inputEnded
        trust = ServerKeyTrust(server: plan.server, known: plan.known, mode: plan.options.serverKeyChecking)
    }

    deinit {
        if socket >= 0 { close(socket) }
    }

    private var server: ServerURI { plan.server }

    /// Runs until the server finished the stream and stdout took every byte (returns), or
    /// something failed (throws, with the messages `USPConnection` gives).
    func run(early: EarlyConnection?) throws(USPClientError) {
        let options = plan.options
        do throws(USPError) {
            session = try ClientSession(mode: plan.mode, configuration: options.session)
            try session.start(start, now: ClientSessionHandler.wallClock())
        } catch {
            throw ErrorText.local(error, server: server)
        }
        socket = try PollConnector.connect(server: server, options: options, early: early)
        let handshakeDeadline = NIODeadline.now() + options.handshakeTimeout
        readBuffer = Self.scratch(Self.readSize)
        flushSession()
        while outcome == nil {
            if let code = socketError {
                socketFailed(code)
                break
            }
            if endOnPendingFailure() { break }
            let now = NIODeadline.now()
            if !replied, now >= handshakeDeadline {
                endOverride = ErrorText.timedOut(server: server, handshakeDone: handshakeDone, limit: options.handshakeTimeout)
                closeSession(.handshakeTimeout)
                break
            }
            if now >= nextTick, let period = tickPeriod {
                nextTick = now + .milliseconds(period)
                call { s, a throws(USPError) in try s.tick(into: &a) }
                continue
            }
            var fds = [pollfd(fd: socket, events: socketEvents, revents: 0)]
            let readInput = accepted && !inputEnded && !waitingForCredit && toSocket.isEmpty
            if readInput { fds.append(pollfd(fd: stdio.input, events: Int16(POLLIN), revents: 0)) }
            if toOutputOffset < toOutput.count { fds.append(pollfd(fd: stdio.output, events: Int16(POLLOUT), revents: 0)) }
            var until = replied ? nextTick : min(nextTick, handshakeDeadline)
            if until == .distantFuture { until = now + .seconds(3600) }
            let timeout = CInt(clamping: max(0, (until - now).nanoseconds + 999_999) / 1_000_000)
            let n = poll(&fds, nfds_t(fds.count), timeout)
            if n < 0 {
                guard errno == EINTR else { throw USPClientError(.connectionLost, "poll failed: \(String(cString: strerror(errno)))") }
                continue
            }
            for p in fds where p.revents != 0 {
                if p.fd == socket {
                    if p.revents & Int16(POLLOUT) != 0 { writeSocket() }
                    if p.revents & Int16(POLLIN | POLLHUP | POLLERR) != 0, outcome == nil { readSocket() }
                } else if p.fd == stdio.output {
                    writeOutput()
                } else {
                    readStdin()
                }
            }
        }
        try finish()
    }

    private var socketEvents: Int16 {
        var events: Int16 = 0
        if toOutput.count - toOutputOffset < Self.outputLimit { events |= Int16(POLLIN) }
        if !toSocket.isEmpty { events |= Int16(POLLOUT) }
        return events
    }

    // MARK: - The session

    /// Calls into the session, sends what it produced and acts on its actions.
    private func call(_ body: (inout ClientSession, inout ClientActions) throws(USPError) -> Void) {
        do throws(USPError) {
            try body(&session, &actions)
        } catch {
            // A call the session refused (a write after the stream was reset): the attempt ends.
            fail(ErrorText.local(error, server: server))
        }
        flushSession()
        handleActions()
    }

    private func handleActions() {
        guard !actions.isEmpty else { return }
        // Credit came (or the stream opened with input already ended): push stdin's bytes after.
        var pushAfter = false
        for action in actions {
            switch action {
            case .handshakeCompleted(let pattern, let key, let early):
                handshakeDone = true
                facts = Facts(pattern: pattern, serverStatic: key, earlyDataAccepted: early)
            case .applicationSessionReply:
                replied = true
            case .serverError(let e):
                serverError = e
            case .streamAccepted(let id) where id == stream:
                accepted = true
                pushAfter = inputEnded
            case .streamRejected(let id, let code, let message) where id == stream:
                fail(ErrorText.streamRefused(code: code, message: message, server: server))
            case .streamData(let id, let data) where id == stream:
                deliver(data)
            case .streamFinished(let id) where id == stream:
                remoteFinished = true
            case .streamClosed(let id, let code) where id == stream:
                if code == .ok {
                    remoteFinished = true
                } else {
                    fail(ErrorText.streamReset(code: code, server: server))
                }
            case .streamWritable(let id) where id == stream:
                waitingForCredit = false
                pushAfter = true
            case .shaping(let profile):
                tickPeriod = profile.map { Int64($0.tickMilliseconds) }
                nextTick = profile == nil ? .distantFuture : .now()
            case .serviceReply:
                // A reply nobody asked for: the server broke the protocol.
                fail(USPClientError(.connectionLost, "\(server.hostPort) sent a service reply nobody asked for", wireCode: .unexpectedMessage))
            case .closed(let reason):
                let error = endOverride ?? ErrorText.sessionEnded(reason: reason, serverError: serverError, server: server, handshakeDone: handshakeDone)
                if outcome == nil {
                    // The stream's own end (a reset, a refusal) says more than the session's.
                    if let pendingFailure {
                        outcome = .failure(pendingFailure)
                    } else {
                        outcome = reason == nil && remoteFinished ? .success(()) : .failure(error)
                    }
                }
            default:
                break
            }
        }
        actions.removeAll()
        if endOnPendingFailure() { return }
        if pushAfter { pushInput() }
        if outcome == nil, remoteFinished, toOutputOffset == toOutput.count { endCleanly() }
        // Credit handed back while the data went out (WINDOW) leaves now.
        flushSession()
    }

    /// A failure found while actions are handed out (or while stdout is written), acted on after
    /// them, or by the loop.
    private var pendingFailure: USPClientError?

    /// Ends the attempt with the pending failure, if there is one (CLOSE, ok unless the server
    /// broke the protocol).
    private func endOnPendingFailure() -> Bool {
        guard outcome == nil, let e = pendingFailure else { return false }
        pendingFailure = nil
        outcome = .failure(e)
        closeSession(e.wireCode == .unexpectedMessage ? .unexpectedMessage : .ok)
        return true
    }

    private func fail(_ error: USPClientError) {
        if pendingFailure == nil { pendingFailure = error }
    }

    /// Both directions are done: CLOSE (ok) and stop.
    private func endCleanly() {
        outcome = .success(())
        closeSession(.ok)
    }

    private func closeSession(_ code: USPError.Code) {
        var closing = ClientActions()
        session.close(code: code, into: &closing)
        flushSession()
        for case .closed(let reason) in closing where outcome == nil {
            outcome = .failure(endOverride ?? ErrorText.sessionEnded(reason: reason, serverError: serverError, server: server, handshakeDone: handshakeDone))
        }
    }

    /// Sends what the session still had to say, closes the socket, writes out what stdout has not
    /// taken yet, and gives the result.
    private func finish() throws(USPClientError) {
        if socket >= 0 {
            if !toSocket.isEmpty { writeSocket(blockingFor: 100) }
            close(socket)
            socket = -1
        }
        flushOutput()
        switch outcome {
        case .failure(let e)?:
            throw e
        default:
            return
        }
    }

    /// Records a new server key once the application answered (as `USPConnection` does).
    private func recordNewKey() {
        guard let facts, (try? plan.recordIfNew(facts)) == true else { return }
        plan.options.onNewServerKey?(plan.addedNotice(facts))
    }

    // MARK: - Socket

    private func flushSession() {
        guard session.outboundByteCount > 0 else { return }
        if toSocket.isEmpty {
            let failed = session.drainOutbound { bytes -> CInt? in
                let n = send(socket, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL))
                let sent = n > 0 ? n : 0
                if sent < bytes.count { toSocket.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[sent...])) }
                return n < 0 && errno != EAGAIN && errno != EINTR && errno != EINPROGRESS ? errno : nil
            }
            if let failed { noteSocketError(failed) }
        } else {
            session.drainOutbound { toSocket.append(contentsOf: $0) }
        }
    }

    private func writeSocket(blockingFor ms: CInt = 0) {
        while toSocketOffset < toSocket.count {
            let n = toSocket.withUnsafeBytes { b in
                send(socket, b.baseAddress! + toSocketOffset, b.count - toSocketOffset, Int32(MSG_NOSIGNAL))
            }
            if n > 0 { toSocketOffset += n; continue }
            if n < 0, errno == EINTR { continue }
            if n < 0, errno == EAGAIN || errno == EINPROGRESS, ms > 0 {
                var p = pollfd(fd: socket, events: Int16(POLLOUT), revents: 0)
                if poll(&p, 1, ms) > 0 { continue }
            } else if n < 0, errno != EAGAIN, errno != EINPROGRESS {
                noteSocketError(errno)
            }
            break
        }
        if toSocketOffset == toSocket.count {
            toSocket.removeAll(keepingCapacity: true)
            toSocketOffset = 0
            // The socket took everything: more stdin may be sealed.
            pushInput()
        }
    }

    private func readSocket() {
        let n = readBuffer.withUnsafeMutableBytes { read(socket, $0.baseAddress, $0.count) }
        if n > 0 {
            let now = ClientSessionHandler.wallClock()
            call { s, a throws(USPError) in
                readBuffer.withUnsafeBytes { b in
                    s.receive(UnsafeRawBufferPointer(rebasing: b[..<n]), now: now, delegate: trust, into: &a)
                }
            }
            if replied, !recorded {
                recorded = true
                recordNewKey()
            }
        } else if n == 0 {
            call { s, a throws(USPError) in s.endOfInput(into: &a) }
            if outcome == nil { outcome = .failure(ErrorText.sessionEnded(reason: USPError(.unexpectedEOF, "connection closed"), serverError: serverError, server: server, handshakeDone: handshakeDone)) }
        } else if errno != EAGAIN, errno != EINTR {
            noteSocketError(errno)
        }
    }

    private var recorded = false

    /// A socket error (ECONNRESET and the like): the session cannot go on. Acted on by the loop.
    private func noteSocketError(_ code: CInt) {
        if socketError == nil { socketError = code }
    }

    /// Ends the attempt after a socket error: with the connect's message when the server was
    /// never reached (with Fast Open a refused connect shows only now).
    private func socketFailed(_ code: CInt) {
        var closing = ClientActions()
        session.close(code: .internalError, into: &closing)
        _ = session.drainOutbound { _ in 0 }
        toSocket.removeAll()
        toSocketOffset = 0
        if !replied, [ECONNREFUSED, ETIMEDOUT, EHOSTUNREACH, ENETUNREACH].contains(code) {
            outcome = .failure(ErrorText.connect(IOError(errnoCode: code, reason: "connect"), server: server))
        } else {
            let reason = USPError(.unexpectedEOF, "connection failed: \(SocketErrorText.describe(IOError(errnoCode: code, reason: "read")))")
            outcome = .failure(ErrorText.sessionEnded(reason: reason, serverError: serverError, server: server, handshakeDone: handshakeDone))
        }
    }

    // MARK: - stdin to the stream

    /// Reads stdin straight into the records being composed (no copy between the read and the
    /// seal), as far as the server's credit goes; FIN once input ends.
    private func readStdin() {
        var result = 0
        var readErrno: Int32 = 0
        var called = false
        var taken = 0
        let input = stdio.input
        call { s, _ throws(USPError) in
            taken = try s.write(stream: stream, upTo: Self.readSize) { buffer in
                called = true
                result = read(input, buffer.baseAddress, buffer.count)
                if result < 0 { readErrno = errno }
                return max(result, 0)
            }
        }
        guard outcome == nil else { return }
        if !called {
            // No credit (or the stream is not writable now): wait for `.streamWritable`.
            waitingForCredit = true
            return
        }
        if taken > 0 { return }
        if result == 0 || (readErrno != EAGAIN && readErrno != EINTR) {
            // End of input (or a read error, which ends it the same way): FIN.
            inputEnded = true
            pushInput()
        }
    }

    /// Sends FIN once input ended (stdin's bytes go out as they are read, `readStdin`).
    private func pushInput() {
        guard accepted, outcome == nil else { return }
        if inputEnded, !finishSent {
            finishSent = true
            call { s, a throws(USPError) in try s.finish(stream: stream, into: &a) }
        }
    }

    // MARK: - The stream to stdout

    private func deliver(_ data: ArraySlice<UInt8>) {
        guard outputError == nil else { return }
        if toOutputOffset == toOutput.count {
            toOutput.removeAll(keepingCapacity: true)
            toOutputOffset = 0
            let written = data.withUnsafeBytes { writeToOutput($0) }
            if written > 0 { try? session.consumed(stream: stream, count: written) }
            if outputError == nil, written < data.count { toOutput.append(contentsOf: data[(data.startIndex + written)...]) }
        } else {
            toOutput.append(contentsOf: data)
        }
    }

    private func writeOutput() {
        let written = toOutput.withUnsafeBytes { writeToOutput(UnsafeRawBufferPointer(rebasing: $0[toOutputOffset...])) }
        if outputError != nil {
            toOutput.removeAll()
            toOutputOffset = 0
        } else {
            toOutputOffset += written
        }
        if written > 0 {
            call { s, _ throws(USPError) in try s.consumed(stream: stream, count: written) }
        }
        if outputError == nil, toOutputOffset == toOutput.count, outcome == nil, remoteFinished { endCleanly() }
    }

    /// Writes as much of `bytes` as stdout takes now; a write error ends the attempt.
    private func writeToOutput(_ bytes: UnsafeRawBufferPointer) -> Int {
        var written = 0
        while written < bytes.count {
            let n = write(stdio.output, bytes.baseAddress! + written, bytes.count - written)
            if n > 0 { written += n; continue }
            if n < 0, errno == EINTR { continue }
            if n < 0, errno != EAGAIN { outputFailed(errno) }
            break
        }
        return written
    }

    /// The bytes that arrived before the end go out, whatever the end was (blocking, briefly).
    private func flushOutput() {
        while toOutputOffset < toOutput.count, outputError == nil {
            var p = pollfd(fd: stdio.output, events: Int16(POLLOUT), revents: 0)
            guard poll(&p, 1, 10_000) > 0 else { return }
            let n = toOutput.withUnsafeBytes { b in write(stdio.output, b.baseAddress! + toOutputOffset, b.count - toOutputOffset) }
            if n > 0 { toOutputOffset += n } else if n < 0, errno != EAGAIN, errno != EINTR { return }
        }
    }

    private var outputError: CInt?

    private func outputFailed(_ code: CInt) {
        guard outputError == nil else { return }
        outputError = code
        fail(USPClientError(.localFile, "cannot write to standard output: \(String(cString: strerror(code)))"))
    }
}
