import Foundation
import NIOCore
import NIOPosix
import USPUnix

#if canImport(Glibc)
import Glibc
#endif

/// Where an application's sessions come from, as an async sequence of `ApplicationSession`:
///
/// - exec'd by uspd with `stream = "fd3"` (LISTEN_FDS, `SocketActivation`): exactly one session,
///   its metadata from the `USP_*` variables;
/// - otherwise a `unix` socket the application listens on: one session per uspd hand-off, for as
///   long as the sequence is iterated. A relay-free hand-off (`relay_free = true`) is served over
///   the client's TCP connection itself and looks the same (`SessionMetadata.relayFree` tells).
///
/// A hand-off that is malformed (bad framing, bad JSON, too large, no descriptor) is answered
/// with an error line, reported to `onError`, and skipped: later sessions are still served.
///
/// ```swift
/// let sessions = try ApplicationListener.sessions(socketPath: "/run/myapp.sock")
/// try await withThrowingDiscardingTaskGroup { group in
///     for await session in sessions {
///         group.addTask { try await serve(session) }
///     }
/// }
/// ```
public enum ApplicationListener {
    /// The sessions of this process: socket activation if the environment says so, else the
    /// socket at `socketPath` (created; a stale socket file is replaced). Neither: `notConfigured`.
    public static func sessions(socketPath: String?, environment: [String: String] = ProcessInfo.processInfo.environment,
                                group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                                onError: @escaping @Sendable (USPAppError) -> Void = ApplicationListener.logToStandardError)
        throws(USPAppError) -> AsyncStream<ApplicationSession> {
        if let fd = SocketActivation.streamDescriptor(environment: environment) {
            SocketActivation.unsetEnvironment()
            let metadata = try SessionMetadata(environment: environment)
            return activated(metadata: metadata, descriptor: fd, group: group, onError: onError)
        }
        guard let socketPath else {
            throw USPAppError(.notConfigured, "no socket path given and not started by uspd with stream = \"fd3\" (no LISTEN_FDS)")
        }
        return try listening(at: socketPath, group: group, onError: onError)
    }

    /// One session on an already connected descriptor (fd 3 of an exec'd application).
    static func activated(metadata: SessionMetadata, descriptor: CInt, group: any EventLoopGroup,
                          onError: @escaping @Sendable (USPAppError) -> Void) -> AsyncStream<ApplicationSession> {
        AsyncStream { continuation in
            let task = Task {
                do {
                    continuation.yield(try await ApplicationSession.make(metadata: metadata, descriptor: descriptor, group: group))
                } catch {
                    onError(USPAppError(.io, "fd \(descriptor): \(error)"))
                }
                continuation.finish()
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    /// Sessions handed over on a listening socket at `path`.
    /// `executor`: where each session's set-up runs (Swift's global executor if nil). A program
    /// whose cooperative pool may be busy with blocking work passes one of its own, so that a
    /// client's session is not kept waiting behind that work.
    public static func listening(at path: String, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                                 executor: (any TaskExecutor)? = nil,
                                 onError: @escaping @Sendable (USPAppError) -> Void = ApplicationListener.logToStandardError)
        throws(USPAppError) -> AsyncStream<ApplicationSession> {
        let listener: CInt
        do throws(UnixError) {
            listener = try UnixSocket.listen(at: try UnixSocketAddress(path: path))
        } catch {
            throw USPAppError(.io, "listen on \(path): \(error.detail)")
        }
        return AsyncStream { continuation in
            let acceptor = Thread {
                while true {
                    let connection: CInt
                    do throws(UnixError) {
                        connection = try UnixSocket.accept(listener)
                    } catch {
                        if error.code == .descriptorsExhausted {
                            onError(USPAppError(.io, "accept on \(path): \(error.detail)"))
                            usleep(100_000)
                            continue
                        }
                        break  // the listener was shut down
                    }
                    // Each hand-off is read on its own, so a slow or silent peer delays nobody else.
                    DispatchQueue.global().async {
                        do throws(USPAppError) {
                            let handoff = try HandoffReceiver.receiveHandoff(on: connection)
                            Task(executorPreference: executor) {
                                do {
                                    continuation.yield(try await ApplicationSession.make(handoff, group: group))
                                } catch {
                                    onError(USPAppError(.io, "session \(handoff.metadata.session): \(error)"))
                                }
                            }
                        } catch {
                            onError(error)
                        }
                    }
                }
                close(listener)
                continuation.finish()
            }
            continuation.onTermination = { _ in
                // Wakes the blocked accept; the thread then closes the listener.
                shutdown(listener, CInt(SHUT_RDWR))
                unlink(path)
            }
            acceptor.name = "USPApp accept \(path)"
            acceptor.start()
        }
    }

    /// The default `onError`: one line on stderr, named after the program.
    @Sendable public static func logToStandardError(_ error: USPAppError) {
        let program = CommandLine.arguments.first.map { ($0 as NSString).lastPathComponent } ?? "app"
        FileHandle.standardError.write(Data("\(program): hand-off refused: \(error)\n".utf8))
    }
}
