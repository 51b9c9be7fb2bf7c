import Glibc
import NIOCore
import NIOPosix
import USPCore
import USPNIO

/// Turns protocol codes and socket errors into one line for a person: what failed, where, and
/// what to do. Every `USPClientError` the library throws is built here or next to its cause.
enum ErrorText {
    static func loginHint(_ server: ServerURI) -> String {
        "usp login \(server.withoutKey) --user NAME"
    }

    /// A per-index error in a service reply for application `name`.
    /// `byName`: the answer to a begin by name, whose `authorization_token_missing` does not say
    /// whether the application exists.
    static func applicationRequest(_ e: WireError, name: String, offer: ApplicationOffer?, server: ServerURI,
                                   byName: Bool = false) -> USPClientError {
        let s = server.hostPort
        switch e.code {
        case .authorizationMissing:
            if byName {
                // A begin by name: before login the server does not say whether the name exists.
                return USPClientError(.loginRequired, "\"\(name)\" on \(s) is not open without a login (or there is no such application): log in first (\(loginHint(server))) or see usp menu \(server.withoutKey)", wireCode: e.code)
            }
            return USPClientError(.loginRequired, "\"\(name)\" on \(s) needs a login; log in first: \(loginHint(server))", wireCode: e.code)
        case .unknownApplication:
            return USPClientError(.unknownApplication, "no application named \"\(name)\" on your menu at \(s); run usp menu \(server.withoutKey) to see what is offered", wireCode: e.code)
        case .authorizationInvalid, .tokenExpired, .tokenRevoked:
            return loginExpired(e.code, server: server)
        case .invalidRequestBody:
            let fields = offer.map { " (fields: \(fieldList($0.expectedRequestBody)))" } ?? ""
            return USPClientError(.refused, "\(s) refused the request for \"\(name)\": \(e.message)\(fields); pass them with --field NAME=VALUE", wireCode: e.code)
        case .unknownIndex:
            return USPClientError(.unknownApplication, "\"\(name)\" is no longer on the menu of \(s); run usp menu \(server.withoutKey) to see what is offered", wireCode: e.code)
        case .rateLimited:
            return USPClientError(.refused, "\(s) is rate limiting requests; wait a moment and try again", wireCode: e.code)
        case .storeUnavailable:
            return storeUnavailable(server)
        default:
            return USPClientError(.refused, "\(s) refused the request for \"\(name)\": \(e.code.name) (\(e.message))", wireCode: e.code)
        }
    }

    /// A per-index error in the reply to a brokering request (`usp broker`).
    static func brokering(_ e: WireError, name: String, offer: ApplicationOffer?, clientIP: String, server: ServerURI) -> USPClientError {
        let s = server.hostPort
        switch e.code {
        case .brokerNotAllowed:
            return USPClientError(.refused, "\(s) does not let this login broker connections (\(e.message)); its administrator grants it with a [[broker]] rule in uspd.toml", wireCode: e.code)
        case .brokerAddressNotAllowed:
            return USPClientError(.refused, "\(s) does not let this login broker for \(clientIP): \(e.message)", wireCode: e.code)
        case .rateLimited:
            return USPClientError(.refused, "\(s) refused: \(e.message); wait a minute and try again", wireCode: e.code)
        default:
            return applicationRequest(e, name: name, offer: offer, server: server)
        }
    }

    /// A refusal of a token given on the command line (`usp connect --token`), said for someone
    /// who holds no login: the token came from a broker or another machine.
    static func givenToken(_ e: USPClientError, server: ServerURI) -> USPClientError {
        let s = server.hostPort
        switch e.wireCode {
        case .tokenRevoked?:
            return USPClientError(.refused, "\(s) refused the token: it (or the login it was issued under) was revoked; ask whoever gave it to you for a new one", wireCode: e.wireCode)
        case .tokenExpired?:
            return USPClientError(.refused, "\(s) refused the token: it expired (or the login it was issued under did); ask whoever gave it to you for a new one", wireCode: e.wireCode)
        case .tokenWrongAddress?:
            return USPClientError(.refused, "\(s) refused the token: it was issued to another address than this machine's as the server sees it (a broker must name that address; is a NAT or proxy changing it?)", wireCode: e.wireCode)
        case .tokenInvalid?:
            return USPClientError(.refused, "\(s) does not know the token (mistyped, or for another server)", wireCode: e.wireCode)
        default:
            return e
        }
    }

    /// The server could not read or record what was asked (`store_unavailable`): nothing was done.
    static func storeUnavailable(_ server: ServerURI, as code: USPClientError.Code = .refused, nothing: String = "granted nothing") -> USPClientError {
        USPClientError(code, "\(server.hostPort) cannot reach its database right now, so it \(nothing); try again later (store_unavailable)",
                       wireCode: .storeUnavailable)
    }

    static func loginExpired(_ code: USPError.Code, server: ServerURI) -> USPClientError {
        let why = switch code {
        case .tokenExpired: "it expired"
        case .tokenRevoked: "it was revoked"
        default: "the server does not accept it"
        }
        return USPClientError(.loginExpired, "the saved login for \(server.hostPort) is no longer valid (\(why)); log in again: \(loginHint(server))", wireCode: code)
    }

    /// The login reply at index 0 was an error.
    static func login(_ e: WireError, user: String?, server: ServerURI) -> USPClientError {
        let s = server.hostPort
        switch e.code {
        case .authenticationFailed:
            if let user {
                return USPClientError(.authenticationFailed, "wrong user or password for \(user) on \(s); check both and run usp login again", wireCode: e.code)
            }
            return USPClientError(.authenticationFailed, "\(s) does not accept this client's key; give its administrator the output of usp pubkey < identity (or usp keygen's public key)", wireCode: e.code)
        case .unknownMethod:
            return USPClientError(.unsupported, "\(s) does not offer that login method: \(e.message)", wireCode: e.code)
        case .rateLimited:
            return USPClientError(.refused, "\(s) is rate limiting logins; wait a moment and try again", wireCode: e.code)
        case .invalidRequestBody:
            return USPClientError(.refused, "\(s) refused the login request: \(e.message)", wireCode: e.code)
        case .storeUnavailable:
            return storeUnavailable(server)
        default:
            return USPClientError(.authenticationFailed, "login on \(s) failed: \(e.code.name) (\(e.message))", wireCode: e.code)
        }
    }

    /// An OPEN, or a dedicated connection's application_session begin, was refused.
    static func streamRefused(code: USPError.Code, message: String, server: ServerURI) -> USPClientError {
        let s = server.hostPort
        switch code {
        case .tokenWrongAddress:
            return USPClientError(.refused, "the application token was issued to another address than this client's; request a new one from this machine, or from its broker for this machine's address as the server sees it (is a proxy or NAT changing the address?)", wireCode: code)
        case .tokenInvalid:
            return USPClientError(.refused, "\(s) does not accept the application token (unknown, or not for this server); request a new one", wireCode: code)
        case .tokenExpired:
            return USPClientError(.refused, "the application token expired; request a new one", wireCode: code)
        case .tokenRevoked:
            return USPClientError(.refused, "the application token (or the login it came from) was revoked; log in again: \(loginHint(server))", wireCode: code)
        case .streamLimit:
            return USPClientError(.refused, "\(s) has too many streams open on this connection; close some and try again", wireCode: code)
        case .rateLimited:
            return USPClientError(.refused, "\(s) is rate limiting; wait a moment and try again", wireCode: code)
        case .storeUnavailable:
            return storeUnavailable(server, nothing: "opened nothing")
        default:
            let detail = message.isEmpty ? "" : " (\(message))"
            return USPClientError(.refused, "\(s) refused to open the application: \(code.name)\(detail)", wireCode: code)
        }
    }

    static func streamReset(code: USPError.Code, server: ServerURI) -> USPClientError {
        switch code {
        case .tokenRevoked:
            USPClientError(.streamReset, "\(server.hostPort) ended the stream: its token was revoked", wireCode: code)
        case .tokenExpired:
            USPClientError(.streamReset, "\(server.hostPort) ended the stream: the login it was opened under expired; log in again (\(loginHint(server))), or ask the broker who gave you the token for a new one", wireCode: code)
        case .applicationFailed:
            USPClientError(.streamReset, "the application on \(server.hostPort) failed (it crashed or exited with an error) before the stream was over; its administrator finds the exit status in uspd's log and audit", wireCode: code)
        default:
            USPClientError(.streamReset, "\(server.hostPort) reset the stream: \(code.name)", wireCode: code)
        }
    }

    /// The session ended (`reason` nil: a clean CLOSE).
    static func sessionEnded(reason: USPError?, serverError: WireError?, server: ServerURI, handshakeDone: Bool) -> USPClientError {
        let s = server.hostPort
        if let e = serverError {
            switch e.code {
            case .authorizationInvalid, .tokenExpired, .tokenRevoked:
                return loginExpired(e.code, server: server)
            case .shuttingDown:
                return USPClientError(.connectionLost, "\(s) is shutting down; try again later", wireCode: e.code)
            case .storeUnavailable:
                return storeUnavailable(server, as: .connectionLost)
            default:
                return USPClientError(.connectionLost, "\(s) ended the session: \(e.code.name) (\(e.message))", wireCode: e.code)
            }
        }
        guard let reason else {
            return USPClientError(.connectionLost, "\(s) closed the session")
        }
        if !handshakeDone {
            if reason.code == .handshakeDecryptFailed {
                return USPClientError(.handshakeRejected, """
                    handshake with \(s) failed: the server's answer does not decrypt under the key we expected; the key in the URI or \
                    known_servers is not this server's, or the bytes were changed on the way
                    """, wireCode: reason.code)
            }
            return USPClientError(.handshakeRejected, "handshake with \(s) failed: \(reason.detail.isEmpty ? reason.code.name : reason.detail)", wireCode: reason.code)
        }
        switch reason.code {
        case .closedByPeer, .shuttingDown:
            return USPClientError(.connectionLost, "\(s) closed the session: \(reason.code.name)", wireCode: reason.code)
        case .idleTimeout:
            return USPClientError(.connectionLost, "\(s) closed the idle session", wireCode: reason.code)
        case .serverBusy:
            return USPClientError(.connectionLost, "\(s) gave this session's slot to another client (server_busy: it had not logged in and had no open stream while the server was full); connecting again is fine", wireCode: reason.code)
        case .closedByAdministrator:
            return USPClientError(.connectionLost, "an administrator of \(s) ended this session (closed_by_administrator)", wireCode: reason.code)
        case .unexpectedEOF:
            return USPClientError(.connectionLost, "the connection to \(s) was lost (\(reason.detail.isEmpty ? "closed without CLOSE" : reason.detail))", wireCode: reason.code)
        default:
            if let known = USPError.Code.all.first(where: { $0 == reason.code }), reason.code.wireValue >= 600 || reason.detail.isEmpty {
                return USPClientError(.connectionLost, "\(s) closed the session: \(known.name)", wireCode: reason.code)
            }
            return USPClientError(.connectionLost, "the session with \(s) failed: \(reason)", wireCode: reason.code)
        }
    }

    /// The handshake, or the first reply after it, did not come within `limit`.
    static func timedOut(server: ServerURI, handshakeDone: Bool, limit: TimeAmount) -> USPClientError {
        let seconds = limit.nanoseconds / 1_000_000_000
        if !handshakeDone {
            return USPClientError(.handshakeRejected, "\(server.hostPort) did not complete the handshake within \(seconds) s; is it a USP server, and is the key right?", wireCode: .handshakeTimeout)
        }
        return USPClientError(.connectionLost, "\(server.hostPort) did not answer within \(seconds) s after the handshake", wireCode: .handshakeTimeout)
    }

    /// A local `USPError` from the session (a call that could not be made).
    static func local(_ error: any Error, server: ServerURI) -> USPClientError {
        if let e = error as? USPClientError { return e }
        if let e = error as? USPError {
            return USPClientError(.connectionLost, "the session with \(server.hostPort) failed: \(e)", wireCode: e.code)
        }
        return USPClientError(.connectionLost, "the connection to \(server.hostPort) failed: \(SocketErrorText.describe(error))")
    }

    /// A TCP connect failure.
    static func connect(_ error: any Error, server: ServerURI) -> USPClientError {
        let s = server.hostPort
        var errnos: [Int32] = []
        var resolveFailed = false
        if let e = error as? NIOConnectionError {
            errnos = e.connectionErrors.compactMap { ($0.error as? IOError)?.errnoCode }
            if e.connectionErrors.isEmpty, e.dnsAError != nil || e.dnsAAAAError != nil { resolveFailed = true }
            if e.connectionErrors.isEmpty, e.dnsAError == nil, e.dnsAAAAError == nil { resolveFailed = true }
        } else if let e = error as? IOError {
            errnos = [e.errnoCode]
        } else if case ChannelError.connectTimeout = error {
            return USPClientError(.unreachable, "cannot reach \(s): no answer to the TCP connect (timed out); check the host, the port and any firewall")
        } else if error is SocketAddressError {
            resolveFailed = true
        }
        if resolveFailed {
            return USPClientError(.unreachable, "cannot reach \(s): the host name \(server.host) does not resolve; check it")
        }
        if errnos.contains(ECONNREFUSED) {
            return USPClientError(.unreachable, "cannot reach \(s): connection refused; is uspd running and listening on that port?")
        }
        if errnos.contains(ETIMEDOUT) {
            return USPClientError(.unreachable, "cannot reach \(s): connection timed out; check the host, the port and any firewall")
        }
        if errnos.contains(ENETUNREACH) || errnos.contains(EHOSTUNREACH) {
            return USPClientError(.unreachable, "cannot reach \(s): no route to the host; check the address and your network")
        }
        if let first = errnos.first {
            return USPClientError(.unreachable, "cannot reach \(s): \(String(cString: strerror(first)))")
        }
        return USPClientError(.unreachable, "cannot reach \(s): \(error)")
    }

    /// `a (string), b (integer?)`.
    static func fieldList(_ spec: [String: String]) -> String {
        spec.isEmpty ? "none" : spec.keys.sorted().map { "\($0) (\(spec[$0]!.isEmpty ? "any" : spec[$0]!))" }.joined(separator: ", ")
    }
}
