import Foundation
import Synchronization
import USPStore

/// What uspd asks of its store for each login and each stream: a token with its `token_issued`
/// row in one transaction, made durable before it is handed out (issue), and a token read by ID
/// (validation). Timed over `tokens` operations split between `threads` threads.
final class TokenBench: @unchecked Sendable {
    let store: any USPStore
    let tokens: Int
    private let issued = Mutex<[String]>([])

    init(store: any USPStore, tokens: Int) {
        self.store = store
        self.tokens = tokens
    }

    /// Tokens issued per second. Each issue is one transaction and one sync, as a login whose
    /// grant waits for the disk (uspd shares a sync between logins waiting at the same time; this
    /// does not, so it is the slowest case).
    func issue(threads: Int) throws -> Double {
        try timed(threads: threads) { [self] _ in
            let id = Self.randomID()
            let now = Date()
            let token = TokenRecord(id: id, kind: .authorization, publicKey: Self.randomID(), identity: "bench", peerAddress: "192.0.2.1",
                                    issuedAt: now, expiresAt: now.addingTimeInterval(3600))
            let row = AuditEvent(time: now, kind: .tokenIssued, session: "s-bench", peerAddress: "192.0.2.1", identity: "bench",
                                 result: "ok", tokenID: id, detail: "authorization")
            try store.commit([.token(token), .audit(row)], durable: false)
            try store.syncDurably()
            issued.withLock { $0.append(id) }
        }
    }

    /// Tokens read by ID per second, among those issued so far.
    func validate(threads: Int) throws -> Double {
        let ids = issued.withLock { $0 }
        guard !ids.isEmpty else { throw BenchFailure("validate needs issued tokens") }
        return try timed(threads: threads) { [self] i in
            guard try store.token(id: ids[i % ids.count]) != nil else { throw BenchFailure("token \(ids[i % ids.count]) not found") }
        }
    }

    private func timed(threads: Int, _ body: @escaping @Sendable (Int) throws -> Void) throws -> Double {
        let failure = Mutex<(any Error)?>(nil)
        let group = DispatchGroup()
        let per = tokens / threads
        let start = DispatchTime.now()
        for t in 0..<threads {
            group.enter()
            Thread {
                defer { group.leave() }
                do {
                    for i in 0..<per { try body(t * per + i) }
                } catch {
                    failure.withLock { $0 = $0 ?? error }
                }
            }.start()
        }
        group.wait()
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
        if let error = failure.withLock({ $0 }) { throw error }
        return Double(per * threads) / seconds
    }

    static func randomID() -> String {
        var g = SystemRandomNumberGenerator()
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        return String((0..<22).map { _ in alphabet[Int(g.next() % 64)] })
    }
}
