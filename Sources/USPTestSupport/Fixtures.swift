import USPConfig
import USPCore
import USPServer
import USPStore

/// Passwords in in-memory tests are stored as "plain:<password>"; others (SQLite) as real scrypt hashes.
public let testVerifyPassword: @Sendable (String, String) -> Bool = { password, hash in
    hash.hasPrefix("plain:") ? hash == "plain:" + password : ((try? PasswordHash.verify(password: password, hash: hash)) ?? false)
}

/// The keys, applications, users and policy that the daemon and policy tests share.
public enum Fixtures {
    public static let serverKey = try! KeyPair(privateKey: [UInt8](repeating: 7, count: 32))
    public static let clientKey = try! KeyPair(privateKey: [UInt8](repeating: 9, count: 32))
    public static let otherClientKey = try! KeyPair(privateKey: [UInt8](repeating: 11, count: 32))

    public static func applications(tcpPort: Int = 9) -> [ApplicationDefinition] {
        [
            ApplicationDefinition(name: "echo", description: "cat", visibility: .public, launch: .exec(command: ["/bin/cat"], environment: [:])),
            ApplicationDefinition(name: "time", description: "the date", visibility: .public,
                                  expectedRequestBody: ["zone": "string?"], launch: .exec(command: ["/bin/date", "-u"], environment: [:])),
            ApplicationDefinition(name: "notes", description: "for members", visibility: .authenticated,
                                  launch: .tcp(host: "127.0.0.1", port: tcpPort)),
            ApplicationDefinition(name: "admin-only", visibility: .only(identities: [], groups: ["admins"]),
                                  launch: .exec(command: ["/bin/cat"], environment: [:])),
            ApplicationDefinition(name: "env", visibility: .public, expectedRequestBody: ["greeting": "string", "count": "integer?"],
                                  launch: .exec(command: ["/usr/bin/env"], environment: ["EXTRA": "yes"])),
            ApplicationDefinition(name: "solo", visibility: .only(identities: ["carol"], groups: []),
                                  launch: .exec(command: ["/bin/cat"], environment: [:]), limits: .init(maxSessions: 1)),
        ]
    }

    public static func store() -> InMemoryStore {
        let store = InMemoryStore()
        try! store.upsertUser(UserRecord(name: "alice", groups: ["admins"], passwordHash: "plain:correct horse"))
        try! store.upsertUser(UserRecord(name: "bob", passwordHash: "plain:hunter2"))
        return store
    }

    public static func policy(store: InMemoryStore, clock: TestClock = TestClock(), tcpPort: Int = 9,
                              settings: ServerPolicy.Settings = ServerPolicy.Settings()) -> ServerPolicy {
        ServerPolicy(store: store, catalog: ApplicationCatalog(applications(tcpPort: tcpPort)), audit: AuditLog(store: store, flushInterval: .zero),
                     throttle: LoginThrottle(base: 0.25, maximum: 8), settings: settings, verifyPassword: testVerifyPassword,
                     monotonic: { clock.now })
    }
}
