import USPCore

/// Text fields (`--field k=v`) turned into the JSON types a menu entry expects.
public enum RequestFields {
    /// Parses `k=v` arguments into a dictionary; a repeated key is an error.
    public static func parse(_ arguments: [String]) throws(USPClientError) -> [String: String] {
        var out: [String: String] = [:]
        for a in arguments {
            guard let eq = a.firstIndex(of: "="), eq != a.startIndex else {
                throw USPClientError(.invalidArgument, "--field \(a): expected NAME=VALUE")
            }
            let key = String(a[..<eq])
            guard out[key] == nil else { throw USPClientError(.invalidArgument, "--field \(key) given twice") }
            out[key] = String(a[a.index(after: eq)...])
        }
        return out
    }

    /// Converts each value to the type `spec` names (see docs/PROTOCOL.md §6.2), and checks that
    /// required fields are present and no unknown field is given.
    public static func coerce(_ fields: [String: String], spec: [String: String], application: String) throws(USPClientError) -> [String: JSONValue] {
        let list = ErrorText.fieldList(spec)
        for key in fields.keys.sorted() where spec[key] == nil {
            throw USPClientError(.invalidArgument, "\"\(application)\" has no field \(key) (fields: \(list))")
        }
        var out: [String: JSONValue] = [:]
        for (key, type) in spec.sorted(by: { $0.key < $1.key }) {
            let optional = type.hasSuffix("?")
            let base = optional ? String(type.dropLast()) : type
            guard let text = fields[key] else {
                if !optional {
                    throw USPClientError(.invalidArgument, "\"\(application)\" needs field \(key) (\(base.isEmpty ? "any" : base)): add --field \(key)=VALUE")
                }
                continue
            }
            out[key] = try value(text, type: base, field: key)
        }
        return out
    }

    static func value(_ text: String, type: String, field: String) throws(USPClientError) -> JSONValue {
        func bad(_ what: String) -> USPClientError {
            USPClientError(.invalidArgument, "--field \(field)=\(text): expected \(what)")
        }
        switch type {
        case "string":
            return .string(text)
        case "integer":
            guard let i = Int64(text) else { throw bad("an integer") }
            return .integer(i)
        case "number":
            if let i = Int64(text) { return .integer(i) }
            guard let d = Double(text), d.isFinite else { throw bad("a number") }
            return .number(d)
        case "boolean":
            switch text.lowercased() {
            case "true", "yes", "1": return .bool(true)
            case "false", "no", "0": return .bool(false)
            default: throw bad("true or false")
            }
        case "object", "array":
            guard let v = try? JSONValue.parse(Array(text.utf8)) else { throw bad("JSON \(type)") }
            if type == "object", case .object = v { return v }
            if type == "array", case .array = v { return v }
            throw bad("a JSON \(type)")
        default:
            // "" (any) or a type this client does not know: JSON if it parses, else text.
            return (try? JSONValue.parse(Array(text.utf8))) ?? .string(text)
        }
    }
}
