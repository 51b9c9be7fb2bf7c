import Foundation

/// A real `uspd` in its own data directory on a free loopback port, plus a `usp` home for the client.
final class DaemonFixture {
    let dataDirectory: URL
    let home: URL
    let port: Int
    private(set) var process: RunningProcess?
    private(set) var uri = ""
    let adminPassword: String

    /// The uid and gid `uspd serve` runs as (through setpriv), nil: the test's own.
    let runAs: (uid: uid_t, gid: gid_t)?
    /// RLIMIT_NOFILE (soft and hard) for `uspd serve`, through prlimit; nil: inherited.
    let descriptorLimit: Int?
    /// A command that `uspd serve` runs under (e.g. setpriv with a capability bounding set), or empty.
    let wrapper: [String]
    /// `--database` for every uspd command (a PostgreSQL URL for a fleet node), and the
    /// environment uspd gets (its password).
    let database: String?
    let environment: [String: String]

    /// `apps` maps file names in apps.d to their TOML text; written before the daemon starts.
    /// `runAs`: serve as that uid and gid (the test must be root; the data directory is given to them).
    /// A fleet node: `database` (with `environment`) shared with other nodes, and `sameKeyAs`'s
    /// host key (a fleet serves one key); the admin password is then the first node's.
    init(apps: [String: String] = [:], config: String = "handshake_timeout = 1\n", runAs: (uid: uid_t, gid: gid_t)? = nil,
         descriptorLimit: Int? = nil, wrapper: [String] = [], database: String? = nil, environment: [String: String] = [:],
         sameKeyAs other: DaemonFixture? = nil) throws {
        self.runAs = runAs
        self.descriptorLimit = descriptorLimit
        self.wrapper = wrapper
        self.database = database
        self.environment = environment
        dataDirectory = try Harness.temporaryDirectory("uspd")
        home = try Harness.temporaryDirectory("home")
        port = try Harness.freePort()
        let initRun = try Harness.run(try Harness.executable("uspd"), ["init", "--data-dir", dataDirectory.path] + (database.map { ["--database", $0] } ?? []),
                                      environment: environment)
        if let other {
            guard initRun.status == 0 else { throw HarnessError("uspd init failed (\(initRun.status)): \(initRun.stderr)") }
            adminPassword = other.adminPassword
            let key = other.dataDirectory.appendingPathComponent("host_key").path, mine = dataDirectory.appendingPathComponent("host_key").path
            try FileManager.default.removeItem(atPath: mine)
            try FileManager.default.copyItem(atPath: key, toPath: mine)
        } else {
            guard initRun.status == 0, let line = (initRun.stdout + initRun.stderr).split(separator: "\n").first(where: { $0.contains("password: ") }) else {
                throw HarnessError("uspd init failed (\(initRun.status)): \(initRun.stdout)\(initRun.stderr)")
            }
            adminPassword = String(line.split(separator: " ").last!)
        }
        try config.write(to: dataDirectory.appendingPathComponent("uspd.toml"), atomically: true, encoding: .utf8)
        for (name, text) in apps {
            try text.write(to: dataDirectory.appendingPathComponent("apps.d/\(name)"), atomically: true, encoding: .utf8)
        }
        if let runAs {
            let chown = try Harness.run("/bin/chown", ["-R", "\(runAs.uid):\(runAs.gid)", dataDirectory.path])
            guard chown.status == 0 else { throw HarnessError("chown failed: \(chown.stderr)") }
        }
        try start()
    }

    func start() throws {
        var executable = try Harness.executable("uspd")
        var arguments = ["serve", "--data-dir", dataDirectory.path, "--listen", "127.0.0.1:\(port)"] + (database.map { ["--database", $0] } ?? [])
        if let runAs {
            // The build directory may sit where that user cannot go (under /root): a copy in /tmp.
            executable = try Harness.copyForAnyone(executable)
            arguments = ["--reuid=\(runAs.uid)", "--regid=\(runAs.gid)", "--clear-groups", executable] + arguments
            executable = "/usr/bin/setpriv"
        }
        if let descriptorLimit {
            arguments = ["--nofile=\(descriptorLimit):\(descriptorLimit)", "--", executable] + arguments
            executable = "/usr/bin/prlimit"
        }
        if let command = wrapper.first {
            arguments = Array(wrapper.dropFirst()) + [executable] + arguments
            executable = command
        }
        let p = try RunningProcess("uspd", executable: executable, arguments: arguments, environment: environment)
        let text = try p.waitForOutput { $0.contains("usp://") && $0.contains("listening on") }
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("usp://") }) else {
            throw HarnessError("uspd printed no URI: \(text)")
        }
        uri = String(line)
        process = p
        try Harness.waitForPort(port)
    }

    /// SIGKILL, as a crash would.
    func crash() throws {
        guard let p = process else { return }
        p.signal(SIGKILL)
        try p.wait(timeout: 10)
        process = nil
    }

    /// Runs `uspd ARGS… --data-dir DATA [--database URL]` with the node's environment.
    func uspd(_ arguments: [String], stdin: String? = nil) throws -> (status: Int32, stdout: String, stderr: String) {
        try Harness.run(try Harness.executable("uspd"), arguments + ["--data-dir", dataDirectory.path] + (database.map { ["--database", $0] } ?? []),
                        environment: environment, stdin: stdin)
    }

    /// Runs `usp --home HOME ARGS…`.
    func usp(_ arguments: [String], stdin: String? = nil, timeout: Double = 60) throws -> (status: Int32, stdout: String, stderr: String) {
        try Harness.run(try Harness.executable("usp"), ["--home", home.path] + arguments, stdin: stdin, timeout: timeout)
    }

    /// Logs in as admin.
    /// A running `usp forward` (`--udp` with `udp`) to `application` on a free local port, once
    /// it says it is forwarding.
    func forward(_ application: String, udp: Bool = false, extra: [String] = []) throws -> (process: RunningProcess, port: Int) {
        let port = try Harness.freePort()
        let p = try RunningProcess("usp forward", executable: try Harness.executable("usp"),
                                   arguments: ["--home", home.path, "forward"] + (udp ? ["--udp"] : []) + ["--listen", "127.0.0.1:\(port)", uri, application] + extra)
        _ = try p.waitForOutput { $0.contains("forwarding") }
        return (p, port)
    }

    func loginAdmin() throws {
        let r = try usp(["login", uri, "--user", "admin"], stdin: adminPassword + "\n")
        guard r.status == 0 else { throw HarnessError("usp login failed: \(r.stderr)") }
    }

    /// `uspd audit --json` as parsed objects. A running daemon writes events that grant nothing
    /// (connection and stream closes) within 100 ms (AuditLog group commit): wait that out first.
    func audit() throws -> [[String: Any]] {
        if process != nil { Thread.sleep(forTimeInterval: 0.4) }
        let r = try uspd(["audit", "--json"])
        guard r.status == 0 else { throw HarnessError("uspd audit failed: \(r.stderr)") }
        return r.stdout.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }

    deinit {
        process?.stop()
    }
}

/// An apps.d file for a `tcp` application.
func tcpApp(_ name: String, port: Int, visibility: String) -> String {
    """
    name = "\(name)"
    description = "\(name) on 127.0.0.1:\(port)"
    visibility = "\(visibility)"

    [launch]
    tcp = "127.0.0.1:\(port)"
    """
}

/// A TOML basic string.
func tomlString(_ s: String) -> String {
    "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
}

/// An apps.d file for an `exec` application; `stream` is "stdio" (the default) or "fd3".
func execApp(_ name: String, command: [String], visibility: String, stream: String? = nil) -> String {
    """
    name = "\(name)"
    description = "\(name)"
    visibility = "\(visibility)"

    [launch]
    exec = [\(command.map(tomlString).joined(separator: ", "))]
    \(stream.map { "stream = " + tomlString($0) } ?? "")
    """
}

/// An apps.d file for a `unix` application (a running application that takes hand-offs).
/// `relayFree`: `relay_free = true` (the application must take relay-free hand-offs: USPApp).
func unixApp(_ name: String, socket: String, visibility: String, body: [String: String] = [:], relayFree: Bool = false) -> String {
    """
    name = "\(name)"
    description = "\(name) on \(socket)"
    visibility = "\(visibility)"

    [expected_request_body]
    \(body.map { $0.key + " = " + tomlString($0.value) }.sorted().joined(separator: "\n"))

    [launch]
    unix = \(tomlString(socket))
    \(relayFree ? "relay_free = true" : "")
    """
}
