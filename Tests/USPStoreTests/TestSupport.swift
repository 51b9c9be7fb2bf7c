import Foundation
@testable import USPStore

/// Runs a program and returns (status, stdout).
@discardableResult
func run(_ executable: String, _ arguments: [String], stdin: String? = nil) throws -> (Int32, String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = arguments
    let out = Pipe()
    p.standardOutput = out
    p.standardError = FileHandle.nullDevice
    let input = Pipe()
    if stdin != nil { p.standardInput = input }
    try p.run()
    if let stdin {
        input.fileHandleForWriting.write(Data(stdin.utf8))
        try input.fileHandleForWriting.close()
    }
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// The sqlite3 command-line shell, an independent reader of our files (absent on some machines).
let sqlite3Path: String? = ["/usr/bin/sqlite3", "/usr/local/bin/sqlite3"].first { FileManager.default.isExecutableFile(atPath: $0) }

func sqlite3(_ db: String, _ sql: String) throws -> String {
    let (status, out) = try run(sqlite3Path!, ["-batch", db, sql])
    precondition(status == 0, "sqlite3 failed on \(sql)")
    return out.trimmingCharacters(in: .whitespacesAndNewlines)
}

/// A millisecond-aligned date (the store keeps milliseconds).
func at(_ seconds: Double) -> Date { Date(timeIntervalSince1970: 1_750_000_000 + seconds) }

func makeToken(_ id: String, _ kind: TokenRecord.Kind = .authorization, identity: String? = "alice", under: String? = nil,
               issued: Double = 0, expires: Double = 3600) -> TokenRecord {
    TokenRecord(id: id, kind: kind, publicKey: "pk-\(id)", identity: identity, application: kind == .application ? "ssh" : nil,
                peerAddress: kind == .application ? "192.0.2.7" : nil, requestJSON: kind == .application ? #"{"user":"root"}"# : nil,
                authorizationTokenID: under, issuedAt: at(issued), expiresAt: at(expires))
}

func fileBytes(_ path: String) -> Data { FileManager.default.contents(atPath: path) ?? Data() }

func expectStoreError(_ code: StoreError.Code, _ body: () throws -> Void) -> StoreError? {
    do {
        try body()
        return nil
    } catch let e as StoreError {
        return e.code == code ? e : nil
    } catch {
        return nil
    }
}
