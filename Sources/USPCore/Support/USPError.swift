/// The one public error type of USPCore, in the shape of `NIOSSHError`:
/// a `Code` that callers compare, plus a private detail for people that never goes to the peer.
///
/// The peer only ever sees `code.wireValue` (a 16-bit number, in CLOSE, RESET and REJECT frames)
/// and `code.name` (in JSON `error.code`). `detail` is for logs.
public struct USPError: Error, Hashable, Sendable, CustomStringConvertible {
    public var code: Code
    /// One line for a person: what failed and where. Not sent to the peer, with one exception: a
    /// per-index `invalid_request_body` reply carries the validator's line, which names only the
    /// client's own field and the type it expected.
    public var detail: String

    public init(_ code: Code, _ detail: String = "") {
        self.code = code
        self.detail = detail
    }

    public var description: String {
        detail.isEmpty ? "\(code.name)" : "\(code.name): \(detail)"
    }

    public static func == (lhs: USPError, rhs: USPError) -> Bool { lhs.code == rhs.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }

    /// An extensible error code: a stable 16-bit wire value and a stable snake_case name.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let wireValue: UInt16
        public let name: String

        public init(_ wireValue: UInt16, _ name: String) {
            self.wireValue = wireValue
            self.name = name
        }

        public static func == (lhs: Code, rhs: Code) -> Bool { lhs.wireValue == rhs.wireValue }
        public func hash(into hasher: inout Hasher) { hasher.combine(wireValue) }
        public var description: String { name }

        /// Looks a code up by its wire value; unknown values keep their number.
        public static func fromWire(_ value: UInt16) -> Code {
            all.first { $0.wireValue == value } ?? Code(value, "unknown_\(value)")
        }

        /// Looks a code up by its JSON name.
        public static func fromName(_ name: String) -> Code? {
            all.first { $0.name == name }
        }

        // MARK: 0: no error
        public static let ok = Code(0, "ok")

        // MARK: 1xx: handshake
        public static let handshakeFailed = Code(100, "handshake_failed")
        public static let handshakeDecryptFailed = Code(101, "handshake_decrypt_failed")
        public static let lowOrderPoint = Code(102, "low_order_point")
        public static let versionMismatch = Code(103, "version_mismatch")
        public static let invalidHello = Code(104, "invalid_hello")
        public static let replayedInitiation = Code(105, "replayed_initiation")
        public static let patternNotAllowed = Code(106, "pattern_not_allowed")
        public static let serverKeyMismatch = Code(107, "server_key_mismatch")
        public static let handshakeTimeout = Code(108, "handshake_timeout")

        // MARK: 2xx: records
        public static let recordTampered = Code(200, "record_tampered")
        public static let recordReplayed = Code(201, "record_replayed")
        public static let recordReordered = Code(202, "record_reordered")
        public static let recordTruncated = Code(203, "record_truncated")
        public static let recordTooLarge = Code(204, "record_too_large")
        public static let recordEmpty = Code(205, "record_empty")
        public static let nonceExhausted = Code(206, "nonce_exhausted")
        public static let rekeyOverdue = Code(207, "rekey_overdue")

        // MARK: 3xx: frames and streams
        public static let malformedFrame = Code(300, "malformed_frame")
        public static let unknownFrameType = Code(301, "unknown_frame_type")
        public static let unknownStream = Code(302, "unknown_stream")
        public static let duplicateStream = Code(303, "duplicate_stream")
        public static let streamLimit = Code(304, "stream_limit")
        public static let flowControl = Code(305, "flow_control_violation")
        public static let windowOverflow = Code(306, "window_overflow")
        public static let streamClosed = Code(307, "stream_closed")
        public static let streamIDNotIncreasing = Code(308, "stream_id_not_increasing")
        public static let streamRefused = Code(309, "stream_refused")
        public static let controlFlood = Code(310, "control_flood")

        // MARK: 4xx: session messages and state
        public static let malformedMessage = Code(400, "malformed_message")
        public static let unexpectedMessage = Code(401, "unexpected_message")
        public static let unsupportedVersion = Code(402, "unsupported_version")
        public static let messageTooLarge = Code(403, "message_too_large")
        public static let sessionIDMismatch = Code(404, "session_id_mismatch")

        // MARK: 5xx: authentication, tokens and services (per-index errors)
        public static let authenticationFailed = Code(500, "authentication_failed")
        public static let authorizationMissing = Code(501, "authorization_token_missing")
        public static let authorizationInvalid = Code(502, "authorization_token_invalid")
        public static let unknownIndex = Code(503, "unknown_index")
        public static let invalidRequestBody = Code(504, "invalid_request_body")
        public static let tokenInvalid = Code(505, "token_invalid")
        public static let tokenExpired = Code(506, "token_expired")
        public static let tokenWrongAddress = Code(507, "token_wrong_address")
        public static let tokenRevoked = Code(508, "token_revoked")
        public static let unknownAction = Code(509, "unknown_action")
        public static let rateLimited = Code(510, "rate_limited")
        public static let unknownMethod = Code(511, "unknown_auth_method")
        /// The application behind a stream cannot be reached or started: its socket is missing,
        /// refuses connections, or closed (or timed out) without accepting the hand-off; an exec'd
        /// program could not be started.
        public static let applicationUnavailable = Code(512, "application_unavailable")
        /// The application answered the hand-off with an error (e.g. it could not parse the metadata).
        public static let applicationRefused = Code(513, "application_refused")
        /// The server ran out of descriptors (EMFILE/ENFILE) setting up the stream.
        public static let resourcesExhausted = Code(514, "resources_exhausted")
        /// A begin by name for an application that is not on the caller's menu (a logged-in
        /// caller; before login the answer is the token problem, so nothing leaks).
        public static let unknownApplication = Code(515, "unknown_application")
        /// The caller (an identity, or an anonymous client's source address) already has as many
        /// concurrent streams as the server allows (uspd.toml `max_streams_per_identity`).
        public static let tooManyStreams = Code(516, "too_many_streams")
        /// The application already runs as many sessions as it may (apps.d `max_sessions`, uspd.toml
        /// `max_streams_per_application`); for exec applications, processes not yet ended count.
        public static let applicationBusy = Code(517, "application_busy")
        /// The application's process ended by a signal or with a non-zero exit status before its
        /// stream was over (a crash, RLIMIT_CPU, a kill from outside); what was sent before arrived.
        public static let applicationFailed = Code(518, "application_failed")
        /// A `service_request` with `client_ip` (connection brokering) from a caller who may not
        /// broker (uspd: no `[[broker]]` rule names the identity or one of its groups).
        public static let brokerNotAllowed = Code(519, "broker_not_allowed")
        /// A `client_ip` that the caller may not broker for: not an IP address, or outside the
        /// networks the caller's broker rule allows.
        public static let brokerAddressNotAllowed = Code(520, "broker_address_not_allowed")

        // MARK: 6xx: session end
        public static let closedByPeer = Code(600, "closed_by_peer")
        public static let shuttingDown = Code(601, "shutting_down")
        public static let idleTimeout = Code(602, "idle_timeout")
        public static let internalError = Code(603, "internal_error")
        public static let unexpectedEOF = Code(604, "unexpected_eof")
        /// The server needed this session's connection slot for another client: a session that
        /// had not logged in and had no open stream, from a source network holding more
        /// connections than the newcomer's (uspd's fair admission). Connecting again is fine.
        public static let serverBusy = Code(605, "server_busy")
        /// An administrator of the server ended this session (`uspd sessions kill`).
        public static let closedByAdministrator = Code(606, "closed_by_administrator")
        /// The server could not read or record what the request needs (its database is
        /// unreachable): nothing was granted. Trying again later is fine.
        public static let storeUnavailable = Code(607, "store_unavailable")

        public static let all: [Code] = [
            ok,
            handshakeFailed, handshakeDecryptFailed, lowOrderPoint, versionMismatch, invalidHello,
            replayedInitiation, patternNotAllowed, serverKeyMismatch, handshakeTimeout,
            recordTampered, recordReplayed, recordReordered, recordTruncated, recordTooLarge, recordEmpty,
            nonceExhausted, rekeyOverdue,
            malformedFrame, unknownFrameType, unknownStream, duplicateStream, streamLimit, flowControl,
            windowOverflow, streamClosed, streamIDNotIncreasing, streamRefused, controlFlood,
            malformedMessage, unexpectedMessage, unsupportedVersion, messageTooLarge, sessionIDMismatch,
            authenticationFailed, authorizationMissing, authorizationInvalid, unknownIndex, invalidRequestBody,
            tokenInvalid, tokenExpired, tokenWrongAddress, tokenRevoked, unknownAction, rateLimited, unknownMethod,
            applicationUnavailable, applicationRefused, resourcesExhausted, unknownApplication, tooManyStreams, applicationBusy,
            applicationFailed, brokerNotAllowed, brokerAddressNotAllowed,
            closedByPeer, shuttingDown, idleTimeout, internalError, unexpectedEOF, serverBusy, closedByAdministrator, storeUnavailable,
        ]
    }
}
