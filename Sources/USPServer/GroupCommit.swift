import Foundation
import USPStore

/// Durable writes from many sessions at once share one fsync: the first caller becomes the
/// leader and commits; whoever arrives during that commit queues up, and the next leader commits
/// all of them in one transaction. Each caller returns (or throws) only once its own rows are on
/// disk. With the disk's fsync taking milliseconds, this is what lets new sessions per second grow
/// with concurrency instead of queueing one fsync each.
///
/// A failed batch fails every caller in it (they are refused what they were about to grant); a
/// duplicate token ID, the only row-level failure, is a 2^-128 event.
final class GroupCommit: @unchecked Sendable {
    private final class Ticket {
        let writes: [StoreWrite]
        var outcome: Result<Void, any Error>?
        init(_ writes: [StoreWrite]) { self.writes = writes }
    }

    private let store: any USPStore
    private let condition = NSCondition()
    private var waiting: [Ticket] = []
    private var committing = false

    init(store: any USPStore) {
        self.store = store
    }

    func commit(_ writes: [StoreWrite]) throws {
        let ticket = Ticket(writes)
        condition.lock()
        waiting.append(ticket)
        while ticket.outcome == nil {
            if committing {
                condition.wait()
                continue
            }
            // Lead: take everything queued so far (this ticket included) and commit it once.
            committing = true
            let batch = waiting
            waiting.removeAll()
            condition.unlock()
            let outcome: Result<Void, any Error> = Result { try store.commit(batch.flatMap(\.writes), durable: true) }
            condition.lock()
            for t in batch { t.outcome = outcome }
            committing = false
            condition.broadcast()
        }
        condition.unlock()
        try ticket.outcome!.get()
    }
}
