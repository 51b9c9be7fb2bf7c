import MallocInterposerSwift

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Counts heap allocations with ordo-one/malloc-interposer. On Linux the counters only move when
/// `libMallocInterposerSwift.so` is LD_PRELOADed; `isActive` checks that with a deliberate malloc,
/// so a zero is never reported when nothing was being counted.
enum AllocCounter {
    nonisolated(unsafe) private static var probe: UnsafeMutableRawPointer?

    static let isActive: Bool = {
        MallocInterposerSwift.reset()
        MallocInterposerSwift.hook()
        probe = malloc(40)
        MallocInterposerSwift.unhook()
        free(probe)
        probe = nil
        let seen = MallocInterposerSwift.getStatistics().mallocCount
        MallocInterposerSwift.reset()
        return seen >= 1
    }()

    static func reset() { MallocInterposerSwift.reset() }

    @inline(__always) static func start() { MallocInterposerSwift.hook() }
    @inline(__always) static func stop() { MallocInterposerSwift.unhook() }

    static var mallocs: Int { MallocInterposerSwift.getStatistics().mallocCount }
    static var bytes: Int { MallocInterposerSwift.getStatistics().mallocBytesCount }
}
