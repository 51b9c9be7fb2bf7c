import Foundation
import Glibc

/// What the chaos suite reads of the running uspd from outside: its CPU time (utime + stime from
/// /proc/PID/stat), whether it is alive, and the size of its SQLite files.
struct ServerProbe: Sendable {
    let pid: Int32?
    /// usp.sqlite and its -wal, whose growth is the audit trail's.
    let databaseFiles: [String]

    init(pid: Int32?, database: String?) {
        self.pid = pid
        databaseFiles = database.map { [$0, $0 + "-wal"] } ?? []
    }

    struct Reading: Sendable {
        let time: Double
        /// CPU seconds used so far, nil if unknown.
        let cpu: Double?
        /// The size of each database file, in `databaseFiles` order.
        let fileBytes: [Int]
        /// The kernel's count of connections dropped because a listen queue was full
        /// (TcpExt ListenOverflows: system-wide, in practice uspd's under attack).
        let listenOverflows: Int
        var databaseBytes: Int { fileBytes.reduce(0, +) }
    }

    func read() -> Reading {
        Reading(time: Monotonic.now(), cpu: cpuSeconds(), fileBytes: databaseFiles.map(Self.size), listenOverflows: Self.listenOverflows())
    }

    /// The database's content in bytes: its used pages (page_count − freelist_count, through the
    /// WAL) times the page size, read with the sqlite3 CLI; nil without it. Unlike the files'
    /// sizes this leaves out the WAL, a scratch area that SQLite reuses after each checkpoint.
    func contentBytes() -> Int? {
        guard let path = databaseFiles.first else { return nil }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["sqlite3", "-readonly", path,
                       "select (select page_count from pragma_page_count) - (select freelist_count from pragma_freelist_count), (select page_size from pragma_page_size)"]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return nil }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let fields = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "|")
        guard p.terminationStatus == 0, fields.count == 2, let pages = Int(fields[0]), let size = Int(fields[1]) else { return nil }
        return pages * size
    }

    var isAlive: Bool {
        guard let pid else { return true }
        return kill(pid, 0) == 0
    }

    /// uspd's CPU between two readings, in % of one core (200 % is both cores of this machine).
    static func cpuPercent(from a: Reading, to b: Reading) -> Double? {
        guard let c0 = a.cpu, let c1 = b.cpu, b.time > a.time else { return nil }
        return 100 * (c1 - c0) / (b.time - a.time)
    }

    private func cpuSeconds() -> Double? {
        guard let pid, let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")") else { return nil }
        // Fields after "pid (comm)": state is field 3, utime 14 and stime 15.
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let utime = Double(fields[11]), let stime = Double(fields[12]) else { return nil }
        return (utime + stime) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// From /proc/net/netstat: a line of TcpExt names, then one of their values.
    private static func listenOverflows() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/net/netstat", encoding: .utf8) else { return 0 }
        let lines = text.split(separator: "\n").filter { $0.hasPrefix("TcpExt:") }.map { $0.split(separator: " ") }
        guard lines.count >= 2, let i = lines[0].firstIndex(of: "ListenOverflows"), i < lines[1].count else { return 0 }
        return Int(lines[1][i]) ?? 0
    }

    private static func size(_ path: String) -> Int {
        var st = stat()
        return stat(path, &st) == 0 ? Int(st.st_size) : 0
    }
}
