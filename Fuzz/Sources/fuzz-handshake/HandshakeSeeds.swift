import FuzzSupport
import USPCore

/// Seeds: real message 1s (raw mode) and client payloads (structured modes).
enum HandshakeSeeds {
    static func records(_ plaintexts: [[UInt8]]) -> [UInt8] {
        var w = WireWriter()
        for p in plaintexts {
            w.writeUInt16(UInt16(p.count))
            w.writeBytes(p)
        }
        return w.bytes
    }

    static func payload(_ pattern: HandshakeLayout.Pattern, early: [UInt8]) -> [UInt8] {
        let room = HandshakeLayout.message1PayloadLength(pattern)
        var p = Samples.hello + early
        p += [UInt8](repeating: 0, count: max(0, room - p.count))
        return Array(p.prefix(room))
    }

    static func all() -> [(name: String, bytes: [UInt8])] {
        var seeds: [(name: String, bytes: [UInt8])] = []
        let id = Samples.clientSessionID
        let initial = Samples.frame(.initialRequest(InitialRequest(clientSessionID: id)))
        let byName = Samples.frame(.initialRequest(InitialRequest(
            clientSessionID: id, applicationSession: ApplicationSessionRequest(application: "echo", clientTCPStream: 1))))
        let login = Samples.frame(.serviceRequest(ServiceRequest(
            clientSessionID: id, authentication: .credentials(["user": "alice", "password": "correct horse"]))))
        let ask = Samples.frame(.serviceRequest(ServiceRequest(clientSessionID: id, services: [2: ["zone": "UTC"], 3: ["user": "alice"]])))
        let open = Frame.open(stream: 1, session: try! ApplicationSessionRequest(application: "time", clientTCPStream: 1).encodeOpenBody()).encoded
        let data = Frame.data(stream: 1, data: Array("hello".utf8)).encoded + Frame.fin(stream: 1).encoded
        let control = Frame.ping(1).encoded + Frame.window(stream: 1, increment: 4096).encoded + Frame.rekey.encoded
        let close = Frame.close(code: 0, reason: "bye").encoded

        // Raw: the bytes a real client sends (mode 0, then the u16 split point).
        func raw(_ name: String, _ bytes: [UInt8], split: UInt16 = 0xFFFF) {
            seeds.append(("raw-" + name, [0, UInt8(split >> 8), UInt8(split & 0xFF)] + bytes))
        }
        raw("ik", MemoryPair.message1(MemoryPair.knownServer))
        raw("nk-early", MemoryPair.message1(MemoryPair.anonymous, ClientStart(application: .init(name: "echo"), initialData: Array("hi".utf8))), split: 500)
        raw("xx", MemoryPair.message1(MemoryPair.firstContact))
        raw("xx-message3", MemoryPair.message1(MemoryPair.firstContact) + [UInt8](repeating: 0x5A, count: 128), split: 1024)
        var pair = MemoryPair(mode: MemoryPair.knownServer)
        try! pair.client.start(ClientStart(), now: pair.now)
        pair.pump()
        try! pair.client.requestServices([2: [:]], authentication: .credentials(["user": "alice", "password": "correct horse"]))
        pair.pump()
        raw("ik-session", pair.toServer, split: 1030)

        // Structured: mode, message 1 payload (hello + early frames), then records.
        for (mode, pattern) in [(UInt8(1), HandshakeLayout.Pattern.ik), (2, .nk)] {
            let name = pattern.rawValue.lowercased()
            seeds.append(("\(name)-hello", [mode] + payload(pattern, early: [])))
            seeds.append(("\(name)-initial", [mode] + payload(pattern, early: initial)))
            seeds.append(("\(name)-by-name", [mode] + payload(pattern, early: byName + data) + records([control, close])))
            seeds.append(("\(name)-login", [mode] + payload(pattern, early: initial) + records([login, ask, open, data])))
        }
        let xxFiller = [UInt8](repeating: 0, count: HandshakeLayout.message1PayloadLength(.xx))
        seeds.append(("xx-hello", [3] + xxFiller + Samples.hello))
        seeds.append(("xx-session", [3] + xxFiller + Samples.hello + records([initial, login, byName, data, close])))
        return seeds
    }
}
