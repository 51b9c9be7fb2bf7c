import Glibc

/// Small POSIX file helpers: the client keeps secrets in files, so it controls modes itself
/// (Foundation's `write(to:)` would create them world-readable under the default umask).
enum FileIO {
    static func exists(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0
    }

    static func lastError() -> String { String(cString: strerror(errno)) }

    /// Reads a whole file. With `privateFile`, refuses a file that group or others may read
    /// (as ssh refuses such a private key), naming the fix.
    /// With `trustedFile`, refuses a file that another user owns (root aside) or that group or
    /// others may write (as ssh refuses such a ~/.ssh/config).
    static func read(_ path: String, privateFile: Bool = false, trustedFile: Bool = false, what: String) throws(USPClientError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw USPClientError(.localFile, "cannot read \(what) \(path): \(lastError())")
        }
        defer { close(fd) }
        if trustedFile {
            var st = stat()
            guard fstat(fd, &st) == 0 else { throw USPClientError(.localFile, "cannot stat \(path): \(lastError())") }
            if st.st_uid != getuid(), st.st_uid != 0 {
                throw USPClientError(.localFile, "\(what) \(path) is owned by uid \(st.st_uid), not by you (uid \(getuid())): refused; copy it to a file of your own, or run: chown \(getuid()) \(path)")
            }
            let mode = st.st_mode & 0o777
            if mode & 0o022 != 0 {
                throw USPClientError(.localFile, "permissions \(octal(mode)) for \(path) are too open: \(what) must not be writable by group or others; run: chmod 600 \(path)")
            }
        }
        if privateFile {
            var st = stat()
            guard fstat(fd, &st) == 0 else { throw USPClientError(.localFile, "cannot stat \(path): \(lastError())") }
            let mode = st.st_mode & 0o777
            if mode & 0o077 != 0 {
                throw USPClientError(.localFile, "permissions \(octal(mode)) for \(path) are too open: \(what) must not be accessible by group or others; run: chmod 600 \(path)")
            }
        }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw USPClientError(.localFile, "cannot read \(what) \(path): \(lastError())")
            }
            if n == 0 { break }
            out.append(contentsOf: chunk[0..<n])
        }
        return out
    }

    static func readText(_ path: String, privateFile: Bool = false, trustedFile: Bool = false, what: String) throws(USPClientError) -> String {
        String(decoding: try read(path, privateFile: privateFile, trustedFile: trustedFile, what: what), as: UTF8.self)
    }

    /// Writes a file atomically (temporary file, fsync, rename) with `mode`.
    static func write(_ path: String, _ bytes: [UInt8], mode: mode_t, what: String) throws(USPClientError) {
        let tmp = path + ".tmp-\(getpid())"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode)
        guard fd >= 0 else { throw USPClientError(.localFile, "cannot write \(what) \(path): \(lastError())") }
        var failure: String?
        if fchmod(fd, mode) != 0 { failure = lastError() }
        var offset = 0
        while failure == nil, offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 {
                if errno == EINTR { continue }
                failure = lastError()
            } else {
                offset += n
            }
        }
        if failure == nil, fsync(fd) != 0 { failure = lastError() }
        close(fd)
        if failure == nil, rename(tmp, path) != 0 { failure = lastError() }
        if let failure {
            unlink(tmp)
            throw USPClientError(.localFile, "cannot write \(what) \(path): \(failure)")
        }
    }

    static func writeText(_ path: String, _ text: String, mode: mode_t, what: String) throws(USPClientError) {
        try write(path, Array(text.utf8), mode: mode, what: what)
    }

    /// Creates a directory (and its parents) with mode 0700 if it is missing.
    static func makeDirectory(_ path: String) throws(USPClientError) {
        if exists(path) { return }
        let parent = dirname(of: path)
        if parent != path, !parent.isEmpty { try makeDirectory(parent) }
        if mkdir(path, 0o700) != 0, errno != EEXIST {
            throw USPClientError(.localFile, "cannot create directory \(path): \(lastError())")
        }
    }

    static func remove(_ path: String) -> Bool { unlink(path) == 0 }

    static func dirname(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        let d = String(path[..<slash])
        return d.isEmpty ? "/" : d
    }

    static func octal(_ mode: mode_t) -> String {
        let s = String(mode, radix: 8)
        return String(repeating: "0", count: max(0, 4 - s.count)) + s
    }
}
