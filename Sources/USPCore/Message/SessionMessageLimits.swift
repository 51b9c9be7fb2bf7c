extension SessionMessage {
    /// Bounds every decoder enforces (and every encoder checks, so that whatever we encode
    /// the peer's decoder accepts).
    public enum Limits {
        /// The largest encoded message: kind byte plus JSON text.
        public static let maxEncodedSize = 65_000
        /// `client_session_id` and `server_session_id`: 1...128 bytes of printable ASCII (0x20...0x7E).
        public static let maxSessionIDLength = 128
        /// Authorization and application tokens: 1...1024 bytes of printable ASCII (0x20...0x7E).
        public static let maxTokenLength = 1024
        /// `client_ip` in a `service_request`: the longest address text (an IPv6 address with an
        /// embedded IPv4 one).
        public static let maxClientIPLength = 45
        /// Application names in a begin by name: 1...128 bytes, no control characters.
        public static let maxApplicationNameLength = 128
        /// Application-session actions: 1...128 bytes, no control characters.
        public static let maxActionLength = 128
        /// Entries in one index-keyed map (`application_menu`, `requested_services`, service reply).
        public static let maxIndices = 256
        /// Nesting of JSON arrays and objects, counting the top-level object as 1.
        public static let maxJSONDepth = 64
    }

    /// The session-message version carried in `v` by `initial_request` and `menu`.
    public static let version: Int64 = 1
}
