import Testing
import USPCore

/// Kind byte plus JSON text, as a MESSAGE frame body.
func messageBytes(_ kind: UInt8, _ json: String) -> [UInt8] {
    [kind] + Array(json.utf8)
}

func messageBytes(_ kind: SessionMessage.Kind, _ json: String) -> [UInt8] {
    messageBytes(kind.rawValue, json)
}

/// The JSON text of an encoded message (without the kind byte).
func jsonText(_ message: SessionMessage) throws -> String {
    let bytes = try message.encode()
    #expect(bytes.first == message.kind.rawValue)
    return String(decoding: bytes.dropFirst(), as: UTF8.self)
}

/// Decodes and returns the error, failing the test if decoding succeeds.
@discardableResult
func decodeError(
    _ bytes: [UInt8], sourceLocation: SourceLocation = #_sourceLocation
) -> USPError? {
    do {
        let m = try SessionMessage.decode(bytes)
        Issue.record("expected a decode error, got \(m)", sourceLocation: sourceLocation)
        return nil
    } catch {
        return error
    }
}

/// Expects decoding to fail with `code` and a detail containing `detail`.
func expectDecodeError(
    _ bytes: [UInt8], _ code: USPError.Code, _ detail: String? = nil,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    guard let error = decodeError(bytes, sourceLocation: sourceLocation) else { return }
    #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
    #expect(!error.detail.isEmpty, sourceLocation: sourceLocation)
    #expect(!error.detail.contains("\n"), "detail must be one line: \(error.detail)", sourceLocation: sourceLocation)
    if let detail {
        #expect(error.detail.contains(detail), "detail was: \(error.detail)", sourceLocation: sourceLocation)
    }
}

func expectDecodeError(
    _ kind: SessionMessage.Kind, _ json: String, _ code: USPError.Code, _ detail: String? = nil,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    expectDecodeError(messageBytes(kind, json), code, detail, sourceLocation: sourceLocation)
}

/// Expects encoding to fail with `code` and a detail containing `detail`.
func expectEncodeError(
    _ message: SessionMessage, _ code: USPError.Code, _ detail: String? = nil,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    do {
        let bytes = try message.encode()
        Issue.record("expected an encode error, got \(bytes.count) bytes", sourceLocation: sourceLocation)
    } catch {
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
        if let detail {
            #expect(error.detail.contains(detail), "detail was: \(error.detail)", sourceLocation: sourceLocation)
        }
    }
}

/// decode(encode(m)) == m, and re-encoding gives the same bytes.
func expectRoundTrip(_ message: SessionMessage, sourceLocation: SourceLocation = #_sourceLocation) {
    do {
        let bytes = try message.encode()
        let decoded = try SessionMessage.decode(bytes)
        #expect(decoded == message, sourceLocation: sourceLocation)
        #expect(try decoded.encode() == bytes, sourceLocation: sourceLocation)
        // The UnsafeRawBufferPointer overload agrees.
        let viaPointer = try bytes.withUnsafeBytes { (raw) throws(USPError) -> SessionMessage in
            try SessionMessage.decode(raw)
        }
        #expect(viaPointer == message, sourceLocation: sourceLocation)
    } catch {
        Issue.record("round trip failed: \(error)", sourceLocation: sourceLocation)
    }
}
