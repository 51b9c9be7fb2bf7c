#if canImport(Glibc)
import Glibc
#endif

/// Close-on-exec and descriptor housekeeping. Every descriptor USPUnix creates is close-on-exec
/// from the start (SOCK_CLOEXEC, MSG_CMSG_CLOEXEC), so a process spawned at the same moment from
/// another thread cannot inherit it; a descriptor meant for a child is placed explicitly (dup2 in
/// the spawn's file actions clears the flag on the copy).
public enum CloseOnExec {
    /// Sets or clears FD_CLOEXEC on `fd`.
    public static func set(_ fd: CInt, _ on: Bool = true) throws(UnixError) {
        let flags = fcntl(fd, F_GETFD)
        guard flags >= 0 else { throw .call("fcntl(F_GETFD)") }
        let wanted = on ? flags | FD_CLOEXEC : flags & ~FD_CLOEXEC
        guard wanted == flags || fcntl(fd, F_SETFD, wanted) == 0 else { throw .call("fcntl(F_SETFD)") }
    }

    /// Whether FD_CLOEXEC is set on `fd`.
    public static func isSet(_ fd: CInt) throws(UnixError) -> Bool {
        let flags = fcntl(fd, F_GETFD)
        guard flags >= 0 else { throw .call("fcntl(F_GETFD)") }
        return flags & FD_CLOEXEC != 0
    }

    /// A close-on-exec duplicate of `fd` numbered `minimum` or above (F_DUPFD_CLOEXEC), e.g. to
    /// move a descriptor out of the way of 0…3 before placing others there.
    public static func duplicate(_ fd: CInt, atLeast minimum: CInt) throws(UnixError) -> CInt {
        let copy = fcntl(fd, F_DUPFD_CLOEXEC, minimum)
        guard copy >= 0 else { throw .call("fcntl(F_DUPFD_CLOEXEC)") }
        return copy
    }

    /// Sets or clears O_NONBLOCK on `fd`.
    public static func setNonBlocking(_ fd: CInt, _ on: Bool = true) throws(UnixError) {
        let flags = fcntl(fd, F_GETFL)
        guard flags >= 0 else { throw .call("fcntl(F_GETFL)") }
        let wanted = on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK
        guard wanted == flags || fcntl(fd, F_SETFL, wanted) == 0 else { throw .call("fcntl(F_SETFL)") }
    }
}
