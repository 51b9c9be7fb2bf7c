import USPUnix

#if canImport(Glibc)
import Glibc
#endif

/// The application's side of one `unix` hand-off on an accepted control connection
/// (docs/APPLICATIONS.md): reads `u32 big-endian length ‖ JSON` with exactly one descriptor
/// (SCM_RIGHTS), answers `ok\n` or `error <reason>\n`, and closes the connection.
public enum HandoffReceiver {
    /// How long a peer may take to send the whole message.
    public static let timeout = 5.0

    /// Receives one hand-off on `connection` (a blocking socket, closed here in every case).
    /// Returns the metadata and the stream's descriptor (close-on-exec, owned by the caller).
    /// On a malformed or oversized message, or none or several descriptors, answers an error
    /// line, closes whatever descriptors came, and throws.
    public static func receive(on connection: CInt) throws(USPAppError) -> (SessionMetadata, CInt) {
        defer { close(connection) }
        var descriptors: [CInt] = []
        do throws(USPAppError) {
            let metadata = try read(connection, descriptors: &descriptors)
            guard descriptors.count == 1 else {
                throw USPAppError(.wrongDescriptorCount, "the hand-off carried \(descriptors.count) descriptors; expected 1")
            }
            try? StreamIO.writeAll(connection, Array("ok\n".utf8))
            return (metadata, descriptors[0])
        } catch {
            for fd in descriptors { close(fd) }
            let line = "error \(error.code): \(error.detail)".replacingOccurrences(of: "\n", with: " ")
            try? StreamIO.writeAll(connection, Array((line + "\n").utf8))
            throw error
        }
    }

    private static func read(_ connection: CInt, descriptors: inout [CInt]) throws(USPAppError) -> SessionMetadata {
        let length: Int
        do throws(UnixError) {
            try UnixSocket.setTimeouts(connection, seconds: timeout)
            // The descriptor comes with the first byte; the length prefix may arrive in pieces.
            var header: [UInt8] = []
            while header.count < 4 {
                let got = try DescriptorPassing.receive(connection, maxBytes: 4 - header.count, maxDescriptors: 1)
                descriptors += got.descriptors
                if got.isEndOfFile { throw UnixError(.closed, "end of file after \(header.count) of 4 length bytes") }
                header += got.bytes
            }
            length = header.reduce(0) { $0 << 8 | Int($1) }
        } catch {
            throw USPAppError(.malformedMetadata, "reading the length: \(error.detail)")
        }
        guard length >= 1 else { throw USPAppError(.malformedMetadata, "metadata length is 0") }
        guard length <= SessionMetadata.maximumLength else {
            throw USPAppError(.metadataTooLarge, "metadata length \(length) is above \(SessionMetadata.maximumLength)")
        }
        let json: [UInt8]
        do throws(UnixError) {
            json = try StreamIO.readExactly(connection, length)
        } catch {
            throw USPAppError(.malformedMetadata, "reading \(length) bytes of metadata: \(error.detail)")
        }
        return try SessionMetadata(json: json)
    }
}
