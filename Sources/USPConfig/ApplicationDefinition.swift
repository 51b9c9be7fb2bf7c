/// One application from `apps.d/NAME.toml`.
///
/// ```toml
/// name = "ssh"
/// description = "OpenSSH on this host"
/// visibility = "authenticated"            # "public", "authenticated", or ["alice", "group:admins"]
/// shape = "interactive"                    # optional: the connection's records keep a fixed size and tick
/// [expected_request_body]
/// user = "string?"
/// [launch]
/// tcp = "127.0.0.1:22"                      # or: exec = ["/usr/bin/cat"] (stream = "stdio" or "fd3"),
///                                          # or: unix = "/run/myapp.sock" (hand-off to a running app),
///                                          #     with relay_free = true for a relay-free hand-off
/// [limits]
/// max_sessions = 20                        # for exec: also the cap on its processes
/// token_lifetime = 60                      # seconds an application token stays valid
/// ```
///
/// An `exec` application can also be isolated (`Isolation`): `sandbox`, `user` and `group` in
/// `[launch]`, and a `[rlimits]` table.
public struct ApplicationDefinition: Hashable, Sendable {
    public enum Visibility: Hashable, Sendable {
        /// On every menu, before login too.
        case `public`
        /// On the menu of every logged-in identity.
        case authenticated
        /// Only for these identities (`"alice"`) and groups (`"group:admins"`).
        case only(identities: Set<String>, groups: Set<String>)
    }

    public enum Launch: Hashable, Sendable {
        /// Started once per session; the stream is the process's stdin and stdout, or a socket on fd 3.
        case exec(command: [String], environment: [String: String], stream: ExecStream = .stdio)
        /// Connect to an existing daemon.
        case tcp(host: String, port: Int)
        /// A UDP service at an IP address: each stream is one flow, its datagrams framed on the
        /// stream (docs/PROTOCOL.md §7.5), sent from a socket of the stream's own.
        case udp(host: String, port: Int)
        /// Hand each session to a running application listening on this AF_UNIX socket path
        /// (docs/APPLICATIONS.md). `relayFree`: for a dedicated connection hand over the client's
        /// TCP socket and the transport keys instead of a relayed socketpair (the application must
        /// use USPApp or implement docs/PROTOCOL.md §14).
        case unix(path: String, relayFree: Bool = false)
    }

    /// Traffic shaping while a stream of this application is open (`shape`, docs/PROTOCOL.md §4.1).
    public enum Shape: String, Hashable, Sendable, CaseIterable {
        /// Records padded to size buckets, sent as data comes (the default).
        case none
        /// One 512-byte record every 20 ms each way, cover records when idle: keystrokes and a
        /// rate-capped bulk transfer look alike on the wire.
        case interactive
    }

    /// How an exec'd command gets its stream (`[launch] stream`).
    public enum ExecStream: String, Hashable, Sendable, CaseIterable {
        /// Pipes on stdin and stdout.
        case stdio
        /// A connected AF_UNIX stream socket on fd 3, systemd style (`LISTEN_FDS=1`, `LISTEN_PID`,
        /// `LISTEN_FDNAMES=usp`); stdin is /dev/null, stdout goes where uspd's stderr goes.
        case fd3
    }

    public struct Limits: Hashable, Sendable {
        /// Concurrent sessions of this application (all clients), or nil for no limit.
        public var maxSessions: Int?
        /// Lifetime of application tokens issued for it, seconds.
        public var tokenLifetime: Int
        public init(maxSessions: Int? = nil, tokenLifetime: Int = 60) {
            self.maxSessions = maxSessions
            self.tokenLifetime = tokenLifetime
        }
    }

    public var name: String
    public var description: String
    public var visibility: Visibility
    /// Field name → type (`string`, `integer`, `number`, `boolean`, `object`, `array`, `""`; `?` = optional).
    public var expectedRequestBody: [String: String]
    public var launch: Launch
    public var limits: Limits
    /// How an exec'd command is confined (nothing for `tcp` and `unix`).
    public var isolation: Isolation
    public var shape: Shape
    /// The file it came from, for messages.
    public var sourcePath: String

    public init(name: String, description: String = "", visibility: Visibility, expectedRequestBody: [String: String] = [:],
                launch: Launch, limits: Limits = Limits(), isolation: Isolation = Isolation(), shape: Shape = .none,
                sourcePath: String = "") {
        self.shape = shape
        self.name = name
        self.description = description
        self.visibility = visibility
        self.expectedRequestBody = expectedRequestBody
        self.launch = launch
        self.limits = limits
        self.isolation = isolation
        self.sourcePath = sourcePath
    }

    /// Whether `identity` (nil: not logged in) with `groups` sees this application.
    public func isVisible(to identity: String?, groups: [String]) -> Bool {
        switch visibility {
        case .public: return true
        case .authenticated: return identity != nil
        case .only(let names, let allowed):
            guard let identity else { return false }
            return names.contains(identity) || groups.contains(where: allowed.contains)
        }
    }
}
