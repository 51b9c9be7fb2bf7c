import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What one `ApplicationRegistry.reload(directory:)` did.
public struct ReloadReport: Hashable, Sendable {
    /// Application names now offered that were not before.
    public var added: [String] = []
    /// Names no longer offered (their file was removed, or renamed the application).
    public var removed: [String] = []
    /// Names still offered whose definition changed.
    public var changed: [String] = []
    /// Every problem, each naming its file (and line and column when it has them): invalid
    /// files, duplicate names, an unreadable directory.
    public var problems: [ConfigError] = []
    /// Files that are invalid now but were valid before: their previous definition stays in force.
    public var keptPrevious: [String] = []

    public init() {}

    /// True when nothing needs a person's attention.
    public var isClean: Bool { problems.isEmpty }
}

/// The applications of `apps.d`, safe to read from any thread while another reloads.
///
/// `reload(directory:)` reads every `*.toml` file in the directory (not hidden files such as an
/// editor's `.#ssh.toml`, not subdirectories), in file-name order:
/// - A valid file defines its application.
/// - An invalid file is reported (its path and problem). If the same file was valid at an
///   earlier reload, that earlier definition stays in force; a file that was never valid adds nothing.
/// - A name already defined by an earlier file (in file-name order) is reported at the later
///   file, which is ignored.
/// - A file that is gone takes its application with it.
/// - If the directory itself cannot be read, that is reported and everything stays as it was.
///
/// Readers get a consistent snapshot: a reload swaps the whole table under the lock at the end.
/// Reloads are serialised (a second caller waits for the first).
public final class ApplicationRegistry: @unchecked Sendable {
    private let lock = NSLock()
    private let reloadLock = NSLock()
    /// By name: what sessions see.
    private var active: [String: ApplicationDefinition] = [:]
    /// By file name: the last definition each file had when it was valid.
    private var lastValid: [String: ApplicationDefinition] = [:]
    private let defaultTokenLifetime: Int

    /// - Parameter defaultTokenLifetime: the lifetime of application tokens for applications
    ///   whose file does not set `limits.token_lifetime` (uspd.toml `application_token_lifetime`).
    public init(defaultTokenLifetime: Int = 60) {
        self.defaultTokenLifetime = defaultTokenLifetime
    }

    /// Every application, sorted by name.
    public func snapshot() -> [ApplicationDefinition] {
        lock.lock()
        defer { lock.unlock() }
        return active.values.sorted { $0.name < $1.name }
    }

    public func application(named name: String) -> ApplicationDefinition? {
        lock.lock()
        defer { lock.unlock() }
        return active[name]
    }

    /// Applications `identity` (nil before login) in `groups` may see, sorted by name.
    public func visible(to identity: String?, groups: [String]) -> [ApplicationDefinition] {
        snapshot().filter { $0.isVisible(to: identity, groups: groups) }
    }

    @discardableResult
    public func reload(directory: String) -> ReloadReport {
        reloadLock.lock()
        defer { reloadLock.unlock() }
        var report = ReloadReport()

        let files: [String]
        switch Self.listTOMLFiles(directory) {
        case .success(let f): files = f
        case .failure(let e):
            report.problems.append(e)
            return report
        }

        var nextLastValid: [String: ApplicationDefinition] = [:]
        var candidates: [(file: String, app: ApplicationDefinition)] = []
        for file in files {
            let path = Self.join(directory, file)
            do {
                let app = try ApplicationLoader.load(path: path, defaultTokenLifetime: defaultTokenLifetime)
                nextLastValid[file] = app
                candidates.append((file, app))
            } catch {
                report.problems.append(error)
                if let previous = lastValid[file] {
                    nextLastValid[file] = previous
                    candidates.append((file, previous))
                    report.keptPrevious.append(path)
                }
            }
        }

        var next: [String: ApplicationDefinition] = [:]
        var owner: [String: String] = [:]
        for (file, app) in candidates {
            if let first = owner[app.name] {
                let path = Self.join(directory, file)
                let position = Self.namePosition(path)
                report.problems.append(ConfigError(.duplicateName, path: path, line: position?.line, column: position?.column,
                    "application \"\(app.name)\" is already defined in \(Self.join(directory, first)); this file is ignored"))
                continue
            }
            owner[app.name] = file
            next[app.name] = app
        }

        lock.lock()
        let previous = active
        active = next
        lastValid = nextLastValid
        lock.unlock()

        report.added = next.keys.filter { previous[$0] == nil }.sorted()
        report.removed = previous.keys.filter { next[$0] == nil }.sorted()
        report.changed = next.keys.filter { previous[$0] != nil && previous[$0] != next[$0] }.sorted()
        return report
    }

    /// `*.toml` regular files (or links to them), not hidden, sorted by name.
    static func listTOMLFiles(_ directory: String) -> Result<[String], ConfigError> {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            var st = stat()
            let why = stat(directory, &st) != 0 ? String(cString: strerror(errno))
                : (st.st_mode & S_IFMT != S_IFDIR ? "not a directory" : "cannot list it")
            return .failure(ConfigError(.unreadable, path: directory, "cannot read the applications directory: \(why)"))
        }
        return .success(names.filter { name in
            guard name.hasSuffix(".toml"), !name.hasPrefix("."), name.count > 5 else { return false }
            var st = stat()
            return stat(join(directory, name), &st) == 0 && st.st_mode & S_IFMT == S_IFREG
        }.sorted())
    }

    static func join(_ directory: String, _ file: String) -> String {
        directory.hasSuffix("/") ? directory + file : directory + "/" + file
    }

    static func namePosition(_ path: String) -> TOMLPositions.Position? {
        guard let text = try? TOMLReader.readText(path) else { return nil }
        return TOMLPositions(text).value(["name"])
    }
}

/// A cheap summary of a directory's `*.toml` files (name, size, inode, modification and change
/// times in nanoseconds): it changes when a file is added, removed, renamed, written or replaced.
/// The change time is set by the kernel on every write, so even `cp -p` or `touch -r` that restore
/// the modification time still change it.
public struct DirectoryFingerprint: Hashable, Sendable {
    struct Entry: Hashable, Sendable {
        var name: String
        var size: Int64
        var inode: UInt64
        var modified: Int64
        var changed: Int64
    }
    var entries: [Entry]
    /// Set when the directory could not be listed.
    var unreadable: Bool

    /// The fingerprint of `directory` now.
    public init(directory: String) {
        switch ApplicationRegistry.listTOMLFiles(directory) {
        case .failure:
            entries = []
            unreadable = true
        case .success(let files):
            unreadable = false
            entries = files.compactMap { name in
                var st = stat()
                guard stat(ApplicationRegistry.join(directory, name), &st) == 0 else { return nil }
                #if canImport(Darwin)
                let m = Int64(st.st_mtimespec.tv_sec) * 1_000_000_000 + Int64(st.st_mtimespec.tv_nsec)
                let c = Int64(st.st_ctimespec.tv_sec) * 1_000_000_000 + Int64(st.st_ctimespec.tv_nsec)
                #else
                let m = Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
                let c = Int64(st.st_ctim.tv_sec) * 1_000_000_000 + Int64(st.st_ctim.tv_nsec)
                #endif
                return Entry(name: name, size: Int64(st.st_size), inode: UInt64(st.st_ino), modified: m, changed: c)
            }
        }
    }
}

/// Polls a directory and reloads an `ApplicationRegistry` when its `DirectoryFingerprint`
/// changes, so edits to `apps.d` reach new sessions' menus without a restart and without
/// inotify. Reloads happen on a private serial queue; `onReload` receives each report there.
///
/// A file edited in place may be read half-written; it is then invalid, reported, and the
/// previous definition stays until the next poll sees the finished file (its change time moved).
///
/// `start()` and `reloadNow()` wait on the watcher's queue: do not call them from `onReload`.
public final class ApplicationRegistryWatcher: @unchecked Sendable {
    public let registry: ApplicationRegistry
    public let directory: String
    public let interval: Duration
    private let onReload: @Sendable (ReloadReport) -> Void
    private let queue = DispatchQueue(label: "USPConfig.ApplicationRegistryWatcher")
    private let lock = NSLock()
    private var timer: DispatchSourceTimer?
    private var last: DirectoryFingerprint?

    public init(registry: ApplicationRegistry, directory: String, interval: Duration = .seconds(2),
                onReload: @escaping @Sendable (ReloadReport) -> Void) {
        self.registry = registry
        self.directory = directory
        self.interval = interval
        self.onReload = onReload
    }

    /// Loads now (calling `onReload` before returning) and starts polling.
    public func start() {
        queue.sync { _ = self.check(force: true) }
        let t = DispatchSource.makeTimerSource(queue: queue)
        let ns = Int(interval.components.seconds) * 1_000_000_000 + Int(interval.components.attoseconds / 1_000_000_000)
        t.schedule(deadline: .now() + .nanoseconds(ns), repeating: .nanoseconds(max(ns, 1_000_000)))
        t.setEventHandler { [weak self] in self?.check(force: false) }
        lock.lock()
        timer?.cancel()
        timer = t
        lock.unlock()
        t.resume()
    }

    /// Reloads now whatever the fingerprint says (SIGHUP), returning the report; `onReload` gets it too.
    @discardableResult
    public func reloadNow() -> ReloadReport {
        queue.sync { self.check(force: true)! }
    }

    public func stop() {
        lock.lock()
        timer?.cancel()
        timer = nil
        lock.unlock()
    }

    deinit { timer?.cancel() }

    /// On the queue.
    @discardableResult
    private func check(force: Bool) -> ReloadReport? {
        let now = DirectoryFingerprint(directory: directory)
        if !force, now == last { return nil }
        let report = registry.reload(directory: directory)
        last = now
        onReload(report)
        return report
    }
}
