import Foundation
import Logging
import NIOCore
import NIOPosix
import USPConfig
import USPCore
import USPNIO
import USPStore

/// What one connection's `ServerSessionHandler` reports, turned into audit rows, launches,
/// limiter accounting and cross-session revocation. One per connection, on its event loop.
final class ConnectionHooks: ServerSessionHooks {
    let server: ServerRuntime
    /// This connection's slot in `AdmissionControl`; its class follows the session.
    let ticket: AdmissionControl.Ticket
    private var admissionClass = AdmissionControl.Class.starting(proven: false)
    private var pattern: HandshakeLayout.Pattern?
    /// Streams admitted by `StreamLimiter` and not yet ended: stream → caller.
    private var admitted: [UInt32: String] = [:]

    init(server: ServerRuntime, ticket: AdmissionControl.Ticket) {
        self.server = server
        self.ticket = ticket
    }

    /// Tells admission control what this connection is now: starting (proven once message 1 was
    /// a fresh IK/NK initiation), anonymous, or busy (logged in, or with an open stream).
    private func reclassify(_ handler: ServerSessionHandler) {
        let kind = currentClass(handler)
        guard kind != admissionClass else { return }
        admissionClass = kind
        server.admission.update(ticket, to: kind)
    }

    private func currentClass(_ handler: ServerSessionHandler) -> AdmissionControl.Class {
        switch handler.state {
        case .awaitingMessage1, .awaitingMessage3, .awaitingInitialRequest:
            .starting(proven: handler.freshInitiation)
        case .established, .handingOff, .closed:
            handler.identity != nil || handler.hasStreams || !admitted.isEmpty ? .busy : .anonymous
        }
    }

    /// How long a connection chosen to give way before anything was read from it has to show
    /// that it is not a stranger (its message 1 read and proven). Under a flood its loop can take
    /// hundreds of milliseconds to reach it; the slot is already given to the newcomer, so this
    /// only delays the close (at most accepts per second × this many connections more).
    static let giveWayGrace = TimeAmount.milliseconds(500)

    /// Admission chose this connection to give way (on whichever thread admitted the newcomer).
    /// If it logged in or opened a stream since, it stays and is counted again; otherwise it is
    /// closed: silently before its handshake is done, with CLOSE `server_busy` after.
    func giveWay(_ handler: ServerSessionHandler) {
        let kind = currentClass(handler)
        if kind.evictionRank == nil, handler.state != .closed {
            admissionClass = kind
            server.admission.reinstate(ticket, as: kind)
        } else {
            handler.close(code: .serverBusy)
        }
    }

    private func event(_ kind: AuditEvent.Kind, _ handler: ServerSessionHandler) -> AuditEvent {
        AuditEvent(time: Date(), kind: kind, session: handler.serverSessionID, peerAddress: handler.peerAddress,
                   clientKey: handler.info.clientStatic.map(Fingerprint.of), identity: handler.identity?.name)
    }

    func handshakeCompleted(_ handler: ServerSessionHandler, pattern: HandshakeLayout.Pattern, clientStatic: [UInt8]?) {
        self.pattern = pattern
        server.metrics.handshake(result: "ok", pattern: "\(pattern)")
        var e = event(.connectionOpened, handler)
        e.detail = "\(pattern)"
        // Grants nothing by itself: queued, and on disk before anything is granted on this connection.
        server.audit.note(e)
        server.logger.debug("\(handler.serverSessionID) from \(handler.peerAddress): \(pattern) handshake done")
        reclassify(handler)
    }

    func sessionEstablished(_ handler: ServerSessionHandler) {
        reclassify(handler)
    }

    func authenticated(_ handler: ServerSessionHandler, identity: Identity, tokenID: TokenProof.TokenID) {
        reclassify(handler)
        // Its next connections are not held to the strangers' handshake rate.
        server.rateLimiter.vouch(for: handler.peerAddress, now: ServerClock.monotonic())
        server.logger.info("\(handler.serverSessionID) from \(handler.peerAddress): authenticated as \(identity.name)")
    }

    func shapingProfile(for grant: ApplicationGrant) -> ShapingProfile? {
        switch server.policy.catalog.application(named: grant.application)?.shape {
        case .interactive?: .interactive
        case .none?, nil: nil
        }
    }

    /// Admits a stream against the limits, in this order: the caller's concurrent streams and
    /// streams per minute (`StreamLimiter`), then the application's cap (`Launcher.reserve`). A
    /// refusal is a `rate_limited` audit row naming the limit, a log line, and the code in the
    /// stream's RESET. Then `stream_opened` is written (fail closed) and the application started.
    func openApplication(_ port: ServerStreamPort, grant: ApplicationGrant, session: ServerSessionInfo)
        -> Result<any ServerStreamApplication, USPError> {
        // The token row says what the application is told (its request, whom it was brokered
        // for): a store that cannot say refuses the stream rather than tell it less.
        let token: TokenRecord?
        do {
            token = try server.policy.store.token(id: grant.tokenID.description)
        } catch {
            server.logger.error("\(session.serverSessionID): stream \(port.stream) of \(grant.application) refused: its token could not be read: \(error)")
            return .failure(USPError(.storeUnavailable, "the token store cannot be read"))
        }
        // A brokered stream names its broker (the identity) and the address it was brokered for.
        let e = AuditEvent(time: Date(), kind: .streamOpened, session: session.serverSessionID, peerAddress: session.peerAddress,
                           clientKey: session.clientStatic.map(Fingerprint.of), identity: grant.identity?.name,
                           tokenID: grant.tokenID.description, authorizationTokenID: grant.authorizationTokenID?.description,
                           application: grant.application, stream: Int64(port.stream),
                           detail: token?.brokeredFor.map { "brokered by \(grant.identity?.name ?? "?") for \($0)" })
        guard let definition = server.policy.catalog.application(named: grant.application) else {
            var gone = e
            gone.kind = .streamClosed
            gone.result = USPError.Code.streamRefused.name
            gone.detail = "\(grant.application) is no longer in apps.d"
            server.audit.note(gone)
            return .failure(USPError(.streamRefused, gone.detail!))
        }
        let caller = StreamLimiter.caller(identity: grant.identity?.name, peerAddress: session.peerAddress)
        if let refusal = server.streamLimiter.admit(caller, now: ServerClock.monotonic()) {
            return refuse(refusal, e)
        }
        let slot: Launcher.Slot
        switch server.launcher.reserve(definition) {
        case .success(let s): slot = s
        case .failure(let refusal):
            server.streamLimiter.release(caller)
            return refuse(refusal, e)
        }
        let request = Launcher.Request(application: definition, identity: grant.identity?.name, peerAddress: session.peerAddress,
                                       serverSessionID: session.serverSessionID, tokenID: grant.tokenID.description,
                                       requestJSON: token?.requestJSON ?? "{}",
                                       authorizationTokenID: grant.authorizationTokenID?.description, brokeredFor: token?.brokeredFor)
        do {
            try server.audit.record(e)
        } catch {
            // Audit fails closed: nothing starts without its stream_opened row.
            slot.release()
            server.streamLimiter.release(caller)
            return .failure(USPError(.streamRefused, "the audit trail cannot be written"))
        }
        // The row is committed; the application starts once it is on disk.
        let launcher = server.launcher
        let application: any ServerStreamApplication
        if let durable = server.audit.durabilityBarrier(session: session.serverSessionID, on: port.eventLoop) {
            application = DeferredLaunch(port: port, durable: durable, logger: server.logger,
                                         launch: { launcher.open(request, port: port, slot: slot) },
                                         abandon: { slot.release() })
        } else {
            application = launcher.open(request, port: port, slot: slot)
        }
        admitted[port.stream] = caller
        admissionClass = .busy
        server.admission.update(ticket, to: .busy)
        server.logger.info("\(session.serverSessionID): stream \(port.stream) opened \(grant.application) for \(grant.identity?.name ?? "anonymous")")
        return .success(application)
    }

    private func refuse(_ refusal: USPError, _ opened: AuditEvent) -> Result<any ServerStreamApplication, USPError> {
        var e = opened
        e.kind = .rateLimited
        e.result = refusal.code.name
        e.detail = refusal.detail
        server.audit.note(e)
        server.logger.notice("\(e.session ?? "?"): stream \(e.stream ?? 0) of \(e.application ?? "?") refused: \(refusal.detail) (\(refusal.code.name))")
        return .failure(refusal)
    }

    func streamClosed(_ handler: ServerSessionHandler, stream: UInt32, grant: ApplicationGrant, code: USPError.Code,
                      bytesIn: Int64, bytesOut: Int64, seconds: Double) {
        if let caller = admitted.removeValue(forKey: stream) { server.streamLimiter.release(caller) }
        reclassify(handler)
        server.audit.note(streamEvent(.streamClosed, handler, stream: stream, grant: grant, result: code.name,
                                      bytesIn: bytesIn, bytesOut: bytesOut, seconds: seconds))
    }

    func streamHandedOff(_ handler: ServerSessionHandler, stream: UInt32, grant: ApplicationGrant,
                         bytesIn: Int64, bytesOut: Int64, seconds: Double) {
        // From here the application owns the connection. The session still counts under the
        // caller's limits until its control line closes (the session ended, or was revoked);
        // then its end is audited, with its whole duration (bytes are the application's to know).
        let caller = admitted.removeValue(forKey: stream)
        var e = streamEvent(.streamHandedOff, handler, stream: stream, grant: grant, result: "handed_off",
                            bytesIn: bytesIn, bytesOut: bytesOut, seconds: seconds)
        e.detail = "relay-free: the TCP connection and its keys now belong to \(grant.application)"
        server.audit.note(e)
        server.logger.info("\(handler.serverSessionID): stream \(stream) handed off relay-free to \(grant.application)")
        let server = self.server
        let handedOffAt = ServerClock.monotonic()
        var ended = e
        ended.kind = .streamClosed
        ended.result = "ok"
        let key = RelayFreeSessions.Key(session: handler.serverSessionID, stream: stream)
        server.registry.relayFree.whenEnded(key) { [ended] in
            if let caller { server.streamLimiter.release(caller) }
            var row = ended
            let total = seconds + (ServerClock.monotonic() - handedOffAt)
            row.durationMS = Int64((total * 1000).rounded())
            row.detail = "relay-free session ended (its control line closed)"
            server.audit.note(row)
            server.logger.info("\(key.session): relay-free stream \(key.stream) of \(grant.application) ended")
        }
    }

    /// The audit row of a stream's end (closed or handed off), with its counts up to then.
    private func streamEvent(_ kind: AuditEvent.Kind, _ handler: ServerSessionHandler, stream: UInt32, grant: ApplicationGrant,
                             result: String, bytesIn: Int64, bytesOut: Int64, seconds: Double) -> AuditEvent {
        var e = event(kind, handler)
        e.identity = grant.identity?.name ?? e.identity
        e.tokenID = grant.tokenID.description
        e.authorizationTokenID = grant.authorizationTokenID?.description
        e.application = grant.application
        e.stream = Int64(stream)
        e.result = result
        e.bytesIn = bytesIn
        e.bytesOut = bytesOut
        e.durationMS = Int64((seconds * 1000).rounded())
        return e
    }

    func tokensInvalidated(_ handler: ServerSessionHandler, _ ids: [TokenProof.TokenID]) {
        guard let loop = handler.eventLoop else { return }
        server.logger.info("\(handler.serverSessionID): \(ids.count) token(s) invalidated; ending their streams everywhere")
        server.registry.revoke(Set(ids), on: loop)
    }

    /// Password hashing (scrypt, tens of milliseconds) runs on NIO's blocking-work pool, so one
    /// login never stalls the other sessions of this event loop.
    func authenticate(fields: [String: JSONValue], context: SessionContext, policy: any ServerSessionDelegate,
                      on loop: any EventLoop) -> EventLoopFuture<Result<AuthorizationGrant, USPError>> {
        let policy = server.policy
        policy.loginArrived(serverSessionID: context.serverSessionID)
        let check = { NIOThreadPool.singleton.runIfActive(eventLoop: loop) { policy.authenticate(fields: fields, context: context) } }
        // Failures for this user from anywhere delay the check (at most a second), never refuse it.
        let delay = policy.loginDelay(fields: fields)
        guard delay > 0 else { return check() }
        return loop.scheduleTask(in: .nanoseconds(Int64(delay * 1e9))) {}.futureResult.flatMap { check() }
    }

    func durabilityBarrier(_ handler: ServerSessionHandler) -> EventLoopFuture<Void>? {
        guard let loop = handler.eventLoop else { return nil }
        return server.audit.durabilityBarrier(session: handler.serverSessionID, on: loop)
    }

    func replyDelay(_ handler: ServerSessionHandler) -> TimeAmount? {
        server.policy.takeReplyDelay(serverSessionID: handler.serverSessionID).map { .nanoseconds(Int64($0 * 1e9)) }
    }

    func sessionClosed(_ handler: ServerSessionHandler, error: USPError?, bytesIn: Int64, bytesOut: Int64, seconds: Double) {
        server.registry.remove(handler.serverSessionID)
        server.policy.forget(serverSessionID: handler.serverSessionID)
        server.admission.closed(ticket)
        if pattern == nil { server.metrics.handshake(result: error?.code.name ?? "ok", pattern: "none") }
        if pattern == nil, let code = error?.code, code != .shuttingDown {
            // A handshake that led nowhere costs its source one more handshake token.
            server.rateLimiter.penalize(handler.peerAddress, now: ServerClock.monotonic())
        }
        for caller in admitted.values { server.streamLimiter.release(caller) }
        admitted = [:]
        var e = event(.connectionClosed, handler)
        e.result = handler.handedOff ? "handed_off" : error?.code.name ?? "ok"
        e.detail = error.map { "\(pattern.map { "\($0)" } ?? "no handshake"): \($0.detail)" } ?? pattern.map { "\($0)" }
        e.bytesIn = bytesIn
        e.bytesOut = bytesOut
        e.durationMS = Int64((seconds * 1000).rounded())
        server.audit.note(e)
        server.logger.debug("\(handler.serverSessionID) from \(handler.peerAddress): closed (\(error?.description ?? "ok"))")
    }
}
