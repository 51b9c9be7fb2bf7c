import Foundation

/// OpenSSH's sshd on 127.0.0.1 with a generated host key and one user key, key authentication only.
final class SSHDPeer {
    let directory: URL
    let port: Int
    let process: RunningProcess
    let userKey: URL
    let user: String

    static var sshdPath: String? { Harness.tool("sshd", candidates: ["/usr/sbin/sshd", "/usr/bin/sshd"]) }

    init() throws {
        guard let sshd = Self.sshdPath else { throw HarnessError("sshd is not installed (apt-get install openssh-server)") }
        directory = try Harness.temporaryDirectory("sshd")
        port = try Harness.freePort()
        user = NSUserName()
        let hostKey = directory.appendingPathComponent("host_ed25519")
        userKey = directory.appendingPathComponent("id_ed25519")
        for key in [hostKey, userKey] {
            let r = try Harness.run("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", key.path])
            guard r.status == 0 else { throw HarnessError("ssh-keygen failed: \(r.stderr)") }
        }
        let authorized = directory.appendingPathComponent("authorized_keys")
        try FileManager.default.copyItem(at: userKey.appendingPathExtension("pub"), to: authorized)
        try FileManager.default.createDirectory(atPath: "/run/sshd", withIntermediateDirectories: true)
        let config = """
        Port \(port)
        ListenAddress 127.0.0.1
        HostKey \(hostKey.path)
        PidFile \(directory.appendingPathComponent("sshd.pid").path)
        AuthorizedKeysFile \(authorized.path)
        PubkeyAuthentication yes
        PasswordAuthentication no
        KbdInteractiveAuthentication no
        PermitRootLogin yes
        UsePAM no
        StrictModes no
        UseDNS no
        PrintMotd no
        LogLevel ERROR
        """
        let configFile = directory.appendingPathComponent("sshd_config")
        try config.write(to: configFile, atomically: true, encoding: .utf8)
        process = try RunningProcess("sshd", executable: sshd, arguments: ["-D", "-e", "-f", configFile.path])
        try Harness.waitForPort(port)
    }

    /// ssh arguments that log in with the generated key through `proxyCommand`.
    func sshArguments(proxyCommand: String, command: String) -> [String] {
        ["-F", "/dev/null", "-i", userKey.path, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
         "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
         "-o", "ProxyCommand=\(proxyCommand)", "\(user)@usp-ssh", command]
    }

    deinit { process.stop() }
}

/// Python's http.server serving one generated file on 127.0.0.1.
final class HTTPPeer {
    let directory: URL
    let port: Int
    let process: RunningProcess
    let body: String

    init() throws {
        directory = try Harness.temporaryDirectory("http")
        port = try Harness.freePort()
        body = "hello through USP \(UUID().uuidString)\n"
        try body.write(to: directory.appendingPathComponent("index.html"), atomically: true, encoding: .utf8)
        let python = Harness.tool("python3", candidates: ["/usr/bin/python3", "/usr/local/bin/python3"]) ?? "/usr/bin/python3"
        process = try RunningProcess("http.server", executable: python,
                                     arguments: ["-m", "http.server", String(port), "--bind", "127.0.0.1", "--directory", directory.path])
        try Harness.waitForPort(port)
    }

    deinit { process.stop() }
}
