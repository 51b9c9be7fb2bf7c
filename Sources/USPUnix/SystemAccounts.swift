#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Users and groups of this system, and who this process runs as: what an application's
/// `launch.user` and `launch.group` are resolved against when apps.d is loaded. Tests give their own.
public struct SystemAccounts: Sendable {
    /// (uid, primary gid) of a user name.
    public var user: @Sendable (String) -> (uid: UInt32, gid: UInt32)?
    /// The gid of a group name.
    public var group: @Sendable (String) -> UInt32?
    /// The name of a gid, for messages and defaults.
    public var groupName: @Sendable (UInt32) -> String?
    /// The name and primary gid of a uid (nil when the user database has no such uid).
    public var userByID: @Sendable (UInt32) -> (name: String, gid: UInt32)?
    /// This process's effective user ID; switching users needs 0.
    public var effectiveUserID: @Sendable () -> UInt32

    public init(user: @escaping @Sendable (String) -> (uid: UInt32, gid: UInt32)?, group: @escaping @Sendable (String) -> UInt32?,
                groupName: @escaping @Sendable (UInt32) -> String? = { _ in nil },
                userByID: @escaping @Sendable (UInt32) -> (name: String, gid: UInt32)? = { _ in nil },
                effectiveUserID: @escaping @Sendable () -> UInt32) {
        self.user = user
        self.group = group
        self.groupName = groupName
        self.userByID = userByID
        self.effectiveUserID = effectiveUserID
    }

    /// getpwnam_r, getgrnam_r, getgrgid_r, getpwuid_r and geteuid.
    public static let system = SystemAccounts(
        user: { name in
            withPasswd { pw, buffer, result in getpwnam_r(name, pw, buffer.baseAddress!, buffer.count, result) }.map { ($0.uid, $0.gid) }
        },
        group: { name in
            withGroup { gr, buffer, result in getgrnam_r(name, gr, buffer.baseAddress!, buffer.count, result) }?.gid
        },
        groupName: { gid in
            withGroup { gr, buffer, result in getgrgid_r(gid, gr, buffer.baseAddress!, buffer.count, result) }?.name
        },
        userByID: { uid in
            withPasswd { pw, buffer, result in getpwuid_r(uid, pw, buffer.baseAddress!, buffer.count, result) }.map { ($0.name, $0.gid) }
        },
        effectiveUserID: { UInt32(geteuid()) })

    private static func withPasswd(_ call: (UnsafeMutablePointer<passwd>, UnsafeMutableBufferPointer<CChar>,
                                            UnsafeMutablePointer<UnsafeMutablePointer<passwd>?>) -> CInt) -> (name: String, uid: UInt32, gid: UInt32)? {
        var pw = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16384)
        let rc = buffer.withUnsafeMutableBufferPointer { call(&pw, $0, &result) }
        guard rc == 0, result != nil else { return nil }
        return (String(cString: pw.pw_name), UInt32(pw.pw_uid), UInt32(pw.pw_gid))
    }

    private static func withGroup(_ call: (UnsafeMutablePointer<Glibc.group>, UnsafeMutableBufferPointer<CChar>,
                                           UnsafeMutablePointer<UnsafeMutablePointer<Glibc.group>?>) -> CInt) -> (name: String, gid: UInt32)? {
        var gr = Glibc.group()
        var result: UnsafeMutablePointer<Glibc.group>?
        var buffer = [CChar](repeating: 0, count: 65536)
        let rc = buffer.withUnsafeMutableBufferPointer { call(&gr, $0, &result) }
        guard rc == 0, result != nil else { return nil }
        return (String(cString: gr.gr_name), UInt32(gr.gr_gid))
    }
}
