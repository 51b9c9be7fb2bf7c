import FuzzSupport
import USPConfig
import USPUnix

// The TOML loaders, through their string entry points (no file is read): `ServerConfigLoader.parse`
// for uspd.toml and `ApplicationLoader.parse` for an apps.d file, with TOMLKit underneath and
// USPConfig's own position scanner (`TOMLPositions`) and typed readers. Users and groups resolve
// against a fixed in-memory account table, as root, so `user`/`group` are checked too.
//
// Input: a selector byte (bit 0: application file, else uspd.toml), then the file's text.
//
// Property: a uspd.toml that loads prints (`tomlText`, what `uspd -T` shows) as text that loads
// back to an equal configuration.

let accounts = SystemAccounts(
    user: { ["root": (0, 0), "alice": (1000, 1000), "nobody": (65534, 65534)][$0] },
    group: { ["root": 0, "staff": 50, "nogroup": 65534][$0] },
    groupName: { [0: "root", 50: "staff", 1000: "alice", 65534: "nogroup"][$0] },
    userByID: { [0: ("root", 0), 1000: ("alice", 1000), 65534: ("nobody", 65534)][$0] },
    effectiveUserID: { 0 })

func run(_ input: [UInt8]) {
    guard let selector = input.first else { return }
    let text = String(decoding: input.dropFirst(), as: UTF8.self)
    if selector & 1 == 1 {
        _ = try? ApplicationLoader.parse(text, path: "fuzz.toml", defaultTokenLifetime: 60, accounts: accounts)
        return
    }
    guard let config = try? ServerConfigLoader.parse(text, path: "uspd.toml") else { return }
    let printed = config.tomlText
    checkRoundTrip(config, "uspd.toml printed by uspd -T:\n\(printed)\n") { try ServerConfigLoader.parse(printed, path: "uspd.toml") }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfig(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt { Harness.run(data, size, run) }

/// The seed corpus (Fuzz/Corpus/), from the project's own encoders.
func seeds() -> [(name: String, bytes: [UInt8])] {
    let apps = [
        ("app-tcp", """
            name = "ssh"
            description = "OpenSSH on this host"
            visibility = "authenticated"
            [expected_request_body]
            user = "string?"
            [launch]
            tcp = "127.0.0.1:22"
            [limits]
            max_sessions = 20
            token_lifetime = 60
            """),
        ("app-exec", """
            name = "notes"
            visibility = ["alice", "group:staff"]
            [launch]
            exec = ["/usr/local/bin/notes", "--stdio"]
            stream = "fd3"
            sandbox = "no-network"
            user = "nobody"
            group = "nogroup"
            [launch.environment]
            NOTES_DIR = "/var/lib/notes"
            [limits]
            max_sessions = 4
            [rlimits]
            max_open_files = 64
            max_memory = "256M"
            max_cpu_seconds = 60
            max_processes = 32
            """),
        ("app-unix", """
            name = "upper"
            visibility = "public"
            [launch]
            unix = "/run/upper.sock"
            relay_free = true
            """),
        ("app-errors", """
            name = "Bad Name"
            visibilty = "public"
            [launch]
            tcp = "host:99999"
            exec = []
            """),
    ]
    let server = [
        ("server-defaults", ServerConfig().tomlText),
        ("server-listen", """
            listen = ["127.0.0.1:7300", "[::1]:7300"]
            allow_first_contact = false
            handshake_timeout = 2.5
            max_connections = 100
            max_unauthenticated = 20
            login_token_binding = "prefix"
            log_level = "debug"
            """),
    ]
    return apps.map { (name: $0.0, bytes: [1] + Array($0.1.utf8)) } + server.map { (name: $0.0, bytes: [0] + Array($0.1.utf8)) }
}

@_cdecl("LLVMFuzzerInitialize")
public func fuzzConfigInitialize(_ argc: FuzzArgc, _ argv: FuzzArgv) -> CInt { Harness.initialize(seeds: seeds) }
