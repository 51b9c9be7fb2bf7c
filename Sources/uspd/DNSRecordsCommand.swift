import ArgumentParser
import USPConfig
import USPCore
import USPServer

/// `uspd dns-records HOSTNAME`: the records to publish so that `usp connect HOSTNAME APP` finds
/// this server's key and port in DNS.
struct DNSRecords: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dns-records",
        abstract: "Print the DNS records (SRV and TXT at _usp._tcp.HOSTNAME) that publish this server's port and key.",
        discussion: """
            Add them to the zone of HOSTNAME. Clients that connect to HOSTNAME without a key in the URI look them up; \
            sign the zone (DNSSEC) so that `usp --dns-require-dnssec` accepts them. While replacing the host key, publish \
            both keys (--also-key), the one in use first.
            """)

    @OptionGroup var home: HomeOptions
    @Argument(help: "The name clients will use, e.g. usp.example.org.") var hostname: String
    @Option(help: "The port in the SRV record (default: the first listen address's).") var port: Int?
    @Option(help: "The SRV target, if clients should connect to another name than HOSTNAME.") var target: String?
    @Option(name: .customLong("also-key"), help: ArgumentHelp("Another key to publish after this server's (repeatable).", valueName: "key"))
    var alsoKeys: [String] = []
    @Option(help: "The records' TTL in seconds.") var ttl: Int = 3600

    func validate() throws {
        guard ServerKeyRecords.isHostName(hostname) else {
            throw ValidationError("\(hostname) is not a host name (letters, digits, hyphens, dots; an address cannot carry DNS records)")
        }
        if let target, !ServerKeyRecords.isHostName(target) { throw ValidationError("--target \(target) is not a host name") }
        if let port, !(1...65535).contains(port) { throw ValidationError("--port \(port): expected 1…65535") }
        guard (0...2_147_483_647).contains(ttl) else { throw ValidationError("--ttl \(ttl): expected 0…2147483647 seconds") }
        for k in alsoKeys where Base64URL.decode(k)?.count != 32 {
            throw ValidationError("--also-key \(k) is not a server key (43 characters of base64url, as in usp://KEY@host)")
        }
    }

    func run() async throws {
        let (homeDir, config, found) = try home.load()
        let key = try ServerHome.loadHostKey(at: homeDir.hostKeyPath)
        let listenPort = try ListenAddress.parse((found ? config.listen : ["127.0.0.1:7300"]).first ?? "127.0.0.1:7300").port
        let lines = ServerKeyRecords.zoneLines(host: hostname, port: port ?? listenPort, key: key.publicKey,
                                               extraKeys: alsoKeys.compactMap { Base64URL.decode($0) }, target: target, ttl: ttl)
        print("; uspd's port and key for \(hostname): add to the zone of \(hostname)")
        for line in lines { print(line) }
    }
}
