import NIOCore

/// Caps how many connections a stealth server holds silently at once (each costs a descriptor).
/// Implemented by the daemon, fairly between source networks.
public protocol SilentHoldPool: Sendable {
    /// A connection from `peer` starts its silent hold. `release` ends it early, from any thread
    /// (the pool needs its room for another). Returns what to call when the hold ends, or nil when
    /// no room can be made (the connection then sends its FIN at once).
    func enter(peer: String, release: @escaping @Sendable () -> Void) -> (@Sendable () -> Void)?
}

/// How a stealth server ends a connection that did not prove it knows the server key: silently,
/// with a FIN at `until`, decided when the connection was accepted (see `SilentHoldHandler`).
public struct SilentHold: Sendable {
    public var until: NIODeadline
    public var pool: (any SilentHoldPool)?
    /// After its FIN, how long the server still reads (and discards) waiting for the client's.
    public var linger: TimeAmount

    public init(until: NIODeadline, pool: (any SilentHoldPool)? = nil, linger: TimeAmount = .seconds(5)) {
        self.until = until
        self.pool = pool
        self.linger = linger
    }

    /// Puts `channel` on hold: appends a `SilentHoldHandler` to its pipeline. Call on its event loop.
    public func install(on channel: any Channel, peer: String) throws {
        let loop = channel.eventLoop
        let box = NIOLoopBoundBox<SilentHoldHandler?>(nil, eventLoop: loop)
        let leave = pool?.enter(peer: peer, release: { loop.execute { box.value?.release() } })
        let deadline = (pool != nil && leave == nil) ? NIODeadline.now() : until
        let handler = SilentHoldHandler(until: deadline, linger: linger, onEnd: { leave?() })
        box.value = handler
        do {
            try channel.pipeline.syncOperations.addHandler(handler)
        } catch {
            leave?()  // the handler never ran, so its onEnd never will
            throw error
        }
    }
}
