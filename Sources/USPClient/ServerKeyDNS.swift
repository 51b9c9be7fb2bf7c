import CUSPResolv
import Glibc
import NIOPosix
import USPCore

/// Server keys published in DNS (docs/PROTOCOL.md §15): at `_usp._tcp.HOST`, an SRV record gives
/// the port (and the host to connect to), and one TXT record per key `v=usp1 k=KEY` (KEY in
/// unpadded base64url, as in a URI) gives the server's static key; several while a key is
/// being replaced, the one in use first.
public struct ServerKeyPublication: Sendable, Equatable {
    /// Keys in the order the TXT records came (the resolver's order: not meaningful).
    public var keys: [[UInt8]] = []
    /// From SRV: where to connect (lowest priority first), if published.
    public var port: UInt16?
    public var target: String?
    /// The resolver set the AD bit on every answer used: DNSSEC validated them.
    public var authenticated = false
    /// TXT records at the name that say `v=usp1` but cannot be read (for the message).
    public var unreadable: [String] = []

    /// The name queried for `host`.
    public static func name(for host: String) -> String { "_usp._tcp." + host }

    /// Reads `v=usp1 k=KEY` records among `texts`.
    static func keys(in texts: [String]) -> (keys: [[UInt8]], unreadable: [String]) {
        var keys: [[UInt8]] = [], unreadable: [String] = []
        for text in texts {
            let fields = text.split(separator: " ")
            guard fields.first == "v=usp1" else { continue }
            let k = fields.dropFirst().first { $0.hasPrefix("k=") }.map { $0.dropFirst(2) }
            if let k, let key = Base64URL.decode(k), key.count == 32 {
                if !keys.contains(key) { keys.append(key) }
            } else {
                unreadable.append(text)
            }
        }
        return (keys, unreadable)
    }
}

/// How `usp` uses DNS for server keys.
public struct DNSKeyOptions: Sendable {
    /// Look keys up when the URI names none (`--no-dns`: false).
    public var enabled = true
    /// Accept only answers the resolver validated with DNSSEC (`--dns-require-dnssec`).
    public var requireDNSSEC = false
    /// Ask this resolver (`--dns-server IPv4:PORT`) instead of the system's.
    public var server: (host: String, port: Int)?

    public init() {}

    /// `IPv4[:PORT]` (port 53 when absent), as `--dns-server` and the config's `DNSServer` take
    /// it; nil if it is not that.
    public static func server(parsing text: String) -> (host: String, port: Int)? {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        var address = in_addr()
        guard parts.count <= 2, inet_pton(AF_INET, String(parts[0]), &address) == 1,
              let port = parts.count == 2 ? Int(parts[1]) : 53, (1...65535).contains(port) else { return nil }
        return (String(parts[0]), port)
    }
}

enum ServerKeyLookup {
    /// One query through the stub resolver (blocking; call off the event loop). nil: no such
    /// record (NXDOMAIN or no data).
    static func query(_ name: String, type: UInt16, options: DNSKeyOptions) throws(USPClientError) -> DNSMessage? {
        var answer = [UInt8](repeating: 0, count: 65535)
        var error: Int32 = 0
        let n = answer.withUnsafeMutableBufferPointer { buffer in
            usp_dns_query(name, Int32(type), options.server?.host, Int32(options.server?.port ?? 53), buffer.baseAddress, Int32(buffer.count), &error)
        }
        let via = options.server.map { " (asking \($0.host):\($0.port))" } ?? ""
        guard n >= 0 else {
            switch error {
            case 1, 4: return nil
            case -2: throw USPClientError(.invalidArgument, "--dns-server \(options.server?.host ?? ""): expected an IPv4 address")
            case -1: throw USPClientError(.unreachable, "cannot use the system resolver (/etc/resolv.conf) to look up \(name)")
            default:
                throw USPClientError(.unreachable, """
                    DNS lookup of \(name) (\(type == DNSMessage.typeTXT ? "TXT" : "SRV")) failed\(via): the resolver answered SERVFAIL or not at \
                    all (a DNSSEC-validating resolver answers SERVFAIL when the records do not validate)
                    """)
            }
        }
        do {
            return try DNSMessage(parsing: Array(answer[0..<Int(n)]))
        } catch {
            throw USPClientError(.unreachable, "DNS answer for \(name)\(via) is malformed: \(error.detail)")
        }
    }

    /// The keys (and SRV) published for `host`; an empty publication when there is none.
    static func lookup(host: String, options: DNSKeyOptions) throws(USPClientError) -> ServerKeyPublication {
        let name = ServerKeyPublication.name(for: host)
        var publication = ServerKeyPublication()
        var answers: [DNSMessage] = []
        if let txt = try query(name, type: DNSMessage.typeTXT, options: options) {
            answers.append(txt)
            (publication.keys, publication.unreadable) = ServerKeyPublication.keys(in: txt.texts)
        }
        if let srv = try query(name, type: DNSMessage.typeSRV, options: options),
           let best = srv.services.filter({ $0.port > 0 && !$0.target.isEmpty }).min(by: { $0.priority < $1.priority }) {
            answers.append(srv)
            publication.port = best.port
            publication.target = best.target
        }
        publication.authenticated = !answers.isEmpty && answers.allSatisfy(\.authenticated)
        return publication
    }

    /// `lookup` on NIO's blocking pool.
    static func lookup(host: String, options: DNSKeyOptions) async throws -> ServerKeyPublication {
        try await NIOThreadPool.singleton.runIfActive { () throws -> ServerKeyPublication in try lookup(host: host, options: options) }
    }
}
