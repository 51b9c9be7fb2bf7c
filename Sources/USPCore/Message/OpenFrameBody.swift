/// The JSON body of an OPEN frame: the `application_session` object with action `begin`,
/// `{"action":"begin","token":"usp1p.…"}` (docs/PROTOCOL.md §5).
extension ApplicationSessionRequest {
    public func encodeOpenBody() throws(USPError) -> [UInt8] {
        try toJSON(MessagePath("open")).encoded()
    }

    public static func decodeOpenBody(_ bytes: UnsafeRawBufferPointer) throws(USPError) -> ApplicationSessionRequest {
        guard bytes.count <= SessionMessage.Limits.maxEncodedSize else {
            throw USPError(.messageTooLarge, "open: body of \(bytes.count) bytes")
        }
        var parser = JSONTextParser(bytes, context: "open")
        let json = try parser.parseDocument()
        return try ApplicationSessionRequest(json: json, MessagePath("open"))
    }
}
