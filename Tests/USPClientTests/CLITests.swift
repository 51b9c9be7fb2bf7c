import Foundation
import Glibc
import Testing
import USPCore
import USPTestSupport
@testable import USPClient

/// The `usp` executable: next to the test bundle, else `.build/debug/usp` from the package root
/// (built first if it is missing).
enum USPBinary {
    static let path: String = {
        let fm = FileManager.default
        let bundleDir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
        if fm.isExecutableFile(atPath: bundleDir + "/usp") { return bundleDir + "/usp" }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        let candidate = root + "/.build/debug/usp"
        if !fm.isExecutableFile(atPath: candidate) {
            let build = Process()
            build.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            build.arguments = ["swift", "build", "--product", "usp"]
            build.currentDirectoryURL = URL(fileURLWithPath: root)
            try? build.run()
            build.waitUntilExit()
        }
        return candidate
    }()
}

final class DataBox: @unchecked Sendable {
    var data = Data()
}

struct RunResult {
    let status: Int32
    let stdout: String
    let stderr: String
}

/// Runs `usp` with `arguments`, feeding `stdin` (then end of input), off the cooperative pool.
func usp(_ arguments: [String], stdin: String? = nil, environment: [String: String] = [:]) async throws -> RunResult {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async {
            do {
                let p = Process()
                p.executableURL = URL(fileURLWithPath: USPBinary.path)
                p.arguments = arguments
                var env = ProcessInfo.processInfo.environment
                env["USP_HOME"] = nil
                for (k, v) in environment { env[k] = v }
                p.environment = env
                let inPipe = Pipe(), outPipe = Pipe(), errPipe = Pipe()
                p.standardInput = inPipe
                p.standardOutput = outPipe
                p.standardError = errPipe
                // Small input is in the pipe before the process starts, so a test of what travels in
                // message 1 does not depend on which of the two gets the CPU first.
                let small = stdin.map { $0.utf8.count < 60_000 } ?? true
                if small, let stdin { inPipe.fileHandleForWriting.write(Data(stdin.utf8)) }
                try p.run()
                if !small, let stdin { inPipe.fileHandleForWriting.write(Data(stdin.utf8)) }
                try inPipe.fileHandleForWriting.close()
                let group = DispatchGroup()
                let err = DataBox()
                group.enter()
                DispatchQueue.global().async {
                    err.data = errPipe.fileHandleForReading.readDataToEndOfFile()
                    group.leave()
                }
                let out = outPipe.fileHandleForReading.readDataToEndOfFile()
                group.wait()
                p.waitUntilExit()
                continuation.resume(returning: RunResult(status: p.terminationStatus, stdout: String(decoding: out, as: UTF8.self),
                                                         stderr: String(decoding: err.data, as: UTF8.self)))
            } catch {
                continuation.resume(throwing: error)
            }
        }
    }
}

@Suite(.serialized) struct CLITests {
    @Test func keysAreWireGuardStyleFilters() async throws {
        let t = TempHome()
        let gen = try await usp(["genkey"])
        #expect(gen.status == 0)
        let priv = try KeyText.privateKey(gen.stdout, source: "genkey")
        let pub = try await usp(["pubkey"], stdin: gen.stdout)
        #expect(pub.status == 0)
        #expect(pub.stdout == Base64URL.encode(priv.publicKey) + "\n")

        let keygen = try await usp(["--home", t.path, "keygen"])
        #expect(keygen.status == 0)
        let key = try #require(try t.home.loadIdentity())
        #expect(keygen.stdout == Base64URL.encode(key.publicKey) + "\n", "the key alone on stdout")
        #expect(keygen.stderr.contains("fingerprint \(Fingerprint.of(key.publicKey))"))
        let again = try await usp(["keygen", "--home", t.path])
        #expect(again.status == 1)
        #expect(again.stderr.hasPrefix("usp: \(t.home.identityPath) already exists"))
        #expect(try t.home.loadIdentity()?.publicKey == key.publicKey)

        let bad = try await usp(["pubkey"], stdin: "not a key\n")
        #expect(bad.status == 1)
        #expect(bad.stderr.hasPrefix("usp: standard input does not hold an X25519 private key"))
    }

    @Test func usageErrorsExit64() async throws {
        #expect(try await usp(["menu"]).status == 64)
        #expect(try await usp(["nonsense"]).status == 64)
        let uri = try await usp(["menu", "http://example.org"])
        #expect(uri.status == 64)
        #expect(uri.stderr == "usp: invalid server URI \"http://example.org\": unknown scheme \"http\"; expected usp://[KEY@]host:port\n")
        #expect(try await usp(["login", "usp://h:1"]).status == 64)
        #expect(try await usp(["menu", "usp://h:1", "--server-key-checking", "sometimes"]).status == 64)
        let nothing = try await usp([])
        #expect(nothing.status == 64 && nothing.stderr.contains("USAGE: usp"), "\(nothing.stderr)")
    }

    @Test func knownServersListAsJSON() async throws {
        let t = TempHome()
        let key = [UInt8](repeating: 7, count: 32)
        try t.home.addKnownServer("example.org:7300", key: key, comment: "work")
        let r = try await usp(["known-servers", "list", "--json", "--home", t.path])
        #expect(r.status == 0, "\(r.stderr)")
        let o = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        #expect(o["servers"] as? [String] == ["example.org:7300"])
        #expect(o["key"] as? String == Base64URL.encode(key))
        #expect(o["fingerprint"] as? String == Fingerprint.of(key))
        #expect(o["revoked"] as? Bool == false && o["comment"] as? String == "work")
    }

    @Test func menuLoginConnectLogout() async throws {
        let t = TempHome()
        try await withServer { server in
            let uri = server.uri
            _ = try await usp(["keygen", "--home", t.path])

            // First contact: TOFU, announced on stderr; a readable table on stdout.
            let menu = try await usp(["menu", uri, "--home", t.path])
            #expect(menu.status == 0, "\(menu.stderr)")
            #expect(menu.stderr == "usp: added 127.0.0.1:\(server.port) (\(Fingerprint.of(server.publicKey))) to \(t.home.knownServersPath)\n")
            #expect(menu.stdout.contains("login:  not logged in; methods: password, noise_static"))
            let rows = menu.stdout.split(separator: "\n").filter { $0.hasPrefix("1 ") || $0.hasPrefix("4 ") }
            #expect(rows.count == 2)
            #expect(rows.first?.contains("echo") == true)
            #expect(menu.stdout.contains("start:integer,verbose:boolean?"))
            #expect(!menu.stdout.contains("ssh"))

            // Second time: IK, nothing added; JSON for scripts.
            let json = try await usp(["menu", uri, "--json", "--home", t.path])
            #expect(json.status == 0)
            #expect(json.stderr.isEmpty)
            let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
            #expect(object["pattern"] as? String == "ik")
            #expect(object["logged_in"] as? Bool == false)
            #expect(object["fingerprint"] as? String == Fingerprint.of(server.publicKey))
            let wire = try #require((object["menu"] as? [String: Any])?["application_menu"] as? [String: Any])
            #expect((wire["1"] as? [String: Any])?["name"] as? String == "echo")

            // Wrong password: one line, exit 1, nothing saved.
            let pwFile = t.path + "/pw"
            t.write("pw", "wrong\n", mode: 0o600)
            let bad = try await usp(["login", uri, "--user", "alice", "--password-file", pwFile, "--home", t.path])
            #expect(bad.status == 1)
            #expect(bad.stderr == "usp: wrong user or password for alice on 127.0.0.1:\(server.port); check both and run usp login again\n")
            #expect(!FileIO.exists(t.home.tokenPath(for: try ServerURI(parsing: uri))))

            // The password from stdin (not a terminal).
            let good = try await usp(["login", uri, "--user", "alice", "--home", t.path], stdin: "correct horse\n")
            #expect(good.status == 0, "\(good.stderr)")
            #expect(good.stdout.hasPrefix("logged in to 127.0.0.1:\(server.port) as alice"))
            let saved = try #require(try t.home.loadLogin(for: try ServerURI(parsing: uri)))
            #expect(saved.user == "alice")

            // The saved login gives the authenticated menu.
            let menu2 = try await usp(["menu", uri, "--home", t.path])
            #expect(menu2.stdout.contains("login:  logged in as alice"))
            #expect(menu2.stdout.contains("ssh"))
            // --anonymous shows neither the identity key nor the saved login.
            let anonymous = try await usp(["menu", uri, "--anonymous", "--home", t.path])
            #expect(anonymous.stdout.contains("login:  not logged in") && anonymous.stdout.contains("(NK)"), "\(anonymous.stdout)")

            // connect: stdin to the app, the app's bytes to stdout, exit 0 at the server's FIN.
            let text = "hello through usp connect\n"
            let echo = try await usp(["connect", uri, "echo", "--home", t.path], stdin: text)
            #expect(echo.status == 0, "\(echo.stderr)")
            #expect(echo.stdout == text)
            #expect(echo.stderr.isEmpty)
            // The first bytes travelled in message 1, with the application token (IK).
            let early = await server.onLoop { (server.handshakes.last.map { "\($0.pattern) \($0.early)" }, server.bytesInMessage1.last) }
            #expect(early.0 == "ik true")
            #expect(early.1 == Array(text.utf8))

            // A secure app with a typed field, through the saved login.
            let ssh = try await usp(["connect", uri, "ssh", "--field", "user=alice", "--home", t.path], stdin: "x")
            #expect(ssh.status == 0, "\(ssh.stderr)")
            #expect(ssh.stdout == "x")

            // Unknown application: one line naming what exists.
            let unknown = try await usp(["connect", uri, "ftp", "--home", t.path], stdin: "")
            #expect(unknown.status == 1)
            #expect(unknown.stderr.hasPrefix("usp: no application named \"ftp\" on 127.0.0.1:\(server.port) (available: echo, time, ssh, counter)"))
            #expect(unknown.stderr.filter { $0 == "\n" }.count == 1)

            // Logout invalidates on the server and forgets the token.
            let out = try await usp(["logout", uri, "--home", t.path])
            #expect(out.status == 0, "\(out.stderr)")
            #expect(!FileIO.exists(t.home.tokenPath(for: try ServerURI(parsing: uri))))
            let revoked = await server.onLoop { server.policy.tokens.values.filter { $0.application == nil && $0.revoked }.count }
            #expect(revoked == 1)
            let again = try await usp(["logout", uri, "--home", t.path])
            #expect(again.status == 1)
            #expect(again.stderr.hasPrefix("usp: not logged in to 127.0.0.1:\(server.port)"))
        }
    }

    @Test func changedKeyAndKnownServersCommands() async throws {
        let t = TempHome()
        try await withServer { server in
            let hostPort = "127.0.0.1:\(server.port)"
            let old = KeyText.generate().publicKey
            try t.home.addKnownServer(hostPort, key: old, comment: "old")
            let r = try await usp(["menu", server.uri, "--home", t.path])
            #expect(r.status == 1)
            #expect(r.stderr == "usp: server key for \(hostPort) changed: known \(Fingerprint.of(old)) now \(Fingerprint.of(server.publicKey)); if this is expected, remove the line from \(t.home.knownServersPath) (usp known-servers remove \(hostPort))\n")
            #expect(r.stdout.isEmpty)

            let list = try await usp(["known-servers", "list", "--home", t.path])
            #expect(list.stdout == "\(hostPort) \(Fingerprint.of(old)) \(Base64URL.encode(old)) old\n")
            let rm = try await usp(["known-servers", "remove", hostPort, "--home", t.path])
            #expect(rm.status == 0)
            let rm2 = try await usp(["known-servers", "remove", hostPort, "--home", t.path])
            #expect(rm2.status == 1)
            let ok = try await usp(["menu", server.uri, "--home", t.path])
            #expect(ok.status == 0)
            #expect(try t.home.loadKnownServers().keys(for: hostPort) == [server.publicKey])
        }
    }

    @Test func forwardCopiesBothWaysWithHalfClose() async throws {
        let t = TempHome()
        try await withServer { server in
            let p = Process()
            p.executableURL = URL(fileURLWithPath: USPBinary.path)
            p.arguments = ["forward", "--listen", "127.0.0.1:0", server.uri, "echo", "--home", t.path]
            let errPipe = Pipe()
            p.standardError = errPipe
            p.standardInput = FileHandle.nullDevice
            try p.run()
            defer { p.terminate(); p.waitUntilExit() }
            // "usp: forwarding 127.0.0.1:PORT to echo on …"
            let line = try await readLine(errPipe.fileHandleForReading, containing: "forwarding")
            let port = try #require(line.split(separator: " ").dropFirst(2).first.flatMap { $0.split(separator: ":").last }.flatMap { Int($0) })

            // Two local connections in turn: two streams on the forward's one session.
            for n in 0..<2 {
                let payload = Array("forwarded bytes \(n) ".utf8) + [UInt8](repeating: UInt8(n), count: 100_000)
                let echoed = try await tcpExchange(port: port, payload)
                #expect(echoed == payload)
            }
            #expect(await server.onLoop { server.handshakes.count } == 1, "one session for both")
        }
    }
}

/// Reads lines from `handle` until one contains `text` (5 s at most).
func readLine(_ handle: FileHandle, containing text: String) async throws -> String {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async {
            var buffer = Data()
            let deadline = Date().addingTimeInterval(10)
            while Date() < deadline {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                buffer += chunk
                for line in String(decoding: buffer, as: UTF8.self).split(separator: "\n") where line.contains(text) {
                    continuation.resume(returning: String(line))
                    return
                }
            }
            continuation.resume(throwing: USPClientError(.connectionLost, "no line with \(text): \(String(decoding: buffer, as: UTF8.self))"))
        }
    }
}

/// Connects to 127.0.0.1:port, sends `payload`, half-closes, and reads until the peer closes.
func tcpExchange(port: Int, _ payload: [UInt8]) async throws -> [UInt8] {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(fd) }
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = UInt16(port).bigEndian
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            let ok = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard ok == 0 else {
                continuation.resume(throwing: USPClientError(.unreachable, "connect to forwarder failed"))
                return
            }
            var tv = timeval(tv_sec: 10, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            // Write and read at once, so a large payload cannot deadlock on full buffers.
            let writer = Thread {
                var offset = 0
                while offset < payload.count {
                    let n = payload.withUnsafeBytes { send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
                    if n <= 0 { break }
                    offset += n
                }
                shutdown(fd, Int32(SHUT_WR))
            }
            writer.start()
            var received: [UInt8] = []
            var buf = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if n <= 0 { break }
                received += buf[0..<n]
            }
            continuation.resume(returning: received)
        }
    }
}
