/// The one error type of USPApp (GUIDE §3): a `Code` compared alone, and one line for a person.
public struct USPAppError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(_ rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// The hand-off's metadata is not the documented JSON object (bad length, bad JSON, a
        /// missing or mistyped field, an unknown version).
        public static let malformedMetadata = Code("malformed_metadata")
        /// The metadata length prefix is above `SessionMetadata.maximumLength`.
        public static let metadataTooLarge = Code("metadata_too_large")
        /// The hand-off carried no descriptor, or more than one.
        public static let wrongDescriptorCount = Code("wrong_descriptor_count")
        /// A relay-free hand-off whose `relay_free` object or snapshot is unusable (docs/PROTOCOL.md §14).
        public static let malformedSnapshot = Code("malformed_snapshot")
        /// A relay-free hand-off came to a receiver that does not take them.
        public static let relayFreeUnsupported = Code("relay_free_unsupported")
        /// Neither a socket path nor socket activation (LISTEN_FDS) says where sessions come from.
        public static let notConfigured = Code("not_configured")
        /// A socket call failed (listen, accept, read, write); the detail names it.
        public static let io = Code("io")
    }

    public var code: Code
    public var detail: String

    public init(_ code: Code, _ detail: String) {
        self.code = code
        self.detail = detail
    }

    public var description: String { "\(code): \(detail)" }

    public static func == (lhs: USPAppError, rhs: USPAppError) -> Bool { lhs.code == rhs.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }
}
