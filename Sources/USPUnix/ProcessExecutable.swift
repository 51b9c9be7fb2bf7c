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
        let fd = open("/proc/\(pid)/stat", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 1024)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n > 0, let paren = buffer[0..<n].lastIndex(of: UInt8(ascii: ")")) else { return nil }
        return buffer[(paren + 1)..<n].split(separator: UInt8(ascii: " "))
    }
}
