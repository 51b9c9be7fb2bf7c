import PropertyBased
import USPCore

/// Random valid session messages (for round trips) and JSON-ish noise (for fuzzing).
enum MessageGen {
    // MARK: strings

    static let printableASCII: [Character] = (0x20...0x7E).map { Character(Unicode.Scalar(UInt8($0))) }
    static let awkward: [String] = [
        "\"", "\\", "\n", "\u{0}", "\u{1F}", "\u{7F}", "é", "e\u{301}", "日本", "😀", "\u{2028}", "/", " ", "\t", "{}", "[",
    ]

    static func int<R: RandomNumberGenerator>(_ range: ClosedRange<Int>, _ rng: inout R) -> Int {
        Int.random(in: range, using: &rng)
    }

    static func chance<R: RandomNumberGenerator>(_ p: Double, _ rng: inout R) -> Bool {
        Double.random(in: 0..<1, using: &rng) < p
    }

    static func visible<R: RandomNumberGenerator>(_ lengths: ClosedRange<Int>, _ rng: inout R) -> String {
        String((0..<int(lengths, &rng)).map { _ in printableASCII.randomElement(using: &rng)! })
    }

    /// Any string, with a good share of characters that need escaping or are not ASCII.
    static func anyString<R: RandomNumberGenerator>(_ lengths: ClosedRange<Int>, _ rng: inout R) -> String {
        var s = ""
        for _ in 0..<int(lengths, &rng) {
            switch int(0...3, &rng) {
            case 0: s += awkward.randomElement(using: &rng)!
            case 1: s.unicodeScalars.append(Unicode.Scalar(UInt32(int(0x20...0xD7FF, &rng)))!)
            default: s.append(printableASCII.randomElement(using: &rng)!)
            }
        }
        return s
    }

    static func sessionID<R: RandomNumberGenerator>(_ rng: inout R) -> String {
        chance(0.05, &rng) ? visible(128...128, &rng) : visible(1...24, &rng)
    }

    static func token<R: RandomNumberGenerator>(_ rng: inout R) -> String {
        chance(0.02, &rng) ? visible(1024...1024, &rng) : visible(1...48, &rng)
    }

    static func u32<R: RandomNumberGenerator>(_ rng: inout R) -> UInt32 {
        switch int(0...3, &rng) {
        case 0: 0
        case 1: .max
        default: UInt32.random(in: 0...UInt32.max, using: &rng)
        }
    }

    static func index<R: RandomNumberGenerator>(_ rng: inout R) -> ServiceIndex {
        ServiceIndex(chance(0.7, &rng) ? UInt32(int(1...20, &rng)) : UInt32.random(in: 1...UInt32.max, using: &rng))
    }

    static func action<R: RandomNumberGenerator>(_ rng: inout R) -> ApplicationAction {
        switch int(0...2, &rng) {
        case 0: .begin
        case 1: .end
        default: ApplicationAction(visible(1...16, &rng) + (chance(0.3, &rng) ? " é😀" : ""))
        }
    }

    // MARK: JSON

    static func double<R: RandomNumberGenerator>(_ rng: inout R) -> Double {
        switch int(0...3, &rng) {
        case 0: return Double(int(-1000...1000, &rng))
        case 1: return Double.random(in: -1e6...1e6, using: &rng)
        default:
            while true {
                let d = Double(bitPattern: UInt64.random(in: 0...UInt64.max, using: &rng))
                if d.isFinite { return d }
            }
        }
    }

    static func json<R: RandomNumberGenerator>(depth: Int, _ rng: inout R) -> JSONValue {
        switch int(0...(depth > 0 ? 7 : 5), &rng) {
        case 0: return .null
        case 1: return .bool(chance(0.5, &rng))
        case 2: return .integer(chance(0.5, &rng) ? Int64(int(-100...100, &rng)) : Int64.random(in: .min ... .max, using: &rng))
        case 3: return .number(double(&rng))
        case 4, 5: return .string(anyString(0...12, &rng))
        case 6: return .array((0..<int(0...4, &rng)).map { _ in json(depth: depth - 1, &rng) })
        default: return .object(jsonObject(depth: depth - 1, &rng))
        }
    }

    static func jsonObject<R: RandomNumberGenerator>(depth: Int, _ rng: inout R) -> [String: JSONValue] {
        var o: [String: JSONValue] = [:]
        for _ in 0..<int(0...4, &rng) { o[anyString(0...8, &rng)] = json(depth: depth, &rng) }
        return o
    }

    /// Extra menu-entry fields: never a defined field name.
    static func extra<R: RandomNumberGenerator>(_ rng: inout R) -> [String: JSONValue] {
        var o: [String: JSONValue] = [:]
        for _ in 0..<int(0...3, &rng) { o["x_" + anyString(0...6, &rng)] = json(depth: 2, &rng) }
        return o
    }

    static func spec<R: RandomNumberGenerator>(_ rng: inout R) -> [String: String] {
        let types = ["string", "integer", "number", "boolean", "object", "array", "", "string?", "integer?", "whatever"]
        var o: [String: String] = [:]
        for _ in 0..<int(0...4, &rng) { o[anyString(1...8, &rng)] = types.randomElement(using: &rng)! }
        return o
    }

    static func wireError<R: RandomNumberGenerator>(_ rng: inout R) -> WireError {
        let code = chance(0.9, &rng)
            ? USPError.Code.all.randomElement(using: &rng)!
            : USPError.Code(WireError.unknownCodeWireValue, "future_" + String(int(0...99, &rng)))
        return chance(0.5, &rng) ? WireError(code) : WireError(code, anyString(0...30, &rng))
    }

    // MARK: messages

    static func initialRequest<R: RandomNumberGenerator>(_ rng: inout R) -> InitialRequest {
        InitialRequest(
            clientSessionID: sessionID(&rng),
            authorizationToken: chance(0.5, &rng) ? token(&rng) : nil,
            applicationSession: chance(0.3, &rng) ? nil : ApplicationSessionRequest(
                token: token(&rng), action: action(&rng),
                clientTCPStream: chance(0.5, &rng) ? u32(&rng) : nil,
                parameters: chance(0.5, &rng) ? jsonObject(depth: 3, &rng) : nil))
    }

    static func menu<R: RandomNumberGenerator>(_ rng: inout R) -> ApplicationMenu {
        var apps: [ServiceIndex: ApplicationOffer] = [:]
        for _ in 0..<int(0...5, &rng) {
            apps[index(&rng)] = ApplicationOffer(
                name: anyString(1...12, &rng), description: chance(0.5, &rng) ? anyString(0...20, &rng) : nil,
                expectedRequestBody: spec(&rng), extra: extra(&rng))
        }
        let auth: AuthenticationOffer? = switch int(0...2, &rng) {
        case 0: nil
        case 1: .methods((0..<int(0...3, &rng)).map { _ in
                AuthenticationMethod(method: anyString(1...10, &rng), expectedRequestBody: spec(&rng), extra: extra(&rng))
            })
        default: .tokenInvalidation(TokenInvalidationOffer(
                name: anyString(1...16, &rng), expectedRequestBody: (0..<int(0...2, &rng)).map { _ in anyString(0...8, &rng) },
                extra: extra(&rng)))
        }
        return ApplicationMenu(serverSessionID: sessionID(&rng), authentication: auth, applications: apps)
    }

    static func serviceRequest<R: RandomNumberGenerator>(_ rng: inout R) -> ServiceRequest {
        var services: [ServiceIndex: [String: JSONValue]] = [:]
        for _ in 0..<int(0...5, &rng) { services[index(&rng)] = jsonObject(depth: 3, &rng) }
        let auth: AuthenticationRequest? = switch int(0...2, &rng) {
        case 0: nil
        case 1: .credentials(jsonObject(depth: 2, &rng))
        default: .invalidateTokens((0..<int(0...4, &rng)).map { _ in token(&rng) })
        }
        return ServiceRequest(
            clientSessionID: sessionID(&rng), authorizationToken: chance(0.5, &rng) ? token(&rng) : nil,
            authentication: auth, services: services, clientIP: chance(0.3, &rng) ? clientIP(&rng) : nil)
    }

    /// `client_ip` text within the wire's rule: 2…45 of hex digits, "." and ":" (not always an address).
    static func clientIP<R: RandomNumberGenerator>(_ rng: inout R) -> String {
        let alphabet = Array("0123456789abcdefABCDEF.:")
        return String((0..<int(2...45, &rng)).map { _ in alphabet[int(0...(alphabet.count - 1), &rng)] })
    }

    static func serviceResult<R: RandomNumberGenerator>(index: ServiceIndex, _ rng: inout R) -> ServiceResult {
        switch int(0...(index.isAuthentication ? 2 : 1), &rng) {
        case 0: .token(token(&rng))
        case 1: .error(wireError(&rng))
        default: .invalidated(u32(&rng))
        }
    }

    static func serviceReply<R: RandomNumberGenerator>(_ rng: inout R) -> ServiceReply {
        var results: [ServiceIndex: ServiceResult] = [:]
        if chance(0.5, &rng) { results[.authentication] = serviceResult(index: .authentication, &rng) }
        for _ in 0..<int(0...6, &rng) {
            let i = index(&rng)
            results[i] = serviceResult(index: i, &rng)
        }
        return ServiceReply(results: results)
    }

    static func applicationSessionReply<R: RandomNumberGenerator>(_ rng: inout R) -> ApplicationSessionReply {
        let outcome: ApplicationSessionReply.Outcome
        switch int(0...2, &rng) {
        case 0: outcome = .error(wireError(&rng))
        case 1: outcome = .session(.began(clientTCPStream: chance(0.5, &rng) ? u32(&rng) : nil, serverTCPStream: u32(&rng)))
        default:
            var a = action(&rng)
            if a == .begin { a = .end }
            outcome = .session(ApplicationSessionResult(
                action: a, clientTCPStream: chance(0.3, &rng) ? u32(&rng) : nil,
                serverTCPStream: chance(0.3, &rng) ? u32(&rng) : nil,
                result: chance(0.6, &rng) ? jsonObject(depth: 3, &rng) : nil))
        }
        return ApplicationSessionReply(serverSessionID: sessionID(&rng), outcome: outcome)
    }

    static func message<R: RandomNumberGenerator>(_ rng: inout R) -> SessionMessage {
        switch int(1...6, &rng) {
        case 1: .initialRequest(initialRequest(&rng))
        case 2: .menu(menu(&rng))
        case 3: .serviceRequest(serviceRequest(&rng))
        case 4: .serviceReply(serviceReply(&rng))
        case 5: .applicationSessionReply(applicationSessionReply(&rng))
        default: .error(SessionErrorMessage(wireError(&rng)))
        }
    }

    // MARK: mutations

    static let fragments: [String] = [
        "{", "}", "[", "]", "\"", ":", ",", "null", "true", "false", "-", "0", "01", "-0", "1e999", "1.5", "-1",
        "4294967296", "9223372036854775808", "\\", "\\u", "\\ud800", "\\u0000", "\"\":", "{\"a\":", "\"0\":", "\"01\":",
        "\"x\":{},", " ", "\n", "\"v\":2,", "\"v\":1,", "[[[[[[[[", "]]]]", "{}", "[]", "\"token\":\"t\"",
        "\"error\":{\"code\":\"ok\",\"message\":\"m\"}", "\"expected_request_body\":{}", "\"ecpected_request_body\":{}",
        "\"invalidated\":1", "\"action\":\"begin\"", "\u{FEFF}", "é", "😀",
    ]

    /// One to four byte-level mutations of a valid message: flips, deletions, insertions of
    /// JSON fragments or raw bytes, duplications, truncation, a new kind byte.
    static func mutateBytes<R: RandomNumberGenerator>(_ input: [UInt8], _ rng: inout R) -> [UInt8] {
        var b = input
        for _ in 0..<int(1...4, &rng) {
            let pos = b.isEmpty ? 0 : int(0...b.count, &rng)
            switch int(0...7, &rng) {
            case 0 where !b.isEmpty:
                b[min(pos, b.count - 1)] = UInt8.random(in: 0...255, using: &rng)
            case 1 where !b.isEmpty:
                let end = min(b.count, pos + int(1...8, &rng))
                b.removeSubrange(min(pos, end)..<end)
            case 2:
                b.insert(contentsOf: Array(fragments.randomElement(using: &rng)!.utf8), at: pos)
            case 3:
                b.insert(contentsOf: (0..<int(1...4, &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }, at: pos)
            case 4 where !b.isEmpty:
                let start = int(0...(b.count - 1), &rng)
                let slice = b[start..<min(b.count, start + int(1...16, &rng))]
                b.insert(contentsOf: slice, at: pos)
            case 5:
                b.removeSubrange(pos...)
            case 6 where !b.isEmpty:
                b[0] = UInt8(int(0...7, &rng))
            default:
                // Swap a random structural byte for another.
                let structural: [UInt8] = Array("{}[]\":,".utf8)
                if let i = b.indices.filter({ structural.contains(b[$0]) }).randomElement(using: &rng) {
                    b[i] = structural.randomElement(using: &rng)!
                }
            }
        }
        return b
    }

    /// A structural mutation: some node of the message's JSON replaced, removed, or given a
    /// new sibling.
    static func mutateJSON<R: RandomNumberGenerator>(_ value: JSONValue, _ rng: inout R, depth: Int = 0) -> JSONValue {
        let stop = chance(0.35, &rng) || depth > 6
        switch value {
        case .object(var o) where !stop && !o.isEmpty:
            let key = o.keys.sorted().randomElement(using: &rng)!
            o[key] = mutateJSON(o[key]!, &rng, depth: depth + 1)
            return .object(o)
        case .array(var a) where !stop && !a.isEmpty:
            let i = int(0...(a.count - 1), &rng)
            a[i] = mutateJSON(a[i], &rng, depth: depth + 1)
            return .array(a)
        case .object(var o) where !o.isEmpty && chance(0.3, &rng):
            o.removeValue(forKey: o.keys.sorted().randomElement(using: &rng)!)
            return .object(o)
        case .object(var o) where chance(0.3, &rng):
            let keys = ["v", "token", "error", "0", "1", "x", "name", "action", "invalidated", "result", "01"]
            o[keys.randomElement(using: &rng)!] = json(depth: 1, &rng)
            return .object(o)
        default:
            switch int(0...3, &rng) {
            case 0: return json(depth: 2, &rng)
            case 1: return .string("")
            case 2: return .integer(Int64(int(-2...2, &rng)))
            default: return .null
            }
        }
    }
}

/// A PropertyBased generator from a plain random function.
func generator<T: Sendable>(_ make: @escaping @Sendable (inout any SeededRandomNumberGenerator) -> T)
    -> Generator<T, Shrink.None<T>>
{
    Generator(run: { rng in make(&rng) })
}
