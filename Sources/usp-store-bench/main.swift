// usp-store-bench: token issue and validation per second on each store backend, side by side
// (scripts/bench-fleet.sh runs it; docs/BENCHMARKS.md has the figures).
//
//   usp-store-bench [--sqlite FILE] [--postgres URL] [--tokens N] [--threads T] [--rounds R]
//
// The PostgreSQL password comes from $USPD_DATABASE_PASSWORD or $PGPASSWORD. The database must
// be empty (a fresh one per run): the bench writes tokens and audit rows into it.
import Foundation
import USPStore
import USPStorePostgres

struct Arguments {
    var sqlite: String?
    var postgres: String?
    var tokens = 2000
    var threads = 4
    var rounds = 3

    init(_ argv: [String]) throws {
        var i = 1
        func value() throws -> String {
            i += 1
            guard i < argv.count else { throw BenchFailure("\(argv[i - 1]) needs a value") }
            return argv[i]
        }
        while i < argv.count {
            switch argv[i] {
            case "--sqlite": sqlite = try value()
            case "--postgres": postgres = try value()
            case "--tokens": tokens = try positive(try value(), "--tokens")
            case "--threads": threads = try positive(try value(), "--threads")
            case "--rounds": rounds = try positive(try value(), "--rounds")
            default: throw BenchFailure("unknown argument \(argv[i]); usage: usp-store-bench [--sqlite FILE] [--postgres URL] [--tokens N] [--threads T] [--rounds R]")
            }
            i += 1
        }
        guard sqlite != nil || postgres != nil else { throw BenchFailure("give --sqlite FILE, --postgres URL or both") }
    }

    func positive(_ text: String, _ name: String) throws -> Int {
        guard let n = Int(text), n > 0 else { throw BenchFailure("\(name) must be a positive integer, got \(text)") }
        return n
    }
}

struct BenchFailure: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

do {
    let args = try Arguments(CommandLine.arguments)
    var backends: [(String, any USPStore)] = []
    if let path = args.sqlite { backends.append(("SQLite", try SQLiteStore(path: path, node: "bench"))) }
    if let url = args.postgres { backends.append(("PostgreSQL", try PostgresStore(location: try PostgresLocation.parse(url, passwordFile: nil), node: "bench", connections: args.threads + 1))) }
    print("usp-store-bench: \(args.tokens) tokens per round, \(args.rounds) rounds, 1 and \(args.threads) threads; medians per second")
    var table = [["backend", "issue, 1 thread", "issue, \(args.threads) threads", "validate, 1 thread", "validate, \(args.threads) threads"]]
    for (name, store) in backends {
        let bench = TokenBench(store: store, tokens: args.tokens)
        var cells = [name]
        for (what, threads) in [("issue", 1), ("issue", args.threads), ("validate", 1), ("validate", args.threads)] {
            var rates: [Double] = []
            for _ in 0..<args.rounds {
                rates.append(try what == "issue" ? bench.issue(threads: threads) : bench.validate(threads: threads))
            }
            cells.append(String(format: "%.0f", rates.sorted()[rates.count / 2]))
        }
        table.append(cells)
        if let pg = store as? PostgresStore { pg.close() }
    }
    let widths = (0..<table[0].count).map { c in table.map { $0[c].count }.max() ?? 0 }
    for row in table {
        print(zip(row, widths).map { $0.0.padding(toLength: $0.1, withPad: " ", startingAt: 0) }.joined(separator: "  "))
    }
} catch {
    FileHandle.standardError.write(Data("usp-store-bench: \(error)\n".utf8))
    exit(1)
}
