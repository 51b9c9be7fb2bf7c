import NIOCore
#if canImport(Glibc)
import Glibc
#endif

/// A socket error in words a person reads ("connection reset by the peer (ECONNRESET)"), not the
/// I/O library's call description (`read(descriptor:pointer:size:) … errno: 104`).
public enum SocketErrorText {
    static let names: [Int32: String] = [
        ECONNRESET: "ECONNRESET", EPIPE: "EPIPE", ECONNREFUSED: "ECONNREFUSED", ETIMEDOUT: "ETIMEDOUT",
        EADDRINUSE: "EADDRINUSE", EADDRNOTAVAIL: "EADDRNOTAVAIL", EACCES: "EACCES", EHOSTUNREACH: "EHOSTUNREACH",
        ENETUNREACH: "ENETUNREACH", EMFILE: "EMFILE", ENFILE: "ENFILE", ENOBUFS: "ENOBUFS",
    ]

    public static func describe(_ error: any Error) -> String {
        guard let io = error as? IOError else { return "\(error)" }
        let code = io.errnoCode
        let text: String
        switch code {
        case ECONNRESET: text = "the connection was reset by the other side"
        case EPIPE: text = "the other side closed the connection while we were sending"
        case EADDRINUSE: text = "the address is already in use (another program listens there)"
        case EADDRNOTAVAIL: text = "that address is not one of this host's"
        case EACCES: text = "permission denied (ports below 1024 need privileges)"
        case EMFILE, ENFILE: text = "out of file descriptors"
        default: text = String(cString: strerror(code)).lowercased()
        }
        return text + " (" + (names[code] ?? "errno \(code)") + ")"
    }
}
