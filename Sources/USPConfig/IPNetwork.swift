#if canImport(Glibc)
import Glibc
#endif

/// An IP address in the form uspd compares addresses in: the bytes of an IPv4 address (4) or an
/// IPv6 address (16), with IPv4-mapped IPv6 addresses (`::ffff:192.0.2.7`) taken as the IPv4
/// address they carry, as uspd reports a client's address.
public struct IPAddress: Hashable, Sendable, CustomStringConvertible {
    public let bytes: [UInt8]

    /// Parses dotted-decimal IPv4 or RFC 4291 IPv6 text (no zone, no brackets); nil otherwise.
    public init?(_ text: String) {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            bytes = withUnsafeBytes(of: &v4) { Array($0) }
            return
        }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, text, &v6) == 1 else { return nil }
        let b = withUnsafeBytes(of: &v6) { Array($0) }
        if b[0..<10].allSatisfy({ $0 == 0 }), b[10] == 0xff, b[11] == 0xff {
            bytes = Array(b[12...])
        } else {
            bytes = b
        }
    }

    init(bytes: [UInt8]) { self.bytes = bytes }

    public var isIPv4: Bool { bytes.count == 4 }

    /// Why no single client can have this address (nil: it can): the unspecified address, a
    /// broadcast or multicast address, or an IPv6 link-local one (which names an interface
    /// zone that a bare address cannot carry).
    public var notBrokerable: String? {
        if bytes.allSatisfy({ $0 == 0 }) { return "the unspecified address" }
        if isIPv4 {
            if bytes == [255, 255, 255, 255] { return "the broadcast address" }
            if bytes[0] >= 224 && bytes[0] <= 239 { return "a multicast address" }
            return nil
        }
        if bytes[0] == 0xff { return "a multicast address" }
        if bytes[0] == 0xfe && bytes[1] & 0xc0 == 0x80 { return "an IPv6 link-local address" }
        return nil
    }

    /// The canonical text: dotted decimal, or RFC 5952 (lower case, longest zero run compressed).
    public var description: String {
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let family = isIPv4 ? AF_INET : AF_INET6
        _ = bytes.withUnsafeBytes { inet_ntop(family, $0.baseAddress, &text, socklen_t(text.count)) }
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// A network in CIDR notation (`10.1.0.0/16`, `2001:db8::/48`; a bare address is one host).
public struct IPNetwork: Hashable, Sendable, CustomStringConvertible {
    public let address: IPAddress
    public let prefixLength: Int

    /// Parses `ADDRESS/BITS` or `ADDRESS`; the reason when it does not parse. Host bits must be
    /// zero (`10.1.2.3/16` is refused: it is ambiguous whether a host or a network was meant).
    public static func parse(_ text: String) -> Result<IPNetwork, ParseProblem> {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = IPAddress(String(parts[0])) else {
            return .failure(ParseProblem("\"\(text)\" is not an IPv4 or IPv6 network (expected ADDRESS/BITS, e.g. 10.1.0.0/16)"))
        }
        let width = address.bytes.count * 8
        // An IPv4-mapped IPv6 network (`::ffff:10.0.0.0/104`) is the IPv4 network it maps.
        let mapped = address.isIPv4 && parts[0].contains(":")
        var bits = width
        if parts.count == 2 {
            let written = mapped ? 96...128 : 0...width
            guard !parts[1].isEmpty, parts[1].count <= 3, parts[1].allSatisfy({ $0 >= "0" && $0 <= "9" }), let n = Int(parts[1]),
                  written.contains(n) else {
                return .failure(ParseProblem("\"\(text)\": the prefix length must be \(written.lowerBound)…\(written.upperBound)"))
            }
            bits = mapped ? n - 96 : n
        }
        let network = IPNetwork(address: address, prefixLength: bits)
        guard network.masked(address) == address else {
            return .failure(ParseProblem("\"\(text)\" has host bits set; the network is \(IPNetwork(address: network.masked(address), prefixLength: bits))"))
        }
        return .success(network)
    }

    public struct ParseProblem: Error, Hashable, Sendable {
        public let message: String
        init(_ message: String) { self.message = message }
    }

    init(address: IPAddress, prefixLength: Int) {
        self.address = address
        self.prefixLength = prefixLength
    }

    /// Whether `candidate` is in this network (an IPv4 address is never in an IPv6 network, and
    /// the reverse).
    public func contains(_ candidate: IPAddress) -> Bool {
        candidate.bytes.count == address.bytes.count && masked(candidate) == address
    }

    private func masked(_ a: IPAddress) -> IPAddress {
        var out = a.bytes
        for i in out.indices {
            let keep = max(0, min(8, prefixLength - i * 8))
            out[i] &= keep == 8 ? 0xff : UInt8(truncatingIfNeeded: 0xff << (8 - keep))
        }
        return IPAddress(bytes: out)
    }

    public var description: String { "\(address)/\(prefixLength)" }
}
