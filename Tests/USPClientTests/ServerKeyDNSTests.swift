import Foundation
import Testing
import USPCore
@testable import USPClient

/// Server keys from DNS: reading resolver answers, and what wins when DNS, known_servers and the
/// URI disagree (docs/PROTOCOL.md §15).
@Suite struct ServerKeyDNSTests {
    static let keyA = [UInt8](repeating: 0xA1, count: 32)
    static let keyB = [UInt8](repeating: 0xB2, count: 32)

    /// A response for `_usp._tcp.svc.test` with the given TXT strings and SRV records; names after
    /// the question are compressed pointers to it.
    static func response(ad: Bool, texts: [[String]] = [], srv: [(UInt16, UInt16, String)] = [], rcode: UInt16 = 0) -> [UInt8] {
        var b: [UInt8] = [0x12, 0x34]
        let flags: UInt16 = 0x8180 | (ad ? 0x0020 : 0) | rcode
        b += [UInt8(flags >> 8), UInt8(flags & 0xFF), 0, 1, 0, UInt8(texts.count + srv.count), 0, 0, 0, 0]
        for label in ["_usp", "_tcp", "svc", "test"] { b.append(UInt8(label.utf8.count)); b += Array(label.utf8) }
        b += [0, 0, 16, 0, 1]
        for strings in texts {
            var rdata: [UInt8] = []
            for s in strings { rdata.append(UInt8(s.utf8.count)); rdata += Array(s.utf8) }
            b += [0xC0, 12, 0, 16, 0, 1, 0, 0, 0x0E, 0x10, UInt8(rdata.count >> 8), UInt8(rdata.count & 0xFF)] + rdata
        }
        for (priority, port, target) in srv {
            var rdata: [UInt8] = [UInt8(priority >> 8), UInt8(priority & 0xFF), 0, 0, UInt8(port >> 8), UInt8(port & 0xFF)]
            for label in target.split(separator: ".") { rdata.append(UInt8(label.utf8.count)); rdata += Array(label.utf8) }
            rdata.append(0)
            b += [0xC0, 12, 0, 33, 0, 1, 0, 0, 0x0E, 0x10, UInt8(rdata.count >> 8), UInt8(rdata.count & 0xFF)] + rdata
        }
        return b
    }

    @Test func readsTXTAndSRVAndTheADBit() throws {
        let m = try DNSMessage(parsing: Self.response(ad: true, texts: [["v=usp1 k=\(Base64URL.encode(Self.keyA))"], ["unrelated", " text"]],
                                                      srv: [(10, 7300, "node.svc.test"), (0, 7301, "main.svc.test")]))
        #expect(m.authenticated)
        #expect(m.texts == ["v=usp1 k=\(Base64URL.encode(Self.keyA))", "unrelated text"])
        #expect(m.services.map(\.port) == [7300, 7301])
        #expect(m.services.map(\.target) == ["node.svc.test", "main.svc.test"])
        #expect(try DNSMessage(parsing: Self.response(ad: false)).authenticated == false)
    }

    @Test func keysAreReadFromUsp1RecordsOnly() {
        let (keys, unreadable) = ServerKeyPublication.keys(in: [
            "v=usp1 k=\(Base64URL.encode(Self.keyA))", "v=spf1 -all", "v=usp1 k=\(Base64URL.encode(Self.keyB)) note=rotating",
            "v=usp1 k=short", "v=usp1 k=\(Base64URL.encode(Self.keyA))",
        ])
        #expect(keys == [Self.keyA, Self.keyB])
        #expect(unreadable == ["v=usp1 k=short"])
    }

    @Test(arguments: [
        ([0x12], "ends early"),
        (Array(response(ad: false).prefix(20)), "runs past the end"),
        ([0, 0, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 12, 0, 16, 0, 1] as [UInt8], "does not point backwards"),
        ([0, 0, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 0x80, 0, 0, 16, 0, 1] as [UInt8], "unknown type"),
    ] as [([UInt8], String)])
    func malformedAnswersThrowAndSayWhy(bytes: [UInt8], why: String) {
        do {
            _ = try DNSMessage(parsing: bytes)
            Issue.record("parsed \(bytes)")
        } catch {
            #expect(error.detail.contains(why), "\(error.detail)")
        }
    }

    @Test func randomBytesNeverCrashTheParser() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            var bytes = Self.response(ad: true, texts: [["v=usp1 k=x"]], srv: [(0, 1, "a.b")])
            for _ in 0..<Int.random(in: 1...6, using: &rng) { bytes[Int.random(in: 0..<bytes.count, using: &rng)] = .random(in: 0...255, using: &rng) }
            _ = try? DNSMessage(parsing: Array(bytes.prefix(Int.random(in: 0...bytes.count, using: &rng))))
        }
    }

    // MARK: - Precedence

    static func decide(known: [[UInt8]] = [], dns: [[UInt8]]?, authenticated: Bool = false, requireDNSSEC: Bool = false,
                       host: String = "svc.test") throws(USPClientError) -> ([UInt8]?, Bool) {
        let server = ServerURI(host: host, port: 7300)
        let entries = known.map { KnownServers.Entry(patterns: [server.hostPort], key: $0, comment: nil, revoked: false, line: 0) }
        var options = DNSKeyOptions()
        options.requireDNSSEC = requireDNSSEC
        let published = dns.map { ServerKeyPublication(keys: $0, authenticated: authenticated) }
        return try Plan.keyFromDNSAndKnownServers(server: server, known: KnownServers(path: "/k", entries: entries),
                                                  published: published, options: options)
    }

    @Test func dnsKeyIsUsedWhenNothingIsKnown() throws {
        let (key, fromDNS) = try Self.decide(dns: [Self.keyA, Self.keyB])
        #expect(key == Self.keyA && fromDNS)
    }

    @Test func aKnownKeyAmongTheDNSKeysIsKept() throws {
        let (key, fromDNS) = try Self.decide(known: [Self.keyB], dns: [Self.keyA, Self.keyB])
        #expect(key == Self.keyB && !fromDNS)
    }

    @Test func aKnownKeyThatDNSDoesNotListIsRefusedLoudly() {
        #expect(throws: USPClientError.self) { try Self.decide(known: [Self.keyB], dns: [Self.keyA]) }
        do { _ = try Self.decide(known: [Self.keyB], dns: [Self.keyA]) } catch {
            #expect(error.code == .serverKeyChanged)
            #expect(error.message.contains("usp known-servers remove svc.test:7300") && error.message.contains("not DNSSEC-validated"), "\(error.message)")
        }
    }

    @Test func withoutDNSKeysKnownServersOrFirstContactDecide() throws {
        #expect(try Self.decide(known: [Self.keyB], dns: []) == (Self.keyB, false))
        #expect(try Self.decide(dns: nil) == (nil, false))
    }

    @Test func requireDNSSECRefusesUnvalidatedAndMissingAnswers() throws {
        do { _ = try Self.decide(dns: [Self.keyA], authenticated: false, requireDNSSEC: true); Issue.record("accepted") } catch {
            #expect(error.message.contains("not validated (no AD bit)"), "\(error.message)")
        }
        do { _ = try Self.decide(dns: [], requireDNSSEC: true); Issue.record("accepted") } catch {
            #expect(error.message.contains("_usp._tcp.svc.test has no TXT record"), "\(error.message)")
        }
        do { _ = try Self.decide(dns: nil, requireDNSSEC: true, host: "192.0.2.7"); Issue.record("accepted") } catch {
            #expect(error.message.contains("is an address"), "\(error.message)")
        }
        #expect(try Self.decide(dns: [Self.keyA], authenticated: true, requireDNSSEC: true) == (Self.keyA, true))
    }

    @Test func bareHostsParseAsURIs() throws {
        let u = try ServerURI(parsingLoosely: "usp.example.org")
        #expect(u.host == "usp.example.org" && u.port == 7300 && !u.portGiven)
        #expect(try ServerURI(parsingLoosely: "usp.example.org:7400").portGiven)
        #expect(try ServerURI(parsing: "usp://\(Base64URL.encode(Self.keyA))@h:1").serverKey == Self.keyA)
    }
}
