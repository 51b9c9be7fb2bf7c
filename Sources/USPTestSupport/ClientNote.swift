import USPCore

/// Owned copies of client events.
public enum ClientNote: Equatable, Sendable {
    case handshake(HandshakeLayout.Pattern)
    case menu([String])
    case reply([UInt32: String])
    case appReply(String)
    case serverError(String)
    case accepted(UInt32)
    case rejected(UInt32, String)
    case data(UInt32, [UInt8])
    case finished(UInt32)
    case streamClosed(UInt32, String)
    case writable(UInt32)
    case shaping(ShapingProfile?)
    case closed(String?)

    public init(_ e: ClientAction) {
        switch e {
        case .handshakeCompleted(let p, _, _): self = .handshake(p)
        case .menu(let m):
            var names = m.applications.sorted { $0.key < $1.key }.map(\.value.name)
            switch m.authentication {
            case .methods(let methods)?: names.insert("0:" + methods.map(\.method).joined(separator: ","), at: 0)
            case .tokenInvalidation?: names.insert("0:invalidate", at: 0)
            case nil: break
            }
            self = .menu(names)
        case .serviceReply(let r): self = .reply(r.resultNames)
        case .applicationSessionReply(let r): self = .appReply(r.outcomeName)
        case .serverError(let e): self = .serverError(e.code.name)
        case .streamAccepted(let s): self = .accepted(s)
        case .streamRejected(let s, let c, _): self = .rejected(s, c.name)
        case .streamData(let s, let d): self = .data(s, Array(d))
        case .streamFinished(let s): self = .finished(s)
        case .streamClosed(let s, let c): self = .streamClosed(s, c.name)
        case .streamWritable(let s): self = .writable(s)
        case .shaping(let p): self = .shaping(p)
        case .closed(let e): self = .closed(e?.code.name)
        }
    }
}
