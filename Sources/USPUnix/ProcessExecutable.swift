#if canImport(Glibc)
import Glibc
#endif

/// What /proc says about another process: the program it runs and its parent. Read from
/// the kernel, not taken from the process's word.
public enum ProcessExecutable {
    /// The path `/proc/PID/exe` points to; nil when the kernel does not say (the process is
    /// gone, or belongs to another user and we are not privileged).
    public static func path(of pid: pid_t) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/\(pid)/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The parent's pid, from `/proc/PID/stat`; nil if unreadable.
    public static func parent(of pid: pid_t) -> pid_t? {
        guard let fields = statFields(of: pid), fields.count >= 2 else { return nil }
        return pid_t(String(decoding: fields[1], as: UTF8.self))
    }

    /// The fields of `/proc/PID/stat` after the command name ("1234 (name) S 1 …": state, parent,
    /// …), found after the last ')' since the name may hold spaces and parentheses.
    static func statFields(of pid: pid_t) -> [ArraySlice<UInt8>]? {
        guard let bytes = read("/proc/\(pid)/stat", limit: 4096), let paren = bytes.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        return bytes[(paren + 1)...].split(separator: UInt8(ascii: " "))
    }
}

extension ProcessExecutable {
    /// The real uid of `pid`, from the `Uid:` line of `/proc/PID/status`; nil if unreadable.
    public static func uid(of pid: pid_t) -> uid_t? {
        guard let text = read("/proc/\(pid)/status", limit: 8192) else { return nil }
        for line in text.split(separator: 10) where line.starts(with: Array("Uid:".utf8)) {
            let fields = line.dropFirst(4).split(whereSeparator: { $0 == 9 || $0 == 32 })
            return fields.first.flatMap { uid_t(String(decoding: $0, as: UTF8.self)) }
        }
        return nil
    }

    /// The arguments `pid` was started with (`/proc/PID/cmdline`, argv[0] first); nil if unreadable.
    public static func arguments(of pid: pid_t) -> [String]? {
        guard let bytes = read("/proc/\(pid)/cmdline", limit: 65536), !bytes.isEmpty else { return nil }
        return bytes.split(separator: 0, omittingEmptySubsequences: false).dropLast(bytes.last == 0 ? 1 : 0)
            .map { String(decoding: $0, as: UTF8.self) }
    }

    private static func read(_ path: String, limit: Int) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while out.count < limit {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { break }
            out += buffer[0..<n]
        }
        return out
    }
}
