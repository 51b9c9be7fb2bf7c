import USPCore

/// A `ClientAction` kept in the demo's inbox until the demo asks for it (its bytes copied out).
enum ClientNote {
    case handshake(pattern: HandshakeLayout.Pattern, serverKey: [UInt8], earlyDataAccepted: Bool)
    case menu(ApplicationMenu)
    case serviceReply(ServiceReply)
    case applicationReply(ApplicationSessionReply)
    case serverError(WireError)
    case accepted(UInt32)
    case rejected(UInt32, USPError.Code)
    case data(UInt32, [UInt8])
    case finished(UInt32)
    case streamClosed(UInt32, USPError.Code)
    case writable(UInt32)
    case shaping(ShapingProfile?)
    case closed(USPError?)

    init(_ action: ClientAction) {
        switch action {
        case .handshakeCompleted(let pattern, let key, let early): self = .handshake(pattern: pattern, serverKey: key, earlyDataAccepted: early)
        case .menu(let menu): self = .menu(menu)
        case .serviceReply(let reply): self = .serviceReply(reply)
        case .applicationSessionReply(let reply): self = .applicationReply(reply)
        case .serverError(let error): self = .serverError(error)
        case .streamAccepted(let stream): self = .accepted(stream)
        case .streamRejected(let stream, let code, _): self = .rejected(stream, code)
        case .streamData(let stream, let data): self = .data(stream, Array(data))
        case .streamFinished(let stream): self = .finished(stream)
        case .streamClosed(let stream, let code): self = .streamClosed(stream, code)
        case .streamWritable(let stream): self = .writable(stream)
        case .shaping(let profile): self = .shaping(profile)
        case .closed(let error): self = .closed(error)
        }
    }
}

extension ApplicationMenu {
    /// Application names in index order.
    var applicationNames: [String] { applications.sorted { $0.key < $1.key }.map(\.value.name) }

    func index(of name: String) -> ServiceIndex? { applications.first { $0.value.name == name }?.key }
}

/// Trust on first use, remembered: accepts the key offered in XX and keeps it for IK later.
final class LearnServerKey: ClientSessionDelegate {
    private(set) var learned: [UInt8]?
    func acceptServerKey(_ key: [UInt8]) -> Bool {
        learned = key
        return true
    }
}
