/// `uspd.toml`: the daemon's configuration. Every field has a default, so an empty file is valid.
///
/// ```toml
/// listen = ["127.0.0.1:7300", "[::1]:7300"]
/// apps_dir = "apps.d"                       # relative to the data directory
/// database = "usp.sqlite"                  # or "postgresql://uspd@db.example.net/usp" (docs/FLEET.md)
/// database_password_file = "db-password"    # PostgreSQL only; else $USPD_DATABASE_PASSWORD or $PGPASSWORD
/// node_name = "eu-1"                        # this uspd's name in the audit trail; the host name by default
/// host_key = "host_key"
/// allow_first_contact = true                # false: stealth, only IK/NK clients get an answer
/// tcp_fast_open = false                     # true: message 1 may ride in the SYN (TCP Fast Open)
/// handshake_timeout = 10                    # seconds
/// silent_hold_min = 15                      # stealth: a stranger's connection gets a FIN this many seconds
/// silent_hold_max = 90                      #   after accept, drawn between min and max, whatever it sent
/// silent_hold_distribution = "log-uniform"  # or "uniform"
/// max_silent_holds = 4096                   # stealth: connections held silently at once
/// idle_timeout = 600                        # seconds without input on a session with no open stream; 0: never
/// max_connections = 4096
/// max_unauthenticated = 256
/// handshake_rate = 20                       # per source address per second
/// handshake_burst = 5
/// known_handshake_rate = 200                # an address that authenticated recently: its own bucket
/// known_handshake_burst = 50
/// known_source_time = 600                   # seconds an address stays known after a login; 0: never known
/// max_connections_per_source = 256         # concurrent, per source address (IPv6: per /64); 0: no limit
/// source_prefix_v4 = 24                     # the network of an IPv4 source, for fair admission and the login throttle
/// source_prefix_v6 = 64                     # the same for IPv6
/// max_streams_per_minute = 600              # opened, per identity (anonymous: per source address); 0: no limit
/// max_streams_per_identity = 128            # concurrent, per identity (anonymous: per source address); 0: no limit
/// max_streams_per_application = 0           # concurrent, per application (caps each one's max_sessions); 0: no limit
/// authorization_token_lifetime = 86400      # seconds
/// application_token_lifetime = 60
/// login_delay_base = 0.25                   # seconds; doubles per failure, per source and per identity
/// login_delay_max = 8
/// login_reply_min = 0.05                    # seconds: every login reply, success or failure, leaves at a
/// login_reply_max = 0.1                     #   time drawn between min and max after the login arrived
/// audit_max_age = 90                        # days an audit row is kept; 0: forever
/// audit_max_size = 1024                     # MiB the audit trail may take; 0: no limit
/// audit_summary_interval = 60               # seconds between summaries of strangers' rows
/// audit_reserve = 16                        # MiB of disk held back so grants go on when the disk fills; 0: none
/// log_level = "info"
/// metrics_listen = ""                       # host:port of the Prometheus endpoint (GET /metrics); "": off
///
/// [[broker]]                                # connection brokering (BrokerRule); none by default
/// who = ["relay", "group:brokers"]
/// clients = ["10.20.0.0/16"]
/// tokens_per_minute = 30
/// token_lifetime = 60
/// ```
public struct ServerConfig: Hashable, Sendable {
    public var listen: [String] = ["127.0.0.1:7300"]
    public var appsDirectory: String = "apps.d"
    /// The store: a SQLite file (relative to the data directory), or a `postgresql://` URL for
    /// a fleet of nodes sharing one PostgreSQL database (docs/FLEET.md).
    public var database: String = "usp.sqlite"
    /// The PostgreSQL password, one line in this file (relative to the data directory); without
    /// it, `USPD_DATABASE_PASSWORD` or `PGPASSWORD`. Never in the URL.
    public var databasePasswordFile: String?
    /// This uspd's name in the audit trail (each row says which node wrote it); nil: the host
    /// name. 1-64 of `A-Z a-z 0-9 . _ -`.
    public var nodeName: String?
    public var hostKey: String = "host_key"
    public var allowFirstContact = true
    /// TCP Fast Open on the listening sockets (TCP_FASTOPEN): a client with a cookie from an
    /// earlier connection sends message 1 in its SYN, a round trip less. Off by default: a SYN
    /// asking for a cookie gets one in the SYN-ACK, which a scanner can see; and it needs
    /// net.ipv4.tcp_fastopen with the server bit (2; set it to 3).
    public var tcpFastOpen = false
    public var handshakeTimeout: Double = 10
    /// Stealth (`allow_first_contact = false`): a connection that does not prove it knows the server
    /// key is never answered, and is ended with a FIN at a time drawn at accept from this distribution.
    public var silentHold = SilentHoldTime()
    /// Stealth: how many such connections are held at once (each costs a descriptor); past it, the
    /// oldest of the network holding the most is ended early.
    public var maxSilentHolds = 4096
    public var idleTimeout: Double = 600
    /// Seconds after which a session that has not logged in and has no open stream is closed,
    /// whatever it sends (0: never).
    public var anonymousSessionLifetime: Double = 60
    public var maxConnections = 4096
    public var maxUnauthenticated = 256
    public var handshakeRate: Double = 20
    public var handshakeBurst: Int = 5
    /// An address from which a session authenticated within `knownSourceTime` seconds draws new
    /// connections from a bucket of its own (exact address) at this rate, not the strangers'.
    public var knownHandshakeRate: Double = 200
    public var knownHandshakeBurst: Int = 50
    public var knownSourceTime: Double = 600
    public var maxConnectionsPerSource = 256
    /// How many leading bits of a source address name its network (fair admission, the login
    /// throttle's per-network window, `login_token_binding = "prefix"`).
    public var sourcePrefixV4 = 24
    public var sourcePrefixV6 = 64
    public var maxStreamsPerMinute = 600
    public var maxStreamsPerIdentity = 128
    public var maxStreamsPerApplication = 0
    public var authorizationTokenLifetime: Int = 86400
    /// Whether a login (authorization) token is accepted only from where it was issued: "none"
    /// (the default: a login follows a roaming client), "prefix" (the same /24 or /64) or
    /// "address" (the same IP address).
    public var loginTokenBinding: String = "none"
    public var applicationTokenLifetime: Int = 60
    public var loginDelayBase: Double = 0.25
    public var loginDelayMax: Double = 8
    /// The cap on the delay failures for a user from anywhere impose on that user's next
    /// password check (it delays, never refuses).
    public var loginDelayIdentityMax: Double = 1
    /// Every login's reply, success or failure, leaves no earlier than a time drawn uniformly from
    /// [min, max] after the login arrived, so its timing does not tell an observer the outcome.
    public var loginReplyMin: Double = 0.05
    public var loginReplyMax: Double = 0.1
    /// Days an audit row is kept (0: forever); MiB the trail may take (0: no limit). Rows younger
    /// than `authorization_token_lifetime` are never pruned, so every live token's trail is whole.
    public var auditMaxAge: Double = 90
    public var auditMaxSize: Double = 1024
    /// Seconds between summary rows of what strangers cause in bulk.
    public var auditSummaryInterval: Double = 60
    /// MiB of disk held in a reserve file beside the database and freed for grants when the disk is full.
    public var auditReserve: Double = 16
    public var logLevel: String = "info"
    /// `host:port` where uspd serves its metrics (Prometheus text, `GET /metrics`); empty: none.
    public var metricsListen: String = ""
    /// Who may ask for application tokens bound to another client's address (connection
    /// brokering), in file order; empty: nobody.
    public var brokers: [BrokerRule] = []

    public init() {}
}
