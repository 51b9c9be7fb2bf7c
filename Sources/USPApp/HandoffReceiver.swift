import Foundation
import USPCore
import USPUnix

#if canImport(Glibc)
import Glibc
#endif

/// The application's side of one `unix` hand-off on an accepted control connection
/// (docs/APPLICATIONS.md): reads a `LengthPrefixedMessage` (the session's metadata) with exactly
/// one descriptor (SCM_RIGHTS), answers `ok\n` or `error <reason>\n`, and closes the connection.
public enum HandoffReceiver {
    /// How long a peer may take to send the whole message.
    public static let timeout = 5.0

    /// One hand-off as received: the session's metadata, the descriptor, and for a relay-free
    /// hand-off the session to resume on it (the descriptor is then the client's TCP connection).
    public struct Handoff: Sendable {
        public var metadata: SessionMetadata
        /// Owned by the caller, close-on-exec.
        public var descriptor: CInt
        /// Set for a relay-free hand-off (docs/PROTOCOL.md §14).
        public var relayFree: DedicatedStreamSession?
        /// For a relay-free hand-off: the connection it came on, kept open as the session's control
        /// line (uspd sends `reset <code>` there when the session's token is revoked; §14.2).
        /// Owned by the caller; closing it tells uspd the session is over.
        public var control: CInt?
    }

    /// The largest relay-free snapshot accepted.
    public static let maximumSnapshotLength = 64 << 20

    /// Receives one hand-off on `connection` (a blocking socket, closed here in every case).
    /// Returns the metadata and the stream's descriptor (close-on-exec, owned by the caller).
    /// On a malformed or oversized message, or none or several descriptors, answers an error
    /// line, closes whatever descriptors came, and throws. A relay-free hand-off is answered
    /// `error relay_free_unsupported` here: use `receiveHandoff`.
    public static func receive(on connection: CInt) throws(USPAppError) -> (SessionMetadata, CInt) {
        let handoff = try receiveHandoff(on: connection, acceptRelayFree: false)
        return (handoff.metadata, handoff.descriptor)
    }

    /// Like `receive`, and also accepts a relay-free hand-off: its snapshot is checked and turned
    /// into a `DedicatedStreamSession` before `ok` is answered, so uspd keeps the connection if it
    /// is unusable. Only after `ok` may the caller touch the descriptor.
    public static func receiveHandoff(on connection: CInt, acceptRelayFree: Bool = true) throws(USPAppError) -> Handoff {
        var keepConnection = false
        defer { if !keepConnection { close(connection) } }
        var descriptors: [CInt] = []
        do throws(USPAppError) {
            var (metadata, snapshot) = try read(connection, descriptors: &descriptors)
            defer { DedicatedStreamSnapshot.zeroize(&snapshot) }
            guard descriptors.count == 1 else {
                throw USPAppError(.wrongDescriptorCount, "the hand-off carried \(descriptors.count) descriptors; expected 1")
            }
            var session: DedicatedStreamSession?
            if !snapshot.isEmpty || metadata.relayFree {
                guard acceptRelayFree else { throw USPAppError(.relayFreeUnsupported, "this receiver does not take relay-free hand-offs") }
                do throws(USPError) {
                    var decoded = try DedicatedStreamSnapshot(encoded: snapshot)
                    defer { decoded.zeroize() }
                    session = try DedicatedStreamSession(resuming: decoded)
                } catch {
                    throw USPAppError(.malformedSnapshot, error.detail)
                }
            }
            try? StreamIO.writeAll(connection, Array("ok\n".utf8))
            keepConnection = session != nil
            return Handoff(metadata: metadata, descriptor: descriptors[0], relayFree: session, control: session != nil ? connection : nil)
        } catch {
            for fd in descriptors { close(fd) }
            let line = "error \(error.code): \(error.detail)".replacingOccurrences(of: "\n", with: " ")
            try? StreamIO.writeAll(connection, Array((line + "\n").utf8))
            throw error
        }
    }

    /// The metadata and, for a relay-free hand-off, the snapshot's bytes that follow the JSON.
    private static func read(_ connection: CInt, descriptors: inout [CInt]) throws(USPAppError) -> (SessionMetadata, [UInt8]) {
        let length: Int
        do throws(UnixError) {
            try UnixSocket.setTimeouts(connection, seconds: timeout)
            guard let n = try LengthPrefixedMessage.readLength(connection, descriptors: &descriptors) else {
                throw UnixError(.closed, "end of file after 0 of \(LengthPrefixedMessage.prefixLength) length bytes")
            }
            length = n
        } catch where error.code == .emptyMessage {
            throw USPAppError(.malformedMetadata, error.detail)
        } catch where error.code == .messageTooLarge {
            throw USPAppError(.metadataTooLarge, error.detail)
        } catch {
            throw USPAppError(.malformedMetadata, "reading the length: \(error.detail)")
        }
        let json: [UInt8]
        do throws(UnixError) {
            json = try StreamIO.readExactly(connection, length)
        } catch {
            throw USPAppError(.malformedMetadata, "reading \(length) bytes of metadata: \(error.detail)")
        }
        let metadata = try SessionMetadata(json: json)
        guard let length = metadata.relayFreeSnapshotLength else { return (metadata, []) }
        guard length <= maximumSnapshotLength else {
            throw USPAppError(.malformedSnapshot, "snapshot length \(length) is above \(maximumSnapshotLength)")
        }
        do throws(UnixError) {
            return (metadata, try StreamIO.readExactly(connection, length))
        } catch {
            throw USPAppError(.malformedSnapshot, "reading \(length) bytes of snapshot: \(error.detail)")
        }
    }
}
