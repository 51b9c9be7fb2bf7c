import Logging
import NIOCore
import USPCore
import USPNIO

/// An application that starts once its `stream_opened` row is on disk. Until then it keeps what
/// the session hands it (at most the stream's window of client bytes, and the half-close), then
/// launches and replays it in order. If the row cannot be made durable the application never
/// starts and the stream is reset with `stream_refused` (audit fails closed). The wait runs on no
/// thread: the event loop serves other sessions meanwhile.
final class DeferredLaunch: ServerStreamApplication {
    private enum Held {
        case data(ByteBuffer)
        case finished
        case writable
    }

    private let port: ServerStreamPort
    private var application: (any ServerStreamApplication)?
    private var held: [Held] = []
    private var closedCode: USPError.Code?

    /// - Parameters:
    ///   - durable: succeeds once the stream's audit row is on disk.
    ///   - launch: starts the application (called at most once, on the port's event loop).
    ///   - abandon: gives back what was reserved for it when it will never start.
    init(port: ServerStreamPort, durable: EventLoopFuture<Void>, logger: Logger,
         launch: @escaping () -> any ServerStreamApplication, abandon: @escaping () -> Void) {
        self.port = port
        durable.assumeIsolated().whenComplete { [self] result in
            switch result {
            case .success:
                guard closedCode == nil else { abandon(); return }
                let started = launch()
                application = started
                let backlog = held
                held = []
                for item in backlog {
                    switch item {
                    case .data(let bytes): started.received(bytes)
                    case .finished: started.clientFinished()
                    case .writable: started.writable()
                    }
                }
                if !backlog.isEmpty { started.receivedBatchEnded() }
            case .failure(let error):
                logger.error("stream \(port.stream) refused: its audit row could not be made durable: \(error)")
                abandon()
                held = []
                if closedCode == nil { port.reset(code: .streamRefused) }
            }
        }
    }

    func received(_ data: ByteBuffer) {
        if let application { application.received(data) } else { held.append(.data(data)) }
    }

    func clientFinished() {
        if let application { application.clientFinished() } else { held.append(.finished) }
    }

    func writable() {
        if let application { application.writable() } else { held.append(.writable) }
    }

    func receivedBatchEnded() {
        application?.receivedBatchEnded()
    }

    func closed(code: USPError.Code) {
        if let application { application.closed(code: code) } else { closedCode = code; held = [] }
    }
}
