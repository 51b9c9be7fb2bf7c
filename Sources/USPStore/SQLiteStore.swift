import Foundation
import GRDB
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `USPStore` on one SQLite file through a GRDB `DatabasePool`.
///
/// **Durability.** The file is in WAL mode with `synchronous=FULL` on the writer connection, set
/// after GRDB's own set-up (which chooses NORMAL) and read back at open: if it does not read 2,
/// `init` throws `.durability`. Every write method runs in one `IMMEDIATE` transaction and
/// returns after its COMMIT, so under FULL the WAL has been synced when it returns: a token that
/// `insertToken` accepted, or a revocation that `revokeTokens` returned, survives `kill -9` and
/// power loss. The daemon's grants take the other path, so that no event loop waits for the
/// disk: `commit(_:durable: false)` (and `revokeTokens(ids:at:durable: false)`) commit under
/// NORMAL without a sync, and `syncDurably()`, run off the event loops, syncs the WAL without
/// holding the writer; a grant leaves only after that. The writer never checkpoints itself
/// (`wal_autocheckpoint = 0`): `syncDurably` checkpoints from a connection of its own.
///
/// **Refusals at open** (each a `StoreError` whose message names the file):
/// - `.notADatabase`: the file does not start with SQLite's header. It is checked by reading the
///   first 16 bytes before SQLite opens it, so such a file is never written to.
/// - `.corrupt`: SQLite reports the content damaged (a truncated or overwritten file).
/// - `.readOnly`: the file or its directory is not writable (WAL needs `-wal` and `-shm` beside it).
/// - `.foreignDatabase`: a SQLite database of another application (another `application_id`,
///   or tables but no USP schema).
/// - `.schemaTooNew`: migrations this code does not know were applied, by a newer USP.
///
/// **Schema** (migrations by GRDB's `DatabaseMigrator`, `application_id` 0x55535031 "USP1"):
/// - `users(name PK, groups JSON, password_hash, created_at)` and
///   `user_keys(public_key PK, user_name → users ON DELETE CASCADE, position)`: a key belongs to one user.
/// - `tokens(id PK, kind, public_key, identity, application, peer_address, request_json,
///   authorization_token_id, issued_at, expires_at, revoked_at, brokered_for)`, indexed on identity,
///   authorization_token_id, expires_at and, for brokered tokens, (identity, issued_at).
/// - `audit(id AUTOINCREMENT, time, kind, session, peer_address, client_key, identity, method,
///   result, token_id, authorization_token_id, application, stream, bytes_in, bytes_out,
///   duration_ms, detail, count, node)`, indexed on time, identity, kind, (session, stream), token_id and
///   authorization_token_id. Rows are only ever appended.
///
/// - `store_meta(key PK, value)`: `last_opened_at` (ms), written at every open as a write probe.
///
/// Times are stored as integer milliseconds since 1970 (`datetime(time/1000, 'unixepoch')` in
/// `sqlite3`), so a `Date` reads back rounded to the millisecond.
public final class SQLiteStore: AdminStore, Sendable {
    /// The database file, as given.
    public let path: String
    public var location: String { path }
    /// Written into every audit row that does not name its node already (`AuditEvent.node`).
    public let node: String?
    private let pool: DatabasePool
    /// A connection of its own for WAL checkpoints, which `syncDurably` runs off the writer (a
    /// passive checkpoint never blocks the writer). The writer itself never checkpoints.
    private let checkpointer: DatabaseQueue
    /// WAL size beyond which `syncDurably` checkpoints (SQLite's default auto-checkpoint point), and
    /// the size the writer cuts the WAL back to when it starts over.
    static let checkpointThreshold = 1000 * 4096

    /// `PRAGMA application_id` of a USP database: "USP1".
    public static let applicationID: Int32 = 0x5553_5031

    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    /// - Parameter busyTimeout: how long a write waits for another process's lock (for example
    ///   an admin command writing while the daemon runs) before failing.
    public init(path: String, node: String? = nil, busyTimeout: TimeInterval = 5) throws(StoreError) {
        self.path = path
        self.node = node
        try Self.checkFileBeforeOpening(path)

        var config = Configuration()
        config.journalMode = .wal
        config.foreignKeysEnabled = true
        config.busyMode = .timeout(busyTimeout)
        config.label = "USPStore"
        let pool: DatabasePool
        do {
            pool = try DatabasePool(path: path, configuration: config)
        } catch {
            throw Self.storeError(error, path: path, doing: "open")
        }
        self.pool = pool

        do {
            try pool.writeWithoutTransaction { db in
                try db.execute(sql: "PRAGMA synchronous = FULL")
                // A checkpoint fsyncs; on the writer it would run inside some commit, maybe one on
                // an event loop. `syncDurably` checkpoints from its own connection instead.
                try db.execute(sql: "PRAGMA wal_autocheckpoint = 0")
                // After a checkpoint lets the WAL start over, the writer's next commit cuts the
                // file back to this size: the WAL's size then says how much is left to checkpoint
                // (without it the file keeps its largest size, and every sync would checkpoint).
                try db.execute(sql: "PRAGMA journal_size_limit = \(Self.checkpointThreshold)")
                try Self.checkDurability(db, path: path)
                try Self.checkOwnership(db, path: path)
                if try Self.migrator.hasBeenSuperseded(db) {
                    let known = Set(Self.migrator.migrations)
                    let unknown = try Self.migrator.appliedIdentifiers(db).subtracting(known).sorted()
                    throw StoreError(.schemaTooNew, path: path,
                        "schema is newer than this version of USP (unknown migrations: \(unknown.joined(separator: ", "))); upgrade USP")
                }
            }
            try Self.migrator.migrate(pool)
            var checkpointConfig = Configuration()
            checkpointConfig.busyMode = .timeout(busyTimeout)
            checkpointConfig.label = "USPStore.checkpoint"
            checkpointer = try DatabaseQueue(path: path, configuration: checkpointConfig)
            // A real write at every open: a file SQLite could only open read-only fails here,
            // at start, rather than at the first login.
            try pool.write { db in
                try db.execute(sql: "INSERT INTO store_meta (key, value) VALUES ('last_opened_at', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                               arguments: [String(Self.ms(Date()))])
            }
        } catch let error as StoreError {
            try? pool.close()
            throw error
        } catch {
            try? pool.close()
            throw Self.storeError(error, path: path, doing: "open")
        }
    }

    /// Closes the connections. Later calls throw. Calling it twice is harmless.
    public func close() throws(StoreError) {
        do { try checkpointer.close(); try pool.close() } catch { throw Self.storeError(error, path: path, doing: "close") }
    }

    /// The writer's settings, read back now: `journal_mode`, `synchronous` (2 = FULL),
    /// `foreign_keys` and `busy_timeout` (ms).
    public func connectionSettings() throws(StoreError) -> (journalMode: String, synchronous: Int, foreignKeys: Bool, busyTimeoutMS: Int) {
        try write("read settings") { db in
            (try String.fetchOne(db, sql: "PRAGMA journal_mode") ?? "",
             try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1,
             try Bool.fetchOne(db, sql: "PRAGMA foreign_keys") ?? false,
             try Int.fetchOne(db, sql: "PRAGMA busy_timeout") ?? -1)
        }
    }

    /// The identifiers of the migrations applied to this file, in order.
    public func appliedMigrations() throws(StoreError) -> [String] {
        try read("read migrations") { db in
            let applied = try Self.migrator.appliedIdentifiers(db)
            return Self.migrator.migrations.filter(applied.contains)
        }
    }

    /// Runs SQLite's `PRAGMA integrity_check` (reads the whole file; for `uspd --check-config`,
    /// not for every start). Nil when the file is sound, otherwise SQLite's first complaint.
    public func integrityProblem() throws(StoreError) -> String? {
        try read("check integrity") { db in
            let lines = try String.fetchAll(db, sql: "PRAGMA integrity_check(10)")
            return lines == ["ok"] ? nil : lines.joined(separator: "; ")
        }
    }

    // MARK: - Users

    public func user(named name: String) throws -> UserRecord? {
        try read("read user") { db in try Self.fetchUser(db, name: name, path: path) }
    }

    public func users() throws -> [UserRecord] {
        try read("read users") { db in
            let names = try String.fetchAll(db, sql: "SELECT name FROM users ORDER BY name")
            return try names.compactMap { try Self.fetchUser(db, name: $0, path: path) }
        }
    }

    public func user(publicKey: String) throws -> UserRecord? {
        try read("read user") { db in
            guard let name = try String.fetchOne(db, sql: "SELECT user_name FROM user_keys WHERE public_key = ?", arguments: [publicKey])
            else { return nil }
            return try Self.fetchUser(db, name: name, path: path)
        }
    }

    /// Inserts or replaces the user `user.name` (all fields, keys included).
    /// - Throws: `.invalidArgument` for an empty name, group or key, a repeated key, or a
    ///   malformed `passwordHash`; `.conflict` when a key belongs to another user.
    public func upsertUser(_ user: UserRecord) throws {
        try Self.validate(user, path: path)
        try write("save user \"\(user.name)\"") { db in
            for key in user.publicKeys {
                if let owner = try String.fetchOne(db, sql: "SELECT user_name FROM user_keys WHERE public_key = ?", arguments: [key]),
                   owner != user.name {
                    throw StoreError(.conflict, path: path, "public key \(key) already belongs to user \"\(owner)\"")
                }
            }
            try db.execute(sql: """
                INSERT INTO users (name, groups, password_hash, created_at) VALUES (?, ?, ?, ?)
                ON CONFLICT(name) DO UPDATE SET groups = excluded.groups, password_hash = excluded.password_hash,
                    created_at = excluded.created_at
                """, arguments: [user.name, Self.jsonArray(user.groups), user.passwordHash, Self.ms(user.createdAt)])
            try db.execute(sql: "DELETE FROM user_keys WHERE user_name = ?", arguments: [user.name])
            for (i, key) in user.publicKeys.enumerated() {
                try db.execute(sql: "INSERT INTO user_keys (public_key, user_name, position) VALUES (?, ?, ?)",
                               arguments: [key, user.name, i])
            }
        }
    }

    /// Removes the user and their keys. Their tokens stay (and stay valid until they expire):
    /// call `revokeTokens(identity:at:)` too, and audit what it returns.
    public func removeUser(named name: String) throws -> Bool {
        try write("remove user \"\(name)\"") { db in
            try db.execute(sql: "DELETE FROM users WHERE name = ?", arguments: [name])
            return db.changesCount > 0
        }
    }

    // MARK: - Tokens

    /// - Throws: `.conflict` when the ID is in use; `.invalidArgument` for an empty ID or key, or
    ///   `expiresAt` before `issuedAt`.
    public func insertToken(_ token: TokenRecord) throws {
        try Self.validate(token, path: path)
        try write("save token \(token.id)") { db in try Self.insert(token, db, path: path) }
    }

    /// The token and its `token_issued` audit event in one transaction.
    public func insertToken(_ token: TokenRecord, audit event: AuditEvent) throws {
        try insertToken(token, audit: [event])
    }

    /// The token and audit events (queued ones, then its `token_issued`) in one transaction.
    public func insertToken(_ token: TokenRecord, audit events: [AuditEvent]) throws {
        try Self.validate(token, path: path)
        try write("save token \(token.id)") { db in
            try Self.insert(token, db, path: path)
            for e in events { try Self.insert(e, db, node: self.node) }
        }
    }

    public func token(id: String) throws -> TokenRecord? {
        // One statement, atomic on its own: no transaction around it.
        try readStatement("read token") { db in
            try Row.fetchOne(db.cachedStatement(sql: "SELECT * FROM tokens WHERE id = ?"), arguments: [id]).map { try Self.token($0, path: path) }
        }
    }

    /// Tokens of `identity`, oldest first; `activeAt` keeps only those neither revoked nor expired then.
    public func tokens(identity: String, activeAt: Date?) throws(StoreError) -> [TokenRecord] {
        try read("read tokens") { db in
            var sql = "SELECT * FROM tokens WHERE identity = ?"
            var args: StatementArguments = [identity]
            if let activeAt {
                sql += " AND revoked_at IS NULL AND expires_at > ?"
                args += [Self.ms(activeAt)]
            }
            return try Row.fetchAll(db, sql: sql + " ORDER BY issued_at, id", arguments: args).map { try Self.token($0, path: path) }
        }
    }

    /// Every token, oldest first (for `uspd store migrate`).
    public func allTokens() throws(StoreError) -> [TokenRecord] {
        try read("read tokens") { db in
            try Row.fetchAll(db, sql: "SELECT * FROM tokens ORDER BY issued_at, id").map { try Self.token($0, path: path) }
        }
    }

    /// Application tokens issued under the authorization token `authorizationTokenID`, oldest first.
    public func tokens(issuedUnder authorizationTokenID: String) throws(StoreError) -> [TokenRecord] {
        try read("read tokens") { db in
            try Row.fetchAll(db, sql: "SELECT * FROM tokens WHERE authorization_token_id = ? ORDER BY issued_at, id",
                             arguments: [authorizationTokenID]).map { try Self.token($0, path: path) }
        }
    }

    /// Revokes the tokens `ids` that are not revoked yet, then every unrevoked application token
    /// issued under any of `ids` (whether that authorization token was revoked now or earlier).
    /// Returns the IDs revoked by this call: the requested ones in the order given, then the
    /// cascaded ones oldest first. Unknown IDs are ignored. One transaction.
    public func revokeTokens(ids: [String], at time: Date) throws -> [String] {
        try write("revoke tokens") { db in try Self.revoke(ids, at: time, db) }
    }

    public func revokeTokens(ids: [String], at time: Date, durable: Bool) throws -> [String] {
        guard !durable else { return try revokeTokens(ids: ids, at: time) }
        return try writeWithoutSync("revoke tokens") { db in try Self.revoke(ids, at: time, db) }
    }

    /// Revokes every unrevoked token whose identity is `identity`, and the application tokens
    /// issued under them. Returns the IDs revoked now.
    public func revokeTokens(identity: String, at time: Date) throws(StoreError) -> [String] {
        try write("revoke tokens of \"\(identity)\"") { db in
            let ids = try String.fetchAll(db, sql: "SELECT id FROM tokens WHERE identity = ? AND revoked_at IS NULL ORDER BY issued_at, id",
                                          arguments: [identity])
            return try Self.revoke(ids, at: time, db)
        }
    }

    /// Tokens revoked after `time` (ms precision), with the time of the latest: what a running
    /// daemon polls to end streams whose tokens another process revoked.
    public func tokensRevoked(after time: Date) throws(StoreError) -> (ids: [String], latest: Date?) {
        try read("read revocations") { db in
            let rows = try Row.fetchAll(db.cachedStatement(sql: "SELECT id, revoked_at FROM tokens WHERE revoked_at > ? ORDER BY revoked_at"),
                                        arguments: [Self.ms(time)])
            return (rows.map { $0["id"] }, rows.last.map { Self.date($0["revoked_at"] as Int64) })
        }
    }

    public func brokeredTokenCount(identity: String, since: Date) throws -> Int {
        try read("count brokered tokens") { db in
            try Int.fetchOne(db.cachedStatement(sql: "SELECT count(*) FROM tokens WHERE identity = ? AND brokered_for IS NOT NULL AND issued_at >= ?"),
                             arguments: [identity, Self.ms(since)]) ?? 0
        }
    }

    public func purgeExpiredTokens(before time: Date) throws -> Int {
        try write("purge tokens") { db in
            try db.execute(sql: "DELETE FROM tokens WHERE expires_at < ?", arguments: [Self.ms(time)])
            return db.changesCount
        }
    }

    // MARK: - Audit

    public func pruneAudit(olderThan: Date?, maxBytes: Int64?, keepAfter: Date) throws -> AuditPruning {
        var deleted: Int64 = 0
        if let olderThan {
            let cut = min(Self.ms(olderThan), Self.ms(keepAfter))
            deleted += try write("prune audit") { db in
                try db.execute(sql: "DELETE FROM audit WHERE time < ?", arguments: [cut])
                return Int64(db.changesCount)
            }
        }
        var (rows, bytes) = try auditFootprint()
        if let maxBytes, bytes > maxBytes, rows > 0 {
            // Delete the oldest share that should bring it under, in batches, and measure again.
            let keep = Self.ms(keepAfter)
            while bytes > maxBytes, rows > 0 {
                let share = Double(bytes - maxBytes) / Double(bytes)
                let batch = max(100, Int64((Double(rows) * share).rounded(.up)))
                let n = try write("prune audit") { db in
                    try db.execute(sql: "DELETE FROM audit WHERE id IN (SELECT id FROM audit WHERE time < ? ORDER BY id LIMIT ?)",
                                   arguments: [keep, batch])
                    return Int64(db.changesCount)
                }
                deleted += n
                (rows, bytes) = try auditFootprint()
                if n == 0 { break }
            }
        }
        return AuditPruning(deleted: deleted, rowsLeft: rows, bytesLeft: bytes)
    }

    /// Rows, and the bytes of the pages the audit table and its indexes use (SQLite's `dbstat`;
    /// where it is missing, the database's used pages).
    public func auditFootprint() throws -> (rows: Int64, bytes: Int64) {
        try read("measure audit") { db in
            let rows = try Int64.fetchOne(db, sql: "SELECT count(*) FROM audit") ?? 0
            let bytes: Int64
            if let b = try? Int64.fetchOne(db, sql: "SELECT sum(pgsize) FROM dbstat WHERE name = 'audit' OR name LIKE 'audit\\_%' ESCAPE '\\'") {
                bytes = b
            } else {
                let pages = try Int64.fetchOne(db, sql: "PRAGMA page_count") ?? 0
                let free = try Int64.fetchOne(db, sql: "PRAGMA freelist_count") ?? 0
                let size = try Int64.fetchOne(db, sql: "PRAGMA page_size") ?? 4096
                bytes = (pages - free) * size
            }
            return (rows, bytes)
        }
    }

    public func appendAudit(_ event: AuditEvent) throws {
        try write("append audit event") { db in try Self.insert(event, db, node: self.node) }
    }

    /// Appends several events in one transaction: all or none.
    public func appendAudit(_ events: [AuditEvent]) throws(StoreError) {
        try write("append audit events") { db in
            for e in events { try Self.insert(e, db, node: self.node) }
        }
    }

    /// Events oldest first (by time, then by insertion). `identity` and `since` (inclusive)
    /// filter; `limit` keeps the newest `limit` of the matching events, like `tail -n`.
    public func audit(identity: String?, since: Date?, limit: Int?) throws -> [AuditEvent] {
        try audit(identity: identity, kinds: nil, since: since, limit: limit)
    }

    /// As `audit(identity:since:limit:)`, also filtering on `kinds`.
    public func audit(identity: String?, kinds: Set<AuditEvent.Kind>?, since: Date?, limit: Int?) throws(StoreError) -> [AuditEvent] {
        if let limit, limit <= 0 { return [] }
        return try read("read audit") { db in
            var conditions: [String] = []
            var args = StatementArguments()
            if let identity { conditions.append("identity = ?"); args += [identity] }
            if let since { conditions.append("time >= ?"); args += [Self.ms(since)] }
            if let kinds {
                if kinds.isEmpty { return [] }
                let sorted = kinds.map(\.rawValue).sorted()
                conditions.append("kind IN (\(sorted.map { _ in "?" }.joined(separator: ", ")))")
                args += StatementArguments(sorted)
            }
            var sql = "SELECT * FROM audit"
            if !conditions.isEmpty { sql += " WHERE " + conditions.joined(separator: " AND ") }
            if let limit {
                sql = "SELECT * FROM (\(sql) ORDER BY time DESC, id DESC LIMIT ?) ORDER BY time, id"
                args += [limit]
            } else {
                sql += " ORDER BY time, id"
            }
            return try Row.fetchAll(db, sql: sql, arguments: args).map { row throws(StoreError) in try Self.event(row, path: path) }
        }
    }

    /// Events with an ID above `afterID`, in insertion order, at most `limit`: a cursor for
    /// exporting or following the trail (pass the last ID seen).
    public func audit(afterID: Int64, limit: Int) throws(StoreError) -> [AuditEvent] {
        try read("read audit") { db in
            try Row.fetchAll(db, sql: "SELECT * FROM audit WHERE id > ? ORDER BY id LIMIT ?", arguments: [afterID, max(0, limit)])
                .map { row throws(StoreError) in try Self.event(row, path: path) }
        }
    }

    /// Every event of the server session `session`, oldest first.
    public func audit(session: String) throws(StoreError) -> [AuditEvent] {
        try read("read audit") { db in
            try Row.fetchAll(db, sql: "SELECT * FROM audit WHERE session = ? ORDER BY time, id", arguments: [session])
                .map { row throws(StoreError) in try Self.event(row, path: path) }
        }
    }

    /// Every event that names `tokenID`, as the token or as the authorization token behind it, oldest first.
    public func audit(tokenID: String) throws(StoreError) -> [AuditEvent] {
        try read("read audit") { db in
            try Row.fetchAll(db, sql: "SELECT * FROM audit WHERE token_id = ? OR authorization_token_id = ? ORDER BY time, id",
                             arguments: [tokenID, tokenID])
                .map { row throws(StoreError) in try Self.event(row, path: path) }
        }
    }



    /// The chain of stream `stream` in server session `streamSession`, or nil when no event of
    /// that stream was recorded. Links that were not recorded (or whose tokens were audited
    /// without IDs) are nil.
    public func auditChain(streamSession: String, stream: Int64) throws(StoreError) -> AuditChain? {
        try read("read audit") { db in
            let streamEvents = try Row.fetchAll(db, sql: "SELECT * FROM audit WHERE session = ? AND stream = ? AND kind IN (?, ?) ORDER BY time, id",
                                                arguments: [streamSession, stream, AuditEvent.Kind.streamOpened.rawValue, AuditEvent.Kind.streamClosed.rawValue])
                .map { row throws(StoreError) in try Self.event(row, path: path) }
            guard !streamEvents.isEmpty else { return nil }
            func issued(_ id: String?) throws -> AuditEvent? {
                guard let id else { return nil }
                return try Row.fetchOne(db, sql: "SELECT * FROM audit WHERE kind = ? AND token_id = ? ORDER BY time, id LIMIT 1",
                                        arguments: [AuditEvent.Kind.tokenIssued.rawValue, id])
                    .map { row throws(StoreError) in try Self.event(row, path: path) }
            }
            let appTokenID = streamEvents.lazy.compactMap(\.tokenID).first
            let appIssued = try issued(appTokenID)
            var authTokenID = streamEvents.lazy.compactMap(\.authorizationTokenID).first ?? appIssued?.authorizationTokenID
            if authTokenID == nil, let appTokenID {
                authTokenID = try String.fetchOne(db, sql: "SELECT authorization_token_id FROM tokens WHERE id = ?", arguments: [appTokenID])
            }
            let authIssued = try issued(authTokenID)
            var authentication: AuditEvent?
            if let authIssued, let session = authIssued.session, let issuedID = authIssued.id {
                authentication = try Row.fetchOne(db, sql: """
                    SELECT * FROM audit WHERE session = ? AND kind = ? AND result = 'ok' AND id < ? ORDER BY id DESC LIMIT 1
                    """, arguments: [session, AuditEvent.Kind.authentication.rawValue, issuedID])
                    .map { row throws(StoreError) in try Self.event(row, path: path) }
            }
            let identity = authentication?.identity ?? authIssued?.identity ?? appIssued?.identity
                ?? streamEvents.lazy.compactMap(\.identity).first
            return AuditChain(streamEvents: streamEvents, applicationTokenIssued: appIssued,
                              authorizationTokenIssued: authIssued, authentication: authentication, identity: identity)
        }
    }

    /// Runs raw SQL on the writer, outside the store's rules: tests use it to fake a newer schema,
    /// another application's file or a damaged row.
    func executeForTesting(_ sql: String) throws(StoreError) {
        try write("execute test SQL") { db in try db.execute(sql: sql) }
    }

    /// The first column of the first row `sql` returns on the writer, as text (tests read settings).
    func executeForTestingReturning(_ sql: String) throws(StoreError) -> String? {
        try write("execute test SQL") { db in try String.fetchOne(db, sql: sql) }
    }

    // MARK: - Batches

    /// One transaction for tokens and audit rows, in order. Non-durable commits run with
    /// `synchronous=NORMAL` (WAL: no fsync at commit; a kill -9 loses nothing, a power cut may lose
    /// them until the next durable commit, which fsyncs the WAL up to itself); the writer goes back
    /// to FULL right after, whatever happens.
    public func commit(_ writes: [StoreWrite], durable: Bool) throws {
        for case .token(let t) in writes { try Self.validate(t, path: path) }
        let body: (Database) throws -> Void = { [path] db in
            for w in writes {
                switch w {
                case .token(let t): try Self.insert(t, db, path: path)
                case .audit(let e): try Self.insert(e, db, node: self.node)
                }
            }
        }
        let doing = "save \(writes.count) row(s)"
        if durable { try write(doing, body) } else { try writeWithoutSync(doing, body) }
    }

    /// One `IMMEDIATE` transaction under `synchronous=NORMAL` (WAL: no fsync at commit; a kill -9
    /// loses nothing, a power cut may lose it until `syncDurably` or a durable commit); the writer
    /// goes back to FULL right after, whatever happens.
    private func writeWithoutSync<T>(_ doing: String, _ body: @escaping (Database) throws -> T) throws(StoreError) -> T {
        do {
            return try pool.writeWithoutTransaction { db in
                try db.execute(sql: "PRAGMA synchronous = NORMAL")
                defer { try? db.execute(sql: "PRAGMA synchronous = FULL") }
                var result: T?
                try db.inTransaction(.immediate) {
                    result = try body(db)
                    return .commit
                }
                return result!
            }
        } catch {
            throw Self.storeError(error, path: path, doing: doing)
        }
    }

    /// fdatasync of the `-wal` file (which holds every commit not yet checkpointed; a checkpoint syncs
    /// the database file itself before the WAL is reused), then a passive checkpoint from the
    /// checkpoint connection once the WAL is large. Neither holds the writer.
    public func syncDurably() throws {
        let wal = path + "-wal"
        let fd = open(wal, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let code = errno
            // No WAL: nothing was committed since the last connection closed (it checkpoints).
            if code == ENOENT { return }
            throw StoreError(.io, path: path, "cannot open \(wal) to sync it: \(String(cString: strerror(code)))")
        }
        defer { Self.closeDescriptor(fd) }
        // fdatasync as SQLite's own syncs: the data and whatever metadata reading it back needs.
        guard fdatasync(fd) == 0 else {
            let code = errno
            throw StoreError(.io, path: path, "fdatasync of \(wal) failed: \(String(cString: strerror(code)))")
        }
        var info = stat()
        if fstat(fd, &info) == 0, Int(info.st_size) > Self.checkpointThreshold {
            do {
                try checkpointer.writeWithoutTransaction { db in _ = try db.checkpoint(.passive) }
            } catch {
                throw Self.storeError(error, path: path, doing: "checkpoint")
            }
        }
    }

    private static func closeDescriptor(_ fd: Int32) {
        #if canImport(Glibc)
        _ = Glibc.close(fd)
        #else
        _ = Darwin.close(fd)
        #endif
    }

    // MARK: - Access with error mapping

    private func read<T>(_ doing: String, _ body: (Database) throws -> T) throws(StoreError) -> T {
        do {
            return try pool.read(body)
        } catch {
            throw Self.storeError(error, path: path, doing: doing)
        }
    }

    /// For a single statement: SQLite makes it atomic, so no BEGIN/COMMIT is spent around it.
    private func readStatement<T>(_ doing: String, _ body: (Database) throws -> T) throws(StoreError) -> T {
        do {
            return try pool.unsafeRead(body)
        } catch {
            throw Self.storeError(error, path: path, doing: doing)
        }
    }

    private func write<T>(_ doing: String, _ body: (Database) throws -> T) throws(StoreError) -> T {
        do {
            return try pool.write(body)
        } catch {
            throw Self.storeError(error, path: path, doing: doing)
        }
    }

    static func storeError(_ error: any Error, path: String, doing: String) -> StoreError {
        if let e = error as? StoreError { return e }
        guard let e = error as? DatabaseError else {
            return StoreError(.io, path: path, "cannot \(doing): \(error)")
        }
        let detail = e.message ?? "\(e.resultCode)"
        switch e.resultCode {
        case .SQLITE_NOTADB:
            return StoreError(.notADatabase, path: path, "not a SQLite database (\(detail))")
        case .SQLITE_CORRUPT:
            return StoreError(.corrupt, path: path, "the database is damaged (\(detail)); restore it from a backup")
        case .SQLITE_READONLY, .SQLITE_PERM:
            return StoreError(.readOnly, path: path, "cannot \(doing): the database is read-only (\(detail))")
        case .SQLITE_CONSTRAINT:
            return StoreError(.conflict, path: path, "cannot \(doing): \(detail)")
        case .SQLITE_FULL:
            return StoreError(.full, path: path, "cannot \(doing): the disk is full (\(detail))")
        case .SQLITE_MISUSE:
            return StoreError(.closed, path: path, "cannot \(doing): the store is closed (\(detail))")
        default:
            return StoreError(.io, path: path, "cannot \(doing): SQLite error \(e.extendedResultCode.rawValue) (\(detail))")
        }
    }

    // MARK: - Open checks

    /// Refuses, before SQLite touches it, a path that is not a regular file, a file that does not
    /// start with the SQLite header, and a file or directory we cannot write.
    static func checkFileBeforeOpening(_ path: String) throws(StoreError) {
        let directory = (path as NSString).deletingLastPathComponent.isEmpty ? "." : (path as NSString).deletingLastPathComponent
        var st = stat()
        if stat(path, &st) == 0 {
            guard st.st_mode & S_IFMT == S_IFREG else {
                throw StoreError(.notADatabase, path: path, "not a regular file")
            }
            guard access(path, R_OK | W_OK) == 0 else {
                throw StoreError(.readOnly, path: path, "cannot open the database for writing: \(String(cString: strerror(errno)))")
            }
            if st.st_size > 0 {
                guard let handle = FileHandle(forReadingAtPath: path) else {
                    throw StoreError(.io, path: path, "cannot read the file")
                }
                defer { try? handle.close() }
                let header = (try? handle.read(upToCount: 16)) ?? Data()
                let magic = Data("SQLite format 3\u{0}".utf8)
                guard header == magic else {
                    let what = st.st_size < 16 ? "it is \(st.st_size) bytes long" : "it does not start with the SQLite header"
                    throw StoreError(.notADatabase, path: path, "not a SQLite database (\(what)); refusing to touch it")
                }
            }
        } else if errno != ENOENT {
            throw StoreError(.io, path: path, "cannot open the database: \(String(cString: strerror(errno)))")
        }
        var dst = stat()
        guard stat(directory, &dst) == 0, dst.st_mode & S_IFMT == S_IFDIR else {
            throw StoreError(.io, path: path, "directory \(directory) does not exist")
        }
        guard access(directory, W_OK | X_OK) == 0 else {
            throw StoreError(.readOnly, path: path, "directory \(directory) is not writable (WAL mode creates files beside the database)")
        }
    }

    static func checkDurability(_ db: Database, path: String) throws {
        let mode = try String.fetchOne(db, sql: "PRAGMA journal_mode")?.lowercased()
        guard mode == "wal" else {
            throw StoreError(.durability, path: path, "journal_mode reads back \(mode ?? "nothing"), expected wal")
        }
        let sync = try Int.fetchOne(db, sql: "PRAGMA synchronous")
        guard sync == 2 else {
            throw StoreError(.durability, path: path, "synchronous reads back \(sync.map(String.init) ?? "nothing"), expected 2 (FULL)")
        }
    }

    /// Refuses another application's database: another application_id, or tables but no USP migrations.
    static func checkOwnership(_ db: Database, path: String) throws {
        let appID = try Int32.fetchOne(db, sql: "PRAGMA application_id") ?? 0
        if appID == applicationID { return }
        if appID != 0 {
            throw StoreError(.foreignDatabase, path: path,
                "a SQLite database of another application (application_id 0x\(String(UInt32(bitPattern: appID), radix: 16))); refusing to touch it")
        }
        let tables = try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        if !tables.isEmpty && !tables.contains("grdb_migrations") {
            throw StoreError(.foreignDatabase, path: path,
                "a SQLite database with other tables (\(tables.prefix(3).joined(separator: ", "))), not a USP database; refusing to touch it")
        }
    }

    // MARK: - Schema

    static let migrator: DatabaseMigrator = {
        var m = DatabaseMigrator()
        m.registerMigration("v1") { db in
            try db.execute(sql: "PRAGMA application_id = \(applicationID)")
            try db.execute(sql: """
                CREATE TABLE users (
                    name TEXT PRIMARY KEY NOT NULL CHECK (name <> ''),
                    groups TEXT NOT NULL DEFAULT '[]',
                    password_hash TEXT,
                    created_at INTEGER NOT NULL
                );
                CREATE TABLE user_keys (
                    public_key TEXT PRIMARY KEY NOT NULL CHECK (public_key <> ''),
                    user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE ON UPDATE CASCADE,
                    position INTEGER NOT NULL
                );
                CREATE INDEX user_keys_user ON user_keys(user_name, position);
                CREATE TABLE tokens (
                    id TEXT PRIMARY KEY NOT NULL CHECK (id <> ''),
                    kind TEXT NOT NULL CHECK (kind IN ('authorization', 'application')),
                    public_key TEXT NOT NULL,
                    identity TEXT,
                    application TEXT,
                    peer_address TEXT,
                    request_json TEXT,
                    authorization_token_id TEXT,
                    issued_at INTEGER NOT NULL,
                    expires_at INTEGER NOT NULL,
                    revoked_at INTEGER
                );
                CREATE INDEX tokens_identity ON tokens(identity);
                CREATE INDEX tokens_authorization ON tokens(authorization_token_id);
                CREATE INDEX tokens_expires ON tokens(expires_at);
                CREATE TABLE audit (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    time INTEGER NOT NULL,
                    kind TEXT NOT NULL,
                    session TEXT,
                    peer_address TEXT,
                    client_key TEXT,
                    identity TEXT,
                    method TEXT,
                    result TEXT,
                    token_id TEXT,
                    authorization_token_id TEXT,
                    application TEXT,
                    stream INTEGER,
                    bytes_in INTEGER,
                    bytes_out INTEGER,
                    duration_ms INTEGER,
                    detail TEXT
                );
                CREATE INDEX audit_time ON audit(time, id);
                CREATE INDEX audit_identity ON audit(identity, time);
                CREATE INDEX audit_kind ON audit(kind, time);
                CREATE INDEX audit_session ON audit(session, stream);
                CREATE INDEX audit_token ON audit(token_id);
                CREATE INDEX audit_authorization ON audit(authorization_token_id);
                CREATE TABLE store_meta (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL);
                """)
        }
        // v2: a running daemon polls for revocations made by another process (uspd user remove).
        m.registerMigration("v2-revoked-index") { db in
            try db.execute(sql: "CREATE INDEX tokens_revoked ON tokens(revoked_at) WHERE revoked_at IS NOT NULL")
        }
        // v3: summary rows (one per source network and kind per interval) carry how many events they stand for.
        m.registerMigration("v3-audit-count") { db in
            try db.execute(sql: "ALTER TABLE audit ADD COLUMN count INTEGER")
        }
        // v4: the uspd node that wrote each row (a fleet's trail, once moved to PostgreSQL).
        m.registerMigration("v4-audit-node") { db in
            try db.execute(sql: "ALTER TABLE audit ADD COLUMN node TEXT")
        }
        // v5: connection brokering: the address a brokered application token was issued for.
        m.registerMigration("v5-brokered-tokens") { db in
            try db.execute(sql: """
                ALTER TABLE tokens ADD COLUMN brokered_for TEXT;
                CREATE INDEX tokens_brokered ON tokens(identity, issued_at) WHERE brokered_for IS NOT NULL;
                """)
        }
        return m
    }()

    // MARK: - Rows

    static func ms(_ date: Date) -> Int64 { Int64((date.timeIntervalSince1970 * 1000).rounded()) }
    static func date(_ ms: Int64) -> Date { Date(timeIntervalSince1970: Double(ms) / 1000) }
    static func date(_ ms: Int64?) -> Date? { ms.map(date) }

    static func jsonArray(_ strings: [String]) -> String {
        let data = try! JSONSerialization.data(withJSONObject: strings, options: [.sortedKeys, .withoutEscapingSlashes])
        return String(decoding: data, as: UTF8.self)
    }

    static func fetchUser(_ db: Database, name: String, path: String) throws -> UserRecord? {
        guard let row = try Row.fetchOne(db, sql: "SELECT * FROM users WHERE name = ?", arguments: [name]) else { return nil }
        let groupsText: String = row["groups"]
        guard let groups = (try? JSONSerialization.jsonObject(with: Data(groupsText.utf8))) as? [String] else {
            throw StoreError(.corrupt, path: path, "user \"\(name)\" has malformed groups \(groupsText)")
        }
        let keys = try String.fetchAll(db, sql: "SELECT public_key FROM user_keys WHERE user_name = ? ORDER BY position", arguments: [name])
        return UserRecord(name: row["name"], groups: groups, passwordHash: row["password_hash"], publicKeys: keys,
                          createdAt: date(row["created_at"] as Int64))
    }

    static func validate(_ user: UserRecord, path: String) throws(StoreError) {
        func bad(_ s: String) -> StoreError { StoreError(.invalidArgument, path: path, "user \"\(user.name)\": \(s)") }
        if user.name.isEmpty || user.name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
            throw bad("the name is empty or contains control characters")
        }
        if user.groups.contains(where: \.isEmpty) { throw bad("a group name is empty") }
        if user.publicKeys.contains(where: \.isEmpty) { throw bad("a public key is empty") }
        if Set(user.publicKeys).count != user.publicKeys.count { throw bad("a public key is listed twice") }
        if let hash = user.passwordHash {
            do { try PasswordHash.validate(hash) } catch { throw bad(error.message) }
        }
    }

    static func validate(_ token: TokenRecord, path: String) throws(StoreError) {
        func bad(_ s: String) -> StoreError { StoreError(.invalidArgument, path: path, "token \(token.id): \(s)") }
        if token.id.isEmpty { throw bad("empty ID") }
        if token.publicKey.isEmpty { throw bad("empty public key") }
        if token.expiresAt < token.issuedAt { throw bad("expires before it is issued") }
    }

    static func insert(_ t: TokenRecord, _ db: Database, path: String) throws {
        if try Bool.fetchOne(db.cachedStatement(sql: "SELECT 1 FROM tokens WHERE id = ?"), arguments: [t.id]) == true {
            throw StoreError(.conflict, path: path, "token ID \(t.id) is already in use")
        }
        try db.cachedStatement(sql: """
            INSERT INTO tokens (id, kind, public_key, identity, application, peer_address, request_json,
                                authorization_token_id, issued_at, expires_at, revoked_at, brokered_for)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """).execute(arguments: [t.id, t.kind.rawValue, t.publicKey, t.identity, t.application, t.peerAddress, t.requestJSON,
                             t.authorizationTokenID, ms(t.issuedAt), ms(t.expiresAt), t.revokedAt.map(ms), t.brokeredFor])
    }

    static func token(_ row: Row, path: String) throws -> TokenRecord {
        let kindText: String = row["kind"]
        guard let kind = TokenRecord.Kind(rawValue: kindText) else {
            throw StoreError(.corrupt, path: path, "token \(row["id"] as String) has unknown kind \(kindText)")
        }
        return TokenRecord(id: row["id"], kind: kind, publicKey: row["public_key"], identity: row["identity"],
                           application: row["application"], peerAddress: row["peer_address"], requestJSON: row["request_json"],
                           authorizationTokenID: row["authorization_token_id"], issuedAt: date(row["issued_at"] as Int64),
                           expiresAt: date(row["expires_at"] as Int64), revokedAt: date(row["revoked_at"] as Int64?),
                           brokeredFor: row["brokered_for"])
    }

    static func revoke(_ ids: [String], at time: Date, _ db: Database) throws -> [String] {
        var seen = Set<String>()
        var revoked: [String] = []
        let t = ms(time)
        for id in ids where seen.insert(id).inserted {
            try db.execute(sql: "UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", arguments: [t, id])
            if db.changesCount > 0 { revoked.append(id) }
        }
        for id in ids {
            let children = try String.fetchAll(db, sql: """
                SELECT id FROM tokens WHERE authorization_token_id = ? AND revoked_at IS NULL ORDER BY issued_at, id
                """, arguments: [id])
            for child in children where seen.insert(child).inserted {
                try db.execute(sql: "UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", arguments: [t, child])
                if db.changesCount > 0 { revoked.append(child) }
            }
        }
        return revoked
    }

    static func insert(_ e: AuditEvent, _ db: Database, node: String?) throws {
        try db.cachedStatement(sql: """
            INSERT INTO audit (time, kind, session, peer_address, client_key, identity, method, result, token_id,
                               authorization_token_id, application, stream, bytes_in, bytes_out, duration_ms, detail, count, node)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """).execute(arguments: [ms(e.time), e.kind.rawValue, e.session, e.peerAddress, e.clientKey, e.identity, e.method, e.result,
                             e.tokenID, e.authorizationTokenID, e.application, e.stream, e.bytesIn, e.bytesOut, e.durationMS, e.detail,
                             e.count, e.node ?? node])
    }

    static func event(_ row: Row, path: String) throws(StoreError) -> AuditEvent {
        let kindText: String = row["kind"]
        guard let kind = AuditEvent.Kind(rawValue: kindText) else {
            throw StoreError(.corrupt, path: path, "audit event \(row["id"] as Int64) has unknown kind \(kindText)")
        }
        var e = AuditEvent(time: date(row["time"] as Int64), kind: kind, session: row["session"], peerAddress: row["peer_address"],
                           clientKey: row["client_key"], identity: row["identity"], method: row["method"], result: row["result"],
                           tokenID: row["token_id"], authorizationTokenID: row["authorization_token_id"], application: row["application"],
                           stream: row["stream"], bytesIn: row["bytes_in"], bytesOut: row["bytes_out"], durationMS: row["duration_ms"],
                           detail: row["detail"])
        e.id = row["id"]
        e.count = row["count"]
        e.node = row["node"]
        return e
    }
}
