import Glibc

/// A detached POSIX thread running a closure, for the client's few blocking loops (stdin's reader,
/// the agent's accept loop). `Foundation.Thread` did this, but it is the only reason the client
/// would link all of Foundation: CoreFoundation and ICU add about 60,000 relocations that every
/// `usp` start would pay for.
public enum PosixThread {
    /// Starts `body` on a new detached thread named `name` (at most 15 bytes are kept).
    public static func detach(name: String? = nil, _ body: @escaping @Sendable () -> Void) {
        let box = Unmanaged.passRetained(Body(name: name, run: body)).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { raw in
            let body = Unmanaged<Body>.fromOpaque(raw!).takeRetainedValue()
            if let name = body.name { PosixThread.nameThisThread(name) }
            body.run()
            return nil
        }, box)
        guard rc == 0 else {
            Unmanaged<Body>.fromOpaque(box).release()
            fatalError("pthread_create failed: \(String(cString: strerror(rc)))")
        }
        pthread_detach(thread)
    }

    /// Names the calling thread (ps -L, /proc/PID/task/TID/comm), as pthread_setname_np does.
    static func nameThisThread(_ name: String) {
        let fd = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        let bytes = Array(name.utf8.prefix(15))
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
    }

    private final class Body {
        let name: String?
        let run: @Sendable () -> Void
        init(name: String?, run: @escaping @Sendable () -> Void) {
            self.name = name
            self.run = run
        }
    }
}

/// A mutex with a condition variable (what `NSCondition` is), on pthreads.
public final class ConditionLock: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    public init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    public func lock() { pthread_mutex_lock(mutex) }
    public func unlock() { pthread_mutex_unlock(mutex) }
    public func wait() { pthread_cond_wait(condition, mutex) }
    public func broadcast() { pthread_cond_broadcast(condition) }

    /// Waits at most until `deadline`, a CLOCK_REALTIME time in seconds since the epoch; false
    /// when it passed.
    @discardableResult
    public func wait(untilEpochSeconds deadline: Double) -> Bool {
        var ts = timespec(tv_sec: Int(deadline), tv_nsec: Int((deadline - deadline.rounded(.down)) * 1e9))
        return pthread_cond_timedwait(condition, mutex, &ts) == 0
    }
}
