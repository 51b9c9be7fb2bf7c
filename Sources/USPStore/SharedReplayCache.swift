import Foundation

/// The early-data replay cache kept in the store, so that every node sharing it refuses a
/// message 1 replayed to any of them (docs/PROTOCOL.md §3.6, §13). PostgreSQL keeps it; a
/// single SQLite daemon keeps its cache in memory instead.
public protocol SharedReplayCache: Sendable {
    /// Records the client ephemeral key `key` as used until `until`. Returns true when no node
    /// recorded it before (or its entry expired before `now`): the early frames may be acted on.
    /// False: it was seen, a replay.
    func recordFirstUse(of key: [UInt8], until: Date, now: Date) throws(StoreError) -> Bool
    /// Deletes entries that expired before `time`; returns how many.
    func purgeReplayCache(before time: Date) throws(StoreError) -> Int
}
