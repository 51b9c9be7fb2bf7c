import USPCore

/// The DNS records that publish a server's key and port (docs/PROTOCOL.md §15), in zone-file
/// form: an SRV record for the port and one TXT record `v=usp1 k=KEY` per key, the key in use
/// first, at `_usp._tcp.HOST`.
public enum ServerKeyRecords {
    /// Zone-file lines for `host` (a name; a trailing dot is added). `target` is the SRV target
    /// (default: `host`); `extraKeys` are published after `key` (a key being rotated in or out).
    public static func zoneLines(host: String, port: Int, key: [UInt8], extraKeys: [[UInt8]] = [], target: String? = nil,
                                 ttl: Int = 3600) -> [String] {
        let fqdn = { (name: String) in name.hasSuffix(".") ? name : name + "." }
        let owner = "_usp._tcp." + fqdn(host)
        var lines = ["\(owner) \(ttl) IN SRV 0 0 \(port) \(fqdn(target ?? host))"]
        var seen: [[UInt8]] = []
        for k in [key] + extraKeys where !seen.contains(k) {
            seen.append(k)
            lines.append("\(owner) \(ttl) IN TXT \"v=usp1 k=\(Base64URL.encode(k))\"")
        }
        return lines
    }

    /// Whether `host` can be an owner name: letters, digits, hyphens and dots, labels of 1…63.
    public static func isHostName(_ host: String) -> Bool {
        let name = host.hasSuffix(".") ? String(host.dropLast()) : host
        guard !name.isEmpty, name.utf8.count <= 253 else { return false }
        return name.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { label in
            (1...63).contains(label.utf8.count) && label.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }
                && !label.hasPrefix("-") && !label.hasSuffix("-")
        } && !name.allSatisfy { $0.isNumber || $0 == "." }
    }
}
