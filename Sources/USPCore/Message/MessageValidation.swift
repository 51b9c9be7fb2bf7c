// Field rules shared by decoding and encoding, so that whatever encodes also decodes.

/// Printable ASCII: 0x20...0x7E (no control characters, nothing beyond ASCII).
private func isPrintableASCII(_ s: String) -> Bool {
    s.utf8.allSatisfy { $0 >= 0x20 && $0 <= 0x7E }
}

func checkSessionID(_ id: String, _ path: MessagePath) throws(USPError) {
    guard !id.isEmpty else { throw path.malformed("empty session id") }
    let n = id.utf8.count
    guard n <= SessionMessage.Limits.maxSessionIDLength else {
        throw path.malformed("session id is \(n) bytes, limit \(SessionMessage.Limits.maxSessionIDLength)")
    }
    guard isPrintableASCII(id) else { throw path.malformed("session id is not printable ASCII") }
}

func checkToken(_ token: String, _ path: MessagePath) throws(USPError) {
    guard !token.isEmpty else { throw path.malformed("empty token") }
    let n = token.utf8.count
    guard n <= SessionMessage.Limits.maxTokenLength else {
        throw path.malformed("token is \(n) bytes, limit \(SessionMessage.Limits.maxTokenLength)")
    }
    guard isPrintableASCII(token) else { throw path.malformed("token is not printable ASCII") }
}

/// `client_ip` (connection brokering): the text of an IPv4 or IPv6 address, 2…45 bytes of
/// `0-9 A-F a-f . :` (no zone, no brackets, no prefix length). Whether it parses as an address,
/// and whether the caller may broker for it, is policy's to say.
func checkClientIP(_ text: String, _ path: MessagePath) throws(USPError) {
    let n = text.utf8.count
    guard (2...SessionMessage.Limits.maxClientIPLength).contains(n) else {
        throw path.malformed("client_ip is \(n) bytes, expected 2…\(SessionMessage.Limits.maxClientIPLength)")
    }
    guard text.utf8.allSatisfy({ b in
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66) || b == 0x2E || b == 0x3A
    }) else {
        throw path.malformed("client_ip may hold only hex digits, \".\" and \":\" (an IPv4 or IPv6 address, without zone or brackets)")
    }
}

func checkApplicationName(_ name: String, _ path: MessagePath) throws(USPError) {
    guard !name.isEmpty else { throw path.malformed("empty application name") }
    let n = name.utf8.count
    guard n <= SessionMessage.Limits.maxApplicationNameLength else {
        throw path.malformed("application name is \(n) bytes, limit \(SessionMessage.Limits.maxApplicationNameLength)")
    }
    guard !name.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else {
        throw path.malformed("application name contains a control character")
    }
}

func checkNonEmpty(_ s: String, _ what: String, _ path: MessagePath) throws(USPError) {
    guard !s.isEmpty else { throw path.malformed("empty \(what)") }
}

/// Reads the `v` field: missing or not a number is malformed, any number but 1 is unsupported.
func readVersion(_ reader: inout FieldReader) throws(USPError) {
    let path = reader.path.field(MessageKeys.version)
    guard let v = reader.take(MessageKeys.version) else {
        throw reader.path.malformed("missing field \"v\"")
    }
    switch v {
    case .integer(SessionMessage.version): return
    case .integer(let other):
        throw USPError(.unsupportedVersion, "\(path): version \(other) is not supported (only 1)")
    case .number(let other):
        throw USPError(.unsupportedVersion, "\(path): version \(other) is not supported (only 1)")
    default:
        throw path.wrongType("integer", v)
    }
}

/// The entries of an index-keyed object (`{"0":…,"1":…}`), in ascending index order, each with
/// its path. Fails for a non-object, more than `maxIndices` entries, or a key that is not the
/// canonical decimal form of a u32.
func readIndexMap(_ value: JSONValue, _ path: MessagePath) throws(USPError)
    -> [(index: ServiceIndex, value: JSONValue, path: MessagePath)]
{
    guard case .object(let o) = value else { throw path.wrongType("object keyed by index", value) }
    guard o.count <= SessionMessage.Limits.maxIndices else {
        throw path.malformed("\(o.count) indices, limit \(SessionMessage.Limits.maxIndices)")
    }
    var out: [(index: ServiceIndex, value: JSONValue, path: MessagePath)] = []
    out.reserveCapacity(o.count)
    for key in o.keys.sorted(by: JSONTextWriter.keyOrder) {
        let entryPath = path.key(key)
        guard let index = ServiceIndex(key: key) else {
            throw entryPath.malformed("index is not a decimal u32")
        }
        out.append((index, o[key]!, entryPath))
    }
    out.sort { $0.index < $1.index }
    return out
}

func checkIndexCount(_ count: Int, _ path: MessagePath) throws(USPError) {
    guard count <= SessionMessage.Limits.maxIndices else {
        throw path.malformed("\(count) indices, limit \(SessionMessage.Limits.maxIndices)")
    }
}

/// Extra (unmodelled) fields of a menu entry may not reuse a modelled name.
func checkExtra(_ extra: [String: JSONValue], reserved: [String], _ path: MessagePath) throws(USPError) {
    for key in reserved where extra[key] != nil {
        throw path.malformed("extra field \(detailQuoted(key)) collides with a defined field")
    }
}
