import TOMLKit
import USPUnix

/// Reads the isolation of an `exec` application (`Isolation`): `sandbox`, `user` and `group` in
/// `[launch]`, and the `[rlimits]` table. Names are resolved here, at load, so an unknown user is
/// an error naming the file, line and column rather than a failed launch later.
struct IsolationReader {
    let reader: TOMLReader
    let accounts: SystemAccounts

    /// Nil when a problem was recorded.
    func read(_ t: TOMLTable, launch: ApplicationDefinition.Launch?) -> Isolation? {
        var isolation = Isolation()
        var ok = true
        if let table = t["launch"]?.table {
            if table["sandbox"] != nil {
                if let text = reader.string(table, ["launch"], "sandbox"), let sandbox = Isolation.Sandbox(rawValue: text) {
                    isolation.sandbox = sandbox
                } else {
                    if let text = table["sandbox"]?.string {
                        reader.reportAtValue(.invalidValue, ["launch", "sandbox"],
                                             "launch.sandbox must be \"none\" or \"no-network\", got \"\(text)\"")
                    }
                    ok = false
                }
            }
            if table["user"] != nil {
                if let user = readUser(table) {
                    isolation.user = user.account
                    isolation.group = user.primaryGroup
                } else {
                    ok = false
                }
            }
            if table["group"] != nil {
                if let group = readGroup(table) { isolation.group = group } else { ok = false }
            }
        }
        if t["rlimits"] != nil {
            if let launch, case .exec = launch {} else if launch != nil {
                reader.reportAtKey(.invalidValue, ["rlimits"], "[rlimits] applies to exec, not to \(Self.kind(of: launch!))")
                ok = false
            }
            if let limits = readResourceLimits(t) { isolation.rlimits = limits } else { ok = false }
        }
        return ok ? isolation : nil
    }

    static func kind(of launch: ApplicationDefinition.Launch) -> String {
        switch launch {
        case .exec: "exec"
        case .tcp: "tcp"
        case .udp: "udp"
        case .unix: "unix"
        }
    }

    // MARK: - user and group

    /// A name, a number as a string, or an integer.
    private enum Written {
        case name(String)
        case number(UInt32)
    }

    private func written(_ table: TOMLTable, _ key: String) -> Written? {
        let path = ["launch", key]
        guard let v = table[key] else { return nil }
        if let i = v.int {
            guard (0...Int(UInt32.max - 1)).contains(i) else {
                reader.reportAtValue(.outOfRange, path, "launch.\(key) must be 0…\(UInt32.max - 1), got \(i)")
                return nil
            }
            return .number(UInt32(i))
        }
        guard let s = v.string else {
            reader.wrongType(path, expected: "a name or a number", got: v)
            return nil
        }
        if !s.isEmpty, s.allSatisfy(\.isASCII), s.allSatisfy(\.isNumber) {
            guard let n = UInt32(s), n != UInt32.max else {
                reader.reportAtValue(.outOfRange, path, "launch.\(key) must be 0…\(UInt32.max - 1), got \(s)")
                return nil
            }
            return .number(n)
        }
        guard !s.isEmpty else {
            reader.reportAtValue(.invalidValue, path, "launch.\(key) is empty")
            return nil
        }
        return .name(s)
    }

    /// Switching users or groups needs uspd to run as root; said at load, where the key is.
    private func requireRoot(_ key: String) -> Bool {
        let euid = accounts.effectiveUserID()
        guard euid == 0 else {
            reader.reportAtKey(.invalidValue, ["launch", key],
                               "launch.\(key) needs uspd to run as root (it runs as uid \(euid)); remove it or start uspd as root")
            return false
        }
        return true
    }

    private func readUser(_ table: TOMLTable) -> (account: Isolation.Account, primaryGroup: Isolation.Account?)? {
        guard let w = written(table, "user"), requireRoot("user") else { return nil }
        switch w {
        case .name(let name):
            guard let found = accounts.user(name) else {
                reader.reportAtValue(.invalidValue, ["launch", "user"], "launch.user: no user \"\(name)\" on this system")
                return nil
            }
            return (Isolation.Account(name: name, id: found.uid), groupAccount(found.gid))
        case .number(let uid):
            let found = accounts.userByID(uid)
            if found == nil, table["group"] == nil {
                reader.reportAtValue(.invalidValue, ["launch", "user"],
                                     "launch.user: uid \(uid) has no entry in the user database, so it has no primary group; set launch.group too")
                return nil
            }
            return (Isolation.Account(name: found?.name ?? String(uid), id: uid), found.map { groupAccount($0.gid) })
        }
    }

    private func groupAccount(_ gid: UInt32) -> Isolation.Account {
        Isolation.Account(name: accounts.groupName(gid) ?? String(gid), id: gid)
    }

    private func readGroup(_ table: TOMLTable) -> Isolation.Account? {
        guard let w = written(table, "group"), requireRoot("group") else { return nil }
        switch w {
        case .name(let name):
            guard let gid = accounts.group(name) else {
                reader.reportAtValue(.invalidValue, ["launch", "group"], "launch.group: no group \"\(name)\" on this system")
                return nil
            }
            return Isolation.Account(name: name, id: gid)
        case .number(let gid):
            return groupAccount(gid)
        }
    }

    // MARK: - [rlimits]

    private func readResourceLimits(_ t: TOMLTable) -> Isolation.ResourceLimits? {
        guard let table = reader.table(t, [], "rlimits") else { return nil }
        reader.checkKeys(table, at: ["rlimits"], allowed: ApplicationLoader.rlimitKeys)
        var limits = Isolation.ResourceLimits()
        var ok = true
        func integer(_ key: String, _ range: ClosedRange<Int>, _ keyPath: WritableKeyPath<Isolation.ResourceLimits, Int?>) {
            guard table[key] != nil else { return }
            if let n = reader.integer(table, ["rlimits"], key, in: range) { limits[keyPath: keyPath] = n } else { ok = false }
        }
        integer("max_open_files", 1...1_048_576, \.maxOpenFiles)
        integer("max_cpu_seconds", 1...31_536_000, \.maxCPUSeconds)
        integer("max_processes", 1...4_194_304, \.maxProcesses)
        if table["max_memory"] != nil {
            if let bytes = readBytes(table, "max_memory", in: (1 << 20)...(1 << 62)) { limits.maxMemory = bytes } else { ok = false }
        }
        return ok ? limits : nil
    }

    /// An integer number of bytes, or a string like "256M" (K, M, G, T: powers of 1024).
    private func readBytes(_ table: TOMLTable, _ key: String, in range: ClosedRange<Int>) -> Int? {
        let path = ["rlimits", key]
        guard let v = table[key] else { return nil }
        if v.int != nil { return reader.integer(table, ["rlimits"], key, in: range) }
        guard let text = v.string else {
            reader.wrongType(path, expected: "a number of bytes or a string such as \"256M\"", got: v)
            return nil
        }
        let units: [Character: Int] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40]
        var digits = Substring(text)
        var unit = 1
        if let last = digits.last?.uppercased().first, let u = units[last] {
            unit = u
            digits = digits.dropLast()
        }
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }), let n = Int(digits) else {
            reader.reportAtValue(.invalidValue, path, "rlimits.\(key): \"\(text)\" is not a number of bytes with an optional K, M, G or T suffix")
            return nil
        }
        let (bytes, overflow) = n.multipliedReportingOverflow(by: unit)
        guard !overflow, range.contains(bytes) else {
            reader.reportAtValue(.outOfRange, path, "rlimits.\(key) must be \(range.lowerBound)…\(range.upperBound) bytes, got \(text)")
            return nil
        }
        return bytes
    }
}
