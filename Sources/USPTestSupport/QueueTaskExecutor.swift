import Dispatch

/// A task executor on a serial dispatch queue of its own: tasks that prefer it run off Swift's
/// cooperative pool, which the test runner fills with blocking synchronous tests (two threads on
/// a two-core machine). An in-process application served this way answers within a test's
/// deadline however busy the pool is.
public final class QueueTaskExecutor: TaskExecutor, @unchecked Sendable {
    private let queue: DispatchQueue

    public init(label: String) {
        queue = DispatchQueue(label: label)
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        queue.async { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
