import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Disk space held back for grants: a file of `bytes` zeros next to the database. When a write
/// that must precede a grant fails because the disk is full, the file is deleted, so the grant's
/// rows still fit and logins go on; meanwhile `AuditLog` writes no rows strangers cause (it counts
/// them), and the file is made again once the file system has room for it twice over.
public final class SpaceReserve: Sendable {
    public let path: String
    public let bytes: Int

    public init(path: String, bytes: Int) {
        self.path = path
        self.bytes = bytes
    }

    /// Whether the reserve file is in place (full size).
    public var isHeld: Bool {
        var st = stat()
        return stat(path, &st) == 0 && Int(st.st_size) >= bytes
    }

    /// Creates (or completes) the reserve if the file system has room for it twice over;
    /// returns whether it is held afterwards.
    @discardableResult
    public func restore() -> Bool {
        if isHeld { return true }
        guard bytes > 0, Self.freeBytes(near: path) >= Int64(bytes) * 2 else { return false }
        let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        // Written, not just allocated: a sparse file would reserve nothing.
        let chunk = [UInt8](repeating: 0, count: 65536)
        var written = 0
        guard lseek(fd, 0, SEEK_SET) == 0 else { return false }
        while written < bytes {
            let n = chunk.withUnsafeBytes { write(fd, $0.baseAddress, min(chunk.count, bytes - written)) }
            if n <= 0 {
                _ = ftruncate(fd, 0)
                return false
            }
            written += n
        }
        return fsync(fd) == 0
    }

    /// Deletes the reserve; returns whether there was one to free.
    @discardableResult
    public func release() -> Bool {
        let held = isHeld
        unlink(path)
        return held
    }

    static func freeBytes(near path: String) -> Int64 {
        var fs = statvfs()
        let directory = (path as NSString).deletingLastPathComponent
        guard statvfs(directory.isEmpty ? "." : directory, &fs) == 0 else { return 0 }
        return Int64(fs.f_bavail) * Int64(fs.f_frsize)
    }
}
