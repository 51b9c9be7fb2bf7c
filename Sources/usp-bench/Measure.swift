#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Monotonic nanoseconds (CLOCK_MONOTONIC; vDSO on Linux, about 20 ns per read).
@inline(__always)
func nowNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

/// CPU time of this process (user + system). A syscall (~0.4 µs here), so it is read around whole
/// sections, never per record.
func cpuNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

/// Wall and CPU time around measured sections, summed over the slices of one run. `timed` is what
/// the section itself reports as measured (it may leave set-up out); `share` = CPU / wall says how
/// much of the time this process was on a CPU (below 1: descheduled by other load).
struct Section {
    var timed: UInt64 = 0
    var wall: UInt64 = 0
    var cpu: UInt64 = 0

    var share: Double { Swift.min(1, Double(cpu) / Double(Swift.max(1, wall))) }

    /// Runs `body`, which returns the nanoseconds it measured, and adds to the totals.
    mutating func measure(_ body: () throws -> UInt64) rethrows {
        let w0 = nowNanoseconds(), c0 = cpuNanoseconds()
        let ns = try body()
        let c1 = cpuNanoseconds(), w1 = nowNanoseconds()
        timed &+= ns
        wall &+= w1 &- w0
        cpu &+= c1 &- c0
    }
}

/// Results are folded into this so the optimizer cannot drop the measured work.
nonisolated(unsafe) var sink: UInt64 = 0

@inline(never)
func consume(_ value: UInt64) { sink = sink &+ value }

func median(_ values: [Double]) -> Double {
    precondition(!values.isEmpty)
    let s = values.sorted()
    let m = s.count / 2
    return s.count % 2 == 1 ? s[m] : (s[m - 1] + s[m]) / 2
}

/// The per-run values of one figure, reduced to a median (the figure reported) and the spread.
///
/// `samples` are wall-clock (CLOCK_MONOTONIC) figures. `perCPU` rescales each by the run's CPU
/// share, i.e. per CPU-second as `openssl speed` counts by default (it divides by user CPU time);
/// the two agree when nothing else competes for the CPU.
struct Figure {
    enum Kind { case rate, duration }
    let key: String
    let label: String
    let kind: Kind
    var samples: [Double] = []
    var perCPU: [Double] = []
    var shares: [Double] = []

    init(_ key: String, _ label: String, _ kind: Kind) {
        self.key = key
        self.label = label
        self.kind = kind
    }

    mutating func add(_ value: Double, share: Double) {
        samples.append(value)
        shares.append(share)
        perCPU.append(kind == .rate ? value / share : value * share)
    }

    var median: Double { samples.isEmpty ? .nan : usp_bench.median(samples) }
    var medianPerCPU: Double { perCPU.isEmpty ? .nan : usp_bench.median(perCPU) }
    var min: Double { samples.min() ?? .nan }
    var max: Double { samples.max() ?? .nan }
}

func format(_ x: Double, _ decimals: Int) -> String {
    guard x.isFinite else { return "n/a" }
    var p = 1.0
    for _ in 0..<decimals { p *= 10 }
    let r = (abs(x) * p).rounded()
    let whole = Int(r / p)
    var s = "\(x < 0 ? "-" : "")\(whole)"
    if decimals > 0 {
        let frac = Int(r - Double(whole) * p)
        var f = "\(frac)"
        while f.count < decimals { f = "0" + f }
        s += "." + f
    }
    return s
}

func pad(_ s: String, _ width: Int, right: Bool = false) -> String {
    guard s.count < width else { return s }
    let fill = String(repeating: " ", count: width - s.count)
    return right ? fill + s : s + fill
}

/// Fills memory from the system CSPRNG (keys and payloads; never on a timed path).
func randomBytes(_ count: Int) -> [UInt8] {
    var g = SystemRandomNumberGenerator()
    return (0..<count).map { _ in UInt8.random(in: 0...255, using: &g) }
}

struct Options {
    var quick = false
    var runs = 7
    /// "records", "handshakes" or nil for both (a part alone is handy under a profiler).
    var only: String?

    /// Each run is cut into this many round-robin slices over the paths it measures.
    var slices: Int { 10 }
    /// Records per throughput run (16 KiB each).
    var recordsPerRun: Int { quick ? 4_000 : 40_000 }
    /// Records counted for mallocs per record, after warm-up.
    var allocRecords: Int { quick ? 10_000 : 100_000 }
    /// Handshake pairs per run and pattern.
    var handshakesPerRun: Int { quick ? 40 : 300 }
    /// Raw X25519 operations per run and operation.
    var rawOpsPerRun: Int { quick ? 400 : 3_000 }

    static func parse(_ args: [String]) -> Options {
        var o = Options()
        var i = 1
        while i < args.count {
            switch args[i] {
            case "--quick":
                o.quick = true
                o.runs = 3
            case "--runs":
                i += 1
                guard i < args.count, let n = Int(args[i]), n >= 1 else { usage() }
                o.runs = n
            case "--only":
                i += 1
                guard i < args.count, ["records", "handshakes"].contains(args[i]) else { usage() }
                o.only = args[i]
            case "-h", "--help":
                usage(0)
            default:
                usage()
            }
            i += 1
        }
        return o
    }

    static func usage(_ code: Int32 = 2) -> Never {
        print("""
        usage: usp-bench [--quick] [--runs N] [--only records|handshakes]
          --quick    short run (3 runs, fewer records and handshakes)
          --runs N   number of runs per figure (default 7); medians are reported
          --only P   run one part (for profiling); the other part's figures print as n/a
        Run with LD_PRELOAD=.build/release/libMallocInterposerSwift.so to count mallocs
        (scripts/bench-core.sh does this and compares with openssl speed).
        """)
        exit(code)
    }
}
