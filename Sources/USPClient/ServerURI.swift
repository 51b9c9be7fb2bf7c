import USPCore

/// `usp://[KEY@]host[:port]`: where a server is and, optionally, the key it must have.
///
/// - `host` is a name, an IPv4 address, or an IPv6 address in brackets (`usp://[::1]:7300`).
/// - `port` defaults to 7300.
/// - `KEY` pins the server's X25519 static key (unpadded base64url of 32 bytes), as a
///   WireGuard peer entry does: the client then speaks IK or NK from the first byte and never
///   asks known_servers.
public struct ServerURI: Hashable, Sendable, CustomStringConvertible {
    public static let scheme = "usp"
    public static let defaultPort: UInt16 = 7300

    /// The host as written, without brackets (`::1`, `example.org`, `192.0.2.7`).
    public var host: String
    public var port: UInt16
    /// The pinned server key, if the URI names one.
    public var serverKey: [UInt8]?
    /// Whether the URI named the port (else an SRV record in DNS may give it).
    public var portGiven = true
    /// Where to connect when DNS (SRV) names another host than `host`; `host` still names the
    /// server in known_servers and messages.
    public var connectHost: String?

    public init(host: String, port: UInt16 = ServerURI.defaultPort, serverKey: [UInt8]? = nil) {
        self.host = host
        self.port = port
        self.serverKey = serverKey
    }

    /// Parses a URI; every failure is one line that says what is wrong and what the form is.
    public init(parsing text: String) throws(USPClientError) {
        let form = "expected usp://[KEY@]host:port"
        func bad(_ why: String) -> USPClientError {
            USPClientError(.invalidURI, "invalid server URI \"\(text)\": \(why); \(form)")
        }
        guard let sep = text.firstRange(of: "://") else { throw bad("missing usp://") }
        guard text[..<sep.lowerBound].lowercased() == Self.scheme else {
            throw bad("unknown scheme \"\(text[..<sep.lowerBound])\"")
        }
        var rest = Substring(text[sep.upperBound...])
        if rest.hasSuffix("/") { rest = rest.dropLast() }
        guard !rest.contains("/"), !rest.contains("?"), !rest.contains("#") else { throw bad("a path, query or fragment is not allowed") }
        var key: [UInt8]?
        if let at = rest.lastIndex(of: "@") {
            let keyText = rest[..<at]
            guard let k = Base64URL.decode(keyText), k.count == 32 else {
                throw bad("the key before @ is not unpadded base64url of 32 bytes")
            }
            key = k
            rest = rest[rest.index(after: at)...]
        }
        var host: Substring
        var portText: Substring?
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { throw bad("missing ] after the IPv6 address") }
            host = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw bad("unexpected text after ]") }
                portText = after.dropFirst()
            }
            guard host.contains(":"), host.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." || $0 == "%" }) else {
                throw bad("\"\(host)\" is not an IPv6 address")
            }
        } else {
            if let colon = rest.lastIndex(of: ":") {
                host = rest[..<colon]
                portText = rest[rest.index(after: colon)...]
                guard !host.contains(":") else { throw bad("an IPv6 address must be in brackets, as in usp://[::1]:7300") }
            } else {
                host = rest
            }
            guard host.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "-" || $0 == "_") }) else {
                throw bad("\"\(host)\" is not a host name or address")
            }
        }
        guard !host.isEmpty else { throw bad("missing host") }
        var port = Self.defaultPort
        if let portText {
            guard let p = UInt16(portText), p > 0 else { throw bad("port \"\(portText)\" is not a number from 1 to 65535") }
            port = p
        }
        self.init(host: String(host).lowercased(), port: port, serverKey: key)
        portGiven = portText != nil
    }

    /// Two URIs are the same server if host, port and key are (how the port was found is not part of it).
    public static func == (a: ServerURI, b: ServerURI) -> Bool {
        a.host == b.host && a.port == b.port && a.serverKey == b.serverKey
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(host)
        hasher.combine(port)
        hasher.combine(serverKey)
    }

    /// `usp://…`, or a bare `host[:port]` (as `usp connect example.org ssh` is typed).
    public init(parsingLoosely text: String) throws(USPClientError) {
        try self.init(parsing: text.contains("://") ? text : "usp://" + text)
    }

    /// Whether `host` is an IP address rather than a name (DNS has nothing to say about it).
    public var hostIsAddress: Bool { host.contains(":") || host.allSatisfy { $0.isNumber || $0 == "." } }

    /// `host:port`, with brackets around an IPv6 address: how known_servers and messages name the server.
    public var hostPort: String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// The URI without its key (what a person types to reach the same server).
    public var withoutKey: ServerURI { ServerURI(host: host, port: port) }

    public var description: String {
        "usp://" + (serverKey.map { Base64URL.encode($0) + "@" } ?? "") + hostPort
    }
}
