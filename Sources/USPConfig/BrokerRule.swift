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

    /// The first rule of `rules` for this caller, if any.
    public static func rule(for identity: String, groups: [String], in rules: [BrokerRule]) -> BrokerRule? {
        rules.first { $0.applies(to: identity, groups: groups) }
    }
}
