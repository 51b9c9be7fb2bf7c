import ArgumentParser
import Foundation

/// `usp-chaos SCENARIO --server usp://KEY@127.0.0.1:PORT …`: attacks a running uspd as an
/// outsider would while a legitimate client measures whether it is still served, and prints one
/// line: the figures, the target, PASS or FAIL (exit status 1 on FAIL). scripts/chaos.sh starts
/// uspd for each scenario and runs this; docs/RELIABILITY.md says what each scenario does.
@main
struct USPChaos: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "usp-chaos",
        abstract: "Attack a uspd on loopback and measure whether legitimate clients are still served.",
        subcommands: [Flood.self, Idle.self, Reconnect.self, Anonymous.self, BruteForce.self, FDExhaust.self, AuditGrowth.self])
}

/// What every scenario command does at the end: the line on stdout, details on stderr, exit 1 on FAIL.
func finish(_ report: Report) throws {
    for line in report.details { FileHandle.standardError.write(Data("  \(report.scenario): \(line)\n".utf8)) }
    print(report.line)
    if !report.passed { throw ExitCode(1) }
}
