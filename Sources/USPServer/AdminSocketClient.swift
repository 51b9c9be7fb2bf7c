#if canImport(Glibc)
import Glibc
#endif
import USPCore
import USPUnix

/// Asks a running uspd over its control socket (`AdminSocket`): one JSON line out, one back.
public enum AdminSocketClient {
    public struct Failure: Error, CustomStringConvertible {
        /// No uspd listens there (no socket file, or nothing answers): as opposed to a refusal.
        public let notRunning: Bool
        public let description: String
    }

    /// The answer object. A uspd that answers `ok: false` is a `Failure` with its message.
    public static func ask(_ path: String, _ request: JSONValue, timeout: Double = 10) throws(Failure) -> JSONValue {
        let fd: CInt
        do throws(UnixError) {
            fd = try UnixSocket.connect(to: try UnixSocketAddress(path: path))
        } catch where error.errno == ENOENT || error.errno == ECONNREFUSED {
            throw Failure(notRunning: true, description: "no uspd is running on this data directory (\(path): \(error.errno == ENOENT ? "no such socket" : "nothing answers"))")
        } catch where error.errno == EACCES {
            throw Failure(notRunning: false, description: "\(path): permission denied; only root and the user uspd runs as may ask it")
        } catch {
            throw Failure(notRunning: false, description: "cannot connect to \(path): \(error.detail)")
        }
        defer { close(fd) }
        guard var bytes = try? request.encoded() else {
            throw Failure(notRunning: false, description: "the request could not be encoded as JSON")
        }
        bytes.append(UInt8(ascii: "\n"))
        let line: String?
        do throws(UnixError) {
            try UnixSocket.setTimeouts(fd, seconds: timeout)
            try StreamIO.writeAll(fd, bytes)
            line = try StreamIO.readLine(fd, limit: 16 << 20)
        } catch {
            throw Failure(notRunning: false, description: "\(path): \(error.detail)")
        }
        guard let line, let answer = try? JSONValue.parse(Array(line.utf8)) else {
            throw Failure(notRunning: false, description: "\(path): uspd closed the connection without an answer")
        }
        guard answer["ok"]?.boolValue == true else {
            throw Failure(notRunning: false, description: answer["message"]?.stringValue ?? "uspd refused the request")
        }
        return answer
    }
}
