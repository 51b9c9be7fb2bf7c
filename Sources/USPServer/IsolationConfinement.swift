import USPConfig
import USPUnix

extension ChildProcess.Confinement {
    /// How an exec'd application is confined: its apps.d `sandbox`, `user`, `group` and `[rlimits]`.
    init(_ isolation: Isolation) {
        self.init(newNetworkNamespace: isolation.sandbox == .noNetwork, group: isolation.group?.id, user: isolation.user?.id,
                  resourceLimits: Self.resourceLimits(isolation.rlimits))
    }

    static func resourceLimits(_ r: Isolation.ResourceLimits) -> [ProcessSpawn.ResourceLimit] {
        var out: [ProcessSpawn.ResourceLimit] = []
        if let n = r.maxOpenFiles { out.append(.openFiles(n)) }
        if let n = r.maxMemory { out.append(.addressSpace(n)) }
        if let n = r.maxCPUSeconds { out.append(.cpuSeconds(n)) }
        if let n = r.maxProcesses { out.append(.processes(n)) }
        return out
    }
}
