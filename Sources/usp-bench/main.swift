// usp-bench: performance figures for USPCore's record layer and handshakes.
// See docs/BENCHMARKS.md; scripts/bench-core.sh runs it next to `openssl speed`.

import USPCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Progress goes to stderr, so stdout holds only the report.
func note(_ s: String) {
    var line = s + "\n"
    line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}

let options = Options.parse(CommandLine.arguments)
let counting = AllocCounter.isActive

do {
    print("usp-bench: \(options.runs) runs per figure, medians reported\(options.quick ? " (quick)" : "")")
    print("malloc counting: " + (counting ? "active (a probe malloc was counted)"
                                          : "NOT ACTIVE — run with LD_PRELOAD=.build/release/libMallocInterposerSwift.so"))
    SelfCheck.run()
    var records = RecordResults()
    var handshakes = HandshakeResults()
    if options.only != "handshakes" { records = try runRecords(options, counting: counting) }
    if options.only != "records" { handshakes = try runHandshakes(options, counting: counting) }
    report(records, handshakes, options)
    note("sink \(sink)")
} catch {
    print("usp-bench failed: \(error)")
    exit(1)
}
