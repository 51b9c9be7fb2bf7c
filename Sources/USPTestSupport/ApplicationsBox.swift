import Synchronization
import USPConfig

/// A list of applications behind a lock: what a `TestDaemon` loads on each reload.
public final class ApplicationsBox: Sendable {
    private let value: Mutex<[ApplicationDefinition]>
    public init(_ v: [ApplicationDefinition]) { value = Mutex(v) }
    public func withLock<R>(_ body: (inout [ApplicationDefinition]) -> R) -> R { value.withLock { body(&$0) } }
}
