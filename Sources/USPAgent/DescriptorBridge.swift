import USPClient
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import USPUnix

/// `usp connect` through the agent: a plain copy between stdin/stdout and the stream's
/// descriptor, one thread each way, each byte written as soon as it is read. End of input
/// becomes shutdown(SHUT_WR) (the application reads end of file); the stream's end of file ends
/// the bridge.
public enum DescriptorBridge {
    /// Runs until the descriptor's end of file; the input thread may still be blocked in read
    /// when this returns (the caller exits the process). Closes `socket`.
    public static func run(socket: CInt, input: CInt = STDIN_FILENO, output: CInt = STDOUT_FILENO) async throws {
        PosixThread.detach {
            copy(from: input, to: socket, isSocket: true)
            shutdown(socket, CInt(SHUT_WR))
        }
        let failure: String? = await withCheckedContinuation { c in
            PosixThread.detach { c.resume(returning: copy(from: socket, to: output, isSocket: false)) }
        }
        close(socket)
        if let failure { throw AgentError(.systemCall, failure) }
    }

    /// Copies until end of file; returns what failed, if anything (a failed write ends the copy).
    @discardableResult
    static func copy(from source: CInt, to sink: CInt, isSocket: Bool) -> String? {
        var buffer = [UInt8](repeating: 0, count: 256 * 1024)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(source, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                return isSocket ? "cannot read standard input: \(String(cString: strerror(errno)))"
                                : "the stream failed: \(String(cString: strerror(errno)))"
            }
            if n == 0 { return nil }
            do throws(UnixError) {
                try StreamIO.writeAll(sink, Array(buffer[0..<n]))
            } catch {
                return isSocket ? "the stream is closed: \(error.detail)" : "cannot write standard output: \(error.detail)"
            }
        }
    }
}
