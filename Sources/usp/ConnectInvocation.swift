import FoundationEssentials
import Glibc
import NIOCore
import USPAgent
import USPClient
import USPCore

/// What `usp connect` was asked, as plain values: filled by ArgumentParser (`Connect`) or, for
/// the common forms, by `parse(_:)` without it. Both run the same `run()`.
///
/// `usp connect` starts once per ssh ProxyCommand, git fetch or scripted call, so its start-up is
/// its cost: ArgumentParser's first parse reflects over every option group and resolves generic
/// types by name, which took about a third of the client's CPU per connection. `parse` reads the
/// options `usp connect --help` lists and gives up (nil) on anything else, which ArgumentParser
/// then parses and, if wrong, reports as usual.
struct ConnectInvocation: Equatable {
    var home: String?
    var configFile: String?
    var options: [String] = []
    var flags = ConnectionFlags()
    var noAgent = false
    var uri = ""
    var application: String?
    var fields: [String] = []
    var earlyWait = 5
    /// An application token to begin with (`--token`, `--token-file`): one a broker obtained for
    /// this machine (`usp broker`), or any other. No login and no menu are needed.
    var token: String?
    var tokenFile: String?

    /// The flags given, as configuration settings (they win over -o and the file).
    func settings() throws -> [ClientConfig.Setting] {
        try flags.settings() + (noAgent ? [.init(.useAgent, .flag(false), origin: .commandLine("--no-agent"))] : [])
    }

    /// `arguments` after `connect`, or nil when they hold anything but the options below (then
    /// ArgumentParser parses them). Options may come before, between or after the two operands;
    /// each single-valued option at most once.
    static func parse(_ arguments: ArraySlice<String>) -> ConnectInvocation? {
        var c = ConnectInvocation()
        var operands: [String] = []
        // An array, not a Set: a Set<String> is instantiated at run time, with a conformance
        // lookup that scans every conformance record of the program.
        var seen: [String] = []
        var i = arguments.startIndex
        func value(_ name: String) -> String? {
            guard i + 1 < arguments.endIndex else { return nil }
            i += 1
            let v = arguments[i]
            return v.hasPrefix("-") && v.count > 1 ? nil : v
        }
        while i < arguments.endIndex {
            var a = arguments[i]
            var inline: String?
            if a.hasPrefix("--"), let eq = a.firstIndex(of: "=") {
                inline = String(a[a.index(after: eq)...])
                a = String(a[..<eq])
            }
            if a.hasPrefix("-") && a.count > 1 {
                let single = a != "-o" && a != "--field"
                if single {
                    if seen.contains(a) { return nil }
                    seen.append(a)
                }
                let isFlag = ["--anonymous", "--no-dns", "--dns-require-dnssec", "--no-agent"].contains(a)
                if isFlag, inline != nil { return nil }
                var v: String? { inline ?? value(a) }
                switch a {
                case "--anonymous": c.flags.anonymous = true
                case "--no-dns": c.flags.noDns = true
                case "--dns-require-dnssec": c.flags.dnsRequireDnssec = true
                case "--no-agent": c.noAgent = true
                case "--home": guard let x = v else { return nil }; c.home = x
                case "-F": guard inline == nil, let x = v else { return nil }; c.configFile = x
                case "-o": guard inline == nil, let x = v else { return nil }; c.options.append(x)
                case "--field": guard let x = v else { return nil }; c.fields.append(x)
                case "--server-key-checking": guard let x = v else { return nil }; c.flags.serverKeyChecking = x
                case "--dns-server": guard let x = v else { return nil }; c.flags.dnsServer = x
                case "--early-wait": guard let x = v, let n = Int(x) else { return nil }; c.earlyWait = n
                case "--token": guard let x = v else { return nil }; c.token = x
                case "--token-file": guard let x = v else { return nil }; c.tokenFile = x
                default: return nil
                }
            } else {
                operands.append(a)
            }
            i += 1
        }
        guard (1...2).contains(operands.count) else { return nil }
        c.uri = operands[0]
        c.application = operands.count == 2 ? operands[1] : nil
        return c
    }

    /// The token of `--token` or `--token-file` (its first non-empty line: the bare token, or the
    /// JSON object of `usp broker --json`), checked to be a token secret. A file others may read is named on stderr: the secret is a credential.
    func applicationToken() throws -> String? {
        var text = token
        if let tokenFile {
            guard token == nil else { throw USPClientError(.invalidArgument, "--token and --token-file exclude each other") }
            text = try TokenFile.read(tokenFile, warn: printError)
        }
        guard let raw = text else { return nil }
        guard fields.isEmpty else { throw USPClientError(.invalidArgument, "--field has no use with --token: the token carries its request") }
        let t = String(raw.drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" || $0 == "\r" }.reversed())
        guard (try? TokenProof.tokenID(secret: t)) != nil else {
            throw USPClientError(.invalidArgument, "\(tokenFile.map { "--token-file \($0)" } ?? "--token"): not an application token secret (usp1. and 43 characters, as usp broker prints it)")
        }
        return t
    }

    /// `--early-wait` (milliseconds), kept within 0…1000.
    var earlyWaitDuration: Duration { .milliseconds(max(0, min(earlyWait, 1000))) }

    /// What is left for `finish` once `runOnThisThread` returned.
    enum Step {
        /// Done (or failed, the failure already reported).
        case done
        /// The connection failed; the failure's explanation may need the async API.
        case failed(StdioPollSession.Failure)
        /// Through the agent, with its connection.
        case agent(ServerTarget, String, AgentClient, CInt)
        /// Through USPClient's async API (a DNS key lookup, --field values), with the options made.
        case async(ServerTarget, String, USPConnectionOptions)
        /// With an application token (`--token`): a dedicated connection begun with it.
        case token(ServerTarget, String, String, USPConnectionOptions)
    }

    /// The common `usp connect` entirely on the calling thread (`StdioPollSession`): no event
    /// loop and no task is started. Whatever it cannot do is left to `finish`.
    func runOnThisThread() throws -> Step {
        StdioPollSession.ensureStandardDescriptors()
        var step = Step.done
        try reportingNow {
            let target = try ServerTarget(uri, home: ClientHome.resolve(explicit: home), configFile: configFile, options: options, flags: try settings())
            if let token = try applicationToken() {
                // A token names its application; the agent and the saved login play no part.
                var options = try target.connectionOptions()
                options.earlyConnection = EarlyConnection.begin(host: target.server.connectHost ?? target.server.host,
                                                                port: Int(target.server.port), fastOpen: target.settings.fastOpen)
                step = .token(target, application ?? "the token's application", token, options)
                return
            }
            let application = try target.application(application)
            if let (agent, fd) = try AgentChoice.connection(for: target) {
                step = .agent(target, application, agent, fd)
                return
            }
            // The SYN now, to an address literal: loading the key, known servers and login then
            // overlap the round trip.
            let early = EarlyConnection.begin(host: target.server.connectHost ?? target.server.host, port: Int(target.server.port),
                                              fastOpen: target.settings.fastOpen)
            var options = try target.connectionOptions()
            options.earlyConnection = early
            guard fields.isEmpty, StdioPollSession.canRun(server: target.server, options: options) else {
                step = .async(target, application, options)
                return
            }
            do throws(StdioPollSession.Failure) {
                try StdioPollSession.run(application, server: target.server, home: target.home, options: options,
                                         earlyWait: earlyWaitDuration, notice: printError)
            } catch {
                step = .failed(error)
            }
        }
        return step
    }

    /// Continues what `runOnThisThread` left.
    func finish(_ step: Step) async throws {
        // One connection needs one event loop, should one be needed: not a thread per core. (Set
        // here, not before the common path, which never starts one: the setter alone costs NIO's
        // metadata and conformance lookups.)
        NIOSingletons.groupLoopCountSuggestion = 1
        switch step {
        case .done:
            return
        case .failed(let failure):
            try await reporting { throw await failure.explained() }
        case .agent(let target, let application, let agent, let fd):
            try await reporting {
                let textFields = try RequestFields.parse(fields)
                let opened: AgentClient.OpenedStream
                do {
                    opened = try agent.open(AgentRequest.Open(server: target.server, application: application,
                                                              textFields: textFields.isEmpty ? nil : textFields), on: fd)
                } catch {
                    close(fd)
                    throw error
                }
                try await DescriptorBridge.run(socket: opened.descriptor)
            }
        case .token(let target, let application, let token, let options):
            let input = FDReader()
            input.start()
            try await reporting {
                try await StdioApplicationSession.run(application, server: target.server, home: target.home, options: options, textFields: [:],
                                                      applicationToken: token, input: input, earlyWait: earlyWaitDuration, notice: printError)
            }
        case .async(let target, let application, let options):
            // Start reading stdin at once: its first bytes can then ride in message 1.
            let input = FDReader()
            input.start()
            try await reporting {
                let textFields = try RequestFields.parse(fields)
                try await StdioApplicationSession.run(application, server: target.server, home: target.home, options: options, textFields: textFields,
                                                      input: input, earlyWait: earlyWaitDuration, notice: printError)
            }
        }
    }
}
