import Foundation
import Logging
import NIOCore
import USPConfig
import USPCore
import USPNIO
import USPStore

/// What one connection's `ServerSessionHandler` reports, turned into audit rows, launches,
/// limiter accounting and cross-session revocation. One per connection, on its event loop.
final class ConnectionHooks: ServerSessionHooks {
    let server: ServerRuntime
    private var starting = true
    private var pattern: HandshakeLayout.Pattern?

    init(server: ServerRuntime) {
        self.server = server
    }

    private func event(_ kind: AuditEvent.Kind, _ handler: ServerSessionHandler) -> AuditEvent {
        AuditEvent(time: Date(), kind: kind, session: handler.serverSessionID, peerAddress: handler.peerAddress,
                   clientKey: handler.info.clientStatic.map(Fingerprint.of), identity: handler.identity?.name)
    }

    func handshakeCompleted(_ handler: ServerSessionHandler, pattern: HandshakeLayout.Pattern, clientStatic: [UInt8]?) {
        self.pattern = pattern
        var e = event(.connectionOpened, handler)
        e.detail = "\(pattern)"
        // Grants nothing by itself: queued, and on disk before anything is granted on this connection.
        server.audit.note(e)
        server.logger.debug("\(handler.serverSessionID) from \(handler.peerAddress): \(pattern) handshake done")
    }

    func sessionEstablished(_ handler: ServerSessionHandler) {
        if starting {
            starting = false
            server.limiter.connectionEstablished()
        }
    }

    func authenticated(_ handler: ServerSessionHandler, identity: Identity, tokenID: TokenProof.TokenID) {
        server.logger.info("\(handler.serverSessionID) from \(handler.peerAddress): authenticated as \(identity.name)")
    }

    func openApplication(_ port: ServerStreamPort, grant: ApplicationGrant, session: ServerSessionInfo) -> (any ServerStreamApplication)? {
        guard let definition = server.policy.catalog.application(named: grant.application) else { return nil }
        let token = try? server.policy.store.token(id: grant.tokenID.description)
        var e = AuditEvent(time: Date(), kind: .streamOpened, session: session.serverSessionID, peerAddress: session.peerAddress,
                           clientKey: session.clientStatic.map(Fingerprint.of), identity: grant.identity?.name,
                           tokenID: grant.tokenID.description, authorizationTokenID: grant.authorizationTokenID?.description,
                           application: grant.application, stream: Int64(port.stream))
        let request = Launcher.Request(application: definition, identity: grant.identity?.name, peerAddress: session.peerAddress,
                                       serverSessionID: session.serverSessionID, tokenID: grant.tokenID.description,
                                       requestJSON: token?.requestJSON ?? "{}",
                                       authorizationTokenID: grant.authorizationTokenID?.description)
        do {
            try server.audit.record(e)
        } catch {
            return nil
        }
        guard let application = server.launcher.open(request, port: port) else {
            e.kind = .streamClosed
            e.result = USPError.Code.streamRefused.name
            server.audit.note(e)
            return nil
        }
        server.logger.info("\(session.serverSessionID): stream \(port.stream) opened \(grant.application) for \(grant.identity?.name ?? "anonymous")")
        return application
    }

    func streamClosed(_ handler: ServerSessionHandler, stream: UInt32, grant: ApplicationGrant, code: USPError.Code,
                      bytesIn: Int64, bytesOut: Int64, seconds: Double) {
        server.audit.note(streamEvent(.streamClosed, handler, stream: stream, grant: grant, result: code.name,
                                      bytesIn: bytesIn, bytesOut: bytesOut, seconds: seconds))
    }

    func streamHandedOff(_ handler: ServerSessionHandler, stream: UInt32, grant: ApplicationGrant,
                         bytesIn: Int64, bytesOut: Int64, seconds: Double) {
        var e = streamEvent(.streamHandedOff, handler, stream: stream, grant: grant, result: "handed_off",
                            bytesIn: bytesIn, bytesOut: bytesOut, seconds: seconds)
        e.detail = "relay-free: the TCP connection and its keys now belong to \(grant.application)"
        server.audit.note(e)
        server.logger.info("\(handler.serverSessionID): stream \(stream) handed off relay-free to \(grant.application)")
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

    func replyDelay(_ handler: ServerSessionHandler) -> TimeAmount? {
        server.policy.takeReplyDelay(serverSessionID: handler.serverSessionID).map { .nanoseconds(Int64($0 * 1e9)) }
    }

    func sessionClosed(_ handler: ServerSessionHandler, error: USPError?, bytesIn: Int64, bytesOut: Int64, seconds: Double) {
        server.registry.remove(handler.serverSessionID)
        server.limiter.connectionClosed(wasStarting: starting)
        starting = false
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
