import CUSPSpawn
#if canImport(Glibc)
import Glibc
#endif

/// Signals turned into bytes on a pipe: a handler installed with sigaction writes each signal's
/// number to the pipe, and a loop that polls `read` sees it like any other input.
///
/// This replaces a dispatch signal source where a signal must never be lost: a dispatch source is
/// registered asynchronously, so a SIGTERM sent just after the program said it was ready could
/// land before the registration and be dropped. The handler here is in place when `install`
/// returns, and it only calls write(2), so it is async-signal-safe on whichever thread it runs.
/// One process has at most one: a later `install` takes the signals over.
public struct SignalPipe: Sendable {
    /// The end to poll; each byte read is a signal number.
    public let read: CInt
    private let write: CInt
    /// Whether signal handlers write here: then the pipe stays open for the life of the process.
    private let handlesSignals: Bool

    /// Makes the pipe (close-on-exec, the write end non-blocking) and installs the handlers.
    public static func install(_ signals: [CInt]) throws(UnixError) -> SignalPipe {
        let (r, w) = try ProcessSpawn.pipe()
        let flags = fcntl(w, F_GETFL)
        guard flags >= 0, fcntl(w, F_SETFL, flags | O_NONBLOCK) == 0 else {
            let error = UnixError.call("fcntl(O_NONBLOCK)")
            Glibc.close(r)
            Glibc.close(w)
            throw error
        }
        guard signals.withUnsafeBufferPointer({ usp_signals_to_descriptor(w, $0.baseAddress, CInt($0.count)) }) == 0 else {
            let error = UnixError.call("sigaction")
            Glibc.close(r)
            Glibc.close(w)
            throw error
        }
        return SignalPipe(read: r, write: w, handlesSignals: !signals.isEmpty)
    }

    /// Closes the pipe, unless signal handlers write to it (a closed descriptor's number could be
    /// reused by another file, which a late signal would then write to).
    public func close() {
        guard !handlesSignals else { return }
        _ = Glibc.close(read)
        _ = Glibc.close(write)
    }

    /// Writes `signal` as the handler would: a program's own request to stop goes the same way.
    public func post(_ signal: CInt) {
        var byte = UInt8(truncatingIfNeeded: signal)
        _ = Glibc.write(write, &byte, 1)
    }

    /// The signal numbers waiting on the pipe, without blocking (empty when none is).
    public func drain() -> [CInt] {
        var fds = [pollfd(fd: read, events: Int16(POLLIN), revents: 0)]
        guard poll(&fds, 1, 0) > 0 else { return [] }
        var bytes = [UInt8](repeating: 0, count: 64)
        let n = Glibc.read(read, &bytes, bytes.count)
        return n > 0 ? bytes[..<n].map { CInt($0) } : []
    }
}
