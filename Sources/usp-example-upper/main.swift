import Foundation
import NIOCore
import USPApp

/// usp-example-upper: a small USP application built on USPApp.
///
/// For each session it greets the identity uspd vouched for, answers every line with the line in
/// upper case, and says how many lines it saw when the client half-closes:
///
/// ```
/// hello alice (notes via usp, session 3f…); send lines, I answer in upper case
/// > some text          → SOME TEXT
/// (end of input)       → bye alice: 1 line(s)
/// ```
///
/// Run it as a `unix` application (`usp-example-upper --socket /run/upper.sock` with
/// `[launch] unix = "/run/upper.sock"`), or exec'd per session (`exec = ["usp-example-upper"]`,
/// `stream = "fd3"`): the same code serves both.
///
/// `--discard` makes it the discard sink of scripts/bench-handoff.sh instead (for measuring a
/// relay-free session): it answers the first bytes with `R`, counts and drops everything, and at
/// end of input answers `OK <bytes>` and ends the stream.
@main
struct ExampleUpper {
    static func main() async {
        var socketPath: String?
        var discard = false
        var arguments = CommandLine.arguments.dropFirst()
        while let argument = arguments.popFirst() {
            switch argument {
            case "--socket": socketPath = arguments.popFirst()
            case "--discard": discard = true
            case "-h", "--help":
                print("usage: usp-example-upper [--socket PATH] [--discard]   (no --socket: started by uspd with stream = \"fd3\")")
                return
            default:
                log("unknown argument \(argument)")
                exit(64)
            }
        }
        let stopping = stopOnSignals(removing: socketPath)
        defer { stopping.forEach { $0.cancel() } }
        do {
            let sessions = try ApplicationListener.sessions(socketPath: socketPath)
            if let socketPath { log("listening on \(socketPath)") }
            let discarding = discard
            await withDiscardingTaskGroup { group in
                for await session in sessions {
                    group.addTask { discarding ? await sink(session) : await serve(session) }
                }
            }
        } catch {
            log("\(error)")
            exit(1)
        }
    }

    static func serve(_ session: ApplicationSession) async {
        let who = session.metadata.identity ?? "anonymous"
        log("session \(session.metadata.session) for \(who) from \(session.metadata.peerAddress)\(session.metadata.relayFree ? " (relay-free)" : "")")
        do {
            try await session.channel.executeThenClose { inbound, outbound in
                try await outbound.write(ByteBuffer(string:
                    "hello \(who) (\(session.metadata.application) via usp, session \(session.metadata.session)); send lines, I answer in upper case\n"))
                var pending: [UInt8] = []
                var lines = 0
                for try await buffer in inbound {
                    pending += buffer.readableBytesView
                    var answer = ""
                    while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                        answer += String(decoding: pending[..<newline], as: UTF8.self).uppercased() + "\n"
                        pending.removeSubrange(...newline)
                        lines += 1
                    }
                    if !answer.isEmpty { try await outbound.write(ByteBuffer(string: answer)) }
                }
                if !pending.isEmpty {
                    lines += 1
                    try await outbound.write(ByteBuffer(string: String(decoding: pending, as: UTF8.self).uppercased() + "\n"))
                }
                try await outbound.write(ByteBuffer(string: "bye \(who): \(lines) line(s)\n"))
                outbound.finish()
            }
        } catch {
            log("session \(session.metadata.session): \(error)")
        }
    }

    /// The benchmark's discard sink: `R` after the first bytes, `OK <count>` at end of input.
    static func sink(_ session: ApplicationSession) async {
        do {
            try await session.channel.executeThenClose { inbound, outbound in
                var total = 0
                for try await buffer in inbound {
                    if total == 0 { try await outbound.write(ByteBuffer(string: "R")) }
                    total += buffer.readableBytes
                }
                try await outbound.write(ByteBuffer(string: "OK \(total)\n"))
                outbound.finish()
            }
        } catch {
            log("session \(session.metadata.session): \(error)")
        }
    }

    /// SIGTERM and SIGINT remove the socket file and exit. They are unblocked first: a parent may
    /// have left them blocked, and every thread started later inherits this mask.
    static func stopOnSignals(removing socketPath: String?) -> [any DispatchSourceSignal] {
        var set = sigset_t()
        sigemptyset(&set)
        for sig in [SIGTERM, SIGINT] { sigaddset(&set, sig) }
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
        return [SIGTERM, SIGINT].map { sig in
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig)
            source.setEventHandler {
                if let socketPath { unlink(socketPath) }
                exit(0)
            }
            source.resume()
            return source
        }
    }

    static func log(_ line: String) {
        FileHandle.standardError.write(Data("usp-example-upper: \(line)\n".utf8))
    }
}
