import USPUnix

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
        let network = IPNetwork(masking: address, prefixLength: bits)
        guard network.address == address else {
            return .failure(ParseProblem("\"\(text)\" has host bits set; the network is \(network)"))
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

    /// The network of `prefixLength` leading bits (kept within 0…the address's width) that holds
    /// `address`: its host bits cleared.
    public init(masking address: IPAddress, prefixLength: Int) {
        let bits = max(0, min(prefixLength, address.bytes.count * 8))
        self.init(address: Self.masked(address, bits: bits), prefixLength: bits)
    }

    /// Whether `candidate` is in this network (an IPv4 address is never in an IPv6 network, and
    /// the reverse).
    public func contains(_ candidate: IPAddress) -> Bool {
        candidate.bytes.count == address.bytes.count && Self.masked(candidate, bits: prefixLength) == address
    }

    /// `a` with every bit after the first `bits` cleared.
    private static func masked(_ a: IPAddress, bits: Int) -> IPAddress {
        var out = a.bytes
        for i in out.indices {
            let keep = max(0, min(8, bits - i * 8))
            out[i] &= keep == 8 ? 0xff : UInt8(truncatingIfNeeded: 0xff << (8 - keep))
        }
        return IPAddress(bytes: out)
    }

    public var description: String { "\(address)/\(prefixLength)" }
}
