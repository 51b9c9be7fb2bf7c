import PostgresNIO

/// The PostgreSQL schema, as versioned migrations: each runs once, in order, in its own
/// transaction, under an advisory lock so that nodes starting together migrate once. Applied IDs
/// are kept in `usp_schema_migrations`; a database holding an ID this code does not know was
/// written by a newer USP and is refused.
enum PostgresSchema {
    /// `pg_advisory_xact_lock` key: "USP" and a 1, so it does not collide with another program's.
    static let lockKey: Int64 = 0x5553_5000_0000_0001

    static let migrations: [(id: String, sql: [String])] = [
        ("v1", [
            """
            CREATE TABLE users (
                name TEXT PRIMARY KEY CHECK (name <> ''),
                groups TEXT NOT NULL DEFAULT '[]',
                password_hash TEXT,
                created_at BIGINT NOT NULL
            )
            """,
            """
            CREATE TABLE user_keys (
                public_key TEXT PRIMARY KEY CHECK (public_key <> ''),
                user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE ON UPDATE CASCADE,
                position INTEGER NOT NULL
            )
            """,
            "CREATE INDEX user_keys_user ON user_keys(user_name, position)",
            """
            CREATE TABLE tokens (
                id TEXT PRIMARY KEY CHECK (id <> ''),
                kind TEXT NOT NULL CHECK (kind IN ('authorization', 'application')),
                public_key TEXT NOT NULL,
                identity TEXT,
                application TEXT,
                peer_address TEXT,
                request_json TEXT,
                authorization_token_id TEXT,
                issued_at BIGINT NOT NULL,
                expires_at BIGINT NOT NULL,
                revoked_at BIGINT
            )
            """,
            "CREATE INDEX tokens_identity ON tokens(identity)",
            "CREATE INDEX tokens_authorization ON tokens(authorization_token_id)",
            "CREATE INDEX tokens_expires ON tokens(expires_at)",
            "CREATE INDEX tokens_revoked ON tokens(revoked_at) WHERE revoked_at IS NOT NULL",
            """
            CREATE TABLE audit (
                id BIGSERIAL PRIMARY KEY,
                time BIGINT NOT NULL,
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
                stream BIGINT,
                bytes_in BIGINT,
                bytes_out BIGINT,
                duration_ms BIGINT,
                detail TEXT,
                count BIGINT
            )
            """,
            "CREATE INDEX audit_time ON audit(time, id)",
            "CREATE INDEX audit_identity ON audit(identity, time)",
            "CREATE INDEX audit_kind ON audit(kind, time)",
            "CREATE INDEX audit_session ON audit(session, stream)",
            "CREATE INDEX audit_token ON audit(token_id)",
            "CREATE INDEX audit_authorization ON audit(authorization_token_id)",
        ]),
        // v2: the early-data replay cache, shared by every node (SharedReplayCache).
        ("v2-replay-cache", [
            "CREATE TABLE early_data_seen (ephemeral TEXT PRIMARY KEY, expires_at BIGINT NOT NULL)",
            "CREATE INDEX early_data_seen_expires ON early_data_seen(expires_at)",
        ]),
        // v3: the node that wrote each audit row (`node_name`, the host name by default).
        ("v3-audit-node", [
            "ALTER TABLE audit ADD COLUMN node TEXT",
        ]),
        // v4: failed-login penalty windows, shared by every node (SharedLoginPenalties).
        ("v4-login-penalties", [
            "CREATE TABLE login_penalties (key TEXT PRIMARY KEY, failures INTEGER NOT NULL, last_at BIGINT NOT NULL, until_at BIGINT NOT NULL)",
            "CREATE INDEX login_penalties_last ON login_penalties(last_at)",
        ]),
        // v5: each node's latest report of its live sessions (FleetDirectory, uspd sessions --fleet).
        ("v5-fleet-nodes", [
            "CREATE TABLE fleet_nodes (node TEXT PRIMARY KEY, report TEXT NOT NULL, reported_at BIGINT NOT NULL)",
        ]),
        // v6: connection brokering: the address a brokered application token was issued for.
        ("v6-brokered-tokens", [
            "ALTER TABLE tokens ADD COLUMN brokered_for TEXT",
            "CREATE INDEX tokens_brokered ON tokens(identity, issued_at) WHERE brokered_for IS NOT NULL",
        ]),
    ]
}
