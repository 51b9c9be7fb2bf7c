import Foundation
import Logging
import NIOCore
import PostgresNIO
import USPStore

/// The store on PostgreSQL, for several uspd nodes sharing one database (docs/FLEET.md). Same
/// protocol, same rules and the same results as `SQLiteStore`: every write returns once the
/// server has committed it (`synchronous_commit` as the server sets it, `on` by default), the
/// token and its audit row in one transaction, revocations cascading to the application tokens
/// issued under a revoked authorization token.
///
/// Errors are `StoreError`s naming the database URL (without its password): `.io` when the
/// server cannot be reached or refuses the login, `.conflict` for a taken token ID or public key,
/// `.full` when the server's disk is full, `.schemaTooNew` and `.foreignDatabase` at opening.
public final class PostgresStore: AdminStore, RevocationFeed, SharedReplayCache, SharedLoginPenalties, FleetDirectory,
    @unchecked Sendable {
    public let location: String
    /// Written into every audit row that does not name its node already (`AuditEvent.node`).
    public let node: String?
    let pool: PostgresConnectionPool
    let logger: Logger

    /// Connects (one connection, to check the login and migrate; more are opened on demand).
    public init(location: PostgresLocation, node: String? = nil, connections: Int = 4,
                logger: Logger = Logger(label: "uspd.store")) throws(StoreError) {
        self.location = location.displayURL
        self.node = node
        self.logger = logger
        pool = PostgresConnectionPool(location: location, capacity: connections, logger: logger)
        do {
            try migrate()
        } catch {
            pool.close()
            throw error
        }
    }

    public func close() {
        pool.close()
    }

    // MARK: - Schema

    /// The migrations applied, in order (for `uspd store status` and tests).
    public func appliedMigrations() throws(StoreError) -> [String] {
        try run("read schema version") { c in
            try Self.rows(c, "SELECT id FROM usp_schema_migrations ORDER BY applied_at, id").map { try $0.decode(String.self) }
        }
    }

    private func migrate() throws(StoreError) {
        try run("migrate the schema") { c in
            try Self.transaction(c) {
                _ = try c.query("SELECT pg_advisory_xact_lock(\(PostgresSchema.lockKey))", logger: logger).blockingResult()
                let tables = Set(try Self.rows(c, "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")
                    .map { try $0.decode(String.self) })
                if !tables.contains("usp_schema_migrations") {
                    let ours: Set = ["users", "user_keys", "tokens", "audit"]
                    if !tables.isDisjoint(with: ours) {
                        throw StoreError(.foreignDatabase, path: location,
                                         "has tables \(tables.intersection(ours).sorted().joined(separator: ", ")) but no usp_schema_migrations: not a USP store")
                    }
                    _ = try c.query("CREATE TABLE usp_schema_migrations (id TEXT PRIMARY KEY, applied_at BIGINT NOT NULL)", logger: logger).blockingResult()
                }
                let applied = Set(try Self.rows(c, "SELECT id FROM usp_schema_migrations").map { try $0.decode(String.self) })
                let known = Set(PostgresSchema.migrations.map(\.id))
                let unknown = applied.subtracting(known)
                guard unknown.isEmpty else {
                    throw StoreError(.schemaTooNew, path: location,
                                     "schema has migrations \(unknown.sorted().joined(separator: ", ")) from a newer USP; this version knows \(known.sorted().joined(separator: ", "))")
                }
                for m in PostgresSchema.migrations where !applied.contains(m.id) {
                    for statement in m.sql { _ = try c.query(PostgresQuery(unsafeSQL: statement), logger: logger).blockingResult() }
                    _ = try c.query("INSERT INTO usp_schema_migrations (id, applied_at) VALUES (\(m.id), \(Self.ms(Date())))", logger: logger).blockingResult()
                    logger.info("database \(location): migration \(m.id) applied")
                }
            }
        }
    }

    // MARK: - Users

    public func user(named name: String) throws -> UserRecord? {
        try run("read user") { c in try fetchUser(c, name: name) }
    }

    public func users() throws -> [UserRecord] {
        try run("read users") { c in
            let names = try Self.rows(c, "SELECT name FROM users ORDER BY name COLLATE \"C\"").map { try $0.decode(String.self) }
            return try names.compactMap { try fetchUser(c, name: $0) }
        }
    }

    public func user(publicKey: String) throws -> UserRecord? {
        try run("read user") { c in
            guard let name = try Self.rows(c, "SELECT user_name FROM user_keys WHERE public_key = \(publicKey)").first?.decode(String.self)
            else { return nil }
            return try fetchUser(c, name: name)
        }
    }

    public func upsertUser(_ user: UserRecord) throws {
        try StoreRules.validate(user, path: location)
        try run("save user \"\(user.name)\"") { c in
            try Self.transaction(c) {
                for key in user.publicKeys {
                    if let owner = try Self.rows(c, "SELECT user_name FROM user_keys WHERE public_key = \(key)").first?.decode(String.self),
                       owner != user.name {
                        throw StoreError(.conflict, path: location, "public key \(key) already belongs to user \"\(owner)\"")
                    }
                }
                _ = try c.query("""
                    INSERT INTO users (name, groups, password_hash, created_at) VALUES (\(user.name), \(StoreRules.groupsText(user.groups)), \(user.passwordHash), \(Self.ms(user.createdAt)))
                    ON CONFLICT (name) DO UPDATE SET groups = excluded.groups, password_hash = excluded.password_hash, created_at = excluded.created_at
                    """, logger: logger).blockingResult()
                _ = try c.query("DELETE FROM user_keys WHERE user_name = \(user.name)", logger: logger).blockingResult()
                for (i, key) in user.publicKeys.enumerated() {
                    _ = try c.query("INSERT INTO user_keys (public_key, user_name, position) VALUES (\(key), \(user.name), \(i))", logger: logger).blockingResult()
                }
            }
        }
    }

    public func removeUser(named name: String) throws -> Bool {
        try run("remove user \"\(name)\"") { c in
            try c.query("DELETE FROM users WHERE name = \(name)", logger: logger).blockingResult().metadata.rows ?? 0 > 0
        }
    }

    private func fetchUser(_ c: PostgresConnection, name: String) throws -> UserRecord? {
        guard let row = try Self.rows(c, "SELECT name, groups, password_hash, created_at FROM users WHERE name = \(name)").first else { return nil }
        let (n, groupsText, hash, created) = try row.decode((String, String, String?, Int64).self)
        guard let groups = (try? JSONSerialization.jsonObject(with: Data(groupsText.utf8))) as? [String] else {
            throw StoreError(.corrupt, path: location, "user \"\(name)\" has malformed groups \(groupsText)")
        }
        let keys = try Self.rows(c, "SELECT public_key FROM user_keys WHERE user_name = \(name) ORDER BY position").map { try $0.decode(String.self) }
        return UserRecord(name: n, groups: groups, passwordHash: hash, publicKeys: keys, createdAt: Self.date(created))
    }

    // MARK: - Tokens

    static let tokenColumns = "id, kind, public_key, identity, application, peer_address, request_json, authorization_token_id, issued_at, expires_at, revoked_at, brokered_for"

    public func insertToken(_ token: TokenRecord) throws {
        try insertToken(token, audit: [])
    }

    public func insertToken(_ token: TokenRecord, audit event: AuditEvent) throws {
        try insertToken(token, audit: [event])
    }

    public func insertToken(_ token: TokenRecord, audit events: [AuditEvent]) throws {
        try StoreRules.validate(token, path: location)
        try run("save token \(token.id)") { c in
            try Self.transaction(c) {
                try insert(token, c)
                for e in events { try insert(e, c) }
            }
        }
    }

    public func token(id: String) throws -> TokenRecord? {
        try run("read token") { c in
            try Self.rows(c, "SELECT \(unescaped: Self.tokenColumns) FROM tokens WHERE id = \(id)").first.map { try token($0) }
        }
    }

    public func tokens(identity: String, activeAt: Date?) throws(StoreError) -> [TokenRecord] {
        try run("read tokens") { c in
            let rows: [PostgresRow]
            if let activeAt {
                rows = try Self.rows(c, """
                    SELECT \(unescaped: Self.tokenColumns) FROM tokens WHERE identity = \(identity)
                    AND revoked_at IS NULL AND expires_at > \(Self.ms(activeAt)) ORDER BY issued_at, id COLLATE "C"
                    """)
            } else {
                rows = try Self.rows(c, "SELECT \(unescaped: Self.tokenColumns) FROM tokens WHERE identity = \(identity) ORDER BY issued_at, id COLLATE \"C\"")
            }
            return try rows.map { try token($0) }
        }
    }

    public func tokens(issuedUnder authorizationTokenID: String) throws(StoreError) -> [TokenRecord] {
        try run("read tokens") { c in
            try Self.rows(c, """
                SELECT \(unescaped: Self.tokenColumns) FROM tokens WHERE authorization_token_id = \(authorizationTokenID) ORDER BY issued_at, id COLLATE "C"
                """).map { try token($0) }
        }
    }

    public func revokeTokens(ids: [String], at time: Date) throws -> [String] {
        try run("revoke tokens") { c in try Self.transaction(c) { try revoke(ids, at: time, c) } }
    }

    /// PostgreSQL commits are always durable here (`durable: false` is a SQLite optimisation).
    public func revokeTokens(ids: [String], at time: Date, durable: Bool) throws -> [String] {
        try revokeTokens(ids: ids, at: time)
    }

    public func revokeTokens(identity: String, at time: Date) throws(StoreError) -> [String] {
        try run("revoke tokens of \"\(identity)\"") { c in
            try Self.transaction(c) {
                let ids = try Self.rows(c, """
                    SELECT id FROM tokens WHERE identity = \(identity) AND revoked_at IS NULL ORDER BY issued_at, id COLLATE "C"
                    """).map { try $0.decode(String.self) }
                return try revoke(ids, at: time, c)
            }
        }
    }

    public func tokensRevoked(after time: Date) throws -> (ids: [String], latest: Date?) {
        try run("read revocations") { c in
            let rows = try Self.rows(c, "SELECT id, revoked_at FROM tokens WHERE revoked_at > \(Self.ms(time)) ORDER BY revoked_at, id COLLATE \"C\"")
                .map { try $0.decode((String, Int64).self) }
            return (rows.map(\.0), rows.last.map { Self.date($0.1) })
        }
    }

    public func brokeredTokenCount(identity: String, since: Date) throws -> Int {
        try run("count brokered tokens") { c in
            let row = try Self.rows(c, """
                SELECT count(*) FROM tokens WHERE identity = \(identity) AND brokered_for IS NOT NULL AND issued_at >= \(Self.ms(since))
                """).first
            return Int(try row?.decode(Int64.self) ?? 0)
        }
    }

    public func purgeExpiredTokens(before time: Date) throws -> Int {
        try run("purge tokens") { c in
            try c.query("DELETE FROM tokens WHERE expires_at < \(Self.ms(time))", logger: logger).blockingResult().metadata.rows ?? 0
        }
    }

    private func insert(_ t: TokenRecord, _ c: PostgresConnection) throws {
        // Checked first for a plain message; a node inserting the same ID at the same moment still
        // meets the primary key (SQLSTATE 23505, also a conflict).
        if try !Self.rows(c, "SELECT 1 FROM tokens WHERE id = \(t.id)").isEmpty {
            throw StoreError(.conflict, path: location, "token ID \(t.id) is already in use")
        }
        _ = try c.query("""
            INSERT INTO tokens (\(unescaped: Self.tokenColumns))
            VALUES (\(t.id), \(t.kind.rawValue), \(t.publicKey), \(t.identity), \(t.application), \(t.peerAddress), \(t.requestJSON),
                    \(t.authorizationTokenID), \(Self.ms(t.issuedAt)), \(Self.ms(t.expiresAt)), \(t.revokedAt.map(Self.ms)),
                    \(t.brokeredFor))
            """, logger: logger).blockingResult()
    }

    private func token(_ row: PostgresRow) throws -> TokenRecord {
        let (id, kindText, publicKey, identity, application, peer, request, authorization, issued, expires, revoked, brokered) =
            try row.decode((String, String, String, String?, String?, String?, String?, String?, Int64, Int64, Int64?, String?).self)
        guard let kind = TokenRecord.Kind(rawValue: kindText) else {
            throw StoreError(.corrupt, path: location, "token \(id) has unknown kind \(kindText)")
        }
        return TokenRecord(id: id, kind: kind, publicKey: publicKey, identity: identity, application: application, peerAddress: peer,
                           requestJSON: request, authorizationTokenID: authorization, issuedAt: Self.date(issued),
                           expiresAt: Self.date(expires), revokedAt: revoked.map(Self.date), brokeredFor: brokered)
    }

    /// The same rule as SQLite's: the requested IDs in the order given, then the application
    /// tokens issued under any of them, oldest first; only those revoked by this call.
    private func revoke(_ ids: [String], at time: Date, _ c: PostgresConnection) throws -> [String] {
        var seen = Set<String>()
        var revoked: [String] = []
        let t = Self.ms(time)
        for id in ids where seen.insert(id).inserted {
            let n = try c.query("UPDATE tokens SET revoked_at = \(t) WHERE id = \(id) AND revoked_at IS NULL", logger: logger).blockingResult().metadata.rows ?? 0
            if n > 0 { revoked.append(id) }
        }
        for id in ids {
            let children = try Self.rows(c, """
                SELECT id FROM tokens WHERE authorization_token_id = \(id) AND revoked_at IS NULL ORDER BY issued_at, id COLLATE "C"
                """).map { try $0.decode(String.self) }
            for child in children where seen.insert(child).inserted {
                let n = try c.query("UPDATE tokens SET revoked_at = \(t) WHERE id = \(child) AND revoked_at IS NULL", logger: logger).blockingResult().metadata.rows ?? 0
                if n > 0 { revoked.append(child) }
            }
        }
        // Every node listening learns of them when this transaction commits (never before, never
        // if it rolls back).
        for payload in PostgreSQLNotifyPayload.chunks(revoked) {
            _ = try c.query("SELECT pg_notify(\(PostgresRevocationListener.channel), \(payload))", logger: logger).blockingResult()
        }
        return revoked
    }

    // MARK: - Import

    /// What `importEverything` copied.
    public struct ImportCounts: Equatable, Sendable {
        public var users = 0, tokens = 0, auditRows = 0
    }

    /// Copies a SQLite store's users, tokens (revoked ones included) and audit trail (in its
    /// order, with new IDs) into this database, in one transaction: all of it or, on any error,
    /// nothing. Refuses a database that already holds users, tokens or audit rows (`.conflict`).
    public func importEverything(from source: SQLiteStore, progress: (ImportCounts) -> Void = { _ in }) throws(StoreError) -> ImportCounts {
        let users: [UserRecord]
        do { users = try source.users() } catch let e as StoreError { throw e } catch { throw StoreError(.io, path: source.path, "\(error)") }
        let tokens = try source.allTokens()
        return try run("import from \(source.path)") { c in
            try Self.transaction(c) {
                let row = try Self.rows(c, "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM tokens), (SELECT count(*) FROM audit)").first
                var counts: (Int64, Int64, Int64) = (0, 0, 0)
                if let row { counts = try row.decode((Int64, Int64, Int64).self) }
                guard counts == (0, 0, 0) else {
                    throw StoreError(.conflict, path: location,
                                     "already holds \(counts.0) user(s), \(counts.1) token(s) and \(counts.2) audit row(s); import only into an empty store")
                }
                var done = ImportCounts()
                for user in users {
                    _ = try c.query("""
                        INSERT INTO users (name, groups, password_hash, created_at)
                        VALUES (\(user.name), \(StoreRules.groupsText(user.groups)), \(user.passwordHash), \(Self.ms(user.createdAt)))
                        """, logger: logger).blockingResult()
                    for (i, key) in user.publicKeys.enumerated() {
                        _ = try c.query("INSERT INTO user_keys (public_key, user_name, position) VALUES (\(key), \(user.name), \(i))", logger: logger).blockingResult()
                    }
                    done.users += 1
                }
                for token in tokens {
                    try insert(token, c)
                    done.tokens += 1
                }
                progress(done)
                var after: Int64 = 0
                while true {
                    let batch = try source.audit(afterID: after, limit: 1000)
                    guard let last = batch.last?.id else { break }
                    for e in batch { try insert(e, c) }
                    done.auditRows += batch.count
                    after = last
                    progress(done)
                }
                return done
            }
        }
    }

    // MARK: - Replay cache

    /// One statement: a new key is inserted; a key whose entry expired is taken over; a live one
    /// is left alone and reported as a replay. Concurrent nodes serialise on the primary key, so
    /// exactly one of them gets true.
    public func recordFirstUse(of key: [UInt8], until: Date, now: Date) throws(StoreError) -> Bool {
        let text = key.map { String(format: "%02x", $0) }.joined()
        return try run("check the early-data replay cache") { c in
            try c.query("""
                INSERT INTO early_data_seen (ephemeral, expires_at) VALUES (\(text), \(Self.ms(until)))
                ON CONFLICT (ephemeral) DO UPDATE SET expires_at = excluded.expires_at WHERE early_data_seen.expires_at < \(Self.ms(now))
                """, logger: logger).blockingResult().metadata.rows ?? 0 == 1
        }
    }

    public func purgeReplayCache(before time: Date) throws(StoreError) -> Int {
        try run("purge the early-data replay cache") { c in
            try c.query("DELETE FROM early_data_seen WHERE expires_at < \(Self.ms(time))", logger: logger).blockingResult().metadata.rows ?? 0
        }
    }

    // MARK: - Login penalties

    public func recordLoginFailure(_ keys: [LoginPenalty], base: Double, forgetAfter: Double, now: Date) throws(StoreError) -> [String: Date] {
        guard !keys.isEmpty else { return [:] }
        let at = Self.ms(now), forgotten = at - Int64((forgetAfter * 1000).rounded())
        let baseMS = base * 1000
        return try run("record a failed login") { c in
            var ends: [String: Date] = [:]
            try Self.transaction(c) {
                for penalty in keys {
                    // The count, and the window min(cap, base · 2^(count − 1)), in one statement:
                    // nodes failing the same key at once each add theirs.
                    let rows = try Self.rows(c, """
                        INSERT INTO login_penalties AS p (key, failures, last_at, until_at)
                        VALUES (\(penalty.key), 1, \(at), \(at) + LEAST(\(penalty.cap * 1000), \(baseMS))::BIGINT)
                        ON CONFLICT (key) DO UPDATE SET
                            failures = CASE WHEN p.last_at < \(forgotten) THEN 1 ELSE LEAST(p.failures, 30) + 1 END,
                            last_at = \(at),
                            until_at = \(at) + LEAST(\(penalty.cap * 1000),
                                \(baseMS) * power(2, CASE WHEN p.last_at < \(forgotten) THEN 0 ELSE LEAST(p.failures, 30) END))::BIGINT
                        RETURNING until_at
                        """)
                    if let row = rows.first { ends[penalty.key] = Self.date(try row.decode(Int64.self)) }
                }
            }
            return ends
        }
    }

    public func openLoginPenalties(_ keys: [String], now: Date) throws(StoreError) -> [String: Date] {
        guard !keys.isEmpty else { return [:] }
        return try run("read login penalties") { c in
            var open: [String: Date] = [:]
            for row in try Self.rows(c, "SELECT key, until_at FROM login_penalties WHERE key = ANY(\(keys)) AND until_at > \(Self.ms(now))") {
                let (key, until) = try row.decode((String, Int64).self)
                open[key] = Self.date(until)
            }
            return open
        }
    }

    public func clearLoginPenalties(_ keys: [String]) throws(StoreError) {
        guard !keys.isEmpty else { return }
        try run("clear login penalties") { c in
            _ = try c.query("DELETE FROM login_penalties WHERE key = ANY(\(keys))", logger: logger).blockingResult()
        }
    }

    public func purgeLoginPenalties(before time: Date) throws(StoreError) -> Int {
        try run("purge login penalties") { c in
            try c.query("DELETE FROM login_penalties WHERE last_at < \(Self.ms(time))", logger: logger).blockingResult().metadata.rows ?? 0
        }
    }

    // MARK: - Fleet directory

    public func reportNode(_ node: String, report: String, at: Date) throws(StoreError) {
        try run("report node \(node)") { c in
            _ = try c.query("""
                INSERT INTO fleet_nodes (node, report, reported_at) VALUES (\(node), \(report), \(Self.ms(at)))
                ON CONFLICT (node) DO UPDATE SET report = excluded.report, reported_at = excluded.reported_at
                """, logger: logger).blockingResult()
        }
    }

    public func withdrawNode(_ node: String) throws(StoreError) {
        try run("withdraw node \(node)") { c in
            _ = try c.query("DELETE FROM fleet_nodes WHERE node = \(node)", logger: logger).blockingResult()
        }
    }

    public func nodeReports() throws(StoreError) -> [NodeReport] {
        try run("read the fleet's nodes") { c in
            try Self.rows(c, "SELECT node, report, reported_at FROM fleet_nodes ORDER BY node").map { row in
                let (node, report, at) = try row.decode((String, String, Int64).self)
                return NodeReport(node: node, report: report, at: Self.date(at))
            }
        }
    }

    // MARK: - Revocation feed

    public func followRevocations(revoked: @escaping @Sendable ([String]) -> Void,
                                  connected: @escaping @Sendable () -> Void) -> any RevocationFollowing {
        let listener = PostgresRevocationListener(pool: pool, logger: logger, revoked: revoked, connected: connected)
        listener.start()
        return listener
    }

    // MARK: - Audit

    static let auditColumns = """
        id, time, kind, session, peer_address, client_key, identity, method, result, token_id, authorization_token_id, \
        application, stream, bytes_in, bytes_out, duration_ms, detail, count, node
        """

    public func appendAudit(_ event: AuditEvent) throws {
        try appendAudit([event])
    }

    public func appendAudit(_ events: [AuditEvent]) throws {
        guard !events.isEmpty else { return }
        try run("append audit events") { c in
            try Self.transaction(c) { for e in events { try insert(e, c) } }
        }
    }

    public func commit(_ writes: [StoreWrite], durable: Bool) throws {
        for case .token(let t) in writes { try StoreRules.validate(t, path: location) }
        try run("save \(writes.count) row(s)") { c in
            try Self.transaction(c) {
                for w in writes {
                    switch w {
                    case .token(let t): try insert(t, c)
                    case .audit(let e): try insert(e, c)
                    }
                }
            }
        }
    }

    public func audit(identity: String?, since: Date?, limit: Int?) throws -> [AuditEvent] {
        try audit(identity: identity, kinds: nil, since: since, limit: limit)
    }

    public func audit(identity: String?, kinds: Set<AuditEvent.Kind>?, since: Date?, limit: Int?) throws(StoreError) -> [AuditEvent] {
        if let limit, limit <= 0 { return [] }
        if let kinds, kinds.isEmpty { return [] }
        return try run("read audit") { c in
            var binds = PostgresBindings()
            var conditions: [String] = []
            if let identity { binds.append(identity); conditions.append("identity = $\(binds.count)") }
            if let since { binds.append(Self.ms(since)); conditions.append("time >= $\(binds.count)") }
            if let kinds {
                let sorted = kinds.map(\.rawValue).sorted()
                var marks: [String] = []
                for k in sorted { binds.append(k); marks.append("$\(binds.count)") }
                conditions.append("kind IN (\(marks.joined(separator: ", ")))")
            }
            var sql = "SELECT \(Self.auditColumns) FROM audit"
            if !conditions.isEmpty { sql += " WHERE " + conditions.joined(separator: " AND ") }
            if let limit {
                binds.append(Int64(limit))
                sql = "SELECT * FROM (\(sql) ORDER BY time DESC, id DESC LIMIT $\(binds.count)) AS newest ORDER BY time, id"
            } else {
                sql += " ORDER BY time, id"
            }
            return try Self.rows(c, PostgresQuery(unsafeSQL: sql, binds: binds)).map { try event($0) }
        }
    }

    public func audit(afterID: Int64, limit: Int) throws(StoreError) -> [AuditEvent] {
        try run("read audit") { c in
            try Self.rows(c, "SELECT \(unescaped: Self.auditColumns) FROM audit WHERE id > \(afterID) ORDER BY id LIMIT \(Int64(max(0, limit)))")
                .map { try event($0) }
        }
    }

    public func audit(session: String) throws(StoreError) -> [AuditEvent] {
        try run("read audit") { c in
            try Self.rows(c, "SELECT \(unescaped: Self.auditColumns) FROM audit WHERE session = \(session) ORDER BY time, id").map { try event($0) }
        }
    }

    public func audit(tokenID: String) throws(StoreError) -> [AuditEvent] {
        try run("read audit") { c in
            try Self.rows(c, """
                SELECT \(unescaped: Self.auditColumns) FROM audit WHERE token_id = \(tokenID) OR authorization_token_id = \(tokenID) ORDER BY time, id
                """).map { try event($0) }
        }
    }

    public func auditChain(streamSession: String, stream: Int64) throws(StoreError) -> AuditChain? {
        try run("read audit") { c in
            let opened = AuditEvent.Kind.streamOpened.rawValue, closed = AuditEvent.Kind.streamClosed.rawValue
            let streamEvents = try Self.rows(c, """
                SELECT \(unescaped: Self.auditColumns) FROM audit WHERE session = \(streamSession) AND stream = \(stream)
                AND kind IN (\(opened), \(closed)) ORDER BY time, id
                """).map { try event($0) }
            guard !streamEvents.isEmpty else { return nil }
            let issuedKind = AuditEvent.Kind.tokenIssued.rawValue
            func issued(_ id: String?) throws -> AuditEvent? {
                guard let id else { return nil }
                return try Self.rows(c, """
                    SELECT \(unescaped: Self.auditColumns) FROM audit WHERE kind = \(issuedKind) AND token_id = \(id) ORDER BY time, id LIMIT 1
                    """).first.map { try event($0) }
            }
            let appTokenID = streamEvents.lazy.compactMap(\.tokenID).first
            let appIssued = try issued(appTokenID)
            var authTokenID = streamEvents.lazy.compactMap(\.authorizationTokenID).first ?? appIssued?.authorizationTokenID
            if authTokenID == nil, let appTokenID {
                authTokenID = try Self.rows(c, "SELECT authorization_token_id FROM tokens WHERE id = \(appTokenID)").first?.decode(String?.self)
            }
            let authIssued = try issued(authTokenID)
            var authentication: AuditEvent?
            if let authIssued, let session = authIssued.session, let issuedID = authIssued.id {
                let kind = AuditEvent.Kind.authentication.rawValue
                authentication = try Self.rows(c, """
                    SELECT \(unescaped: Self.auditColumns) FROM audit WHERE session = \(session) AND kind = \(kind) AND result = 'ok'
                    AND id < \(issuedID) ORDER BY id DESC LIMIT 1
                    """).first.map { try event($0) }
            }
            let identity = authentication?.identity ?? authIssued?.identity ?? appIssued?.identity
                ?? streamEvents.lazy.compactMap(\.identity).first
            return AuditChain(streamEvents: streamEvents, applicationTokenIssued: appIssued,
                              authorizationTokenIssued: authIssued, authentication: authentication, identity: identity)
        }
    }

    public func pruneAudit(olderThan: Date?, maxBytes: Int64?, keepAfter: Date) throws -> AuditPruning {
        var deleted: Int64 = 0
        if let olderThan {
            let cut = min(Self.ms(olderThan), Self.ms(keepAfter))
            deleted += try run("prune audit") { c in
                Int64(try c.query("DELETE FROM audit WHERE time < \(cut)", logger: logger).blockingResult().metadata.rows ?? 0)
            }
        }
        var (rows, bytes) = try auditFootprint()
        if let maxBytes, bytes > maxBytes, rows > 0 {
            let keep = Self.ms(keepAfter)
            while bytes > maxBytes, rows > 0 {
                let share = Double(bytes - maxBytes) / Double(bytes)
                let batch = max(100, Int64((Double(rows) * share).rounded(.up)))
                let n = try run("prune audit") { c in
                    Int64(try c.query("DELETE FROM audit WHERE id IN (SELECT id FROM audit WHERE time < \(keep) ORDER BY id LIMIT \(batch))",
                                      logger: logger).blockingResult().metadata.rows ?? 0)
                }
                deleted += n
                (rows, bytes) = try auditFootprint()
                if n == 0 { break }
            }
        }
        return AuditPruning(deleted: deleted, rowsLeft: rows, bytesLeft: bytes)
    }

    /// Rows, and the bytes of the audit table with its indexes and TOAST (`pg_total_relation_size`;
    /// space freed by deletes counts until autovacuum reuses it).
    public func auditFootprint() throws -> (rows: Int64, bytes: Int64) {
        try run("measure audit") { c in
            let row = try Self.rows(c, "SELECT count(*), pg_total_relation_size('audit') FROM audit").first
            return try row?.decode((Int64, Int64).self) ?? (0, 0)
        }
    }

    private func insert(_ e: AuditEvent, _ c: PostgresConnection) throws {
        _ = try c.query("""
            INSERT INTO audit (time, kind, session, peer_address, client_key, identity, method, result, token_id,
                               authorization_token_id, application, stream, bytes_in, bytes_out, duration_ms, detail, count, node)
            VALUES (\(Self.ms(e.time)), \(e.kind.rawValue), \(e.session), \(e.peerAddress), \(e.clientKey), \(e.identity), \(e.method),
                    \(e.result), \(e.tokenID), \(e.authorizationTokenID), \(e.application), \(e.stream), \(e.bytesIn), \(e.bytesOut),
                    \(e.durationMS), \(e.detail), \(e.count), \(e.node ?? node))
            """, logger: logger).blockingResult()
    }

    private func event(_ row: PostgresRow) throws -> AuditEvent {
        let r = row.makeRandomAccess()
        let id = try r["id"].decode(Int64.self)
        let kindText = try r["kind"].decode(String.self)
        guard let kind = AuditEvent.Kind(rawValue: kindText) else {
            throw StoreError(.corrupt, path: location, "audit event \(id) has unknown kind \(kindText)")
        }
        var e = AuditEvent(time: Self.date(try r["time"].decode(Int64.self)), kind: kind, session: try r["session"].decode(String?.self),
                           peerAddress: try r["peer_address"].decode(String?.self), clientKey: try r["client_key"].decode(String?.self),
                           identity: try r["identity"].decode(String?.self), method: try r["method"].decode(String?.self),
                           result: try r["result"].decode(String?.self), tokenID: try r["token_id"].decode(String?.self),
                           authorizationTokenID: try r["authorization_token_id"].decode(String?.self),
                           application: try r["application"].decode(String?.self), stream: try r["stream"].decode(Int64?.self),
                           bytesIn: try r["bytes_in"].decode(Int64?.self), bytesOut: try r["bytes_out"].decode(Int64?.self),
                           durationMS: try r["duration_ms"].decode(Int64?.self), detail: try r["detail"].decode(String?.self))
        e.id = id
        e.count = try r["count"].decode(Int64?.self)
        e.node = try r["node"].decode(String?.self)
        return e
    }

    // MARK: - Plumbing

    static func ms(_ date: Date) -> Int64 { StoreRules.milliseconds(date) }
    static func date(_ ms: Int64) -> Date { StoreRules.date(milliseconds: ms) }

    static func rows(_ c: PostgresConnection, _ query: PostgresQuery) throws -> [PostgresRow] {
        try c.query(query, logger: Logger(label: "uspd.store")).blockingResult().rows
    }

    /// BEGIN, `body`, COMMIT; ROLLBACK if `body` or the commit throws.
    static func transaction<T>(_ c: PostgresConnection, _ body: () throws -> T) throws -> T {
        let logger = Logger(label: "uspd.store")
        _ = try c.query("BEGIN", logger: logger).blockingResult()
        do {
            let result = try body()
            _ = try c.query("COMMIT", logger: logger).blockingResult()
            return result
        } catch {
            _ = try? c.query("ROLLBACK", logger: logger).blockingResult()
            throw error
        }
    }

    /// Runs `body` on a pooled connection and maps what it throws to one `StoreError`.
    private func run<T>(_ doing: String, _ body: (PostgresConnection) throws -> T) throws(StoreError) -> T {
        do {
            return try pool.withConnection(body)
        } catch let e as StoreError {
            throw e
        } catch {
            throw Self.storeError(error, location: location, doing: doing)
        }
    }

    /// One line for a person: what was being done and why it failed, with the server's message
    /// and SQLSTATE when it answered.
    static func storeError(_ error: any Error, location: String, doing: String) -> StoreError {
        guard let e = error as? PSQLError else {
            return StoreError(.io, path: location, "\(doing): \(error)")
        }
        if let info = e.serverInfo {
            let state = info[.sqlState] ?? "?"
            let message = info[.message] ?? "error"
            switch state {
            case "23505": return StoreError(.conflict, path: location, "\(doing): \(message)")
            case "53100": return StoreError(.full, path: location, "\(doing): the database server's disk is full (\(message))")
            case "28P01", "28000": return StoreError(.io, path: location, "\(doing): login refused: \(message)")
            case "3D000": return StoreError(.io, path: location, "\(doing): \(message)")
            default: return StoreError(.io, path: location, "\(doing): \(message) (SQLSTATE \(state))")
            }
        }
        let reason: String
        switch e.code {
        case .connectionError, .serverClosedConnection, .uncleanShutdown:
            reason = "cannot reach the database server" + (e.underlying.map { " (\($0))" } ?? "")
        case .authMechanismRequiresPassword: reason = "the server asks for a password: set password_file or USPD_DATABASE_PASSWORD"
        case .unsupportedAuthMechanism: reason = "the server asks for an authentication method this client does not support"
        case .sslUnsupported: reason = "the server does not offer TLS (sslmode=verify-full)"
        default: reason = "\(e.code)" + (e.underlying.map { " (\($0))" } ?? "")
        }
        return StoreError(.io, path: location, "\(doing): \(reason)")
    }
}
