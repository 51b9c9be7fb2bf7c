#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `host:port` as written in `listen` and `launch.tcp`: `127.0.0.1:7300`, `[::1]:7300`,
/// `localhost:22`. An IPv6 address must be in brackets; a host name is letters, digits, `-` and
/// `.` (RFC 1123 labels of at most 63 characters).
public struct HostPort: Hashable, Sendable, CustomStringConvertible {
    /// Without brackets: `::1`, `127.0.0.1`, `localhost`.
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public enum Kind: Hashable, Sendable { case ipv4, ipv6, name }

    public var kind: Kind {
        if Self.isIPv4(host) { return .ipv4 }
        if Self.isIPv6(host) { return .ipv6 }
        return .name
    }

    /// `[::1]:7300` for IPv6, `host:port` otherwise.
    public var description: String { kind == .ipv6 ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// Parses `text`; `ports` is the accepted range (listen addresses allow 0, "any free port").
    /// Returns the problem as a sentence when it is not acceptable.
    public static func parse(_ text: String, ports: ClosedRange<Int> = 1...65535) -> Result<HostPort, Problem> {
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return .failure(Problem("\"\(text)\": missing \"]\" after the IPv6 address")) }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { return .failure(Problem("\"\(text)\": expected \":port\" after \"]\"")) }
            portText = rest.dropFirst()
            guard isIPv6(String(host)) else { return .failure(Problem("\"\(text)\": \"\(host)\" is not an IPv6 address")) }
        } else {
            guard let colon = text.lastIndex(of: ":") else {
                return .failure(Problem("\"\(text)\": expected host:port, for example 127.0.0.1:7300 or [::1]:7300"))
            }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            if host.contains(":") {
                return .failure(Problem("\"\(text)\": an IPv6 address must be in brackets, as [\(host)]:\(portText)"))
            }
            guard !host.isEmpty else { return .failure(Problem("\"\(text)\": the host is empty")) }
            guard isIPv4(String(host)) || isHostName(host) else {
                return .failure(Problem("\"\(text)\": \"\(host)\" is neither an IPv4 address nor a host name"))
            }
        }
        guard !portText.isEmpty, portText.count <= 5, portText.allSatisfy({ $0.isASCII && $0.isNumber }), let port = Int(portText) else {
            return .failure(Problem("\"\(text)\": the port \"\(portText)\" is not a number"))
        }
        guard ports.contains(port) else {
            return .failure(Problem("\"\(text)\": the port must be \(ports.lowerBound)…\(ports.upperBound), got \(port)"))
        }
        return .success(HostPort(host: String(host), port: port))
    }

    public struct Problem: Error, Hashable, Sendable, CustomStringConvertible {
        public var description: String
        init(_ description: String) { self.description = description }
    }

    static func isIPv4(_ s: String) -> Bool {
        var addr = in_addr()
        return inet_pton(AF_INET, s, &addr) == 1
    }

    static func isIPv6(_ s: String) -> Bool {
        var addr = in6_addr()
        return inet_pton(AF_INET6, s, &addr) == 1
    }

    static func isHostName(_ s: Substring) -> Bool {
        guard s.utf8.count <= 253 else { return false }
        let labels = s.split(separator: ".", omittingEmptySubsequences: false)
        // All-numeric dotted names that are not valid IPv4 (999.1.1.1) are typos, not names.
        if labels.allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isNumber) }) { return false }
        return labels.allSatisfy { label in
            !label.isEmpty && label.utf8.count <= 63 && label.first != "-" && label.last != "-"
                && label.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "-" }
        }
    }
}
