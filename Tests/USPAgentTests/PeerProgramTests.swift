#if canImport(Glibc)
import Glibc
#endif
import Testing
import USPAgent

/// Who a request is accounted to (`PeerProgram.attributed`), with /proc answered by a table.
@Suite struct PeerProgramTests {
    struct Process {
        var parent: pid_t
        var uid: uid_t
        var executable: String?
        var arguments: [String]
    }

    func reader(_ table: [pid_t: Process]) -> ProcReader {
        ProcReader(parent: { table[$0]?.parent }, uid: { table[$0]?.uid }, executable: { table[$0]?.executable },
                   arguments: { table[$0]?.arguments })
    }

    let usp = "/usr/local/bin/usp"

    func peer(_ pid: pid_t, _ executable: String) -> PeerProgram {
        PeerProgram(uid: 1000, gid: 1000, pid: pid, executable: executable)
    }

    @Test func uspConnectSpeaksForItsParent() {
        let proc = reader([
            200: Process(parent: 100, uid: 1000, executable: usp, arguments: ["usp", "connect", "work", "ssh"]),
            100: Process(parent: 50, uid: 1000, executable: "/usr/bin/ssh", arguments: ["ssh", "work"]),
        ])
        let program = peer(200, usp).attributed(ownExecutable: usp, proc: proc)
        #expect(program.pid == 100 && program.executable == "/usr/bin/ssh")
        #expect(program.via?.pid == 200 && program.via?.executable == usp)
        #expect(program.json["via_pid"] == .integer(200))
    }

    @Test func optionsBeforeTheSubcommandAreSkipped() {
        let proc = reader([
            200: Process(parent: 100, uid: 1000, executable: usp, arguments: ["usp", "--home", "forward", "-o", "Port=1", "connect", "forward"]),
            100: Process(parent: 50, uid: 1000, executable: "/usr/bin/git", arguments: ["git"]),
        ])
        #expect(peer(200, usp).attributed(ownExecutable: usp, proc: proc).executable == "/usr/bin/git")
    }

    @Test func aForwardIsItsOwnProgram() {
        let proc = reader([
            200: Process(parent: 100, uid: 1000, executable: usp, arguments: ["usp", "-F", "none", "forward", "--listen", "127.0.0.1:8080", "work", "web"]),
            100: Process(parent: 50, uid: 1000, executable: "/bin/bash", arguments: ["bash"]),
        ])
        let program = peer(200, usp).attributed(ownExecutable: usp, proc: proc)
        #expect(program.pid == 200 && program.via == nil)
    }

    @Test func aParentOfAnotherUserOrInitOrUnreadableIsNotUsed() {
        let base: [pid_t: Process] = [200: Process(parent: 100, uid: 1000, executable: usp, arguments: ["usp", "connect", "x", "y"])]
        var otherUser = base
        otherUser[100] = Process(parent: 1, uid: 0, executable: "/usr/sbin/cron", arguments: ["cron"])
        #expect(peer(200, usp).attributed(ownExecutable: usp, proc: reader(otherUser)).pid == 200)
        var orphan = base
        orphan[200]!.parent = 1
        orphan[1] = Process(parent: 0, uid: 1000, executable: "/sbin/init", arguments: ["init"])
        #expect(peer(200, usp).attributed(ownExecutable: usp, proc: reader(orphan)).pid == 200)
        var hidden = base
        hidden[100] = Process(parent: 1, uid: 1000, executable: nil, arguments: [])
        #expect(peer(200, usp).attributed(ownExecutable: usp, proc: reader(hidden)).pid == 200)
    }

    @Test func otherProgramsAreThemselves() {
        let proc = reader([200: Process(parent: 100, uid: 1000, executable: "/usr/bin/python3", arguments: ["python3", "connect"])])
        #expect(peer(200, "/usr/bin/python3").attributed(ownExecutable: usp, proc: proc).pid == 200)
        // A usp binary elsewhere than the agent's (another build) is recognised by its name.
        let other = reader([
            200: Process(parent: 100, uid: 1000, executable: "/home/me/.build/debug/usp", arguments: ["usp", "connect", "a", "b"]),
            100: Process(parent: 50, uid: 1000, executable: "/usr/bin/ssh", arguments: ["ssh"]),
        ])
        #expect(peer(200, "/home/me/.build/debug/usp").attributed(ownExecutable: usp, proc: other).executable == "/usr/bin/ssh")
    }

    /// The real /proc: this test process, and its parent.
    @Test func procReaderReadsThisProcess() {
        let proc = ProcReader()
        #expect(proc.parent(getpid()) == getppid())
        #expect(proc.uid(getpid()) == getuid())
        #expect(proc.executable(getpid())?.hasPrefix("/") == true)
        #expect(proc.arguments(getpid())?.isEmpty == false)
    }
}
