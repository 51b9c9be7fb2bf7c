import NIOCore
import Synchronization
import USPCore

/// The relay-free sessions uspd handed away, by the tokens they run under: uspd is out of their
/// data path, so it keeps each one's control connection to the application (docs/PROTOCOL.md
/// §14.5) to tell it `reset <code>` when the application token or its login is revoked. An entry
/// goes when the application closes the control connection (its session ended).
public final class RelayFreeSessions: Sendable {
    private struct Entry: Sendable {
        let tokenIDs: Set<String>
        let control: any Channel
    }

    private let entries = Mutex<[ObjectIdentifier: Entry]>([:])

    public init() {}

    public var count: Int { entries.withLock { $0.count } }

    /// Keeps `control` until it closes; `tokenIDs` are the application token's and its login's.
    func add(control: any Channel, tokenIDs: Set<String>) {
        let key = ObjectIdentifier(control)
        entries.withLock { $0[key] = Entry(tokenIDs: tokenIDs, control: control) }
        control.closeFuture.whenComplete { [self] _ in
            _ = entries.withLock { $0.removeValue(forKey: key) }
        }
    }

    /// Tells every relay-free session under one of `ids` to reset its stream with `code`, then
    /// closes its control connection. Returns how many were told.
    @discardableResult
    func revoke(_ ids: Set<TokenProof.TokenID>, code: USPError.Code = .tokenRevoked) -> Int {
        let texts = Set(ids.map(\.description))
        let hit = entries.withLock { all in all.filter { !$0.value.tokenIDs.isDisjoint(with: texts) } }
        for (key, entry) in hit {
            _ = entries.withLock { $0.removeValue(forKey: key) }
            let control = entry.control
            control.eventLoop.execute {
                control.writeAndFlush(control.allocator.buffer(string: "reset \(code.name)\n")).whenComplete { _ in
                    control.close(promise: nil)
                }
            }
        }
        return hit.count
    }
}
