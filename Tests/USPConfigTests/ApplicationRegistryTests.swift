import Foundation
import Synchronization
import Testing
import USPTestSupport
@testable import USPConfig

@Suite("ApplicationRegistry")
struct ApplicationRegistryTests {
    @Test func emptyDirectory() {
        let dir = TempDirectory()
        let registry = ApplicationRegistry()
        let r = registry.reload(directory: dir.path)
        #expect(r == ReloadReport())
        #expect(r.isClean)
        #expect(registry.snapshot().isEmpty)
    }

    @Test func addEditRemove() throws {
        let dir = TempDirectory()
        let registry = ApplicationRegistry(defaultTokenLifetime: 30)
        dir.write("ssh.toml", app(name: "ssh"))
        dir.write("cat.toml", app(name: "cat"))
        var r = registry.reload(directory: dir.path)
        #expect(r.added == ["cat", "ssh"] && r.removed.isEmpty && r.changed.isEmpty && r.isClean)
        #expect(registry.snapshot().map(\.name) == ["cat", "ssh"])
        #expect(registry.application(named: "ssh")?.sourcePath == dir.file("ssh.toml"))
        #expect(registry.application(named: "ssh")?.limits.tokenLifetime == 30)

        // Unchanged: nothing to report.
        r = registry.reload(directory: dir.path)
        #expect(r == ReloadReport())

        // Edited.
        dir.write("ssh.toml", app("description = \"now with words\"", name: "ssh"))
        r = registry.reload(directory: dir.path)
        #expect(r.changed == ["ssh"] && r.added.isEmpty && r.removed.isEmpty)
        #expect(registry.application(named: "ssh")?.description == "now with words")

        // Removed.
        dir.remove("cat.toml")
        r = registry.reload(directory: dir.path)
        #expect(r.removed == ["cat"])
        #expect(registry.application(named: "cat") == nil)
        #expect(registry.snapshot().map(\.name) == ["ssh"])

        // A file renames its application: the old name goes, the new one comes.
        dir.write("ssh.toml", app(name: "openssh"))
        r = registry.reload(directory: dir.path)
        #expect(r.added == ["openssh"] && r.removed == ["ssh"])
    }

    @Test func invalidFileKeepsItsPreviousDefinition() throws {
        let dir = TempDirectory()
        let registry = ApplicationRegistry()
        let path = dir.write("ssh.toml", app("description = \"v1\"", name: "ssh"))
        registry.reload(directory: dir.path)
        let v1 = try #require(registry.application(named: "ssh"))

        dir.write("ssh.toml", "name = \"ssh\"\ndescription = \"v2\"\n  visiblity = \"public\"\n[launch]\ntcp = \"127.0.0.1:22\"\n")
        var r = registry.reload(directory: dir.path)
        #expect(r.problems.map(\.description) == ["\(path):3:3: unknown key \"visiblity\" (did you mean \"visibility\"?)"])
        #expect(r.keptPrevious == [path])
        #expect(r.added.isEmpty && r.removed.isEmpty && r.changed.isEmpty)
        #expect(registry.application(named: "ssh") == v1)

        // Still invalid at the next reload (a syntax error now): still v1.
        dir.write("ssh.toml", "name = \"ssh\"\n[launch\n")
        r = registry.reload(directory: dir.path)
        #expect(r.problems.count == 1 && r.problems[0].code == .syntax && r.problems[0].path == path && r.problems[0].line == 2)
        #expect(registry.application(named: "ssh") == v1)

        // Fixed: the new definition replaces v1.
        dir.write("ssh.toml", app("description = \"v3\"", name: "ssh"))
        r = registry.reload(directory: dir.path)
        #expect(r.isClean && r.changed == ["ssh"])
        #expect(registry.application(named: "ssh")?.description == "v3")

        // Invalid, then removed: it goes (the kept definition does not outlive its file).
        dir.write("ssh.toml", "garbage =")
        registry.reload(directory: dir.path)
        #expect(registry.application(named: "ssh") != nil)
        dir.remove("ssh.toml")
        r = registry.reload(directory: dir.path)
        #expect(r.removed == ["ssh"] && r.isClean)
        #expect(registry.snapshot().isEmpty)
    }

    @Test func invalidNewFileAddsNothing() {
        let dir = TempDirectory()
        let registry = ApplicationRegistry()
        dir.write("good.toml", app(name: "good"))
        let bad = dir.write("bad.toml", "name = \"bad\"\n[launch]\ntcp = \"nowhere\"\n")
        let r = registry.reload(directory: dir.path)
        #expect(r.added == ["good"])
        #expect(r.keptPrevious.isEmpty)
        #expect(r.problems.map(\.description) == [
            "\(bad):3:7: launch.tcp: \"nowhere\": expected host:port, for example 127.0.0.1:7300 or [::1]:7300",
        ])
        #expect(registry.application(named: "bad") == nil)
    }

    @Test func duplicateNamesLaterFileIsIgnored() throws {
        let dir = TempDirectory()
        let registry = ApplicationRegistry()
        let a = dir.write("a-ssh.toml", app("description = \"first\"", name: "ssh"))
        let b = dir.write("b-ssh.toml", "# another copy\nname = \"ssh\"\ndescription = \"second\"\n[launch]\ntcp = \"127.0.0.1:2222\"\n")
        let r = registry.reload(directory: dir.path)
        #expect(r.added == ["ssh"])
        #expect(r.problems.map(\.description) == ["\(b):2:8: application \"ssh\" is already defined in \(a); this file is ignored"])
        #expect(r.problems.first?.code == .duplicateName)
        #expect(registry.application(named: "ssh")?.description == "first")
        #expect(registry.snapshot().count == 1)

        // The first file goes: the second one takes the name.
        dir.remove("a-ssh.toml")
        let r2 = registry.reload(directory: dir.path)
        #expect(r2.isClean && r2.changed == ["ssh"])
        #expect(registry.application(named: "ssh")?.description == "second")
    }

    @Test func onlyVisibleTOMLFilesCount() throws {
        let dir = TempDirectory()
        let registry = ApplicationRegistry()
        dir.write("ssh.toml", app(name: "ssh"))
        dir.write(".#ssh.toml", app(name: "lock"))       // an editor's lock file
        dir.write("ssh.toml~", app(name: "backup"))
        dir.write("README", "not an app")
        dir.write(".toml", app(name: "dot"))
        try FileManager.default.createDirectory(atPath: dir.file("sub.toml"), withIntermediateDirectories: false)
        let r = registry.reload(directory: dir.path)
        #expect(r.isClean)
        #expect(registry.snapshot().map(\.name) == ["ssh"])
    }

    @Test func unreadableDirectoryKeepsEverything() {
        let dir = TempDirectory()
        let registry = ApplicationRegistry()
        dir.write("ssh.toml", app(name: "ssh"))
        registry.reload(directory: dir.path)
        let gone = dir.file("nope")
        let r = registry.reload(directory: gone)
        #expect(r.problems.map(\.description) == ["\(gone): cannot read the applications directory: No such file or directory"])
        #expect(registry.snapshot().map(\.name) == ["ssh"])
        let file = dir.file("ssh.toml")
        #expect(registry.reload(directory: file).problems.first?.message == "cannot read the applications directory: not a directory")
    }

    @Test func visibleFiltersByIdentityAndGroup() {
        let dir = TempDirectory()
        let registry = ApplicationRegistry()
        dir.write("pub.toml", app("visibility = \"public\"", name: "pub"))
        dir.write("auth.toml", app("visibility = \"authenticated\"", name: "auth"))
        dir.write("admin.toml", app("visibility = [\"group:admins\", \"root\"]", name: "admin"))
        registry.reload(directory: dir.path)
        #expect(registry.visible(to: nil, groups: []).map(\.name) == ["pub"])
        #expect(registry.visible(to: "alice", groups: []).map(\.name) == ["auth", "pub"])
        #expect(registry.visible(to: "alice", groups: ["admins"]).map(\.name) == ["admin", "auth", "pub"])
        #expect(registry.visible(to: "root", groups: []).map(\.name) == ["admin", "auth", "pub"])
    }

    @Test func readersSeeWholeSnapshotsWhileReloading() async throws {
        let dir = TempDirectory()
        let registry = ApplicationRegistry()
        for i in 0..<10 { dir.write("a\(i).toml", app(name: "a\(i)")) }
        registry.reload(directory: dir.path)
        // Flip between two states of 10 apps: a0…a9 and b0…b9. A reader must never see a mix.
        let setA = Set((0..<10).map { "a\($0)" }), setB = Set((0..<10).map { "b\($0)" })
        let mixes = Counter()
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for round in 0..<30 {
                    for i in 0..<10 { dir.write("a\(i).toml", app(name: round % 2 == 0 ? "b\(i)" : "a\(i)")) }
                    registry.reload(directory: dir.path)
                }
            }
            for _ in 0..<3 {
                group.addTask {
                    for _ in 0..<300 {
                        let names = Set(registry.snapshot().map(\.name))
                        if names != setA && names != setB { mixes.add() }
                    }
                }
            }
        }
        #expect(mixes.value == 0)
    }
}

@Suite("DirectoryFingerprint and ApplicationRegistryWatcher")
struct WatcherTests {
    @Test func fingerprintChangesOnEveryKindOfChange() throws {
        let dir = TempDirectory()
        let empty = DirectoryFingerprint(directory: dir.path)
        #expect(empty == DirectoryFingerprint(directory: dir.path))
        dir.write("a.toml", app(name: "a"))
        let one = DirectoryFingerprint(directory: dir.path)
        #expect(one != empty)
        #expect(one == DirectoryFingerprint(directory: dir.path))
        // Same size, same name, different content, modification time put back: the change time moves.
        let path = dir.file("a.toml")
        let mtime = try FileManager.default.attributesOfItem(atPath: path)[.modificationDate] as! Date
        usleep(20_000)
        dir.write("a.toml", app(name: "b"))
        try FileManager.default.setAttributes([.modificationDate: mtime], ofItemAtPath: path)
        #expect(DirectoryFingerprint(directory: dir.path) != one)
        let edited = DirectoryFingerprint(directory: dir.path)
        dir.write("notes.txt", "ignored")
        #expect(DirectoryFingerprint(directory: dir.path) == edited)
        dir.remove("a.toml")
        #expect(DirectoryFingerprint(directory: dir.path) == empty)
        #expect(DirectoryFingerprint(directory: dir.file("missing")) != empty)
    }

    @Test func aFileThatIsFixedIsReported() throws {
        let dir = TempDirectory()
        dir.write("a.toml", app(name: "a"))
        let problems = Mutex<[String]>([]), healed = Mutex<[String]>([])
        let watcher = ApplicationsWatcher(directory: dir.path, defaultTokenLifetime: 60,
                                          report: { p in problems.withLock { $0.append(p.path) } },
                                          fixed: { p in healed.withLock { $0.append(p) } })
        _ = watcher.load()
        dir.write("a.toml", "name = \"a\"\nbroken =")
        _ = watcher.load()
        #expect(problems.withLock { $0 } == [dir.file("a.toml")])
        #expect(healed.withLock { $0 }.isEmpty)
        dir.write("a.toml", app(name: "a") + "\n# fixed\n")
        _ = watcher.load()
        #expect(healed.withLock { $0 } == [dir.file("a.toml")], "the fix is reported once")
        dir.write("a.toml", app(name: "a") + "\n# fixed again\n")
        _ = watcher.load()
        #expect(healed.withLock { $0 }.count == 1)
    }

    @Test func watcherReloadsWhenTheDirectoryChanges() async throws {
        let dir = TempDirectory()
        dir.write("a.toml", app(name: "a"))
        let registry = ApplicationRegistry()
        let reports = ReportLog()
        let watcher = ApplicationRegistryWatcher(registry: registry, directory: dir.path, interval: .milliseconds(20)) { reports.add($0) }
        watcher.start()
        defer { watcher.stop() }
        #expect(reports.all.map(\.added) == [["a"]])  // start() loads before returning
        #expect(registry.snapshot().map(\.name) == ["a"])

        try await Task.sleep(for: .milliseconds(100))
        #expect(reports.all.count == 1)  // nothing changed, nothing reloaded

        dir.write("b.toml", app(name: "b"))
        // The registry changes before the report is made: wait for both.
        try await waitUntil { registry.application(named: "b") != nil && reports.all.count >= 2 }
        #expect(reports.all.last?.added == ["b"])

        dir.write("b.toml", "broken =")
        try await waitUntil { reports.all.last?.problems.isEmpty == false }
        #expect(reports.all.last?.keptPrevious == [dir.file("b.toml")])
        #expect(registry.application(named: "b") != nil)

        dir.remove("b.toml")
        try await waitUntil { registry.application(named: "b") == nil }
        #expect(reports.all.last?.removed == ["b"])

        let forced = watcher.reloadNow()
        #expect(forced.isClean && forced.added.isEmpty)
    }
}

func waitUntil(timeout: Duration = .seconds(5), _ condition: @Sendable () -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while !condition() {
        if ContinuousClock.now > deadline {
            Issue.record("condition not met within \(timeout)")
            return
        }
        try await Task.sleep(for: .milliseconds(10))
    }
}

final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func add() { lock.lock(); n += 1; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return n }
}

final class ReportLog: @unchecked Sendable {
    private let lock = NSLock()
    private var reports: [ReloadReport] = []
    func add(_ r: ReloadReport) { lock.lock(); reports.append(r); lock.unlock() }
    var all: [ReloadReport] { lock.lock(); defer { lock.unlock() }; return reports }
}
