import Synchronization

/// apps.d as the daemon reads it: one registry kept across reloads, so a file that stops loading
/// keeps its last good definition (and its problem is reported), and nothing is read while the
/// directory's `DirectoryFingerprint` is unchanged. The daemon calls `load()` at start and on
/// every poll; SIGHUP calls `forceNext()` first.
public final class ApplicationsWatcher: Sendable {
    public let directory: String
    public let registry: ApplicationRegistry
    private let last = Mutex<DirectoryFingerprint?>(nil)
    private let report: @Sendable (ConfigError) -> Void

    /// `defaultTokenLifetime`: uspd.toml `application_token_lifetime`, for applications whose
    /// file sets no `token_lifetime`. `report` hears each problem of a reload.
    public init(directory: String, defaultTokenLifetime: Int, report: @escaping @Sendable (ConfigError) -> Void) {
        self.directory = directory
        self.registry = ApplicationRegistry(defaultTokenLifetime: defaultTokenLifetime)
        self.report = report
    }

    /// The applications now, reloading apps.d first if it changed.
    public func load() -> [ApplicationDefinition] {
        let fingerprint = DirectoryFingerprint(directory: directory)
        let changed = last.withLock { old -> Bool in
            defer { old = fingerprint }
            return old != fingerprint
        }
        if changed {
            for problem in registry.reload(directory: directory).problems { report(problem) }
        }
        return registry.snapshot()
    }

    /// Makes the next `load()` read everything again, even if nothing seems to have changed.
    public func forceNext() { last.withLock { $0 = nil } }
}
