import USPUnix

/// Who may broker connections, for which client addresses, and how much (`[[broker]]` in
/// uspd.toml, docs/FLEET.md "Connection brokering"):
///
/// ```toml
/// [[broker]]
/// who = ["relay", "group:brokers"]        # identities, and groups as "group:NAME"
/// clients = ["10.20.0.0/16", "2001:db8:5::/48"]   # addresses it may broker for
/// tokens_per_minute = 30                  # brokered tokens per broker per minute, over the fleet
/// token_lifetime = 60                     # seconds a brokered token lasts (capped by the broker's login)
/// ```
///
/// A caller's rule is the first, in file order, that names its identity or one of its groups.
public struct BrokerRule: Hashable, Sendable {
    public var identities: [String]
    public var groups: [String]
    public var clients: [IPNetwork]
    public var tokensPerMinute: Int
    public var tokenLifetime: Int

    public static let defaultTokensPerMinute = 30
    public static let defaultTokenLifetime = 60

    public init(identities: [String] = [], groups: [String] = [], clients: [IPNetwork], tokensPerMinute: Int = defaultTokensPerMinute,
                tokenLifetime: Int = defaultTokenLifetime) {
        self.identities = identities
        self.groups = groups
        self.clients = clients
        self.tokensPerMinute = tokensPerMinute
        self.tokenLifetime = tokenLifetime
    }

    /// Whether the rule names `identity` or one of `groups`.
    public func applies(to identity: String, groups memberOf: [String]) -> Bool {
        identities.contains(identity) || memberOf.contains(where: groups.contains)
    }

    /// The `who` entries as written: identities, then `group:NAME`.
    public var who: [String] { identities + groups.map { "group:" + $0 } }

    /// Whether `address` is in one of the rule's `clients` networks.
    public func covers(_ address: IPAddress) -> Bool {
        clients.contains { $0.contains(address) }
    }

    /// The first rule of `rules` for this caller, if any.
    public static func rule(for identity: String, groups: [String], in rules: [BrokerRule]) -> BrokerRule? {
        rules.first { $0.applies(to: identity, groups: groups) }
    }
}

extension IPAddress {
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
}
