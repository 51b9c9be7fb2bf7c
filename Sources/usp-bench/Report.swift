import USPCore

func report(_ rec: RecordResults, _ hs: HandshakeResults, _ options: Options) {
    let all = [rec.seal, rec.open, rec.streamSeal, rec.streamRead, rec.aead, hs.keygenRandom, hs.keygenBytes, hs.dh]
        + HandshakeLayout.Pattern.allCases.map { hs.pairs[$0]! }
    let shares = all.flatMap(\.shares)
    let shareMin = shares.min() ?? .nan
    let shareMedian = shares.isEmpty ? .nan : median(shares)

    print("")
    print("Record layer, 16 KiB plaintext per record (MB/s = 10^6 plaintext bytes per second)")
    print("  " + pad("figure", 56) + pad("median", 8, right: true) + pad("per CPU-s", 11, right: true)
          + pad("min", 8, right: true) + pad("max", 8, right: true))
    for f in [rec.seal, rec.open, rec.streamSeal, rec.streamRead, rec.aead, rec.session] {
        print("  " + pad(f.label, 56) + pad(format(f.median, 0), 8, right: true) + pad(format(f.medianPerCPU, 0), 11, right: true)
              + pad(format(f.min, 0), 8, right: true) + pad(format(f.max, 0), 8, right: true))
    }
    print("")
    print("Heap allocations per record in steady state (\(rec.allocRecords) records per path, after warm-up)")
    func allocLine(_ label: String, _ v: Double) {
        let verdict = rec.allocRecords == 0 ? "not run"
            : !v.isFinite ? "NOT MEASURED (malloc interposer not loaded)" : (v == 0 ? "zero" : "NOT ZERO")
        print("  " + pad(label, 56) + pad(v.isFinite ? format(v, 4) : "n/a", 8, right: true) + "  " + verdict)
    }
    allocLine("seal in place", rec.allocSeal)
    allocLine("open in place", rec.allocOpen)
    allocLine("stream: seal(_:appendingTo:) + RecordReader", rec.allocStream)
    allocLine("session: ServerSession.receive + actions + consumed", rec.allocSession)

    print("")
    print("Raw X25519 (swift-crypto / BoringSSL), µs per operation")
    for f in [hs.keygenRandom, hs.keygenBytes, hs.dh] {
        print("  " + pad(f.label, 56) + pad(format(f.median, 2), 8, right: true)
              + "   (per CPU-s \(format(f.medianPerCPU, 2)); min \(format(f.min, 2)), max \(format(f.max, 2)))")
    }
    print("  floor: keygen \(format(hs.keygen, 2)) µs (the cheaper of the two), DH \(format(hs.dh.median, 2)) µs")

    print("")
    print("Handshake pair (client + server, fresh ephemerals, server trial decryption) vs the raw X25519 it needs")
    print("  " + pad("pattern", 8) + pad("median µs", 11, right: true) + pad("needs", 14, right: true)
          + pad("raw µs", 9, right: true) + pad("ratio", 8, right: true) + pad("(runs)", 15, right: true)
          + pad("performs", 14, right: true) + pad("ratio", 8, right: true) + pad("CPU ratio", 11, right: true)
          + pad("mallocs", 9, right: true))
    var ratios: [HandshakeLayout.Pattern: (need: Double, done: Double, cpu: Double)] = [:]
    func med(_ xs: [Double]?) -> Double { (xs?.isEmpty ?? true) ? .nan : median(xs!) }
    for p in HandshakeLayout.Pattern.allCases {
        let c = RawCost.of(p)
        let rawNeed = Double(c.keygens) * hs.keygen + Double(c.dhs) * hs.dh.median
        let t = hs.pairs[p]!.median
        let runs = hs.ratio[p] ?? []
        ratios[p] = (med(hs.ratio[p]), med(hs.ratioPerformed[p]), med(hs.ratioCPU[p]))
        let spread = runs.isEmpty ? "n/a" : "\(format(runs.min()!, 2))–\(format(runs.max()!, 2))"
        print("  " + pad(p.rawValue, 8) + pad(format(t, 1), 11, right: true)
              + pad("\(c.keygens) kg + \(c.dhs) DH", 14, right: true) + pad(format(rawNeed, 1), 9, right: true)
              + pad(format(ratios[p]!.need, 3), 8, right: true) + pad(spread, 15, right: true)
              + pad("\(c.keygens) kg + \(c.dhs + c.extraDHs) DH", 14, right: true)
              + pad(format(ratios[p]!.done, 3), 8, right: true)
              + pad(format(ratios[p]!.cpu, 3), 11, right: true)
              + pad(hs.allocs[p].map { format($0, 0) } ?? "n/a", 9, right: true))
    }
    for p in HandshakeLayout.Pattern.allCases { print("  \(p.rawValue): \(RawCost.of(p).note)") }
    print("  ratio = pair time / (keygens × keygen + DHs × DH), computed per run from that run's own figures")
    print("  (raw and handshakes interleave), median over runs; (runs) is its range. \"needs\": the pattern's")
    print("  own X25519 operations; \"performs\": with the DHs the implementation does beyond them; CPU ratio:")
    print("  the same from CPU time. raw µs: from the medians above, for reference. mallocs: per pair.")

    if !hs.breakdown.isEmpty {
        print("")
        print("Where handshake time above the X25519 floor goes: per-call cost of the other pieces, µs")
        for f in hs.breakdown {
            print("  " + pad(f.label, 66) + pad(format(f.median, 2), 9, right: true))
        }
    }

    print("")
    print("CPU share of wall time during measured sections: median \(format(shareMedian, 3)), min \(format(shareMin, 3))")
    if shareMin.isFinite && shareMin < 0.95 {
        print("  WARNING: the process was descheduled during some runs (other load on the machine); wall-clock")
        print("  figures from those runs are low. The per-CPU-second figures correct for it, approximately.")
    }

    func value(_ x: Double, _ decimals: Int) -> String { x.isFinite ? format(x, decimals) : "NA" }
    var result: [(String, String)] = []
    for f in [rec.seal, rec.open, rec.streamSeal, rec.streamRead, rec.aead, rec.session] {
        result.append((f.key, value(f.median, 1)))
        result.append((f.key + "_cpu", value(f.medianPerCPU, 1)))
    }
    result += [
        ("mallocs_per_record_seal", value(rec.allocSeal, 4)), ("mallocs_per_record_open", value(rec.allocOpen, 4)),
        ("mallocs_per_record_stream", value(rec.allocStream, 4)), ("mallocs_per_record_session", value(rec.allocSession, 4)),
        (hs.keygenRandom.key, value(hs.keygenRandom.median, 2)), (hs.keygenBytes.key, value(hs.keygenBytes.median, 2)),
        (hs.dh.key, value(hs.dh.median, 2)),
    ]
    for p in HandshakeLayout.Pattern.allCases {
        let k = p.rawValue.lowercased()
        result.append(("hs_\(k)_us", value(hs.pairs[p]!.median, 1)))
        result.append(("hs_\(k)_ratio", value(ratios[p]!.need, 3)))
        result.append(("hs_\(k)_ratio_performed", value(ratios[p]!.done, 3)))
        result.append(("hs_\(k)_ratio_cpu", value(ratios[p]!.cpu, 3)))
        result.append(("mallocs_per_handshake_\(k)", hs.allocs[p].map { value($0, 0) } ?? "NA"))
    }
    for f in hs.breakdown { result.append((f.key, value(f.median, 3))) }
    result.append(("cpu_share_median", value(shareMedian, 3)))
    result.append(("cpu_share_min", value(shareMin, 3)))
    print("")
    print("RESULT " + result.map { "\($0.0)=\($0.1)" }.joined(separator: " "))
}
