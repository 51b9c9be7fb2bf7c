import USPCore

struct RecordResults {
    var seal = Figure("seal16k_MBps", "seal in place (RecordSealer.seal(plaintextCount:in:))", .rate)
    var open = Figure("open16k_MBps", "open in place (RecordOpener.openHeader + openBody)", .rate)
    var streamSeal = Figure("stream_seal16k_MBps", "seal appending (RecordSealer.seal(_:appendingTo:))", .rate)
    var streamRead = Figure("stream_read16k_MBps", "read (RecordReader.append + nextRecord)", .rate)
    var aead = Figure("aead16k_MBps", "one AEAD call (CipherState.seal, 16 KiB, no header)", .rate)
    var allocRecords = 0
    var allocSeal = Double.nan, allocOpen = Double.nan, allocStream = Double.nan
    /// ServerSession.receive of DATA records + its actions carried out + credit returned.
    var session = Figure("session16k_MBps", "session: ServerSession.receive + actions + consumed", .rate)
    var allocSession = Double.nan
}

func runRecords(_ options: Options, counting: Bool) throws -> RecordResults {
    var out = RecordResults()
    var rec = try RecordBench()
    let n = options.recordsPerRun
    note("records: warm-up")
    _ = try rec.sealInPlace(records: n / 4)
    _ = try rec.aeadOnly(records: n / 4)
    _ = try rec.openInPlace(records: n / 4)
    _ = try rec.stream(records: n / 4)

    // Each run goes round-robin over the paths in `slices` slices, so a slow phase of the machine
    // hits all of them alike.
    let slices = options.slices
    let perSlice = max(RecordBench.batch, n / slices / RecordBench.batch * RecordBench.batch)
    let records = perSlice * slices
    for run in 1...options.runs {
        note("records: run \(run)/\(options.runs)")
        var seal = Section(), open = Section(), streamSeal = Section(), streamRead = Section(), aead = Section()
        for _ in 0..<slices {
            try seal.measure { try rec.sealInPlace(records: perSlice) }
            try open.measure { try rec.openInPlace(records: perSlice) }
            var read: UInt64 = 0
            try streamSeal.measure {
                let t = try rec.stream(records: perSlice)
                read = t.read
                return t.seal
            }
            streamRead.timed &+= read
            try aead.measure { try rec.aeadOnly(records: perSlice) }
        }
        streamRead.wall = streamSeal.wall
        streamRead.cpu = streamSeal.cpu
        out.seal.add(megabytesPerSecond(records: records, ns: seal.timed), share: seal.share)
        out.open.add(megabytesPerSecond(records: records, ns: open.timed), share: open.share)
        out.streamSeal.add(megabytesPerSecond(records: records, ns: streamSeal.timed), share: streamSeal.share)
        out.streamRead.add(megabytesPerSecond(records: records, ns: streamRead.timed), share: streamRead.share)
        out.aead.add(megabytesPerSecond(records: records, ns: aead.timed), share: aead.share)
    }

    // The session data path, in batches of 4 records (the client's credit comes back in between).
    var sessionBench = try SessionBench()
    for _ in 0..<(n / 16) { _ = try sessionBench.run(records: 4) }
    for run in 1...options.runs {
        note("session: run \(run)/\(options.runs)")
        var section = Section()
        try section.measure {
            var ns: UInt64 = 0
            for _ in 0..<(records / 4) { ns &+= try sessionBench.run(records: 4) }
            return ns
        }
        out.session.add(megabytesPerSecond(records: records / 4 * 4, ns: section.timed), share: section.share)
    }

    // Mallocs per record, after the warm-up above; counting is on only around the measured calls.
    let m = options.allocRecords
    out.allocRecords = m
    if counting {
        note("records: counting mallocs over \(m) records per path")
        AllocCounter.reset()
        _ = try rec.sealInPlace(records: m, countAllocs: true)
        out.allocSeal = Double(AllocCounter.mallocs) / Double(m)
        AllocCounter.reset()
        _ = try rec.openInPlace(records: m, countAllocs: true)
        out.allocOpen = Double(AllocCounter.mallocs) / Double(m)
        AllocCounter.reset()
        _ = try rec.stream(records: m, countAllocs: true)
        out.allocStream = Double(AllocCounter.mallocs) / Double(m)
        AllocCounter.reset()
        for _ in 0..<(m / 4) { _ = try sessionBench.run(records: 4, countAllocs: true) }
        out.allocSession = Double(AllocCounter.mallocs) / Double(m / 4 * 4)
        AllocCounter.reset()
    }
    return out
}

struct HandshakeResults {
    var keygenRandom = Figure("x25519_keygen_us", "X25519 keygen: PrivateKey() (+ public key)", .duration)
    var keygenBytes = Figure("x25519_keygen_from_bytes_us", "X25519 keygen: PrivateKey(rawRepresentation:)", .duration)
    var dh = Figure("x25519_dh_us", "X25519 DH: sharedSecretFromKeyAgreement", .duration)
    var pairs: [HandshakeLayout.Pattern: Figure] = [
        .xx: Figure("hs_xx_us", "XX handshake pair (client + server)", .duration),
        .ik: Figure("hs_ik_us", "IK handshake pair (client + server)", .duration),
        .nk: Figure("hs_nk_us", "NK handshake pair (client + server)", .duration),
    ]
    var allocs: [HandshakeLayout.Pattern: Double] = [:]
    /// Per run: pair time / raw X25519 time needed (or performed), from that run's own figures.
    var ratio: [HandshakeLayout.Pattern: [Double]] = [:]
    var ratioPerformed: [HandshakeLayout.Pattern: [Double]] = [:]
    var ratioCPU: [HandshakeLayout.Pattern: [Double]] = [:]
    var breakdown: [Figure] = []

    /// The floor: the cheaper of the two keygen figures (the stricter comparison).
    var keygen: Double { min(keygenRandom.median, keygenBytes.median) }
}

func runHandshakes(_ options: Options, counting: Bool) throws -> HandshakeResults {
    var out = HandshakeResults()
    var hs = HandshakeBench()
    let raw = RawX25519()
    let h = options.handshakesPerRun
    let r = options.rawOpsPerRun
    let parts = Breakdown.items()
    out.breakdown = parts.map { Figure("bd_\($0.key)_us", $0.label, .duration) }

    note("handshakes: warm-up")
    for p in HandshakeLayout.Pattern.allCases { _ = try hs.run(p, count: max(5, h / 10)) }
    _ = raw.keygenRandom(r / 10)
    _ = try raw.keygenFromBytes(r / 10)
    _ = try raw.dh(r / 10)
    for part in parts { _ = try part.body(r / 10) }

    // Raw operations and handshakes go round-robin in `slices` slices per run, and each run's ratio
    // is taken from that run's own figures, so a slow phase of the machine hits both sides alike.
    let slices = options.slices
    let hSlice = max(1, h / slices), rSlice = max(1, r / slices)
    for run in 1...options.runs {
        note("handshakes: run \(run)/\(options.runs)")
        hs.newStatics()
        var kr = Section(), kb = Section(), d = Section()
        var pairs = [HandshakeLayout.Pattern: Section]()
        var bd = [Section](repeating: Section(), count: parts.count)
        for _ in 0..<slices {
            kr.measure { raw.keygenRandom(rSlice) }
            try kb.measure { try raw.keygenFromBytes(rSlice) }
            try d.measure { try raw.dh(rSlice) }
            for p in HandshakeLayout.Pattern.allCases {
                try pairs[p, default: Section()].measure { try hs.run(p, count: hSlice) }
            }
            for (i, part) in parts.enumerated() {
                try bd[i].measure { try part.body(rSlice) }
            }
        }
        func perOp(_ s: Section, _ count: Int) -> Double { Double(s.timed) / Double(count * slices) / 1e3 }
        out.keygenRandom.add(perOp(kr, rSlice), share: kr.share)
        out.keygenBytes.add(perOp(kb, rSlice), share: kb.share)
        out.dh.add(perOp(d, rSlice), share: d.share)
        let keygen = min(perOp(kr, rSlice), perOp(kb, rSlice))
        let keygenCPU = min(perOp(kr, rSlice) * kr.share, perOp(kb, rSlice) * kb.share)
        for p in HandshakeLayout.Pattern.allCases {
            let s = pairs[p]!
            out.pairs[p]!.add(perOp(s, hSlice), share: s.share)
            let c = RawCost.of(p)
            let need = Double(c.keygens) * keygen + Double(c.dhs) * perOp(d, rSlice)
            let performed = need + Double(c.extraDHs) * perOp(d, rSlice)
            let needCPU = Double(c.keygens) * keygenCPU + Double(c.dhs) * perOp(d, rSlice) * d.share
            out.ratio[p, default: []].append(perOp(s, hSlice) / need)
            out.ratioPerformed[p, default: []].append(perOp(s, hSlice) / performed)
            out.ratioCPU[p, default: []].append(perOp(s, hSlice) * s.share / needCPU)
        }
        for i in parts.indices { out.breakdown[i].add(perOp(bd[i], rSlice), share: bd[i].share) }
    }
    if counting {
        for p in HandshakeLayout.Pattern.allCases {
            let k = 20
            AllocCounter.reset()
            AllocCounter.start()
            for _ in 0..<k { consume(UInt64(try hs.pair(p))) }
            AllocCounter.stop()
            out.allocs[p] = Double(AllocCounter.mallocs) / Double(k)
            AllocCounter.reset()
        }
    }
    return out
}
