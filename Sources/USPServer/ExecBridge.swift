import Foundation
import Logging
import NIOCore
import NIOPosix
import USPCore
import USPNIO

#if canImport(Glibc)
import Glibc
#endif

/// An exec'd command: its stdout is read and its stdin written through a pipe channel, or, with
/// `stream = "fd3"`, the daemon's end of the socketpair whose other end is the command's fd 3.
final class ExecBridge: ChannelBridge {
    let child: ChildProcess
    /// The daemon's socketpair end in fd3 mode.
    private let socket: CInt?

    init(port: ServerStreamPort, child: ChildProcess, socket: CInt?, logger: Logger, release: @escaping @Sendable () -> Void) {
        self.child = child
        self.socket = socket
        super.init(port: port, logger: logger, release: release)
    }

    func start() {
        let pid = child.pid
        if let socket {
            attachSocket(socket) { "fd 3 socket of pid \(pid)" }
            return
        }
        let future = NIOPipeBootstrap(group: port.eventLoop)
            .channelOption(ChannelOptions.allowRemoteHalfClosure, value: true)
            .channelInitializer(initializer())
            .takingOwnershipOfDescriptors(input: child.stdoutRead, output: child.stdinWrite)
        attach(when: future) { "pipes of pid \(pid)" }
    }

    override func stopped(code: USPError.Code) {
        // A stream that ended normally gives the command a moment to exit by itself; a reset or a
        // revocation terminates it at once. Either way it is killed if it lingers, and reaped.
        child.stop(graceful: code == .ok, on: port.eventLoop, logger: logger)
    }
}
