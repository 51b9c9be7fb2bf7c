import USPErrors

/// The one error type of USPApp: a `Code`, and one line for a person.
public struct USPAppError: CodedError {
    public typealias Code = ErrorCode<USPAppError>

    public var code: Code
    public var detail: String

    public init(_ code: Code, _ detail: String) {
        self.code = code
        self.detail = detail
    }

    public var description: String { "\(code): \(detail)" }
}

extension ErrorCode<USPAppError> {
    /// The hand-off's metadata is not the documented JSON object (bad length, bad JSON, a
    /// missing or mistyped field, an unknown version).
    public static var malformedMetadata: Self { Self("malformed_metadata") }
    /// The metadata length prefix is above `SessionMetadata.maximumLength`.
    public static var metadataTooLarge: Self { Self("metadata_too_large") }
    /// The hand-off carried no descriptor, or more than one.
    public static var wrongDescriptorCount: Self { Self("wrong_descriptor_count") }
    /// A relay-free hand-off whose `relay_free` object or snapshot is unusable (docs/PROTOCOL.md §14).
    public static var malformedSnapshot: Self { Self("malformed_snapshot") }
    /// A relay-free hand-off came to a receiver that does not take them.
    public static var relayFreeUnsupported: Self { Self("relay_free_unsupported") }
    /// Neither a socket path nor socket activation (LISTEN_FDS) says where sessions come from.
    public static var notConfigured: Self { Self("not_configured") }
    /// A socket call failed (listen, accept, read, write); the detail names it.
    public static var io: Self { Self("io") }
}
