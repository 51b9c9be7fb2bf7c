import Foundation
import Testing
import USPTestSupport
@testable import USPStore
@testable import USPStorePostgres

/// `uspd store migrate`'s copy: a SQLite store into an empty PostgreSQL one, all or nothing.
@Suite struct StoreImportTests {
    @Test func everythingIsCopiedAndReadsTheSame() throws {
        guard let target = try StoreBackend.postgres.open() else { return }
        let pg = try #require(target.store as? PostgresStore)
        let dir = TempDirectory()
        let sqlite = try SQLiteStore(path: dir.file("usp.sqlite"))
        let hash = try PasswordHash.hash(password: "pw", parameters: .init(n: 16, r: 1, p: 1))
        try sqlite.upsertUser(UserRecord(name: "alice", groups: ["admins", "ops"], passwordHash: hash, publicKeys: ["kA1", "kA2"], createdAt: at(1)))
        try sqlite.upsertUser(UserRecord(name: "bob", publicKeys: ["kB"], createdAt: at(2)))
        try sqlite.insertToken(makeToken("A"), audit: AuditEvent(time: at(3), kind: .tokenIssued, session: "s-1", identity: "alice", tokenID: "A"))
        try sqlite.insertToken(makeToken("a1", .application, under: "A", issued: 10))
        try sqlite.insertToken(makeToken("B", identity: "bob"))
        _ = try sqlite.revokeTokens(ids: ["B"], at: at(20))
        // More rows than one batch, in an order that is not time order.
        var rows: [AuditEvent] = []
        for i in 0..<2_345 {
            let time = at(Double((i * 7919) % 1000))
            let kind: AuditEvent.Kind = i % 2 == 0 ? .connectionOpened : .connectionClosed
            let detail: String? = i == 5 ? "d \"quoted\" ü" : nil
            rows.append(AuditEvent(time: time, kind: kind, session: "s-\(i)", peerAddress: "192.0.2.\(i % 250)", detail: detail))
        }
        try sqlite.appendAudit(rows)
        var seen: [StoreImport] = []
        let counts = try pg.importEverything(from: sqlite) { seen.append(StoreImport(users: $0.users, tokens: $0.tokens, audit: $0.auditRows)) }
        #expect(counts == .init(users: 2, tokens: 3, auditRows: 2_346))
        #expect(seen.last?.audit == 2_346 && seen.count >= 3, "progress reported per batch: \(seen.count)")
        #expect(try pg.users() == sqlite.users())
        #expect(try pg.user(publicKey: "kA2")?.name == "alice")
        for id in ["A", "a1", "B"] { #expect(try pg.token(id: id) == sqlite.token(id: id)) }
        #expect(try pg.token(id: "B")?.revokedAt == at(20))
        func stripped(_ events: [AuditEvent]) -> [AuditEvent] { events.map { var e = $0; e.id = nil; return e } }
        #expect(stripped(try pg.audit(identity: nil, since: nil, limit: nil)) == stripped(try sqlite.audit(identity: nil, since: nil, limit: nil)))
        // Insertion order kept: the cursor reads the rows in the order SQLite had them.
        #expect(stripped(try pg.audit(afterID: 0, limit: 10)) == stripped(try sqlite.audit(afterID: 0, limit: 10)))

        // A second import into a store that is no longer empty: refused, and nothing changes.
        let e = expectStoreError(.conflict) { _ = try pg.importEverything(from: sqlite) }
        #expect(e?.message.contains("already holds 2 user(s), 3 token(s) and 2346 audit row(s)") == true, "\(String(describing: e))")
        #expect(try pg.auditFootprint().rows == 2_346)
    }

    struct StoreImport: Equatable { var users: Int, tokens: Int, audit: Int }
}
