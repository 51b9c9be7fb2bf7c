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
    private let fixed: @Sendable (String) -> Void
    /// Files whose last reload had a problem.
    private let broken = Mutex<Set<String>>([])

    /// `defaultTokenLifetime`: uspd.toml `application_token_lifetime`, for applications whose
    /// file sets no `token_lifetime`. `report` hears each problem of a reload; `fixed` hears each
    /// file that had a problem and now loads (or is gone).
    public init(directory: String, defaultTokenLifetime: Int, report: @escaping @Sendable (ConfigError) -> Void,
                fixed: @escaping @Sendable (String) -> Void = { _ in }) {
        self.directory = directory
        self.registry = ApplicationRegistry(defaultTokenLifetime: defaultTokenLifetime)
        self.report = report
        self.fixed = fixed
    }

    /// The applications now, reloading apps.d first if it changed.
    public func load() -> [ApplicationDefinition] {
        let fingerprint = DirectoryFingerprint(directory: directory)
        let changed = last.withLock { old -> Bool in
            defer { old = fingerprint }
            return old != fingerprint
        }
        if changed {
            let problems = registry.reload(directory: directory).problems
            for problem in problems { report(problem) }
            let now = Set(problems.map(\.path))
            let healed = broken.withLock { b in defer { b = now }; return b.subtracting(now) }
            for path in healed.sorted() { fixed(path) }
        }
        return registry.snapshot()
    }

    /// Makes the next `load()` read everything again, even if nothing seems to have changed.
    public func forceNext() { last.withLock { $0 = nil } }
}
