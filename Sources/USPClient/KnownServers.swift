import USPCore

/// The client's record of server keys, in the shape of OpenSSH's known_hosts:
///
///     # comment
///     example.org:7300 x25519 <base64url key> optional comment
///     [::1]:7300,192.0.2.7:7300 x25519 <key>
///     @revoked * x25519 <key> a key that must never be trusted again
///
/// A host pattern is `host:port` (IPv6 in brackets), may use `*` and `?` wildcards, and may be a
/// comma-separated list. Lines with another key type are kept but ignored.
public struct KnownServers: Sendable {
    /// How to treat a server that is not in the file, like ssh's `StrictHostKeyChecking`.
    public enum Mode: String, Sendable, CaseIterable {
        /// Refuse servers that are not listed (ssh's `yes`).
        case strict
        /// Trust on first use: record a new server's key, refuse a changed one (the default).
        case acceptNew = "accept-new"
        /// Record new keys and accept changed ones (ssh's `no`); only for throwaway test setups.
        case no

        /// Parses `strict`/`yes`, `accept-new`, `no`/`off`.
        public init?(text: String) {
            switch text.lowercased() {
            case "strict", "yes": self = .strict
            case "accept-new", "tofu": self = .acceptNew
            case "no", "off": self = .no
            default: return nil
            }
        }
    }

    public struct Entry: Hashable, Sendable {
        public var patterns: [String]
        public var key: [UInt8]
        public var comment: String?
        public var revoked: Bool
        /// 1-based line number in the file, 0 if not from a file.
        public var line: Int
    }

    /// What the file says about one server and one key.
    public enum Verdict: Hashable, Sendable {
        /// The key is listed for this server.
        case trusted
        /// The server is not listed at all.
        case unknown
        /// The server is listed with other keys (and not with this one).
        case changed(known: [[UInt8]])
        /// The key is marked @revoked for this server.
        case revoked
    }

    public let path: String
    public private(set) var entries: [Entry] = []

    public init(path: String, entries: [Entry] = []) {
        self.path = path
        self.entries = entries
    }

    public init(parsing text: String, path: String) throws(USPClientError) {
        self.path = path
        for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            do throws(USPClientError) {
                if var entry = try Self.parseLine(line) {
                    entry.line = n + 1
                    entries.append(entry)
                }
            } catch {
                throw USPClientError(.localFile, "\(path):\(n + 1): \(error.message); fix or remove that line")
            }
        }
    }

    /// One line, or nil for a blank line, a comment, or a key type this client does not use.
    static func parseLine(_ line: Substring) throws(USPClientError) -> Entry? {
        var fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard let first = fields.first, !first.hasPrefix("#") else { return nil }
        var revoked = false
        if first.hasPrefix("@") {
            guard first == "@revoked" else { throw USPClientError(.localFile, "unknown marker \(first) (only @revoked is known)") }
            revoked = true
            fields.removeFirst()
        }
        guard fields.count >= 3 else { throw USPClientError(.localFile, "expected host:port x25519 KEY [comment]") }
        guard fields[1] == "x25519" else { return nil }
        guard let key = Base64URL.decode(fields[2]), key.count == 32 else {
            throw USPClientError(.localFile, "the key is not base64url of 32 bytes")
        }
        let patterns = fields[0].lowercased().split(separator: ",").map(String.init)
        let comment = fields.count > 3 ? fields[3...].joined(separator: " ") : nil
        return Entry(patterns: patterns, key: key, comment: comment, revoked: revoked, line: 0)
    }

    /// The line to append for a server.
    public static func line(hostPort: String, key: [UInt8], comment: String? = nil) -> String {
        "\(hostPort.lowercased()) x25519 \(Base64URL.encode(key))" + (comment.map { " " + $0 } ?? "")
    }

    /// Entries whose patterns match `hostPort`.
    public func entries(for hostPort: String) -> [Entry] {
        let target = hostPort.lowercased()
        return entries.filter { e in e.patterns.contains { Self.glob($0, target) } }
    }

    /// The keys to trust for `hostPort`, revoked ones excluded.
    public func keys(for hostPort: String) -> [[UInt8]] {
        let matching = entries(for: hostPort)
        let revoked = Set(matching.filter(\.revoked).map(\.key))
        return matching.filter { !$0.revoked && !revoked.contains($0.key) }.map(\.key)
    }

    public func isRevoked(_ key: [UInt8], for hostPort: String) -> Bool {
        entries(for: hostPort).contains { $0.revoked && $0.key == key }
    }

    public func verdict(for hostPort: String, key: [UInt8]) -> Verdict {
        if isRevoked(key, for: hostPort) { return .revoked }
        let known = keys(for: hostPort)
        if known.contains(key) { return .trusted }
        return known.isEmpty ? .unknown : .changed(known: known)
    }

    /// `*` matches any run of characters, `?` one character.
    static func glob(_ pattern: String, _ text: String) -> Bool {
        let p = Array(pattern), t = Array(text)
        var pi = 0, ti = 0, star = -1, mark = 0
        while ti < t.count {
            if pi < p.count, p[pi] == "?" || p[pi] == t[ti] {
                pi += 1; ti += 1
            } else if pi < p.count, p[pi] == "*" {
                star = pi; mark = ti; pi += 1
            } else if star >= 0 {
                pi = star + 1; mark += 1; ti = mark
            } else {
                return false
            }
        }
        while pi < p.count, p[pi] == "*" { pi += 1 }
        return pi == p.count
    }
}
