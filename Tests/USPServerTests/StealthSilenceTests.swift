import Dispatch
import Foundation
import Synchronization
import Testing
import USPConfig
import USPCore
import USPNIO
import USPTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// What a prober sees of a stealth server (docs/PROTOCOL.md §3.3): whatever it sends, however
/// much, and whether or not a limit turns it away, it gets no byte and then a FIN at a time drawn
/// when its connection was accepted. Compared as distributions (two-sample Kolmogorov–Smirnov),
/// with a short hold so the suite stays fast.
@Suite(.serialized) struct StealthSilenceTests {
    /// How one probe ended.
    struct Observation: Sendable {
        let opener: String
        let overLimit: Bool
        /// Seconds from connect() to the end of the stream.
        let closedAfter: Double
        let bytesReceived: Int
        /// "fin", "rst" or "timeout".
        let ending: String
    }

    static let hold = SilentHoldTime(minimum: 0.3, maximum: 0.9, distribution: .uniform)

    /// What probers open with: nothing, one byte, an HTTP request, an SSH banner, a TLS ClientHello,
    /// random bytes around USP's message 1 length, and 64 KiB.
    static let openers: [(name: String, bytes: [UInt8])] = {
        let random = SeededRandom(seed: 41)
        let http = Array("GET / HTTP/1.1\r\nHost: example.org\r\nUser-Agent: probe\r\nAccept: */*\r\nConnection: close\r\n\r\n".utf8)
        // A TLS 1.2 record header and ClientHello header, then random body: 1152 bytes in all.
        var hello: [UInt8] = [0x16, 0x03, 0x01, 0x04, 0x7b, 0x01, 0x00, 0x04, 0x77, 0x03, 0x03]
        hello += random.bytes(1152 - hello.count)
        return [
            ("empty", []),
            ("1 byte", [0x16]),
            ("HTTP (100)", Array((http + [UInt8](repeating: UInt8(ascii: " "), count: 100)).prefix(100))),
            ("SSH banner", Array("SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n".utf8)),
            ("random 1023", random.bytes(1023)),
            ("random 1024", random.bytes(1024)),
            ("random 1025", random.bytes(1025)),
            ("TLS ClientHello 1152", hello),
            ("random 65536", random.bytes(65536)),
        ]
    }()

    /// Connects from `source`, sends `opener`, then reads until the server ends the stream.
    static func probe(port: Int, source: String, opener: (name: String, bytes: [UInt8]), overLimit: Bool) -> Observation {
        func failed(_ why: String) -> Observation {
            Observation(opener: opener.name, overLimit: overLimit, closedAfter: -1, bytesReceived: 0, ending: why)
        }
        guard let socket = try? RawSocket(host: "127.0.0.1", port: port, source: source) else { return failed("connect failed") }
        let start = ServerClock.monotonic()
        if !opener.bytes.isEmpty, (try? socket.send(opener.bytes)) == nil { return failed("send failed") }
        var received = 0
        var buffer = [UInt8](repeating: 0, count: 65536)
        while ServerClock.monotonic() - start < 10 {
            var p = pollfd(fd: socket.fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 100) > 0 else { continue }
            let n = recv(socket.fd, &buffer, buffer.count, 0)
            let now = ServerClock.monotonic()
            if n > 0 { received += n; continue }
            let ending = n == 0 ? "fin" : (errno == ECONNRESET ? "rst" : "error \(errno)")
            return Observation(opener: opener.name, overLimit: overLimit, closedAfter: now - start, bytesReceived: received, ending: ending)
        }
        return Observation(opener: opener.name, overLimit: overLimit, closedAfter: -1, bytesReceived: received, ending: "timeout")
    }

    @Test func everyStrangerGetsNoByteAndAFINAtAnInputIndependentTime() async throws {
        // A rate of 1 per 100 s with a burst of 1: a source's first connection is under the limit,
        // every later one over it. "Under" probes each come from an address of their own.
        let daemon = try TestDaemon(handshakeTimeout: 0.5, allowFirstContact: false, silentHold: Self.hold,
                                    handshakeRate: 0.01, handshakeBurst: 1)
        try await withDaemon(daemon) { d in
            let perGroup = 24
            var plan: [(source: String, opener: (name: String, bytes: [UInt8]), overLimit: Bool)] = []
            for (k, opener) in Self.openers.enumerated() {
                for i in 0..<perGroup {
                    plan.append(("127.20.\(k).\(i + 1)", opener, false))
                    // Over the limit: one source per opener, whose first (burning the burst) is not counted.
                    plan.append(("127.21.\(k).1", opener, true))
                }
            }
            // The over-limit sources spend their burst first.
            let burners = try Self.openers.indices.map { try RawSocket(host: "127.0.0.1", port: d.port4, source: "127.21.\($0).1") }
            try await Task.sleep(for: .milliseconds(100))
            _ = burners
            let steps = plan
            let port = d.port4
            // 48 probes at a time, each on a thread of its own (they block in poll).
            let all: [Observation] = await withCheckedContinuation { done in
                let state = Mutex<(results: [Observation], running: Int)>(([], 48))
                for worker in 0..<48 {
                    Thread {
                        var i = worker
                        var mine: [Observation] = []
                        while i < steps.count {
                            let step = steps[i]
                            mine.append(Self.probe(port: port, source: step.source, opener: step.opener, overLimit: step.overLimit))
                            i += 48
                        }
                        let finished = state.withLock { s -> [Observation]? in
                            s.results += mine
                            s.running -= 1
                            return s.running == 0 ? s.results : nil
                        }
                        if let finished { done.resume(returning: finished) }
                    }.start()
                }
            }
            #expect(all.count == plan.count)
            for o in all {
                #expect(o.bytesReceived == 0, "\(o.opener) (\(o.overLimit ? "over" : "under") the limit): the server sent \(o.bytesReceived) bytes")
                #expect(o.ending == "fin", "\(o.opener) (\(o.overLimit ? "over" : "under") the limit) ended with \(o.ending)")
            }
            let finished = all.filter { $0.ending == "fin" }
            // Every close falls in the hold's range (plus scheduling slack): none at once, none late.
            for o in finished {
                #expect(o.closedAfter >= Self.hold.minimum - 0.01 && o.closedAfter <= Self.hold.maximum + 0.35,
                        "\(o.opener) (\(o.overLimit ? "over" : "under")): closed after \(String(format: "%.3f", o.closedAfter)) s")
            }
            // The reference: probes that sent nothing and were under the limit. Every other group's
            // close times must look drawn from the same distribution. Each comparison is held to
            // p > 1e-5, so that 17 comparisons of truly equal distributions fail together less than
            // once in 5,000 runs, while a group closed at a different time (D near 1 with 24 samples)
            // has p < 1e-9.
            let reference = finished.filter { $0.opener == "empty" && !$0.overLimit }.map(\.closedAfter)
            #expect(reference.count == perGroup)
            var lines: [String] = []
            for opener in Self.openers {
                for over in [false, true] where !(opener.name == "empty" && !over) {
                    let sample = finished.filter { $0.opener == opener.name && $0.overLimit == over }.map(\.closedAfter)
                    guard !sample.isEmpty, !reference.isEmpty else { continue }
                    let ks = KolmogorovSmirnov.test(reference, sample)
                    let median = sample.sorted()[sample.count / 2]
                    lines.append(String(format: "%-22@ %-5@ n=%2d median %.3f s  D=%.3f p=%.3g", opener.name, over ? "over" : "under",
                                        sample.count, median, ks.statistic, ks.pValue))
                    #expect(ks.pValue > 1e-5, "\(opener.name) \(over ? "over" : "under") the limit: D=\(ks.statistic), p=\(ks.pValue)")
                }
            }
            print("stealth close times against 'empty, under the limit' (two-sample KS):\n" + lines.joined(separator: "\n"))
            #expect(d.daemon.runtime.silentHolds?.count ?? -1 >= 0)
        }
    }

    @Test func aClientThatKnowsTheKeyIsAnsweredAtOnceBesideTheHeldStrangers() async throws {
        let daemon = try TestDaemon(allowFirstContact: false, silentHold: SilentHoldTime(minimum: 20, maximum: 30, distribution: .uniform))
        try await withDaemon(daemon) { d in
            let strangers = try (1...8).map { try RawSocket(host: "127.0.0.1", port: d.port4, source: "127.22.0.\($0)") }
            for s in strangers { try s.send(SeededRandom(seed: 3).bytes(1024)) }
            try await Task.sleep(for: .milliseconds(200))
            #expect(d.daemon.runtime.silentHolds?.count == 8, "the refused strangers are held, not closed")
            #expect(d.daemon.runtime.admission.starting == 0, "held strangers take no unauthenticated slot")
            let client = try d.menuClient()
            _ = client
            for s in strangers { #expect(s.read(timeout: 0.05) == nil, "a held stranger is neither answered nor closed") }
        }
    }

    @Test func theHoldPoolGivesWayFromTheNetworkHoldingTheMost() async throws {
        let daemon = try TestDaemon(allowFirstContact: false, silentHold: SilentHoldTime(minimum: 30, maximum: 40, distribution: .uniform),
                                    maxSilentHolds: 6)
        try await withDaemon(daemon) { d in
            // A scan from 127.23.0.0/24 fills the pool; a prober from 127.24.0.0/24 comes in.
            let scan = try (1...6).map { try RawSocket(host: "127.0.0.1", port: d.port4, source: "127.23.0.\($0)") }
            for s in scan { try s.send([0x47]); try s.shutdownWrite() }
            try await Task.sleep(for: .milliseconds(1200))
            #expect(d.daemon.runtime.silentHolds?.count == 6)
            let prober = try RawSocket(host: "127.0.0.1", port: d.port4, source: "127.24.0.1")
            try prober.send([0x47])
            try await Task.sleep(for: .milliseconds(1200))
            // One of the scan's holds (its oldest: the two event loops install them in no fixed
            // order) ended early, with a FIN and no byte; the others and the prober's go on.
            let ends = scan.map { $0.readToEnd(timeout: 0.3) }
            #expect(ends.filter(\.closed).count == 1, "\(ends.map(\.closed))")
            #expect(ends.allSatisfy { $0.bytes.isEmpty })
            #expect(prober.read(timeout: 0.05) == nil)
            #expect(d.daemon.runtime.silentHolds?.released == 1)
        }
    }
}
