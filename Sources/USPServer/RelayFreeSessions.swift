import NIOCore
import Synchronization
import USPCore

/// The relay-free sessions uspd handed away, by the tokens they run under: uspd is out of their
/// data path, so it keeps each one's control connection to the application (docs/PROTOCOL.md
/// §14.2) to tell it `reset <code>` when the application token or its login is revoked. An entry
/// goes when the control connection closes: the application closes it when its session ended,
/// uspd after telling a revocation. Until then the session keeps its place under the limits
/// (`max_sessions`, `max_streams_per_application`, `max_streams_per_identity`): the actions
/// registered with `whenEnded` give the places back and write the audit row of its end.
public final class RelayFreeSessions: Sendable {
    /// A relay-free session: the server session it came from and its stream there.
    public struct Key: Hashable, Sendable {
        public let session: String
        public let stream: UInt32
        public init(session: String, stream: UInt32) {
            self.session = session
            self.stream = stream
        }
    }

    private struct Entry: Sendable {
        let tokenIDs: Set<String>
        let control: any Channel
        var told = false
        var endActions: [@Sendable () -> Void] = []
    }

    private let entries = Mutex<[Key: Entry]>([:])

    public init() {}

    /// Relay-free sessions whose control connection is open.
    public var count: Int { entries.withLock { $0.count } }

    /// Keeps `control` until it closes; `tokenIDs` are the application token's and its login's.
    /// `onEnd` runs once, when it has closed.
    func add(_ key: Key, control: any Channel, tokenIDs: Set<String>, onEnd: @escaping @Sendable () -> Void) {
        entries.withLock { $0[key] = Entry(tokenIDs: tokenIDs, control: control, endActions: [onEnd]) }
        control.closeFuture.whenComplete { [self] _ in
            let actions = entries.withLock { $0.removeValue(forKey: key)?.endActions ?? [] }
            for action in actions { action() }
        }
    }

    /// Runs `action` when the session `key` ends, or now if it is not (or no longer) kept.
    func whenEnded(_ key: Key, _ action: @escaping @Sendable () -> Void) {
        let kept = entries.withLock { all -> Bool in
            guard all[key] != nil else { return false }
            all[key]!.endActions.append(action)
            return true
        }
        if !kept { action() }
    }

    /// Tells every relay-free session under one of `ids` to reset its stream with `code`, then
    /// closes its control connection. Returns how many were told.
    @discardableResult
    func revoke(_ ids: Set<TokenProof.TokenID>, code: USPError.Code = .tokenRevoked) -> Int {
        let texts = Set(ids.map(\.description))
        let hit = entries.withLock { all -> [any Channel] in
            var controls: [any Channel] = []
            for (key, entry) in all where !entry.told && !entry.tokenIDs.isDisjoint(with: texts) {
                all[key]!.told = true
                controls.append(entry.control)
            }
            return controls
        }
        for control in hit {
            control.eventLoop.execute {
                control.writeAndFlush(control.allocator.buffer(string: "reset \(code.name)\n")).whenComplete { _ in
                    control.close(promise: nil)
                }
            }
        }
        return hit.count
    }
}
