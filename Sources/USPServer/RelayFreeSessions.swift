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

    /// What `uspd sessions` shows of a relay-free session.
    public struct Description: Sendable {
        public let application: String
        public let identity: String?
        public let peerAddress: String
        public let tokenID: String
        /// `ServerClock.monotonic()` when it was handed off.
        public let since: Double
    }

    private struct Entry: Sendable {
        let tokenIDs: Set<String>
        let control: any Channel
        let description: Description?
        var told = false
        var endActions: [@Sendable () -> Void] = []
    }

    private let entries = Mutex<[Key: Entry]>([:])

    public init() {}

    /// Relay-free sessions whose control connection is open.
    public var count: Int { entries.withLock { $0.count } }

    /// Keeps `control` until it closes; `tokenIDs` are the application token's and its login's.
    /// `onEnd` runs once, when it has closed.
    func add(_ key: Key, control: any Channel, tokenIDs: Set<String>, description: Description? = nil,
             onEnd: @escaping @Sendable () -> Void) {
        entries.withLock { $0[key] = Entry(tokenIDs: tokenIDs, control: control, description: description, endActions: [onEnd]) }
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

    /// The sessions kept now, with what was known of them when they were handed off.
    public func list() -> [(key: Key, description: Description?)] {
        entries.withLock { all in all.map { ($0.key, $0.value.description) } }
            .sorted { ($0.key.session, $0.key.stream) < ($1.key.session, $1.key.stream) }
    }

    /// Tells the relay-free sessions of server session `session` to reset their streams with
    /// `code` (an administrator's kill). Returns how many were told.
    @discardableResult
    public func end(session: String, code: USPError.Code) -> Int {
        let hit = entries.withLock { all -> [any Channel] in
            var controls: [any Channel] = []
            for (key, entry) in all where key.session == session && !entry.told {
                all[key]!.told = true
                controls.append(entry.control)
            }
            return controls
        }
        tell(hit, code)
        return hit.count
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
        tell(hit, code)
        return hit.count
    }

    private func tell(_ controls: [any Channel], _ code: USPError.Code) {
        for control in controls {
            control.eventLoop.execute {
                control.writeAndFlush(control.allocator.buffer(string: "reset \(code.name)\n")).whenComplete { _ in
                    control.close(promise: nil)
                }
            }
        }
    }
}
