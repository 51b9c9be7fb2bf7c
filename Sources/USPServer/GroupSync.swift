import Dispatch
import NIOCore
import Synchronization
import USPStore

/// Makes committed writes durable off the event loops, many at a time: whoever asks while no sync
/// runs starts one (`USPStore.syncDurably`, an fsync) on a queue of its own; whoever asks while
/// one runs waits for the next, because the running fsync may have started before their commit.
/// So concurrent grants share one fsync, and no event loop ever waits for the disk: it gets a
/// future, completed on its own loop once the rows it committed are on disk.
final class GroupSync: Sendable {
    private struct Waiters {
        var running = false
        var current: [EventLoopPromise<Void>] = []
        var next: [EventLoopPromise<Void>] = []
    }

    private let store: any USPStore
    private let queue = DispatchQueue(label: "uspd.group-sync")
    private let waiters = Mutex(Waiters())

    private let metrics: ServerMetrics

    init(store: any USPStore, metrics: ServerMetrics = ServerMetrics()) {
        self.store = store
        self.metrics = metrics
    }


    /// Completes on `loop` once everything committed before this call is durable; fails if the
    /// store could not make it so.
    func whenDurable(on loop: any EventLoop) -> EventLoopFuture<Void> {
        let promise = loop.makePromise(of: Void.self)
        let start = waiters.withLock { w -> Bool in
            if w.running {
                w.next.append(promise)
                return false
            }
            w.running = true
            w.current = [promise]
            return true
        }
        if start { queue.async { [self] in runSyncs() } }
        return promise.futureResult
    }

    private func runSyncs() {
        while true {
            let batch = waiters.withLock { w in w.current }
            let outcome = Result { try metrics.timedSync { try store.syncDurably() } }
            if case .failure = outcome { metrics.storeError("sync") }
            for promise in batch { promise.completeWith(outcome) }
            let more = waiters.withLock { w -> Bool in
                w.current = w.next
                w.next = []
                if w.current.isEmpty { w.running = false }
                return w.running
            }
            guard more else { return }
        }
    }
}
