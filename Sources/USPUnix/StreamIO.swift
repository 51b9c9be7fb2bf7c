#if canImport(Glibc)
import Glibc
#endif

/// Whole reads and writes on a blocking stream descriptor, retrying EINTR and short transfers.
public enum StreamIO {
    /// Writes all of `bytes` (MSG_NOSIGNAL on sockets, so a gone peer is EPIPE, not SIGPIPE).
    public static func writeAll(_ fd: CInt, _ bytes: [UInt8]) throws(UnixError) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { raw -> Int in
                let sent = Glibc.send(fd, raw.baseAddress, raw.count, CInt(MSG_NOSIGNAL))
                if sent < 0, errno == ENOTSOCK { return write(fd, raw.baseAddress, raw.count) }
                return sent
            }
            if n < 0 {
                if errno == EINTR { continue }
                throw .call("write")
            }
            offset += n
        }
    }

    /// Reads exactly `count` bytes; end of file before that is `closed`.
    public static func readExactly(_ fd: CInt, _ count: Int) throws(UnixError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var offset = 0
        while offset < count {
            let n = out[offset...].withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .call("read")
            }
            if n == 0 { throw UnixError(.closed, "end of file after \(offset) of \(count) bytes") }
            offset += n
        }
        return out
    }

    /// Reads up to and including the first `\n`, at most `limit` bytes; returns the line without it.
    /// End of file before a newline returns what came (nil if nothing).
    public static func readLine(_ fd: CInt, limit: Int) throws(UnixError) -> String? {
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while line.count < limit {
            let n = read(fd, &byte, 1)
            if n < 0 {
                if errno == EINTR { continue }
                throw .call("read")
            }
            if n == 0 { return line.isEmpty ? nil : String(decoding: line, as: UTF8.self) }
            if byte == UInt8(ascii: "\n") { return String(decoding: line, as: UTF8.self) }
            line.append(byte)
        }
        return String(decoding: line, as: UTF8.self)
    }
}
