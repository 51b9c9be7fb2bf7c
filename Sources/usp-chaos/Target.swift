import ArgumentParser
import Glibc
import NIOCore
import NIOPosix
import USPClient

/// The options every scenario takes: which uspd to attack and observe, the legitimate client's
/// home, and the size of the run (`--short` for CI; the full sizes otherwise).
struct TargetOptions: ParsableArguments {
    @Option(help: "The uspd to attack: usp://KEY@127.0.0.1:PORT (the key pinned).")
    var server: String

    @Option(name: .customLong("uspd-pid"), help: "uspd's process ID, for its CPU time and liveness.")
    var uspdPID: Int32?

    @Option(help: "uspd's SQLite database (its -wal beside it is counted too).")
    var database: String?

    @Option(name: .customLong("legit-home"), help: "The legitimate client's home: identity key registered with uspd.")
    var legitHome: String?

    @Option(name: .customLong("attacker-home"), help: "An empty client home for attackers that use USPClient.")
    var attackerHome: String = "/tmp/usp-chaos-attacker"

    @Flag(help: "Short mode: smaller, quicker runs (CI).")
    var short = false

    @Option(help: "Seconds of measurement (default: the scenario's for the mode).")
    var duration: Double?

    @Option(help: "Seconds of attack before measuring.")
    var warmup: Double?

    @Option(name: .customLong("legit-rate"), help: "Legitimate attempts per second.")
    var legitRate: Double?

    @Option(name: .customLong("legit-timeout"), help: "Seconds after which a legitimate attempt counts as failed.")
    var legitTimeout: Double = 5
}

/// What a scenario runs with, made from `TargetOptions`: the server's address and key, the
/// probes of uspd and of this process, and the event loops (one thread for the attackers, one for
/// the legitimate client, so neither waits for the other's work).
struct Chaos: Sendable {
    let options: TargetOptions
    let server: ServerURI
    let address: SocketAddress
    let serverKey: [UInt8]
    let uspd: ServerProbe
    let me: ServerProbe
    let attackGroup: MultiThreadedEventLoopGroup
    let legitGroup: MultiThreadedEventLoopGroup

    init(_ options: TargetOptions) throws {
        self.options = options
        server = try ServerURI(parsing: options.server)
        guard let key = server.serverKey else { throw ValidationError("--server must pin the server key: usp://KEY@host:port") }
        serverKey = key
        address = try SocketAddress(ipAddress: server.host, port: Int(server.port))
        uspd = ServerProbe(pid: options.uspdPID, database: options.database)
        me = ServerProbe(pid: getpid(), database: nil)
        attackGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        legitGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        FileLimit.raise(to: 1 << 20)
    }

    var short: Bool { options.short }

    /// The scenario's figure for this mode unless the command line names one.
    func pick(_ given: Double?, short s: Double, long l: Double) -> Double { given ?? (short ? s : l) }

    /// The legitimate client: `echo` from its home (IK with its key), or a password login.
    func legitClient(_ work: LegitClient.Work) throws -> LegitClient {
        let home: ClientHome
        switch work {
        case .echo:
            guard let path = options.legitHome else { throw ValidationError("--legit-home is needed (a home whose identity uspd knows)") }
            home = ClientHome(directory: path)
        case .passwordLogin:
            home = attackerHome  // no identity: NK
        }
        return LegitClient(server: server, home: home, work: work, timeout: options.legitTimeout, group: legitGroup)
    }

    /// Legitimate echo sessions at the scenario's steady rate (8 a second unless `--legit-rate`).
    func echoLoad() throws -> LegitLoad {
        LegitLoad(client: try legitClient(.echo), rate: options.legitRate ?? 8)
    }

    var attackerHome: ClientHome { ClientHome(directory: options.attackerHome) }
}
