import ArgumentParser
import Testing
@testable import usp

/// `usp connect`'s own argument reader (`ConnectInvocation.parse`, which skips ArgumentParser for
/// speed) against ArgumentParser's parse of the same command: every form it takes must mean
/// exactly what ArgumentParser makes of it, and every form ArgumentParser refuses it must leave
/// to ArgumentParser (nil), so errors and --help stay ArgumentParser's.
@Suite struct ConnectArgumentsTests {
    static let uri = "usp://AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA@127.0.0.1:7300"

    static let taken: [[String]] = [
        [uri, "echo"],
        [uri],
        ["work"],
        ["work", "ssh", "--field", "user=alice"],
        ["--no-agent", "--home", "/tmp/h", uri, "echo"],
        ["--home=/tmp/h", uri, "echo", "--no-agent"],
        [uri, "--field", "a=1", "echo", "--field=b=2=3"],
        ["-F", "/tmp/cfg", "-o", "Port=7400", "-o", "User=bob", "work"],
        ["--anonymous", "--no-dns", "--dns-require-dnssec", "--dns-server", "127.0.0.1:53", "host.example", "app"],
        ["--server-key-checking", "strict", uri, "echo", "--early-wait", "0"],
        ["--server-key-checking=accept-new", "--early-wait=50", uri, "echo"],
    ]

    static let leftToArgumentParser: [[String]] = [
        [],
        ["--help"],
        ["-h", uri],
        [uri, "echo", "extra"],
        ["--unknown", uri, "echo"],
        ["--home"],
        [uri, "echo", "--field"],
        ["--early-wait", "soon", uri, "echo"],
        ["--no-agent=yes", uri, "echo"],
        ["--", uri, "echo"],
        ["--home", "/a", "--home", "/b", uri, "echo"],
        ["--version"],
    ]

    @Test(arguments: taken) func aFormItTakesMeansWhatArgumentParserMakesOfIt(_ arguments: [String]) throws {
        let fast = try #require(ConnectInvocation.parse(arguments[...]), "\(arguments)")
        let parsed = try Connect.parse(arguments)
        #expect(fast == parsed.invocation, "\(arguments)")
    }

    @Test(arguments: leftToArgumentParser) func aFormItDoesNotTakeIsLeftToArgumentParser(_ arguments: [String]) {
        #expect(ConnectInvocation.parse(arguments[...]) == nil, "\(arguments)")
    }

    @Test func valuesLandWhereTheyBelong() throws {
        let c = try #require(ConnectInvocation.parse(["-o", "Port=1", "--field", "x=y", "--no-agent", "srv", "app", "-o", "User=u"][...]))
        #expect(c.uri == "srv")
        #expect(c.application == "app")
        #expect(c.options == ["Port=1", "User=u"])
        #expect(c.fields == ["x=y"])
        #expect(c.noAgent)
        #expect(try c.settings().count == 1)
    }
}
