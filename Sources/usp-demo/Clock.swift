import Foundation
import Glibc
import USPCore

/// The demo's real clock. USPCore reads no clock: every call into a session gets `now` from here.
extension Timestamp {
    static func now() -> Timestamp {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Timestamp(seconds: UInt64(ts.tv_sec), nanoseconds: UInt32(ts.tv_nsec))
    }
}

/// Wall-clock time in seconds, for the summary's elapsed time.
func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// The current UTC time as ISO 8601, for the `time` application.
func currentTimeText() -> String {
    Date().ISO8601Format()
}
