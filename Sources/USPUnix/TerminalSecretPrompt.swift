#if canImport(Glibc)
import Glibc
#endif

/// A prompt for a secret (a password) on the controlling terminal, read with echo off.
public enum TerminalSecretPrompt {
    /// Writes `prompt` to /dev/tty and reads one line from it with echo off (restored afterwards,
    /// even on error); the line comes without its `\n` (and without a `\r` before it). Throws when
    /// there is no terminal to open.
    public static func read(prompt: String) throws(UnixError) -> String {
        let fd = open("/dev/tty", O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw .call("open /dev/tty") }
        defer { close(fd) }
        _ = prompt.withCString { write(fd, $0, strlen($0)) }
        var saved = termios()
        let haveTermios = tcgetattr(fd, &saved) == 0
        if haveTermios {
            var quiet = saved
            quiet.c_lflag &= ~tcflag_t(ECHO)
            quiet.c_lflag |= tcflag_t(ECHONL)
            tcsetattr(fd, TCSAFLUSH, &quiet)
        }
        defer { if haveTermios { tcsetattr(fd, TCSAFLUSH, &saved) } }
        var bytes: [UInt8] = []
        var c: UInt8 = 0
        while true {
            let n = Glibc.read(fd, &c, 1)
            if n < 0, errno == EINTR { continue }
            if n <= 0 || c == UInt8(ascii: "\n") { break }
            bytes.append(c)
        }
        if bytes.last == UInt8(ascii: "\r") { bytes.removeLast() }
        return String(decoding: bytes, as: UTF8.self)
    }
}
