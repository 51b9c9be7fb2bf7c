import Foundation
import Testing
@testable import USPCore
import USPTestSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Handshakes between USPCore and an independent Noise implementation: PyPI `noiseprotocol` 0.3.1,
/// driven by Tests/USPCoreTests/Interop/noise_peer.py over a line protocol on stdin/stdout.
@Suite("Noise interop with noiseprotocol (Python)")
struct NoiseInteropTests {
    static let script = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()
        .appendingPathComponent("Interop/noise_peer.py")

    /// Whether `python3 noise_peer.py --check` succeeds (python3 on PATH and `noise` importable).
    static let peerAvailable: Bool = {
        guard FileManager.default.isReadableFile(atPath: script.path) else { return false }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", script.path, "--check"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        do { try p.run() } catch { return false }
        p.waitUntilExit()
        return p.terminationStatus == 0
    }()

    static func requirePeer() throws {
        if !peerAvailable {
            try SharedData.unavailable(
                "python3 with the noiseprotocol module is not available to run \(script.path) "
                    + "(pip install noiseprotocol==0.3.1)")
        }
    }

    static let random = SystemRandomSource()

    struct PeerError: Error, CustomStringConvertible {
        let description: String
    }

    /// One running noise_peer.py process.
    final class Peer {
        let process = Process()
        let input = Pipe(), output = Pipe(), errors = Pipe()
        private var buffer: [UInt8] = []
        private var stderrText = ""

        init(arguments: [String], timeout: Double = 30) throws {
            signal(SIGPIPE, SIG_IGN)  // a dead peer must surface as an error, not kill the test runner
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["python3", NoiseInteropTests.script.path] + arguments
            process.standardInput = input
            process.standardOutput = output
            process.standardError = errors
            try process.run()
            let pid = process.processIdentifier
            // Never hang the suite: kill this peer (by its own pid) if it is still running after `timeout`.
            DispatchQueue.global().asyncAfter(deadline: .now() + timeout) {
                if kill(pid, 0) == 0 { kill(pid, SIGKILL) }
            }
        }

        func send(_ line: String) throws {
            try input.fileHandleForWriting.write(contentsOf: Data((line + "\n").utf8))
        }

        func send(hex bytes: [UInt8]) throws { try send(SharedData.hex(bytes)) }

        func readLine() -> String? {
            while true {
                if let nl = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = String(decoding: buffer[..<nl], as: UTF8.self)
                    buffer.removeSubrange(...nl)
                    return line
                }
                let chunk = output.fileHandleForReading.availableData
                if chunk.isEmpty { return nil }
                buffer += chunk
            }
        }

        /// Reads the next line, which must be `<tag> <hex>` (or just `<tag>`), and returns the bytes.
        @discardableResult
        func expect(_ tag: String) throws -> [UInt8] {
            guard let line = readLine() else {
                throw PeerError(description: "peer closed stdout while we expected \"\(tag)\"; stderr: \(drainStderr())")
            }
            let parts = line.split(separator: " ", maxSplits: 1).map(String.init)
            guard parts.first == tag else {
                throw PeerError(description: "expected \"\(tag)\" from the peer, got \"\(line)\"")
            }
            return parts.count > 1 ? SharedData.bytes(hex: parts[1]) : []
        }

        /// Reads the next line and returns it whole (for lines like `error ...`).
        func nextLine() -> String? { readLine() }

        func drainStderr() -> String {
            try? input.fileHandleForWriting.close()
            process.waitUntilExit()
            let data = errors.fileHandleForReading.readDataToEndOfFile()
            return String(decoding: data, as: UTF8.self)
        }

        /// Sends `quit`, closes stdin and returns the exit status.
        func finish() -> Int32 {
            try? send("quit")
            try? input.fileHandleForWriting.close()
            process.waitUntilExit()
            return process.terminationStatus
        }

        deinit {
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
    }

    static let patterns = ["XX", "IK", "NK"]

    static func protocolName(_ pattern: String) -> String { "Noise_\(pattern)_25519_ChaChaPoly_SHA256" }

    /// After a finished handshake: two transport messages each way, a rekey of both directions, one more each way.
    static func exchangeTransport(_ peer: Peer, _ transport: inout HandshakeState.Transport) throws {
        for round in 0..<3 {
            if round == 2 {
                try peer.send("rekey")
                try peer.expect("rekeyed")
                try transport.send.rekey()
                try transport.receive.rekey()
            }
            let text = Array("hello from swift, round \(round)".utf8) + random.bytes(round * 50)
            try peer.send(hex: transport.send.encryptWithAd([UInt8](), text))
            let reply = try peer.expect("transport")
            let plaintext = try transport.receive.decryptWithAd([UInt8](), reply)
            #expect(plaintext == Array("python got: ".utf8) + text, "round \(round)")
        }
        #expect(transport.send.nonce == 3 && transport.receive.nonce == 3)
    }

    /// Drives `state` against `peer` until the handshake finishes; checks every payload both ways.
    static func runHandshake(_ peer: Peer, _ state: inout HandshakeState) throws -> HandshakeState.Transport {
        try peer.expect("ready")
        var transport: HandshakeState.Transport?
        var index = 0
        while !state.isFinished {
            if state.isMyTurn {
                let payload = Array("swift handshake \(index)".utf8)
                let written = try state.writeMessage(payload: payload)
                try peer.send(hex: written.message)
                #expect(try peer.expect("payload") == payload, "message \(index)")
                transport = written.transport
            } else {
                let message = try peer.expect("msg")
                let read = try state.readMessage(message)
                #expect(read.payload == Array("python handshake \(index)".utf8), "message \(index)")
                transport = read.transport
            }
            index += 1
        }
        var t = try #require(transport)
        #expect(try peer.expect("hash") == t.handshakeHash)
        #expect(t.handshakeHash == state.handshakeHash)
        try exchangeTransport(peer, &t)
        return t
    }

    @Test("Swift initiator against a Python responder", arguments: patterns)
    func swiftInitiator(pattern: String) throws {
        try Self.requirePeer()
        let si = KeyPair.generate(using: Self.random)
        let py = KeyPair.generate(using: Self.random)
        let prologue = Self.random.bytes(20)
        let peer = try Peer(arguments: ["--protocol", Self.protocolName(pattern), "--role", "responder",
                                        "--static", SharedData.hex(py.privateKey), "--prologue", SharedData.hex(prologue)])
        var state = try HandshakeState(
            protocol: NoiseProtocol(name: Self.protocolName(pattern)), role: .initiator, prologue: prologue,
            localStatic: pattern == "NK" ? nil : si, remoteStatic: pattern == "XX" ? nil : py.publicKey)
        let transport = try Self.runHandshake(peer, &state)
        #expect(transport.remoteStatic == py.publicKey)
        #expect(peer.finish() == 0)
    }

    @Test("Swift responder against a Python initiator", arguments: patterns)
    func swiftResponder(pattern: String) throws {
        try Self.requirePeer()
        let sr = KeyPair.generate(using: Self.random)
        let py = KeyPair.generate(using: Self.random)
        let prologue = Self.random.bytes(7)
        var args = ["--protocol", Self.protocolName(pattern), "--role", "initiator", "--prologue", SharedData.hex(prologue)]
        if pattern != "NK" { args += ["--static", SharedData.hex(py.privateKey)] }
        if pattern != "XX" { args += ["--remote-static", SharedData.hex(sr.publicKey)] }
        let peer = try Peer(arguments: args)
        var state = try HandshakeState(protocol: NoiseProtocol(name: Self.protocolName(pattern)), role: .responder,
                                       prologue: prologue, localStatic: sr)
        let transport = try Self.runHandshake(peer, &state)
        #expect(transport.remoteStatic == (pattern == "NK" ? nil : py.publicKey))
        #expect(peer.finish() == 0)
    }

    @Test("the Python peer rejects a handshake whose prologue differs (the interop check has teeth)")
    func prologueMismatch() throws {
        try Self.requirePeer()
        let py = KeyPair.generate(using: Self.random)
        let peer = try Peer(arguments: ["--protocol", Self.protocolName("NK"), "--role", "responder",
                                        "--static", SharedData.hex(py.privateKey), "--prologue", "01"])
        var state = try HandshakeState(protocol: NoiseProtocol(name: Self.protocolName("NK")), role: .initiator,
                                       prologue: [0x02], remoteStatic: py.publicKey)
        try peer.expect("ready")
        try peer.send(hex: state.writeMessage(payload: [1, 2, 3]).message)
        let line = try #require(peer.nextLine())
        #expect(line.hasPrefix("error "), "peer answered \(line)")
        #expect(peer.finish() == 1)
    }
}
