import Foundation
import NIOCore
import USPCore
import USPNIO
import USPStore
import USPUnix

/// The answers of uspd's control socket (`AdminSocket`): `status`, `sessions` and `kill`. Each
/// request is a JSON object with a `command`; each answer an object with `ok` (true or false),
/// and on failure `error` (a code) and `message` (one line for a person).
public final class AdminQueries: Sendable {
    private let daemon: USPDaemon
    private let startedAt = Date()
    private let startedMonotonic = ServerClock.monotonic()
    /// How long a request waits for the sessions' event loops.
    let loopDeadline = 5.0

    init(daemon: USPDaemon) {
        self.daemon = daemon
    }

    private var runtime: ServerRuntime { daemon.runtime }

    public func answer(_ request: JSONValue, from peer: PeerCredentials) -> JSONValue {
        guard let command = request["command"]?.stringValue else {
            return Self.failure("bad_request", "the request has no \"command\" (status, sessions or kill)")
        }
        switch command {
        case "status": return status()
        case "sessions": return sessions()
        case "kill":
            guard let id = request["session"]?.stringValue, !id.isEmpty else {
                return Self.failure("bad_request", "kill needs \"session\": a session ID from uspd sessions")
            }
            return kill(id, by: peer)
        default:
            return Self.failure("unknown_command", "unknown command \"\(command)\"; uspd answers status, sessions and kill")
        }
    }

    static func failure(_ code: String, _ message: String) -> JSONValue {
        .object(["ok": false, "error": .string(code), "message": .string(message)])
    }

    // MARK: - status

    private func status() -> JSONValue {
        let snapshots: [ServerSessionSnapshot]
        do { snapshots = try liveSessions() } catch { return error.answer }
        let options = runtime.options
        let key = runtime.staticKey.publicKey
        let listening = daemon.listeningAddresses
        let loggedIn = snapshots.filter { $0.identity != nil }.count
        let relayFree = runtime.registry.relayFree.count
        let counts = runtime.audit.strangerCounts
        var object: [String: JSONValue] = [
            "ok": true,
            "pid": .integer(Int64(getpid())),
            "started_at": .string(Self.timestamp(startedAt)),
            "uptime_seconds": .integer(Int64(ServerClock.monotonic() - startedMonotonic)),
            "server_key": .string(Base64URL.encode(key)),
            "fingerprint": .string(Fingerprint.of(key)),
            "listening": .array(listening.map { .string($0.text) }),
            "uris": .array(listening.map { .string(ServerHome.uri(serverKey: key, host: $0.host, port: $0.port)) }),
            "first_contact": .bool(options.allowFirstContact),
            "connections": .object([
                "open": .integer(Int64(runtime.admission.total)),
                "unauthenticated": .integer(Int64(runtime.admission.starting)),
                "max_connections": .integer(Int64(options.maxConnections)),
                "max_unauthenticated": .integer(Int64(options.maxUnauthenticated)),
                "gave_way": .integer(Int64(runtime.admission.evictions)),
            ]),
            "sessions": .object([
                "live": .integer(Int64(snapshots.count)),
                "logged_in": .integer(Int64(loggedIn)),
                "streams": .integer(Int64(snapshots.reduce(0) { $0 + $1.streams.count } + relayFree)),
                "relay_free": .integer(Int64(relayFree)),
            ]),
            "known_sources": .integer(Int64(runtime.rateLimiter.knownSources)),
            "applications": .integer(Int64(runtime.policy.catalog.snapshot().entries.count)),
            "audit": .object([
                "pending": .integer(Int64(runtime.audit.pendingCount)),
                "summarised": .integer(counts.summarised),
                "dropped": .integer(counts.dropped),
            ]),
        ]
        if let holds = runtime.silentHolds {
            object["silent_holds"] = .integer(Int64(holds.count))
        }
        object["apps_d_problem"] = daemon.lastReloadProblem.map { .string($0) } ?? .null
        return .object(object)
    }

    // MARK: - sessions

    /// The answer to `{"command":"sessions"}` (also this node's report to a fleet's directory).
    func sessionsAnswer() -> JSONValue { sessions() }

    private func sessions() -> JSONValue {
        let snapshots: [ServerSessionSnapshot]
        do { snapshots = try liveSessions() } catch { return error.answer }
        let now = ServerClock.monotonic()
        var rows: [JSONValue] = snapshots.map(Self.row)
        for (key, description) in runtime.registry.relayFree.list() {
            var row: [String: JSONValue] = ["id": .string(key.session), "stream": .integer(Int64(key.stream)), "relay_free": true]
            if let description {
                row["application"] = .string(description.application)
                row["identity"] = description.identity.map { .string($0) } ?? .null
                row["peer"] = .string(description.peerAddress)
                row["token"] = .string(description.tokenID)
                row["age_seconds"] = .number(Self.rounded(now - description.since))
            }
            rows.append(.object(row))
        }
        return .object(["ok": true, "sessions": .array(rows)])
    }

    static func row(_ s: ServerSessionSnapshot) -> JSONValue {
        var row: [String: JSONValue] = [
            "id": .string(s.serverSessionID),
            "peer": .string(s.peerAddress),
            "identity": s.identity.map { .string($0.name) } ?? .null,
            "client_key": s.clientStatic.map { .string(Fingerprint.of($0)) } ?? .null,
            "pattern": s.pattern.map { .string("\($0)") } ?? .null,
            "state": .string(stateName(s.state)),
            "age_seconds": .number(rounded(s.age)),
            "idle_seconds": .number(rounded(s.idle)),
            "bytes_in": .integer(s.bytesIn),
            "bytes_out": .integer(s.bytesOut),
            "streams": .array(s.streams.map { stream in
                .object([
                    "id": .integer(Int64(stream.id)),
                    "application": .string(stream.application),
                    "token": .string(stream.tokenID.description),
                    "login": stream.authorizationTokenID.map { .string($0.description) } ?? .null,
                    "age_seconds": .number(rounded(stream.age)),
                    "bytes_in": .integer(stream.bytesIn),
                    "bytes_out": .integer(stream.bytesOut),
                ])
            }),
        ]
        if s.shaped { row["shaped"] = true }
        return .object(row)
    }

    static func stateName(_ state: ServerSession.State) -> String {
        switch state {
        case .awaitingMessage1: "handshake"
        case .awaitingMessage3: "handshake"
        case .awaitingInitialRequest: "starting"
        case .established: "established"
        case .handingOff: "handing_off"
        case .closed: "closed"
        }
    }

    // MARK: - kill

    private func kill(_ id: String, by peer: PeerCredentials) -> JSONValue {
        let loop = daemon.group.next()
        let ended: (session: ServerSessionSnapshot?, relayFree: Int)
        do {
            ended = try wait(runtime.registry.close(id, code: .closedByAdministrator, on: loop))
        } catch {
            return error.answer
        }
        guard ended.session != nil || ended.relayFree > 0 else {
            return Self.failure("unknown_session", "no live session \(id); uspd sessions lists them")
        }
        let who = "uid \(peer.uid) (pid \(peer.pid), \(ProcessExecutable.path(of: peer.pid) ?? "unknown program"))"
        let code = USPError.Code.closedByAdministrator.name
        runtime.audit.note(AuditEvent(kind: .sessionKilled, session: id, peerAddress: ended.session?.peerAddress,
                                      clientKey: ended.session?.clientStatic.map(Fingerprint.of), identity: ended.session?.identity?.name,
                                      result: code, detail: "by \(who) through the control socket"
                                          + (ended.relayFree > 0 ? "; \(ended.relayFree) relay-free stream(s) told to reset" : "")))
        runtime.logger.notice("\(id): ended by an administrator, \(who)")
        return .object(["ok": true, "killed": .string(id), "streams": .integer(Int64((ended.session?.streams.count ?? 0) + ended.relayFree))])
    }

    // MARK: - Helpers

    private func liveSessions() throws(AdminFailure) -> [ServerSessionSnapshot] {
        try wait(runtime.registry.snapshots(on: daemon.group.next()))
    }

    /// Waits for `future` on this (non-loop) thread, at most `loopDeadline` seconds.
    private func wait<T: Sendable>(_ future: EventLoopFuture<T>) throws(AdminFailure) -> T {
        let done = DispatchSemaphore(value: 0)
        let box = ResultBox<T>()
        future.whenComplete { result in
            box.set(result)
            done.signal()
        }
        guard done.wait(timeout: .now() + loopDeadline) == .success, let result = box.get() else {
            throw AdminFailure(code: "timeout", message: "uspd's event loops did not answer within \(Int(loopDeadline)) s")
        }
        switch result {
        case .success(let value): return value
        case .failure(let error): throw AdminFailure(code: "internal_error", message: "\(error)")
        }
    }

    public static func rounded(_ seconds: Double) -> Double { (seconds * 10).rounded() / 10 }

    public static func timestamp(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: date)
    }
}

/// A result handed from an event loop to a waiting thread.
private final class ResultBox<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Result<T, any Error>?
    func set(_ result: Result<T, any Error>) { lock.withLock { value = result } }
    func get() -> Result<T, any Error>? { lock.withLock { value } }
}

/// A request that could not be answered: its `ok: false` answer.
struct AdminFailure: Error {
    let code: String
    let message: String
    var answer: JSONValue { AdminQueries.failure(code, message) }
}
