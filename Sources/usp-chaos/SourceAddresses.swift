/// Attacker source addresses on loopback: `count` addresses spread evenly over `networks` /24s,
/// network n being 127.(base + n / 250).(n % 250).0/24 and its hosts .1, .2, …
///
/// `base` ≥ 1 keeps every attacker out of 127.0.0.0/24, where the legitimate clients are
/// (127.0.0.1). Linux answers for all of 127.0.0.0/8 on `lo`, so any of these can be bound.
struct SourceAddresses: Sendable {
    let addresses: [String]
    let networks: Int

    init(count: Int, networks: Int, base: Int = 1) {
        precondition(count >= 1 && networks >= 1 && base >= 1)
        let nets = min(networks, count)
        self.networks = nets
        var out: [String] = []
        out.reserveCapacity(count)
        for i in 0..<count {
            let n = i % nets
            let host = 1 + i / nets
            precondition(host <= 254, "more than 254 addresses in one /24")
            out.append("127.\(base + n / 250).\(n % 250).\(host)")
        }
        addresses = out
    }

    var count: Int { addresses.count }
    subscript(i: Int) -> String { addresses[i % addresses.count] }
    var summary: String { "\(count) src/\(networks) nets" }
}
