import Foundation
import Testing
import USPTestSupport
@testable import USPStore

@Suite("SQLiteStore: opening, schema, durability settings")
struct SQLiteStoreOpenTests {
    @Test func newFileIsMigratedAndMarked() throws {
        let dir = TempDirectory()
        let path = dir.file("usp.sqlite")
        let store = try SQLiteStore(path: path)
        #expect(try store.appliedMigrations() == ["v1", "v2-revoked-index", "v3-audit-count", "v4-audit-node", "v5-brokered-tokens"])
        #expect(FileManager.default.fileExists(atPath: path))
        #expect(try store.users().isEmpty)
        #expect(try store.audit(identity: nil, since: nil, limit: nil).isEmpty)
        #expect(try store.integrityProblem() == nil)
        try store.close()
        if sqlite3Path != nil {
            // An independent reader sees our tables, indexes and application_id.
            let tables = try sqlite3(path, "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
            #expect(tables.split(separator: "\n") == ["audit", "grdb_migrations", "store_meta", "tokens", "user_keys", "users"])
            let indexes = try sqlite3(path, "SELECT name FROM sqlite_master WHERE type='index' AND name NOT LIKE 'sqlite_%' ORDER BY name")
            #expect(indexes.split(separator: "\n") == ["audit_authorization", "audit_identity", "audit_kind", "audit_session", "audit_time",
                                                       "audit_token", "tokens_authorization", "tokens_brokered", "tokens_expires", "tokens_identity", "tokens_revoked", "user_keys_user"])
            #expect(try sqlite3(path, "PRAGMA application_id") == String(SQLiteStore.applicationID))
            #expect(try sqlite3(path, "PRAGMA journal_mode") == "wal")
        }
    }

    @Test func writerIsWALWithSynchronousFull() throws {
        let dir = TempDirectory()
        let store = try SQLiteStore(path: dir.file("usp.sqlite"), busyTimeout: 3)
        let s = try store.connectionSettings()
        #expect(s.journalMode == "wal")
        #expect(s.synchronous == 2)  // FULL; GRDB's pool alone would leave NORMAL (1)
        #expect(s.foreignKeys)
        #expect(s.busyTimeoutMS == 3000)
    }

    @Test func reopeningAMigratedFileKeepsItsSchemaAndRuns() throws {
        let dir = TempDirectory()
        let path = dir.file("usp.sqlite")
        try SQLiteStore(path: path).close()
        let again = try SQLiteStore(path: path)
        #expect(try again.appliedMigrations() == ["v1", "v2-revoked-index", "v3-audit-count", "v4-audit-node", "v5-brokered-tokens"])
        #expect(try again.connectionSettings().synchronous == 2)
    }

    @Test func closedStoreThrowsClosed() throws {
        let dir = TempDirectory()
        let store = try SQLiteStore(path: dir.file("usp.sqlite"))
        try store.close()
        let e = expectStoreError(.closed) { _ = try store.users() }
        #expect(e != nil)
        try store.close()  // twice is harmless
    }

    @Test func notADatabaseIsRefusedAndLeftUntouched() throws {
        let dir = TempDirectory()
        let path = dir.file("notes.txt")
        let content = Data(String(repeating: "these are my notes, not a database\n", count: 200).utf8)
        #expect(FileManager.default.createFile(atPath: path, contents: content))
        let e = expectStoreError(.notADatabase) { _ = try SQLiteStore(path: path) }
        #expect(e?.description == "\(path): not a SQLite database (it does not start with the SQLite header); refusing to touch it")
        #expect(fileBytes(path) == content)
        #expect(!FileManager.default.fileExists(atPath: path + "-wal"))
        #expect(!FileManager.default.fileExists(atPath: path + "-shm"))
    }

    @Test func tinyFileIsRefused() throws {
        let dir = TempDirectory()
        let path = dir.file("usp.sqlite")
        #expect(FileManager.default.createFile(atPath: path, contents: Data("SQLite".utf8)))
        let e = expectStoreError(.notADatabase) { _ = try SQLiteStore(path: path) }
        #expect(e?.message.contains("it is 6 bytes long") == true)
        #expect(fileBytes(path) == Data("SQLite".utf8))
    }

    @Test func directoryIsRefused() throws {
        let dir = TempDirectory()
        let e = expectStoreError(.notADatabase) { _ = try SQLiteStore(path: dir.path) }
        #expect(e?.description == "\(dir.path): not a regular file")
    }

    @Test func missingDirectoryIsReported() throws {
        let dir = TempDirectory()
        let path = dir.file("nope/usp.sqlite")
        let e = expectStoreError(.io) { _ = try SQLiteStore(path: path) }
        #expect(e?.description == "\(path): directory \(dir.file("nope")) does not exist")
    }

    @Test func truncatedDatabaseIsRefusedAndNotRewritten() throws {
        let dir = TempDirectory()
        let path = dir.file("usp.sqlite")
        do {
            let store = try SQLiteStore(path: path)
            for i in 0..<300 {
                try store.appendAudit(AuditEvent(time: at(Double(i)), kind: .connectionOpened, peerAddress: "198.51.100.\(i % 250)",
                                                 detail: String(repeating: "x", count: 200)))
            }
            try store.upsertUser(UserRecord(name: "alice"))
            try store.close()  // checkpoints the WAL into the file
        }
        let full = fileBytes(path)
        #expect(full.count > 40_000)
        let truncated = full.prefix(4096 + 100)  // page 1 and a sliver of page 2
        try truncated.write(to: URL(fileURLWithPath: path))
        var failure: StoreError?
        do {
            let store = try SQLiteStore(path: path)
            // If opening did not notice, the first read of the lost pages must.
            _ = try store.audit(identity: nil, since: nil, limit: nil)
            _ = try store.users()
        } catch let e as StoreError {
            failure = e
        }
        #expect(failure?.code == .corrupt)
        #expect(failure?.description.hasPrefix("\(path): the database is damaged") == true)
        #expect(fileBytes(path) == truncated)
    }

    @Test func overwrittenSchemaPageIsRefused() throws {
        let dir = TempDirectory()
        let path = dir.file("usp.sqlite")
        try SQLiteStore(path: path).close()
        var bytes = fileBytes(path)
        // Keep the 100-byte header, trash the rest of page 1 (the schema's b-tree).
        for i in 100..<4096 { bytes[i] = UInt8(truncatingIfNeeded: i &* 7 &+ 13) }
        try bytes.write(to: URL(fileURLWithPath: path))
        let e = expectStoreError(.corrupt) { _ = try SQLiteStore(path: path) }
        #expect(e?.description.hasPrefix("\(path): the database is damaged") == true)
        #expect(fileBytes(path) == bytes)
    }

    @Test func readOnlyFileIsRefused() throws {
        let dir = TempDirectory()
        let path = dir.file("usp.sqlite")
        try SQLiteStore(path: path).close()
        if getuid() == 0 {
            // root ignores permission bits; the immutable flag binds root too.
            let (status, _) = try run("/usr/bin/chattr", ["+i", path])
            try #require(status == 0, "chattr +i failed; cannot make a file read-only for root here")
        } else {
            chmod(path, 0o444)
        }
        let e = expectStoreError(.readOnly) { _ = try SQLiteStore(path: path) }
        #expect(e?.description.hasPrefix("\(path): cannot open the database for writing:") == true)
    }

    @Test func newerSchemaIsRefused() throws {
        let dir = TempDirectory()
        let path = dir.file("usp.sqlite")
        let store = try SQLiteStore(path: path)
        try store.executeForTesting("INSERT INTO grdb_migrations (identifier) VALUES ('v9-future')")
        try store.close()
        let e = expectStoreError(.schemaTooNew) { _ = try SQLiteStore(path: path) }
        #expect(e?.description == "\(path): schema is newer than this version of USP (unknown migrations: v9-future); upgrade USP")
    }

    @Test func otherApplicationsDatabaseIsRefused() throws {
        let dir = TempDirectory()
        let path = dir.file("usp.sqlite")
        let store = try SQLiteStore(path: path)
        try store.executeForTesting("PRAGMA application_id = 1234")
        try store.close()
        let e = expectStoreError(.foreignDatabase) { _ = try SQLiteStore(path: path) }
        #expect(e?.description == "\(path): a SQLite database of another application (application_id 0x4d2); refusing to touch it")

        let path2 = dir.file("other.sqlite")
        let other = try SQLiteStore(path: path2)
        try other.executeForTesting("PRAGMA application_id = 0")
        try other.executeForTesting("DROP TABLE grdb_migrations")
        try other.close()
        let e2 = expectStoreError(.foreignDatabase) { _ = try SQLiteStore(path: path2) }
        #expect(e2?.message.hasPrefix("a SQLite database with other tables (audit, store_meta, tokens)") == true)
    }
}

@Suite("Store, SQLite and PostgreSQL: users")
struct SQLiteStoreUserTests {
    @Test(arguments: StoreBackend.all) func upsertReadUpdateRemove(backend: StoreBackend) throws {
        guard let opened = try backend.open() else { return }
        let store = opened.store
        let hash = try PasswordHash.hash(password: "pw", parameters: .init(n: 16, r: 1, p: 1))
        let alice = UserRecord(name: "alice", groups: ["admins", "ops"], passwordHash: hash, publicKeys: ["kA1", "kA2"], createdAt: at(1))
        try store.upsertUser(alice)
        try store.upsertUser(UserRecord(name: "bob", createdAt: at(2)))
        #expect(try store.user(named: "alice") == alice)
        #expect(try store.user(named: "carol") == nil)
        #expect(try store.users().map(\.name) == ["alice", "bob"])
        #expect(try store.user(publicKey: "kA2")?.name == "alice")
        #expect(try store.user(publicKey: "nobody") == nil)

        var changed = alice
        changed.groups = ["ops"]
        changed.publicKeys = ["kA3", "kA1"]
        changed.passwordHash = nil
        try store.upsertUser(changed)
        #expect(try store.user(named: "alice") == changed)  // key order kept, kA2 gone
        #expect(try store.user(publicKey: "kA2") == nil)

        #expect(try store.removeUser(named: "alice"))
        #expect(try store.removeUser(named: "alice") == false)
        #expect(try store.user(named: "alice") == nil)
        #expect(try store.user(publicKey: "kA1") == nil)  // keys went with the user (ON DELETE CASCADE)
        // The key is free again.
        try store.upsertUser(UserRecord(name: "bob", publicKeys: ["kA1"], createdAt: at(2)))
        #expect(try store.user(publicKey: "kA1")?.name == "bob")
    }

    @Test(arguments: StoreBackend.all) func aKeyBelongsToOneUser(backend: StoreBackend) throws {
        guard let opened = try backend.open() else { return }
        let store = opened.store
        try store.upsertUser(UserRecord(name: "alice", publicKeys: ["shared"]))
        let e = expectStoreError(.conflict) { try store.upsertUser(UserRecord(name: "bob", publicKeys: ["shared"])) }
        #expect(e?.message == "public key shared already belongs to user \"alice\"")
        #expect(try store.user(named: "bob") == nil)  // nothing half-written
    }

    @Test(arguments: StoreBackend.all) func invalidUsersAreRefused(backend: StoreBackend) throws {
        guard let opened = try backend.open() else { return }
        let store = opened.store
        #expect(expectStoreError(.invalidArgument) { try store.upsertUser(UserRecord(name: "")) } != nil)
        #expect(expectStoreError(.invalidArgument) { try store.upsertUser(UserRecord(name: "a\nb")) } != nil)
        #expect(expectStoreError(.invalidArgument) { try store.upsertUser(UserRecord(name: "a", groups: [""])) } != nil)
        #expect(expectStoreError(.invalidArgument) { try store.upsertUser(UserRecord(name: "a", publicKeys: ["k", "k"])) } != nil)
        let e = expectStoreError(.invalidArgument) { try store.upsertUser(UserRecord(name: "a", passwordHash: "hunter2")) }
        #expect(e?.message == "user \"a\": malformed password hash: expected 6 fields scrypt$N$r$p$salt$hash separated by \"$\", got 1")
        #expect(try store.users().isEmpty)
    }
}

@Suite("Store, SQLite and PostgreSQL: tokens")
struct SQLiteStoreTokenTests {
    @Test(arguments: StoreBackend.all) func insertAndReadBack(backend: StoreBackend) throws {
        guard let opened = try backend.open() else { return }
        let store = opened.store
        let auth = makeToken("A")
        let app = makeToken("a1", .application, under: "A", issued: 10, expires: 70)
        try store.insertToken(auth)
        try store.insertToken(app)
        #expect(try store.token(id: "A") == auth)
        #expect(try store.token(id: "a1") == app)
        #expect(try store.token(id: "zz") == nil)
        #expect(try store.tokens(issuedUnder: "A") == [app])
        #expect(try store.tokens(identity: "alice").map(\.id) == ["A", "a1"])
        #expect(try store.tokens(identity: "alice", activeAt: at(100)).map(\.id) == ["A"])  // a1 expired at 70
    }

    @Test(arguments: StoreBackend.all) func duplicateAndInvalidTokensAreRefused(backend: StoreBackend) throws {
        guard let opened = try backend.open() else { return }
        let store = opened.store
        try store.insertToken(makeToken("A"))
        let e = expectStoreError(.conflict) { try store.insertToken(makeToken("A", identity: "mallory")) }
        #expect(e?.message == "token ID A is already in use")
        #expect(try store.token(id: "A")?.identity == "alice")
        #expect(expectStoreError(.invalidArgument) { try store.insertToken(makeToken("")) } != nil)
        #expect(expectStoreError(.invalidArgument) { try store.insertToken(makeToken("B", issued: 10, expires: 5)) } != nil)
    }

    @Test(arguments: StoreBackend.all) func tokenAndItsAuditAreAtomic(backend: StoreBackend) throws {
        guard let opened = try backend.open() else { return }
        let store = opened.store
        let issued = AuditEvent(time: at(0), kind: .tokenIssued, session: "s-1", identity: "alice", tokenID: "A")
        try store.insertToken(makeToken("A"), audit: issued)
        // The second insert fails on the token, so its audit event must not be there either.
        #expect(expectStoreError(.conflict) {
            try store.insertToken(makeToken("A"), audit: AuditEvent(time: at(1), kind: .tokenIssued, tokenID: "A", detail: "second"))
        } != nil)
        let trail = try store.audit(identity: nil, since: nil, limit: nil)
        #expect(trail.count == 1)
        #expect(trail.first?.detail == nil)
    }

    @Test(arguments: StoreBackend.all) func revokeCascadesAndReportsOnlyNewRevocations(backend: StoreBackend) throws {
        guard let opened = try backend.open() else { return }
        let store = opened.store
        for t in [makeToken("A"), makeToken("B", identity: "bob"),
                  makeToken("a2", .application, under: "A", issued: 20), makeToken("a1", .application, under: "A", issued: 10),
                  makeToken("b1", .application, identity: "bob", under: "B", issued: 5)] {
            try store.insertToken(t)
        }
        #expect(try store.revokeTokens(ids: ["A"], at: at(100)) == ["A", "a1", "a2"])  // cascaded ones oldest first
        for id in ["A", "a1", "a2"] {
            #expect(try store.token(id: id)?.revokedAt == at(100))
        }
        #expect(try store.token(id: "B")?.revokedAt == nil)
        #expect(try store.token(id: "b1")?.revokedAt == nil)
        // Already revoked: nothing new, and the first revocation time stays.
        #expect(try store.revokeTokens(ids: ["A", "a1", "A"], at: at(200)) == [])
        #expect(try store.token(id: "A")?.revokedAt == at(100))
        // Unknown IDs are ignored; revoking an application token alone does not touch its parent.
        #expect(try store.revokeTokens(ids: ["nope", "b1"], at: at(300)) == ["b1"])
        #expect(try store.token(id: "B")?.revokedAt == nil)
        // An application token that somehow appears under a revoked authorization token is caught
        // by the next revocation of that parent.
        try store.insertToken(makeToken("a3", .application, under: "A", issued: 400, expires: 500))
        #expect(try store.revokeTokens(ids: ["A"], at: at(401)) == ["a3"])
        #expect(try store.token(id: "a3")?.isActive(at: at(402)) == false)
    }

    @Test(arguments: StoreBackend.all) func revokeByIdentity(backend: StoreBackend) throws {
        guard let opened = try backend.open() else { return }
        let store = opened.store
        try store.insertToken(makeToken("A"))
        try store.insertToken(makeToken("A2", issued: 1))
        try store.insertToken(makeToken("a1", .application, identity: nil, under: "A", issued: 2))
        try store.insertToken(makeToken("B", identity: "bob"))
        #expect(try store.revokeTokens(identity: "alice", at: at(9)) == ["A", "A2", "a1"])
        #expect(try store.revokeTokens(identity: "alice", at: at(10)) == [])
        #expect(try store.token(id: "B")?.revokedAt == nil)
    }

    @Test(arguments: StoreBackend.all) func purgeDeletesOnlyExpiredTokensAndKeepsAudit(backend: StoreBackend) throws {
        guard let opened = try backend.open() else { return }
        let store = opened.store
        try store.insertToken(makeToken("old", expires: 50))
        try store.insertToken(makeToken("edge", expires: 100))
        try store.insertToken(makeToken("revoked-live", expires: 500))
        try store.insertToken(makeToken("live", expires: 1000))
        _ = try store.revokeTokens(ids: ["revoked-live"], at: at(60))
        try store.appendAudit(AuditEvent(time: at(1), kind: .tokenIssued, tokenID: "old"))
        #expect(try store.purgeExpiredTokens(before: at(100)) == 1)  // "edge" expires at 100: not before 100
        #expect(try store.token(id: "old") == nil)
        #expect(try store.token(id: "edge") != nil)
        #expect(try store.token(id: "revoked-live") != nil)  // kept so it reads "revoked", not "unknown"
        #expect(try store.purgeExpiredTokens(before: at(100)) == 0)
        #expect(try store.purgeExpiredTokens(before: at(10_000)) == 3)
        #expect(try store.audit(tokenID: "old").count == 1)
    }

    @Test func isActive() {
        var t = makeToken("A", issued: 0, expires: 10)
        #expect(t.isActive(at: at(9.999)))
        #expect(!t.isActive(at: at(10)))
        t.revokedAt = at(5)
        #expect(!t.isActive(at: at(1)))
    }
}

@Suite("Store, SQLite and PostgreSQL: audit trail")
struct SQLiteStoreAuditTests {
    static func filled(_ backend: StoreBackend) throws -> StoreBackend.Opened? {
        guard let opened = try backend.open() else { return nil }
        let store = opened.store
        // Inserted out of time order on purpose.
        let events: [AuditEvent] = [
            AuditEvent(time: at(30), kind: .authentication, session: "s-2", identity: "bob", method: "password", result: "ok"),
            AuditEvent(time: at(10), kind: .connectionOpened, session: "s-1", peerAddress: "192.0.2.1", clientKey: "SHA256:abc"),
            AuditEvent(time: at(20), kind: .authentication, session: "s-1", identity: "alice", method: "password", result: "password_wrong"),
            AuditEvent(time: at(20), kind: .authentication, session: "s-1", identity: "alice", method: "password", result: "ok"),
            AuditEvent(time: at(40), kind: .tokenIssued, session: "s-1", identity: "alice", tokenID: "A"),
            AuditEvent(time: at(50), kind: .connectionClosed, session: "s-1", peerAddress: "192.0.2.1"),
        ]
        try store.appendAudit(events)
        return opened
    }

    @Test(arguments: StoreBackend.all) func oldestFirstWithTiesInInsertionOrder(backend: StoreBackend) throws {
        guard let opened = try Self.filled(backend) else { return }
        let store = opened.store
        let all = try store.audit(identity: nil, since: nil, limit: nil)
        #expect(all.map(\.time) == [at(10), at(20), at(20), at(30), at(40), at(50)])
        #expect(all[1].result == "password_wrong" && all[2].result == "ok")
        #expect(all.allSatisfy { $0.id != nil })
        #expect(all[0].peerAddress == "192.0.2.1" && all[0].clientKey == "SHA256:abc")
    }

    @Test(arguments: StoreBackend.all) func filters(backend: StoreBackend) throws {
        guard let opened = try Self.filled(backend) else { return }
        let store = opened.store
        #expect(try store.audit(identity: "alice", since: nil, limit: nil).map(\.kind) == [.authentication, .authentication, .tokenIssued])
        #expect(try store.audit(identity: nil, since: at(30), limit: nil).map(\.time) == [at(30), at(40), at(50)])  // inclusive
        #expect(try store.audit(identity: "alice", since: at(21), limit: nil).map(\.kind) == [.tokenIssued])
        // limit keeps the newest, still oldest first.
        #expect(try store.audit(identity: nil, since: nil, limit: 2).map(\.time) == [at(40), at(50)])
        #expect(try store.audit(identity: "alice", since: nil, limit: 2).map(\.result) == ["ok", nil])
        #expect(try store.audit(identity: nil, since: nil, limit: 0).isEmpty)
        #expect(try store.audit(identity: "nobody", since: nil, limit: nil).isEmpty)
        #expect(try store.audit(identity: nil, kinds: [.connectionOpened, .connectionClosed], since: nil, limit: nil).map(\.time) == [at(10), at(50)])
        #expect(try store.audit(identity: nil, kinds: [], since: nil, limit: nil).isEmpty)
        #expect(try store.audit(session: "s-2").map(\.identity) == ["bob"])
        #expect(try store.audit(session: "s-1").count == 5)
    }

    @Test(arguments: StoreBackend.all) func cursorFollowsInsertionOrder(backend: StoreBackend) throws {
        guard let opened = try Self.filled(backend) else { return }
        let store = opened.store
        let first = try store.audit(afterID: 0, limit: 4)
        #expect(first.map(\.time) == [at(30), at(10), at(20), at(20)])  // insertion order, not time
        let rest = try store.audit(afterID: first.last!.id!, limit: 100)
        #expect(rest.map(\.kind) == [.tokenIssued, .connectionClosed])
        #expect(try store.audit(afterID: rest.last!.id!, limit: 100).isEmpty)
    }

    @Test(arguments: StoreBackend.all) func everyFieldRoundTrips(backend: StoreBackend) throws {
        guard let opened = try backend.open() else { return }
        let store = opened.store
        for kind in AuditEvent.Kind.allCases {
            try store.appendAudit(AuditEvent(time: at(1.234), kind: kind, session: "s-9", peerAddress: "[2001:db8::1]:4000",
                                             clientKey: "SHA256:k", identity: "alice", method: "publickey", result: "ok",
                                             tokenID: "T", authorizationTokenID: "A", application: "ssh", stream: 7,
                                             bytesIn: 1 << 40, bytesOut: 12, durationMS: 345, detail: "d \"quoted\" ü"))
        }
        let back = try store.audit(identity: nil, since: nil, limit: nil)
        #expect(back.map(\.kind) == AuditEvent.Kind.allCases)
        var expected = AuditEvent(time: at(1.234), kind: .streamClosed, session: "s-9", peerAddress: "[2001:db8::1]:4000",
                                  clientKey: "SHA256:k", identity: "alice", method: "publickey", result: "ok", tokenID: "T",
                                  authorizationTokenID: "A", application: "ssh", stream: 7, bytesIn: 1 << 40, bytesOut: 12,
                                  durationMS: 345, detail: "d \"quoted\" ü")
        var got = back.first { $0.kind == .streamClosed }!
        #expect(got.id != nil)
        got.id = nil
        expected.id = nil
        #expect(got == expected)
    }

    @Test(arguments: StoreBackend.all) func chainFromStreamToIdentity(backend: StoreBackend) throws {
        guard let opened = try backend.open() else { return }
        let store = opened.store
        // Session s-1: alice logs in (after a failure) and receives authorization token A.
        try store.appendAudit(AuditEvent(time: at(1), kind: .connectionOpened, session: "s-1", peerAddress: "192.0.2.1"))
        try store.appendAudit(AuditEvent(time: at(2), kind: .authentication, session: "s-1", identity: "alice", method: "password", result: "password_wrong"))
        try store.appendAudit(AuditEvent(time: at(3), kind: .authentication, session: "s-1", identity: "alice", method: "password", result: "ok"))
        try store.insertToken(makeToken("A", issued: 3), audit: AuditEvent(time: at(3), kind: .tokenIssued, session: "s-1", identity: "alice", tokenID: "A"))
        // Session s-2, later, elsewhere: application token a1 under A, then stream 4 opens and closes.
        try store.insertToken(makeToken("a1", .application, under: "A", issued: 10),
                              audit: AuditEvent(time: at(10), kind: .tokenIssued, session: "s-2", tokenID: "a1", authorizationTokenID: "A", application: "ssh"))
        try store.appendAudit(AuditEvent(time: at(11), kind: .streamOpened, session: "s-2", tokenID: "a1", application: "ssh", stream: 4))
        try store.appendAudit(AuditEvent(time: at(12), kind: .streamOpened, session: "s-2", tokenID: "a1", application: "ssh", stream: 5))
        try store.appendAudit(AuditEvent(time: at(19), kind: .streamClosed, session: "s-2", tokenID: "a1", stream: 4, bytesIn: 10, bytesOut: 20, durationMS: 8000))

        let chain = try #require(try store.auditChain(streamSession: "s-2", stream: 4))
        #expect(chain.streamEvents.map(\.kind) == [.streamOpened, .streamClosed])
        #expect(chain.streamEvents.last?.bytesOut == 20)
        #expect(chain.applicationTokenIssued?.tokenID == "a1")
        #expect(chain.authorizationTokenIssued?.tokenID == "A")
        #expect(chain.authentication?.time == at(3))
        #expect(chain.authentication?.result == "ok")
        #expect(chain.identity == "alice")
        #expect(try store.auditChain(streamSession: "s-2", stream: 99) == nil)
        #expect(try store.auditChain(streamSession: "s-1", stream: 4) == nil)
    }
}

@Suite("SQLiteStore: restart, crash image, concurrency")
struct SQLiteStoreDurabilityTests {
    @Test func reopenAfterCloseKeepsUsersTokensAndAudit() throws {
        let dir = TempDirectory()
        let path = dir.file("usp.sqlite")
        let alice = UserRecord(name: "alice", groups: ["g"], passwordHash: nil, publicKeys: ["k"], createdAt: at(5))
        do {
            let store = try SQLiteStore(path: path)
            try store.upsertUser(alice)
            try store.insertToken(makeToken("A"))
            try store.insertToken(makeToken("a1", .application, under: "A"))
            _ = try store.revokeTokens(ids: ["a1"], at: at(7))
            try store.appendAudit(AuditEvent(time: at(6), kind: .authentication, identity: "alice", result: "ok"))
            try store.close()
        }
        let store = try SQLiteStore(path: path)
        #expect(try store.user(named: "alice") == alice)
        #expect(try store.token(id: "A") == makeToken("A"))
        #expect(try store.token(id: "a1")?.revokedAt == at(7))
        #expect(try store.audit(identity: "alice", since: nil, limit: nil).map(\.result) == ["ok"])
    }

    /// What `kill -9` leaves: the database and its WAL as they are on disk at that instant, the
    /// process gone without closing. Copying both files while the store is still open (and never
    /// closed) and opening the copy is that state; each write must be in it once its call returned.
    @Test func everyReturnedWriteIsInTheCrashImage() throws {
        let dir = TempDirectory()
        let path = dir.file("usp.sqlite")
        let store = try SQLiteStore(path: path)
        try store.insertToken(makeToken("A"))
        _ = try store.revokeTokens(ids: ["A"], at: at(1))
        try store.appendAudit(AuditEvent(time: at(2), kind: .tokenInvalidated, tokenID: "A"))
        #expect(FileManager.default.fileExists(atPath: path + "-wal"))

        let crash = TempDirectory("crash")
        let copy = crash.file("usp.sqlite")
        try FileManager.default.copyItem(atPath: path, toPath: copy)
        try FileManager.default.copyItem(atPath: path + "-wal", toPath: copy + "-wal")
        let recovered = try SQLiteStore(path: copy)
        #expect(try recovered.token(id: "A")?.revokedAt == at(1))
        #expect(try recovered.audit(identity: nil, since: nil, limit: nil).map(\.kind) == [.tokenInvalidated])
        _ = store  // still open: nothing was checkpointed or closed
    }

    @Test func anotherConnectionSeesEachWriteAtOnce() throws {
        let dir = TempDirectory()
        let path = dir.file("usp.sqlite")
        let daemon = try SQLiteStore(path: path)
        let admin = try SQLiteStore(path: path)  // as an admin command in another process would
        try daemon.insertToken(makeToken("A"))
        #expect(try admin.token(id: "A") != nil)
        #expect(try admin.revokeTokens(ids: ["A"], at: at(3)) == ["A"])
        #expect(try daemon.token(id: "A")?.revokedAt == at(3))
        if sqlite3Path != nil {
            #expect(try sqlite3(path, "SELECT revoked_at FROM tokens WHERE id = 'A'") == String(SQLiteStore.ms(at(3))))
        }
    }

    @Test func concurrentWritersFromManyThreadsAndTwoConnections() throws {
        let dir = TempDirectory()
        let path = dir.file("usp.sqlite")
        let a = try SQLiteStore(path: path)
        let b = try SQLiteStore(path: path)
        let threads = 8, perThread = 40
        let failures = Counter()
        DispatchQueue.concurrentPerform(iterations: threads) { t in
            let store = t % 2 == 0 ? a : b
            for i in 0..<perThread {
                do {
                    try store.appendAudit(AuditEvent(time: at(Double(i)), kind: .streamOpened, session: "s-\(t)", stream: Int64(i)))
                    try store.insertToken(makeToken("t\(t)-\(i)", identity: "u\(t)"))
                    if i % 10 == 0 { _ = try store.audit(identity: nil, since: nil, limit: 5) }
                } catch {
                    failures.add("\(error)")
                }
            }
        }
        #expect(failures.values.isEmpty)
        #expect(try a.audit(identity: nil, since: nil, limit: nil).count == threads * perThread)
        for t in 0..<threads {
            #expect(try b.tokens(identity: "u\(t)").count == perThread)
            #expect(try a.audit(session: "s-\(t)").map(\.stream) == (0..<perThread).map { Int64($0) })
        }
    }
}

final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [String] = []
    func add(_ s: String) { lock.lock(); items.append(s); lock.unlock() }
    var values: [String] { lock.lock(); defer { lock.unlock() }; return items }
}

@Suite("Store, SQLite and PostgreSQL: revocations seen by another process")
struct SQLiteStoreRevocationTests {
    @Test(arguments: StoreBackend.all) func tokensRevokedAfterATimeInOrder(backend: StoreBackend) throws {
        guard let opened = try backend.open() else { return }
        let store = opened.store
        for id in ["A", "B", "C"] {
            try store.insertToken(TokenRecord(id: id, kind: .authorization, publicKey: "k\(id)", identity: "ann",
                                              issuedAt: Date(timeIntervalSince1970: 100), expiresAt: Date(timeIntervalSince1970: 10_000)))
        }
        #expect(try store.tokensRevoked(after: Date(timeIntervalSince1970: 0)).ids.isEmpty)
        _ = try store.revokeTokens(ids: ["B"], at: Date(timeIntervalSince1970: 200))
        // Another connection (another process in real life) revokes C later.
        let other = try opened.another()
        _ = try other.revokeTokens(ids: ["C"], at: Date(timeIntervalSince1970: 300))
        let all = try store.tokensRevoked(after: Date(timeIntervalSince1970: 150))
        #expect(all.ids == ["B", "C"])
        #expect(all.latest == Date(timeIntervalSince1970: 300))
        #expect(try store.tokensRevoked(after: Date(timeIntervalSince1970: 200)).ids == ["C"])
    }
}

@Suite("SQLiteStore: batch commits")
struct SQLiteStoreBatchTests {
    @Test func aNonDurableBatchIsWrittenAndTheWriterStaysFull() throws {
        let dir = TempDirectory("batch")
        let store = try SQLiteStore(path: dir.file("usp.sqlite"))
        let token = TokenRecord(id: "T", kind: .application, publicKey: "k", identity: nil, issuedAt: Date(timeIntervalSince1970: 1),
                                expiresAt: Date(timeIntervalSince1970: 100))
        try store.commit([.token(token), .audit(AuditEvent(time: Date(), kind: .tokenIssued, tokenID: "T"))], durable: false)
        #expect(try store.token(id: "T") != nil)
        #expect(try store.connectionSettings().synchronous == 2)
        // A failing batch leaves nothing behind: the second token reuses the ID.
        #expect(throws: (any Error).self) {
            try store.commit([.audit(AuditEvent(time: Date(), kind: .tokenIssued, detail: "lost")), .token(token)], durable: true)
        }
        #expect(try store.audit(identity: nil, since: nil, limit: nil).allSatisfy { $0.detail != "lost" })
        #expect(try store.connectionSettings().synchronous == 2)
        // Another connection (a restart) sees the non-durable rows too.
        let again = try SQLiteStore(path: dir.file("usp.sqlite"))
        #expect(try again.token(id: "T") != nil)
    }

    @Test func aNonDurableRevocationIsSeenAtOnceAndTheWriterStaysFull() throws {
        let dir = TempDirectory("revoke-nosync")
        let store = try SQLiteStore(path: dir.file("usp.sqlite"))
        let token = TokenRecord(id: "R", kind: .authorization, publicKey: "k", identity: "alice", issuedAt: Date(timeIntervalSince1970: 1),
                                expiresAt: Date(timeIntervalSince1970: 100))
        try store.insertToken(token)
        #expect(try store.revokeTokens(ids: ["R"], at: Date(timeIntervalSince1970: 50), durable: false) == ["R"])
        #expect(try store.token(id: "R")?.revokedAt == Date(timeIntervalSince1970: 50))
        #expect(try store.connectionSettings().synchronous == 2)
        try store.syncDurably()
    }

    /// 2600 commits of a 2 KB audit row each: a WAL well past `checkpointThreshold`.
    static func commitLargeRows(_ store: SQLiteStore, label: String) throws {
        let row = String(repeating: "x", count: 2000)
        for i in 0..<2600 {
            try store.commit([.audit(AuditEvent(time: Date(), kind: .connectionOpened, detail: "\(label)\(i) \(row)"))], durable: false)
        }
    }

    @Test func syncDurablyNeverCheckpointsOnTheWriterAndKeepsTheWALBounded() throws {
        let dir = TempDirectory("sync")
        let path = dir.file("usp.sqlite")
        let store = try SQLiteStore(path: path)
        // The writer never checkpoints by itself (a checkpoint fsyncs inside some commit).
        #expect(try store.executeForTestingReturning("PRAGMA wal_autocheckpoint") == "0")
        // Past the threshold, syncDurably checkpoints from its own connection: the WAL is reused
        // from its start afterwards instead of growing.
        try Self.commitLargeRows(store, label: "")
        let walPath = path + "-wal"
        let grown = try FileManager.default.attributesOfItem(atPath: walPath)[.size] as? Int ?? 0
        #expect(grown > SQLiteStore.checkpointThreshold)
        try store.syncDurably()
        try Self.commitLargeRows(store, label: "again ")
        try store.syncDurably()
        let after = try FileManager.default.attributesOfItem(atPath: walPath)[.size] as? Int ?? 0
        #expect(after <= grown + grown / 4, "the WAL grew from \(grown) to \(after) bytes: it was not checkpointed")
        #expect(try store.audit(identity: nil, since: nil, limit: nil).count == 5200)
        #expect(try store.integrityProblem() == nil)
    }

    /// A WAL that was checkpointed and started over is cut back by the writer's next commit, so its
    /// size says how much is left to checkpoint: the syncs that follow do not checkpoint again
    /// (each checkpoint costs two more fsyncs).
    @Test func afterACheckpointTheWriterCutsTheWALBack() throws {
        let dir = TempDirectory("cut")
        let path = dir.file("usp.sqlite")
        let store = try SQLiteStore(path: path)
        #expect(try store.executeForTestingReturning("PRAGMA journal_size_limit") == "\(SQLiteStore.checkpointThreshold)")
        try Self.commitLargeRows(store, label: "")
        let walPath = path + "-wal"
        func walSize() throws -> Int { try FileManager.default.attributesOfItem(atPath: walPath)[.size] as? Int ?? 0 }
        #expect(try walSize() > SQLiteStore.checkpointThreshold)
        try store.syncDurably()
        try store.commit([.audit(AuditEvent(time: Date(), kind: .connectionClosed, detail: "after"))], durable: false)
        let cut = try walSize()
        #expect(cut <= SQLiteStore.checkpointThreshold, "the WAL kept \(cut) bytes after starting over")
        try store.syncDurably()
        #expect(try store.audit(identity: nil, since: nil, limit: nil).count == 2601)
    }
}
