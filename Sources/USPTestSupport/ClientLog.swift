import USPCore

/// What a client learned, in full: menus, replies (with token secrets) and events.
public struct ClientLog: Sendable {
    public var notes: [ClientNote] = []
    public var menus: [ApplicationMenu] = []
    public var replies: [ServiceReply] = []
    public var data: [UInt32: [UInt8]] = [:]

    public init() {}

    public mutating func add(_ e: ClientAction) {
        notes.append(ClientNote(e))
        switch e {
        case .menu(let m): menus.append(m)
        case .serviceReply(let r): replies.append(r)
        case .streamData(let s, let d): data[s, default: []] += Array(d)
        default: break
        }
    }

    /// The index of application `name` on the last menu.
    public func index(of name: String) -> ServiceIndex? {
        menus.last?.applications.first { $0.value.name == name }?.key
    }

    /// The token at `index` of the last reply.
    public func token(at index: ServiceIndex) -> String? {
        if case .token(let t)? = replies.last?.results[index] { return t }
        return nil
    }

    public func closedCode(_ stream: UInt32) -> String? {
        for n in notes { if case .streamClosed(stream, let c) = n { return c } }
        return nil
    }
}
