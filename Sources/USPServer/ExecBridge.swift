import Foundation
import Logging
import NIOCore
import NIOPosix
import USPCore
import USPNIO
import USPUnix

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

    /// The program's output ended (EOF on its stdout or fd 3). A program closes it when it exits,
    /// so uspd waits a moment for the exit: a program that crashed or exited with an error has
    /// its stream reset with `application_failed` (everything it wrote was delivered before), a
    /// clean exit ends it with FIN. A program that closed its output and keeps running gets FIN
    /// once `exitWait` has passed.
    override func applicationOutputDelivered() {
        awaitExit(delay: .zero, waited: .zero)
    }

    /// How long uspd waits after the program's EOF for its exit before it sends FIN anyway.
    static let exitWait: TimeAmount = .milliseconds(200)

    private func awaitExit(delay: TimeAmount, waited: TimeAmount) {
        let me = NIOLoopBound(self, eventLoop: port.eventLoop)
        port.eventLoop.scheduleTask(in: delay) {
            let bridge = me.value
            guard !bridge.closed else { return }
            if bridge.child.reapIfExited() {
                if bridge.child.failed {
                    bridge.port.reset(code: .applicationFailed)
                } else {
                    bridge.port.finish()
                }
            } else if waited >= Self.exitWait {
                bridge.port.finish()
            } else {
                // 1, 2, 4 … ms: an exiting process is reaped within a few; at most `exitWait` in all.
                let next = delay == .zero ? .milliseconds(1) : min(delay * 2, .milliseconds(50))
                bridge.awaitExit(delay: next, waited: waited + next)
            }
        }
    }

    override func stopped(code: USPError.Code) {
        // A stream that ended normally gives the command a moment to exit by itself; a reset or a
        // revocation terminates it at once. Either way it is killed if it lingers, and reaped.
        stopChild(graceful: code == .ok)
    }

    /// Stops the child once its stream is over: SIGTERM to its process group (after 2 s when
    /// graceful, else at once) unless it exited by itself, and SIGKILL three seconds later if it
    /// is still there. `ChildProcess` has it reaped.
    private func stopChild(graceful: Bool) {
        let termAfter: Int64 = graceful ? 2000 : 0
        let child = self.child
        let logger = self.logger
        let loop = port.eventLoop
        loop.scheduleTask(in: .milliseconds(termAfter)) {
            guard !child.reapIfExited() else { return }
            child.signalGroup(SIGTERM)
            loop.scheduleTask(in: .seconds(3)) {
                guard !child.reapIfExited() else { return }
                logger.notice("pid \(child.pid) ignored SIGTERM, killing it")
                child.signalGroup(SIGKILL)
            }
        }
    }
}
