#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import Synchronization
import USPCore
import USPUnix

/// uspd's local control socket, `DATA/uspd.sock` (mode 0600): what `uspd status` and `uspd
/// sessions` talk to. One request per connection: a line of JSON in, a line of JSON out, then
/// close (the format is in the README). Only root and the user uspd runs as are answered
/// (SO_PEERCRED, checked on top of the file's mode); anyone else gets an `ok: false` line.
///
/// Served on threads of its own, never on an event loop: a request that reads the sessions
/// waits for each session's loop, which a loop thread must not do. At most `maximumPending`
/// requests are served at once; each must arrive within `requestTimeout` seconds.
public final class AdminSocket: Sendable {
    public let path: String
    private let listener: CInt
    private let wake: (read: CInt, write: CInt)
    private let queries: AdminQueries
    private let logger: Logger
    private let stopping = Atomic<Bool>(false)
    private let pending = Atomic<Int>(0)
    private let ownUID = geteuid()
    let maximumPending = 8
    let requestTimeout = 2.0

    /// Listens at `path`, replacing a stale socket there. The caller holds the data directory's
    /// lock, so a socket file found there belongs to no live uspd.
    init(path: String, queries: AdminQueries, logger: Logger) throws {
        self.path = path
        self.queries = queries
        self.logger = logger
        do throws(UnixError) {
            let address = try UnixSocketAddress(path: path)
            listener = try UnixSocket.listen(at: address, backlog: 16, replacingStale: true, mode: 0o600)
        } catch {
            throw AdminSocketError("cannot listen on \(path): \(error.detail)")
        }
        do throws(UnixError) {
            wake = try ProcessSpawn.pipe()
        } catch {
            close(listener)
            unlink(path)
            throw AdminSocketError("cannot make the control socket's wake-up pipe: \(error.detail)")
        }
        let thread = Thread { [self] in
            acceptLoop()
            close(listener)
            close(wake.read)
            close(wake.write)
        }
        thread.name = "uspd-admin"
        thread.start()
    }

    /// Stops accepting and removes the socket file.
    func stop() {
        guard !stopping.exchange(true, ordering: .sequentiallyConsistent) else { return }
        unlink(path)
        var byte: UInt8 = 1
        _ = write(wake.write, &byte, 1)
    }

    private func acceptLoop() {
        while !stopping.load(ordering: .sequentiallyConsistent) {
            var fds = [pollfd(fd: listener, events: Int16(POLLIN), revents: 0), pollfd(fd: wake.read, events: Int16(POLLIN), revents: 0)]
            let n = poll(&fds, 2, -1)
            if stopping.load(ordering: .sequentiallyConsistent) || fds[1].revents != 0 { return }
            guard n > 0, fds[0].revents != 0 else { continue }
            let fd: CInt
            do throws(UnixError) {
                fd = try UnixSocket.accept(listener)
            } catch {
                // Out of descriptors, most likely: back off instead of spinning.
                usleep(100_000)
                continue
            }
            guard pending.add(1, ordering: .sequentiallyConsistent).newValue <= maximumPending else {
                pending.subtract(1, ordering: .sequentiallyConsistent)
                answer(fd, AdminQueries.failure("busy", "uspd is answering \(maximumPending) control requests already; try again"))
                close(fd)
                continue
            }
            let thread = Thread { [self] in
                serve(fd)
                close(fd)
                pending.subtract(1, ordering: .sequentiallyConsistent)
            }
            thread.name = "uspd-admin-request"
            thread.start()
        }
    }

    private func serve(_ fd: CInt) {
        let peer: PeerCredentials
        do throws(UnixError) {
            peer = try PeerCredentials.of(fd)
            try UnixSocket.setTimeouts(fd, seconds: requestTimeout)
        } catch {
            return
        }
        guard peer.uid == 0 || peer.uid == ownUID else {
            logger.warning("control socket: refused a request from uid \(peer.uid) (pid \(peer.pid)): only root and uid \(ownUID) may ask")
            answer(fd, AdminQueries.failure("permission_denied", "only root and the user uspd runs as (uid \(ownUID)) may use \(path)"))
            return
        }
        let line: String
        do throws(UnixError) {
            guard let read = try StreamIO.readLine(fd, limit: 4096) else { return }
            line = read
        } catch {
            answer(fd, AdminQueries.failure("bad_request", "no request line within \(Int(requestTimeout)) s: \(error.detail)"))
            return
        }
        guard line.utf8.count < 4096 else {
            answer(fd, AdminQueries.failure("bad_request", "the request line is longer than 4096 bytes"))
            return
        }
        let request: JSONValue
        do throws(USPError) {
            request = try JSONValue.parse(Array(line.utf8))
        } catch {
            answer(fd, AdminQueries.failure("bad_request", "the request is not JSON: \(error.detail)"))
            return
        }
        answer(fd, queries.answer(request, from: peer))
    }

    /// Writes the answer line, then reads and drops what the client still sends (at most 64 KiB,
    /// within the timeout) until it closes: closing with unread input would reset the connection
    /// and could lose the answer.
    private func answer(_ fd: CInt, _ reply: JSONValue) {
        guard var bytes = try? reply.encoded() else { return }
        bytes.append(UInt8(ascii: "\n"))
        try? StreamIO.writeAll(fd, bytes)
        shutdown(fd, CInt(SHUT_WR))
        var sink = [UInt8](repeating: 0, count: 4096)
        var dropped = 0
        while dropped < 65536 {
            let n = sink.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { return }
            dropped += n
        }
    }
}

/// A control socket that could not be set up; uspd does not start without it.
struct AdminSocketError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
