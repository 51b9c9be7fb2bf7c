import ArgumentParser
import Foundation
import USPCore
import USPServer
import USPStore

/// Asks the uspd running on the data directory, through DATA/uspd.sock.
func askDaemon(_ home: HomeOptions, _ request: JSONValue) throws -> JSONValue {
    let (homeDir, _, _) = try home.load()
    do {
        return try AdminSocketClient.ask(homeDir.adminSocketPath, request)
    } catch {
        throw Failure("\(error)")
    }
}

func printJSON(_ value: JSONValue) {
    print(String(decoding: (try? value.encoded()) ?? Array("{}".utf8), as: UTF8.self))
}

// MARK: - status

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the running uspd: listen addresses, key, connections, sessions, streams.",
        discussion: "Asks the uspd serving the data directory through DATA/uspd.sock (root or uspd's own user only).")

    @OptionGroup var home: HomeOptions

    @Flag(help: "Print the answer as one JSON object.")
    var json = false

    func run() async throws {
        let s = try askDaemon(home, ["command": "status"])
        if json { return printJSON(s) }
        func int(_ path: String...) -> Int64 {
            var v: JSONValue? = s
            for p in path { v = v?[p] }
            return v?.integerValue ?? 0
        }
        let listening = (s["listening"]?.arrayValue ?? []).compactMap(\.stringValue)
        var lines: [(String, String)] = [
            ("pid", "\(int("pid")), up \(AgeText.of(seconds: Double(int("uptime_seconds")))) (since \(s["started_at"]?.stringValue ?? "?"))"),
            ("server key", s["server_key"]?.stringValue ?? "?"),
            ("fingerprint", s["fingerprint"]?.stringValue ?? "?"),
            ("listening", listening.isEmpty ? "-" : listening.joined(separator: ", ")),
            ("first contact", s["first_contact"]?.boolValue == true ? "allowed" : "refused (stealth)"),
            ("connections", "\(int("connections", "open")) open of \(int("connections", "max_connections")), \(int("connections", "unauthenticated")) unauthenticated of \(int("connections", "max_unauthenticated")); \(int("connections", "gave_way")) gave way since start"),
            ("sessions", "\(int("sessions", "live")) live, \(int("sessions", "logged_in")) logged in"),
            ("streams", "\(int("sessions", "streams")) open (\(int("sessions", "relay_free")) relay-free)"),
            ("known sources", "\(int("known_sources"))"),
            ("applications", "\(int("applications"))" + (s["apps_d_problem"]?.stringValue.map { "; apps.d NOT loaded, previous kept: \($0)" } ?? "")),
            ("audit", "\(int("audit", "pending")) rows pending, \(int("audit", "summarised")) summarised, \(int("audit", "dropped")) dropped"),
        ]
        if s["silent_holds"] != nil { lines.insert(("silent holds", "\(int("silent_holds"))"), at: 6) }
        for uri in (s["uris"]?.arrayValue ?? []).compactMap(\.stringValue) { lines.append(("uri", uri)) }
        let width = lines.map(\.0.count).max() ?? 0
        for (k, v) in lines { print(k.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + v) }
    }
}

// MARK: - sessions

struct Sessions: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sessions",
        abstract: "List the live sessions and their streams, or end one.",
        discussion: "Asks the uspd serving the data directory through DATA/uspd.sock (root or uspd's own user only).",
        subcommands: [List.self, Kill.self], defaultSubcommand: List.self)

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List the live sessions and their streams (the default).")

        @OptionGroup var home: HomeOptions

        @Flag(help: "Print the answer as one JSON object.")
        var json = false

        @Flag(help: "Every node of the fleet sharing this data directory's PostgreSQL database, from the reports each node writes every 2 s.")
        var fleet = false

        /// A report older than this says its node stopped without withdrawing it (or lost the database).
        static let staleAfter = 10.0

        func run() async throws {
            if fleet { return try runFleet() }
            let answer = try askDaemon(home, ["command": "sessions"])
            if json { return printJSON(answer) }
            let rows = answer["sessions"]?.arrayValue ?? []
            if rows.isEmpty { return print("no live sessions") }
            Self.printTable([Self.header] + rows.map(Self.cells))
        }

        func runFleet() throws {
            let (homeDir, _, _) = try home.load()
            let store = try Backend.openStore(homeDir)
            guard let directory = store as? any FleetDirectory else {
                throw Failure("--fleet needs a fleet's PostgreSQL store (database = \"postgresql://…\" in uspd.toml); \(homeDir.databasePath) is this node's own: run uspd sessions")
            }
            let reports: [NodeReport]
            do { reports = try directory.nodeReports() } catch { throw Failure("\(error)") }
            let now = Date()
            var nodes: [JSONValue] = []
            var table = [["NODE"] + Self.header]
            for report in reports {
                let age = now.timeIntervalSince(report.at)
                let stale = age > Self.staleAfter
                let sessions = (try? JSONValue.parse(Array(report.report.utf8)))?["sessions"]?.arrayValue ?? []
                nodes.append(.object(["node": .string(report.node), "reported_at": .string(AdminQueries.timestamp(report.at)),
                                      "age_seconds": .number(AdminQueries.rounded(age)), "stale": .bool(stale), "sessions": .array(sessions)]))
                if stale {
                    FileHandle.standardError.write(Data("uspd: node \(report.node) has not reported for \(AgeText.of(seconds: age)) (stopped, or cut off from the database); its sessions are as of then\n".utf8))
                }
                table += sessions.map { [report.node] + Self.cells($0) }
            }
            if json { return printJSON(.object(["ok": true, "nodes": .array(nodes)])) }
            if reports.isEmpty { return print("no node has reported (is uspd serve running on this database?)") }
            if table.count == 1 { return print("no live sessions on \(reports.count) node(s)") }
            Self.printTable(table)
        }

        static let header = ["SESSION", "PEER", "IDENTITY", "STATE", "AGE", "IDLE", "IN", "OUT", "STREAMS"]

        static func cells(_ r: JSONValue) -> [String] {
            let age = AgeText.of(seconds: r["age_seconds"]?.doubleValue ?? 0)
            if r["relay_free"]?.boolValue == true {
                let stream = "\(r["application"]?.stringValue ?? "?")#\(r["stream"]?.integerValue ?? 0) relay-free"
                return [r["id"]?.stringValue ?? "?", r["peer"]?.stringValue ?? "?", r["identity"]?.stringValue ?? "-",
                        "handed_off", age, "-", "-", "-", stream]
            }
            let streams = (r["streams"]?.arrayValue ?? []).map { st in
                "\(st["application"]?.stringValue ?? "?")#\(st["id"]?.integerValue ?? 0)"
                    + " (\(ByteCount.text(st["bytes_in"]?.integerValue ?? 0))/\(ByteCount.text(st["bytes_out"]?.integerValue ?? 0)))"
            }
            return [r["id"]?.stringValue ?? "?", r["peer"]?.stringValue ?? "?", r["identity"]?.stringValue ?? "-",
                    r["state"]?.stringValue ?? "?", age, AgeText.of(seconds: r["idle_seconds"]?.doubleValue ?? 0),
                    ByteCount.text(r["bytes_in"]?.integerValue ?? 0), ByteCount.text(r["bytes_out"]?.integerValue ?? 0),
                    streams.isEmpty ? "-" : streams.joined(separator: ", ")]
        }

        static func printTable(_ table: [[String]]) {
            let widths = (0..<table[0].count).map { c in table.map { $0[c].count }.max() ?? 0 }
            for row in table {
                print(zip(row, widths).enumerated().map { i, cell in
                    i == row.count - 1 ? cell.0 : cell.0.padding(toLength: cell.1, withPad: " ", startingAt: 0)
                }.joined(separator: "  "))
            }
        }
    }

    struct Kill: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "kill",
            abstract: "End a session: CLOSE closed_by_administrator to its client, its streams and applications stopped; audited.")

        @OptionGroup var home: HomeOptions

        @Argument(help: "The session ID, as uspd sessions shows it (s-…).")
        var session: String

        func run() async throws {
            _ = try askDaemon(home, ["command": "kill", "session": .string(session)])
            print("ended \(session)")
        }
    }
}

enum AgeText {
    /// 42s, 3m05s, 2h07m, 3d04h.
    static func of(seconds: Double) -> String {
        let s = Int(seconds.rounded(.down))
        if s < 60 { return "\(s)s" }
        if s < 3600 { return "\(s / 60)m\(String(format: "%02d", s % 60))s" }
        if s < 86400 { return "\(s / 3600)h\(String(format: "%02d", s % 3600 / 60))m" }
        return "\(s / 86400)d\(String(format: "%02d", s % 86400 / 3600))h"
    }
}

enum ByteCount {
    /// 512B, 1.2K, 3.4M, 5.6G (powers of 1024).
    static func text(_ bytes: Int64) -> String {
        let units = ["B", "K", "M", "G", "T"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(bytes)B" : String(format: value < 10 ? "%.1f" : "%.0f", value) + units[unit]
    }
}
