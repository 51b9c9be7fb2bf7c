import Foundation
import Testing

/// Traffic shaping seen from the path, with real processes: `usp connect` to uspd through a
/// proxy that records, in each direction, when bytes passed and how many. Under
/// `shape = "interactive"` keystrokes and a bulk transfer give the same picture: 546-byte
/// records (512 of plaintext) at 50 a second each way; without shaping they do not.
@Suite(.serialized) struct ShapingTests {
    static let recordOnWire = 512 + 34
    static let apps = [
        "term.toml": "shape = \"interactive\"\n" + execApp("term", command: ["/bin/cat"], visibility: "public"),
        "plain.toml": execApp("plain", command: ["/bin/cat"], visibility: "public"),
    ]

    /// One connection as the proxy saw it: (seconds, bytes) per read, each way.
    struct Capture {
        var up: [(Double, Int)]
        var down: [(Double, Int)]

        /// The reads between `from` and `to` seconds after the connection's first byte.
        func window(_ from: Double, _ to: Double) -> (up: [(Double, Int)], down: [(Double, Int)]) {
            let start = min(up.first?.0 ?? 0, down.first?.0 ?? 0)
            let inside = { (r: (Double, Int)) in r.0 >= start + from && r.0 <= start + to }
            return (up.filter(inside), down.filter(inside))
        }
    }

    /// Runs `sessions` through a capturing proxy and returns what it saw, one capture each.
    static func capture(_ daemon: DaemonFixture, _ sessions: [(String) throws -> Void]) throws -> [Capture] {
        let python = try HandoffPeers.requirePython()
        let out = try Harness.temporaryDirectory("capture").appendingPathComponent("capture.json").path
        let port = try Harness.freePort()
        let proxy = try RunningProcess("capture proxy", executable: python,
                                       arguments: [HandoffPeers.script("capture_proxy.py"), String(port), String(daemon.port), out])
        _ = try proxy.waitForOutput { $0.contains("listening") }
        let uri = daemon.uri.replacingOccurrences(of: ":\(daemon.port)", with: ":\(port)")
        for session in sessions { try session(uri) }
        proxy.signal(SIGTERM)
        _ = try proxy.wait(timeout: 10)
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out))) as? [[String: [[Double]]]] ?? []
        return json.map { c in
            Capture(up: (c["up"] ?? []).map { ($0[0], Int($0[1])) }, down: (c["down"] ?? []).map { ($0[0], Int($0[1])) })
        }
    }

    /// Keystrokes: one byte every 100 ms for 3 s, each echoed.
    static func typing(_ daemon: DaemonFixture, _ app: String) -> (String) throws -> Void {
        { uri in
            let client = try InteractiveClient(daemon, application: app, uri: uri)
            for i in 0..<30 {
                client.send("k")
                if i == 0 { try client.waitFor("k") }
                Thread.sleep(forTimeInterval: 0.1)
            }
            try client.waitFor(String(repeating: "k", count: 30))
            #expect(try client.finish() == 0, "\(client.process.stderr)")
        }
    }

    /// Bulk: 96 KiB at once, echoed back (more than 3 s of ticks at 25.6 KB/s).
    static func bulk(_ daemon: DaemonFixture, _ app: String) -> (String) throws -> Void {
        { uri in
            let client = try InteractiveClient(daemon, application: app, uri: uri)
            let block = String(repeating: "0123456789abcdef", count: 6144)
            client.send(block)
            _ = try client.process.waitForOutput(timeout: 30) { $0.count >= block.count }
            #expect(try client.finish() == 0, "\(client.process.stderr)")
        }
    }

    static func rate(_ reads: [(Double, Int)], over seconds: Double) -> Double {
        Double(reads.map(\.1).reduce(0, +)) / Double(recordOnWire) / seconds
    }

    @Test func typingAndBulkLookTheSameOnTheWire() throws {
        let daemon = try DaemonFixture(apps: Self.apps)
        let captures = try Self.capture(daemon, [Self.typing(daemon, "term"), Self.bulk(daemon, "term"), Self.typing(daemon, "plain")])
        try #require(captures.count == 3)
        var lines: [String] = []
        var rates: [[Double]] = []
        for (name, capture) in zip(["typing, shaped", "bulk, shaped"], captures.prefix(2)) {
            // Well inside the shaped part: after the stream opened, before it ended.
            let w = capture.window(0.8, 2.8)
            for (direction, reads) in [("up", w.up), ("down", w.down)] {
                let odd = reads.filter { $0.1 % Self.recordOnWire != 0 }
                #expect(odd.isEmpty, "\(name) \(direction): reads that are not whole 546-byte records: \(odd.prefix(5))")
                #expect(reads.count > 20, "\(name) \(direction): \(reads.count) reads")
            }
            let r = [Self.rate(w.up, over: 2), Self.rate(w.down, over: 2)]
            rates.append(r)
            lines.append(String(format: "%@: %.1f records/s up, %.1f down", name, r[0], r[1]))
            for x in r { #expect(x > 30 && x < 60, "\(name): \(r) records per second, for one every 20 ms") }
        }
        for d in 0..<2 {
            #expect(abs(rates[0][d] - rates[1][d]) / rates[1][d] < 0.25, "typing \(rates[0]) against bulk \(rates[1])")
        }
        // The control: without shaping, a keystroke is a 130-byte record each way, and the line
        // is quiet between keystrokes.
        let plain = captures[2].window(0.8, 2.8)
        #expect(plain.up.contains { $0.1 == 96 + 34 } && plain.down.contains { $0.1 == 96 + 34 }, "\(plain.up.prefix(5))")
        #expect(Self.rate(plain.down, over: 2) < 15)
        lines.append(String(format: "typing, not shaped: %.1f reads/s up, sizes %@", Double(plain.up.count) / 2,
                            Set(plain.up.map(\.1)).sorted().description))
        print("what the path sees:\n" + lines.joined(separator: "\n"))
    }
}
