import Foundation
import Testing
@testable import USPConfig
import USPUnix

/// apps.d isolation settings (`sandbox`, `user`, `group`, `[rlimits]`) and uspd.toml rate limits.
@Suite("apps.d isolation and uspd.toml rate limits")
struct IsolationLoaderTests {
    let p = "apps.d/notes.toml"

    /// A user database of two users and three groups, and uspd running as `euid`.
    static func accounts(euid: UInt32 = 0) -> SystemAccounts {
        let users: [String: (uid: UInt32, gid: UInt32)] = ["alice": (1000, 1000), "svc": (990, 980)]
        let groups: [String: UInt32] = ["alice": 1000, "services": 980, "staff": 50]
        return SystemAccounts(user: { users[$0] }, group: { groups[$0] },
                              groupName: { gid in groups.first { $0.value == gid }?.key },
                              userByID: { uid in users.first { $0.value.uid == uid }.map { ($0.key, $0.value.gid) } },
                              effectiveUserID: { euid })
    }

    func app(_ launch: String, _ rest: String = "") -> String {
        "name = \"notes\"\n[launch]\nexec = [\"/bin/cat\"]\n" + launch + "\n" + rest
    }

    @Test func everySettingIsReadAndNamesAreResolved() throws {
        let a = try ApplicationLoader.parse(app("sandbox = \"no-network\"\nuser = \"svc\"\ngroup = \"staff\"", """
            [rlimits]
            max_open_files = 64
            max_memory = "256M"
            max_cpu_seconds = 30
            max_processes = 16
            """), path: p, accounts: Self.accounts())
        #expect(a.isolation == Isolation(sandbox: .noNetwork, user: .init(name: "svc", id: 990), group: .init(name: "staff", id: 50),
                                          rlimits: .init(maxOpenFiles: 64, maxMemory: 256 << 20, maxCPUSeconds: 30, maxProcesses: 16)))
    }

    @Test func theGroupDefaultsToTheUsersPrimaryGroupAndNumbersWork() throws {
        let named = try ApplicationLoader.parse(app("user = \"svc\""), path: p, accounts: Self.accounts())
        #expect(named.isolation.user == .init(name: "svc", id: 990))
        #expect(named.isolation.group == .init(name: "services", id: 980))
        let numbered = try ApplicationLoader.parse(app("user = 1000"), path: p, accounts: Self.accounts())
        #expect(numbered.isolation.user == .init(name: "alice", id: 1000))
        #expect(numbered.isolation.group == .init(name: "alice", id: 1000))
        let unnamed = try ApplicationLoader.parse(app("user = \"4321\"\ngroup = 4321"), path: p, accounts: Self.accounts())
        #expect(unnamed.isolation.user == .init(name: "4321", id: 4321))
        #expect(unnamed.isolation.group == .init(name: "4321", id: 4321))
        let bytes = try ApplicationLoader.parse(app("", "[rlimits]\nmax_memory = 1073741824"), path: p, accounts: Self.accounts())
        #expect(bytes.isolation.rlimits.maxMemory == 1 << 30)
        let nothing = try ApplicationLoader.parse(app(""), path: p, accounts: Self.accounts())
        #expect(nothing.isolation.isEmpty)
    }

    @Test(arguments: [
        ("user = \"ghost\"", accounts(), "4:8: launch.user: no user \"ghost\" on this system"),
        ("group = \"ghosts\"", accounts(), "4:9: launch.group: no group \"ghosts\" on this system"),
        ("user = \"svc\"", accounts(euid: 1000), "4:1: launch.user needs uspd to run as root (it runs as uid 1000); remove it or start uspd as root"),
        ("group = 50", accounts(euid: 1000), "4:1: launch.group needs uspd to run as root (it runs as uid 1000); remove it or start uspd as root"),
        ("user = 4321", accounts(), "4:8: launch.user: uid 4321 has no entry in the user database, so it has no primary group; set launch.group too"),
        ("user = -1", accounts(), "4:8: launch.user must be 0…4294967294, got -1"),
        ("user = \"\"", accounts(), "4:8: launch.user is empty"),
        ("user = true", accounts(), "4:8: launch.user must be a name or a number, not a boolean"),
        ("sandbox = \"none-at-all\"", accounts(), "4:11: launch.sandbox must be \"none\" or \"no-network\", got \"none-at-all\""),
        ("sandbox = 1", accounts(), "4:11: launch.sandbox must be a string, not an integer"),
    ])
    func launchSettingsErrorsNameFileLineAndColumn(setting: String, accounts: SystemAccounts, expected: String) {
        let e = configError { try ApplicationLoader.parse(app(setting), path: p, accounts: accounts) }
        #expect(e?.description == "\(p):\(expected)")
    }

    @Test(arguments: [
        ("[rlimits]\nmax_open_files = 0", "6:18: rlimits.max_open_files must be 1…1048576, got 0"),
        ("[rlimits]\nmax_memory = \"12Q\"", "6:14: rlimits.max_memory: \"12Q\" is not a number of bytes with an optional K, M, G or T suffix"),
        ("[rlimits]\nmax_memory = \"1K\"", "6:14: rlimits.max_memory must be 1048576…4611686018427387904 bytes, got 1K"),
        ("[rlimits]\nmax_memory = 1.5", "6:14: rlimits.max_memory must be a number of bytes or a string such as \"256M\", not a float"),
        ("[rlimits]\nmax_cpu_seconds = 0", "6:19: rlimits.max_cpu_seconds must be 1…31536000, got 0"),
        ("[rlimits]\nmax_open_file = 3", "6:1: unknown key \"max_open_file\" in [rlimits] (did you mean \"max_open_files\"?)"),
    ])
    func rlimitsErrorsNameFileLineAndColumn(rest: String, expected: String) {
        let e = configError { try ApplicationLoader.parse(app("", rest), path: p, accounts: Self.accounts()) }
        #expect(e?.description == "\(p):\(expected)")
    }

    @Test func isolationIsForExecOnly() {
        let tcp = "name = \"ssh\"\n[launch]\ntcp = \"127.0.0.1:22\"\n"
        let user = configError { try ApplicationLoader.parse(tcp + "user = \"svc\"\n", path: p, accounts: Self.accounts()) }
        #expect(user?.description == "\(p):4:1: launch.user applies to exec, not to tcp")
        let sandbox = configError { try ApplicationLoader.parse(tcp + "sandbox = \"no-network\"\n", path: p, accounts: Self.accounts()) }
        #expect(sandbox?.description == "\(p):4:1: launch.sandbox applies to exec, not to tcp")
        let rlimits = configError { try ApplicationLoader.parse(tcp + "[rlimits]\nmax_open_files = 8\n", path: p, accounts: Self.accounts()) }
        #expect(rlimits?.description == "\(p):4:1: [rlimits] applies to exec, not to tcp")
    }

    @Test func theSystemDatabaseResolvesRoot() throws {
        // Every Unix system has uid 0 named root with group 0; uspd -t reads it this way.
        let a = try ApplicationLoader.parse(app("user = \"root\""), path: p,
                                            accounts: SystemAccounts(user: SystemAccounts.system.user, group: SystemAccounts.system.group,
                                                                     groupName: SystemAccounts.system.groupName,
                                                                     userByID: SystemAccounts.system.userByID, effectiveUserID: { 0 }))
        #expect(a.isolation.user?.id == 0)
        #expect(a.isolation.group?.id == 0)
    }

    @Test func rateLimitsOfUspdToml() throws {
        let c = try ServerConfigLoader.parse("""
            max_connections_per_source = 4
            max_streams_per_minute = 30
            max_streams_per_identity = 2
            max_streams_per_application = 0
            """, path: "uspd.toml")
        #expect(c.maxConnectionsPerSource == 4)
        #expect(c.maxStreamsPerMinute == 30)
        #expect(c.maxStreamsPerIdentity == 2)
        #expect(c.maxStreamsPerApplication == 0)
        #expect(try ServerConfigLoader.parse(c.tomlText, path: "uspd.toml") == c)
        let defaults = ServerConfig()
        #expect((defaults.maxConnectionsPerSource, defaults.maxStreamsPerMinute, defaults.maxStreamsPerIdentity, defaults.maxStreamsPerApplication)
                == (256, 600, 128, 0))
        let e = configError { try ServerConfigLoader.parse("max_streams_per_identity = -1\n", path: "uspd.toml") }
        #expect(e?.description == "uspd.toml:1:28: max_streams_per_identity must be 0…1000000, got -1")
    }
}
