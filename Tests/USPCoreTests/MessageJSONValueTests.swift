import Foundation
import Testing
import USPCore

@Suite struct MessageJSONValueTests {
    @Test func integersAndNumbersStayApart() throws {
        #expect(try JSONValue.parse(Array("1".utf8)) == .integer(1))
        #expect(try JSONValue.parse(Array("-0".utf8)) == .integer(0))
        #expect(try JSONValue.parse(Array("1.0".utf8)) == .number(1))
        #expect(try JSONValue.parse(Array("1e2".utf8)) == .number(100))
        #expect(try JSONValue.parse(Array("9223372036854775807".utf8)) == .integer(.max))
        #expect(try JSONValue.parse(Array("-9223372036854775808".utf8)) == .integer(.min))
        #expect(try JSONValue.parse(Array("9223372036854775808".utf8)) == .number(9_223_372_036_854_775_808))
        #expect(try JSONValue.number(1).encoded() == Array("1.0".utf8))
        #expect(try JSONValue.number(1e20).encoded() == Array("1e+20".utf8))
        #expect(try JSONValue.number(0.1).encoded() == Array("0.1".utf8))
        #expect(try JSONValue.integer(-5).encoded() == Array("-5".utf8))
        for d in [0.1, 1.0, -0.0, Double.leastNonzeroMagnitude, 1.7976931348623157e308, 123456.789, -2.5e-8] {
            #expect(try JSONValue.parse(JSONValue.number(d).encoded()) == .number(d))
        }
    }

    @Test func nonFiniteNumbersDoNotEncode() {
        #expect(throws: USPError(.malformedMessage)) { try JSONValue.number(.nan).encoded() }
        #expect(throws: USPError(.malformedMessage)) { try JSONValue.array([.number(.infinity)]).encoded() }
        let m = SessionMessage.serviceRequest(ServiceRequest(clientSessionID: "c", services: [1: ["x": .number(-.infinity)]]))
        expectEncodeError(m, .malformedMessage, "service_request: cannot encode non-finite number")
    }

    @Test func stringEscapes() throws {
        let s = "q\"b\\n\n\r\t\u{8}\u{C}\u{0}\u{1F}\u{7F}é😀\u{2028}/"
        let text = String(decoding: try JSONValue.string(s).encoded(), as: UTF8.self)
        #expect(text == "\"q\\\"b\\\\n\\n\\r\\t\\b\\f\\u0000\\u001f\u{7F}é😀\u{2028}/\"")
        #expect(try JSONValue.parse(Array(text.utf8)) == .string(s))
    }

    @Test func compactSortedOutput() throws {
        let v: JSONValue = ["b": [1, 2.5, "x", nil, true, false], "a": ["z": [:], "_": []], "B": 0]
        #expect(String(decoding: try v.encoded(), as: UTF8.self) == #"{"B":0,"a":{"_":[],"z":{}},"b":[1,2.5,"x",null,true,false]}"#)
    }

    @Test func encodingDepthIsLimited() {
        var v: JSONValue = 1
        for _ in 0..<64 { v = [v] }
        #expect(throws: Never.self) { try v.encoded() }
        v = [v]
        #expect(throws: USPError(.malformedMessage)) { try v.encoded() }
    }

    @Test func accessors() {
        let v: JSONValue = ["s": "x", "i": 3, "d": 2.5, "b": true, "a": [1], "o": [:], "n": nil]
        #expect(v["s"]?.stringValue == "x")
        #expect(v["i"]?.integerValue == 3)
        #expect(v["i"]?.doubleValue == 3)
        #expect(v["d"]?.doubleValue == 2.5)
        #expect(v["b"]?.boolValue == true)
        #expect(v["a"]?.arrayValue == [1])
        #expect(v["o"]?.objectValue == [:])
        #expect(v["n"]?.isNull == true)
        #expect(v["missing"] == nil)
        #expect(v.objectValue?.count == 7)
        #expect(JSONValue.string("x")["k"] == nil)
        #expect([JSONValue.null, true, 1, 1.5, "s", [], [:]].map(\.typeName)
                == ["null", "boolean", "integer", "number", "string", "array", "object"])
    }

    @Test func codableWithFoundation() throws {
        let v: JSONValue = ["name": "echo", "port": 22, "ratio": 0.5, "ok": true, "list": [nil, "a"], "obj": ["k": -1]]
        let data = try JSONEncoder().encode(v)
        #expect(try JSONDecoder().decode(JSONValue.self, from: data) == v)
        let parsed = try JSONDecoder().decode(JSONValue.self, from: Data(#"{"a":[1,2.5,"x",null,false]}"#.utf8))
        #expect(parsed == ["a": [1, 2.5, "x", nil, false]])
    }
}
