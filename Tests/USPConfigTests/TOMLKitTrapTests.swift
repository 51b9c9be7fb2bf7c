import Testing
import USPConfig

/// Found by fuzz-config (Fuzz/Regressions/config/): toml++ under TOMLKit 0.6.0 fails an assertion,
/// aborting the process, on a table header whose key starts with a character that can start no key,
/// on a `}` or a Unicode line break where an array expects a value, and on a date followed by a
/// space and one digit. Such a file must be an ordinary syntax error with its position, from both
/// loaders.
@Suite("TOML text that TOMLKit traps on")
struct TOMLKitTrapTests {
    let p = "apps.d/bad.toml"

    @Test(arguments: [
        ("[?]\n", 1, 2), ("[[ ?]]\n", 1, 4), ("[\t\u{E9}]\n", 1, 3), ("  [\u{FFFD}]\n", 1, 4),
        ("name = \"x\"\n[launch]\n[#]\n", 3, 2), ("[\r\n", 1, 2), ("[\n", 1, 2), ("\u{FEFF}[\u{FFFD}]\n", 1, 2),
        ("x = [}\n", 1, 6), ("x = [1, }\n", 1, 9), ("x = [\n  # c\n}\n", 3, 1), ("x = [[}]]\n", 1, 7), ("x = [\u{85}]\n", 1, 6), ("x = [1,\n\u{2028}]\n", 2, 1),
        ("x = 1979-05-27 0\n", 1, 16), ("x = [1111-11-11 1 ]\n", 1, 17), ("x = 1_979-05-27 0,\n", 1, 17),
    ])
    func isASyntaxErrorWithItsPosition(text: String, line: Int, column: Int) {
        for error in [configError { try ApplicationLoader.parse(text, path: p) }, configError { try ServerConfigLoader.parse(text, path: p) }] {
            #expect(error?.code == .syntax)
            #expect(error?.line == line && error?.column == column, "\(String(describing: error))")
        }
    }

    @Test func bracketsInStringsAndMultiLineValuesAreNotHeaders() throws {
        let app = try ApplicationLoader.parse("""
            name = "notes"
            description = \"\"\"
            [?] is not a header in a string
            \"\"\"
            visibility = [
                "alice",   # [?] nor in a comment
            ]
            ["launch"]
            exec = ['/bin/[?]']
            [limits]
            token_lifetime = 1_000  # a number, then a comment
            """, path: p)
        #expect(app.name == "notes")
        // A line of a multi-line array that starts with "[": a value, refused as one, not a syntax error.
        let nested = configError { try ServerConfigLoader.parse("listen = [\n[+1],\n]\n", path: p) }
        #expect(nested?.code != .syntax)
        // An inline table's `}` inside an array closes the table.
        let tables = configError { try ServerConfigLoader.parse("listen = [ {a = 1}, {} ]\n", path: p) }
        #expect(tables?.code == .wrongType)
    }
}
