import USPCore

// Short forms of the replies a client receives, so that tests compare plain strings.

extension ServiceReply {
    /// Each result by index: "token", the error code's name, or "invalidated N".
    public var resultNames: [UInt32: String] {
        var out: [UInt32: String] = [:]
        for (k, v) in results {
            switch v {
            case .token: out[k.rawValue] = "token"
            case .error(let e): out[k.rawValue] = e.code.name
            case .invalidated(let n): out[k.rawValue] = "invalidated \(n)"
            }
        }
        return out
    }
}

extension ApplicationSessionReply {
    /// The session's action, or the error code's name.
    public var outcomeName: String {
        switch outcome {
        case .session(let s): s.action.rawValue
        case .error(let e): e.code.name
        }
    }
}
