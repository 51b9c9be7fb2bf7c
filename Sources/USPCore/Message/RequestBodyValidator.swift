/// Checks a request body against an `expected_request_body` from the menu.
///
/// A spec maps each field name to a type string: `string`, `integer`, `number`, `boolean`,
/// `object`, `array` or `any`, optionally suffixed with `?` for an optional field
/// (`"string?"`). The empty string, which the proposal's examples use as a placeholder, means
/// `any`. `integer` accepts only JSON integers; `number` accepts integers and other numbers.
/// An optional field may be absent or null.
///
/// A body fails when a required field is missing, a field has the wrong type, or a field is
/// not in the spec. Errors are `USPError(.invalidRequestBody, …)` such as
/// `field "port": expected integer, got string`; fields are checked in sorted order, so the
/// same body always reports the same error.
public enum RequestBodyValidator {
    /// The type a spec entry names.
    public enum FieldType: String, CaseIterable, Sendable {
        case string, integer, number, boolean, object, array, any

        public func accepts(_ value: JSONValue) -> Bool {
            switch (self, value) {
            case (.any, _), (.string, .string), (.integer, .integer), (.number, .integer), (.number, .number),
                (.boolean, .bool), (.object, .object), (.array, .array):
                true
            default:
                false
            }
        }
    }

    /// One parsed spec entry.
    public struct FieldSpec: Hashable, Sendable {
        public var type: FieldType
        public var isOptional: Bool

        public init(type: FieldType, isOptional: Bool = false) {
            self.type = type
            self.isOptional = isOptional
        }

        /// Parses `"integer"`, `"string?"`, `""` (any); nil for anything else.
        public init?(_ text: String) {
            var t = Substring(text)
            isOptional = t.hasSuffix("?")
            if isOptional { t = t.dropLast() }
            if t.isEmpty {
                type = .any
            } else if let type = FieldType(rawValue: String(t)) {
                self.type = type
            } else {
                return nil
            }
        }
    }

    /// Parses a whole spec, or returns the error for its first (sorted) bad entry.
    public static func parse(_ spec: [String: String]) -> Result<[String: FieldSpec], USPError> {
        var out: [String: FieldSpec] = [:]
        for field in spec.keys.sorted(by: JSONTextWriter.keyOrder) {
            guard let parsed = FieldSpec(spec[field]!) else {
                return .failure(USPError(.invalidRequestBody,
                    "expected_request_body: field \(detailQuoted(field)): unknown type \(detailQuoted(spec[field]!))"))
            }
            out[field] = parsed
        }
        return .success(out)
    }

    /// Nil when `body` satisfies `spec`; otherwise the first problem as `.invalidRequestBody`.
    /// A spec with an unknown type string fails every body.
    public static func validate(_ body: [String: JSONValue], against spec: [String: String]) -> USPError? {
        let fields: [String: FieldSpec]
        switch parse(spec) {
        case .success(let f): fields = f
        case .failure(let e): return e
        }
        for name in fields.keys.sorted(by: JSONTextWriter.keyOrder) {
            let field = fields[name]!
            guard let value = body[name], !(field.isOptional && value.isNull) else {
                if field.isOptional { continue }
                return USPError(.invalidRequestBody, "field \(detailQuoted(name)): missing, expected \(field.type.rawValue)")
            }
            guard field.type.accepts(value) else {
                return USPError(.invalidRequestBody,
                                "field \(detailQuoted(name)): expected \(field.type.rawValue), got \(value.typeName)")
            }
        }
        if let extra = body.keys.filter({ fields[$0] == nil }).min(by: JSONTextWriter.keyOrder) {
            return USPError(.invalidRequestBody, "field \(detailQuoted(extra)): not in expected_request_body")
        }
        return nil
    }

    /// As `validate(_:against:)`, for a body that must first be a JSON object.
    public static func validate(_ body: JSONValue, against spec: [String: String]) -> USPError? {
        guard case .object(let o) = body else {
            return USPError(.invalidRequestBody, "request body: expected object, got \(body.typeName)")
        }
        return validate(o, against: spec)
    }
}
