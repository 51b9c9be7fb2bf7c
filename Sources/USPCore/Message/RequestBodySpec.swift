/// Reads and writes an `expected_request_body` of the form `{"field":"<type>", …}`
/// (see `RequestBodyValidator` for the type strings). Decoding only checks that every value is
/// a string, so a menu with a type this build does not know still decodes.
enum RequestBodySpecCoding {
    static func decode(_ value: JSONValue, _ path: MessagePath) throws(USPError) -> [String: String] {
        guard case .object(let o) = value else { throw path.wrongType("object of field types", value) }
        var spec: [String: String] = [:]
        spec.reserveCapacity(o.count)
        for key in o.keys.sorted(by: JSONTextWriter.keyOrder) {
            guard case .string(let type) = o[key]! else { throw path.key(key).wrongType("type string", o[key]!) }
            spec[key] = type
        }
        return spec
    }

    static func encode(_ spec: [String: String]) -> JSONValue {
        .object(spec.mapValues(JSONValue.string))
    }
}
