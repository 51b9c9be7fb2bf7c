import Foundation
import Testing
import USPUnix

/// scripts/install.sh, run on the binaries this test build made (--skip-build --build-dir), into
/// temporary directories: where the files land, that the man pages render and the completions
/// load, that --uninstall removes exactly what it installed, and the systemd units.
///
/// The man pages come from the generate-manual plugin, which builds every product again: .ci/run
/// runs it once before `swift test` (`swift package plugin generate-manual --multi-page
/// --configuration debug`) and these tests install its output with --man-dir.
@Suite(.serialized) struct InstallTests {
    static let script = Harness.packageRoot.appendingPathComponent("scripts/install.sh").path
    static let prefix = "/usr/local"

    /// The generate-manual plugin's output folder, or nil (with a SKIP line, or a failure in CI).
    static var manDirectory: String? {
        let dir = ProcessInfo.processInfo.environment["USP_MAN_DIR"]
            ?? Harness.packageRoot.appendingPathComponent(".build/plugins/GenerateManual/outputs").path
        if FileManager.default.fileExists(atPath: dir + "/uspd/uspd.1") || FileManager.default.fileExists(atPath: dir + "/uspd.1") { return dir }
        let note = "no generated man pages in \(dir): run `swift package plugin generate-manual --multi-page --configuration debug` (or set USP_MAN_DIR)"
        if Harness.strict { Issue.record("\(note)") } else { print("SKIP: \(note)") }
        return nil
    }

    static func install(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        try Harness.run("/bin/bash", [script] + arguments, timeout: 30)
    }

    /// install.sh into DESTDIR with the test build's binaries; man pages when they were generated.
    static func stagedInstall(_ destdir: URL, extra: [String] = []) throws -> (status: Int32, stdout: String, stderr: String) {
        let man = manDirectory.map { ["--man-dir", $0] } ?? ["--no-man"]
        return try install(["--destdir", destdir.path, "--prefix", prefix, "--skip-build",
                            "--build-dir", Harness.binDirectory.path] + man + extra)
    }

    static func manifest(_ destdir: URL) throws -> [String] {
        try String(contentsOfFile: destdir.path + prefix + "/share/usp/install-manifest", encoding: .utf8)
            .split(separator: "\n").map(String.init)
    }

    static func tool(_ name: String) -> String? {
        Harness.tool(name, candidates: ["/usr/bin/\(name)", "/bin/\(name)", "/usr/local/bin/\(name)"])
    }

    /// A tool the check needs: its path, or nil after a SKIP line (a failure in CI, which installs it).
    static func required(_ name: String, package: String) -> String? {
        if let path = tool(name) { return path }
        if Harness.strict { Issue.record("\(name) is not installed (apt-get install \(package))") } else { print("SKIP: \(name) not installed (apt-get install \(package))") }
        return nil
    }

    @Test func theFilesLandWhereTheyBelongAndAgainOnARerun() throws {
        let destdir = try Harness.temporaryDirectory("install")
        let first = try Self.stagedInstall(destdir)
        #expect(first.status == 0, "\(first.stderr)")
        let root = destdir.path + Self.prefix
        var expected = [
            "bin/usp", "bin/uspd",
            "share/bash-completion/completions/usp", "share/bash-completion/completions/uspd",
            "share/zsh/site-functions/_usp", "share/zsh/site-functions/_uspd",
            "share/fish/vendor_completions.d/usp.fish", "share/fish/vendor_completions.d/uspd.fish",
            "lib/systemd/system/uspd.service", "lib/systemd/system/uspd.socket",
            "lib/systemd/user/usp-agent.service", "lib/systemd/user/usp-agent.socket",
        ]
        if Self.manDirectory != nil {
            expected += ["share/man/man1/usp.1", "share/man/man1/uspd.1", "share/man/man1/usp.connect.1", "share/man/man1/uspd.serve.1"]
        }
        let listed = try Self.manifest(destdir)
        for file in expected {
            #expect(FileManager.default.fileExists(atPath: "\(root)/\(file)"), "\(file) not installed")
            #expect(listed.contains("\(Self.prefix)/\(file)"), "\(file) not in the manifest")
        }
        // Stripped of debug information, and still runs.
        let version = try Harness.run("\(root)/bin/uspd", ["--version"])
        let built = try Harness.run(try Harness.executable("uspd"), ["--version"])
        #expect(version.status == 0 && version.stdout == built.stdout, "\(version.stdout)\(version.stderr)")
        #expect(listed.allSatisfy { FileManager.default.fileExists(atPath: destdir.path + $0) }, "the manifest lists only what is there")
        // The units name the installed binaries.
        let service = try String(contentsOfFile: "\(root)/lib/systemd/system/uspd.service", encoding: .utf8)
        #expect(service.contains("\nExecStart=\(Self.prefix)/bin/uspd serve\n"))
        let agent = try String(contentsOfFile: "\(root)/lib/systemd/user/usp-agent.service", encoding: .utf8)
        #expect(agent.contains("\nExecStart=\(Self.prefix)/bin/usp agent run\n"))

        // Idempotent: a second run succeeds and lists the same files.
        let second = try Self.stagedInstall(destdir)
        #expect(second.status == 0, "\(second.stderr)")
        #expect(try Self.manifest(destdir) == listed)
    }

    @Test func theManPagesRender() throws {
        guard let man = Self.required("man", package: "man-db groff-base"), let pages = Self.manDirectory else { return }
        let destdir = try Harness.temporaryDirectory("install-man")
        let result = try Self.install(["--destdir", destdir.path, "--skip-build", "--build-dir", Harness.binDirectory.path,
                                       "--man-dir", pages, "--no-systemd"])
        #expect(result.status == 0, "\(result.stderr)")
        let dir = destdir.path + Self.prefix + "/share/man/man1"
        for (page, words) in [("uspd.1", ["uspd", "STATE_DIRECTORY", "EXIT STATUS", "serve"]), ("usp.1", ["USP_HOME", "known_servers"]),
                              ("uspd.serve.1", ["--listen"])] {
            let rendered = try Harness.run(man, ["-l", "\(dir)/\(page)"], environment: ["MANPAGER": "cat", "PAGER": "cat", "MANWIDTH": "100"])
            #expect(rendered.status == 0, "\(page): \(rendered.stderr)")
            // The text as a reader sees it, with words hyphenated at line ends joined again.
            let text = rendered.stdout.replacingOccurrences(of: "[\u{2010}-]\n +", with: "", options: .regularExpression)
                .split(whereSeparator: \.isWhitespace).joined(separator: " ")
            for word in words { #expect(text.contains(word), "\(page) renders without \(word): \(text.prefix(600))") }
            #expect(!rendered.stderr.contains("warning"), "\(page): \(rendered.stderr)")
        }
    }

    @Test func theCompletionsLoadInBashZshAndFish() throws {
        let destdir = try Harness.temporaryDirectory("install-completion")
        let result = try Self.install(["--destdir", destdir.path, "--skip-build", "--build-dir", Harness.binDirectory.path,
                                       "--no-man", "--no-systemd"])
        #expect(result.status == 0, "\(result.stderr)")
        let share = destdir.path + Self.prefix + "/share"

        // bash: sourcing registers a completion for usp, and completing `usp ` offers its subcommands.
        let bashFile = "\(share)/bash-completion/completions/usp"
        let script = #"""
            source "$1" || exit 1
            complete -p usp || exit 1
            function=$(complete -p usp | sed -E 's/.* -F ([^ ]+) .*/\1/')
            COMP_WORDS=(usp ag); COMP_CWORD=1; COMP_LINE="usp ag"; COMP_POINT=${#COMP_LINE}
            "$function" usp ag usp
            printf 'reply:%s\n' "${COMPREPLY[@]}"
            """#
        let bash = try Harness.run("/bin/bash", ["-c", script, "bash", bashFile])
        #expect(bash.status == 0, "\(bash.stderr)")
        #expect(bash.stdout.contains(" -F _usp usp"), "\(bash.stdout)")
        #expect(bash.stdout.contains("reply:agent"), "`usp ag<TAB>` does not offer agent: \(bash.stdout) \(bash.stderr)")
        let uspd = try Harness.run("/bin/bash", ["-c", #"source "$1" && complete -p uspd"#, "bash", "\(share)/bash-completion/completions/uspd"])
        #expect(uspd.status == 0, "\(uspd.stderr)")

        if let zsh = Self.required("zsh", package: "zsh") {
            for name in ["_usp", "_uspd"] {
                let check = try Harness.run(zsh, ["-n", "\(share)/zsh/site-functions/\(name)"])
                #expect(check.status == 0, "\(name): \(check.stderr)")
            }
        }
        if let fish = Self.required("fish", package: "fish") {
            for name in ["usp.fish", "uspd.fish"] {
                let check = try Harness.run(fish, ["--no-execute", "\(share)/fish/vendor_completions.d/\(name)"])
                #expect(check.status == 0, "\(name): \(check.stderr)")
            }
        }
    }

    @Test func uninstallRemovesExactlyTheManifestsFiles() throws {
        let destdir = try Harness.temporaryDirectory("install-uninstall")
        let root = destdir.path + Self.prefix
        // Someone else's files, in folders the install shares and in one it would create.
        try FileManager.default.createDirectory(atPath: "\(root)/bin", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: "\(root)/share/man/man1", withIntermediateDirectories: true)
        for other in ["bin/other-tool", "share/man/man1/other.1"] {
            try Data("not ours\n".utf8).write(to: URL(fileURLWithPath: "\(root)/\(other)"))
        }
        let installed = try Self.stagedInstall(destdir)
        #expect(installed.status == 0, "\(installed.stderr)")
        let listed = try Self.manifest(destdir)
        #expect(listed.contains("\(Self.prefix)/share/bash-completion/"), "a folder the install made is in the manifest")
        #expect(!listed.contains("\(Self.prefix)/bin/"), "a folder that was there is not")

        let removed = try Self.install(["--destdir", destdir.path, "--prefix", Self.prefix, "--uninstall"])
        #expect(removed.status == 0, "\(removed.stderr)")
        for path in listed { #expect(!FileManager.default.fileExists(atPath: destdir.path + path), "\(path) left behind") }
        #expect(!FileManager.default.fileExists(atPath: "\(root)/share/usp"), "the manifest's folder is gone")
        let left = try FileManager.default.subpathsOfDirectory(atPath: root).sorted()
        #expect(left == ["bin", "bin/other-tool", "share", "share/man", "share/man/man1", "share/man/man1/other.1"])

        let again = try Self.install(["--destdir", destdir.path, "--prefix", Self.prefix, "--uninstall"])
        #expect(again.status == 1)
        #expect(again.stderr.hasPrefix("install.sh: no manifest at ") && again.stderr.filter { $0 == "\n" }.count == 1, "\(again.stderr)")
    }

    @Test func aBadOptionIsAUsageErrorOnOneLine() throws {
        let bad = try Self.install(["--prefx", "/tmp/x"])
        #expect(bad.status == 64)
        #expect(bad.stderr == "install.sh: unknown option: --prefx; see --help\n")
        let missing = try Self.install(["--prefix"])
        #expect(missing.status == 64)
        #expect(missing.stderr == "install.sh: --prefix needs a value; see --help\n")
        let both = try Self.install(["--build-only", "--skip-build"])
        #expect(both.status == 64 && both.stderr == "install.sh: --build-only and --skip-build do not go together; see --help\n", "\(both.stderr)")
        let help = try Self.install(["--help"])
        #expect(help.status == 0 && help.stdout.contains("--uninstall") && help.stdout.contains("--static-stdlib"))
        // Binaries that are not there: one line naming the file.
        let empty = try Harness.temporaryDirectory("install-empty")
        let absent = try Self.install(["--destdir", empty.path, "--skip-build", "--build-dir", empty.path, "--no-man"])
        #expect(absent.status == 1)
        #expect(absent.stderr == "install.sh: \(empty.path)/usp is not there or not executable (build it, or name the folder with --build-dir)\n")
    }

    @Test func aDebOfBinariesThatLoadTheToolchainsRuntimeIsRefused() throws {
        guard Self.tool("dpkg-deb") != nil else { print("SKIP: no dpkg-deb"); return }
        // The debug build links libswiftCore.so from the toolchain, which no Debian package ships.
        let out = try Harness.temporaryDirectory("install-deb")
        let deb = try Self.install(["--deb", out.appendingPathComponent("usp.deb").path, "--skip-build",
                                    "--build-dir", Harness.binDirectory.path, "--no-man"])
        #expect(deb.status == 1)
        #expect(deb.stderr.contains("which no Debian package provides (the Swift runtime? a .deb needs binaries built with the static Swift stdlib, install.sh's default)"), "\(deb.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out.appendingPathComponent("usp.deb").path))
    }

    @Test func theSystemdUnitsVerify() throws {
        guard let analyze = Self.required("systemd-analyze", package: "systemd") else { return }
        // Installed for real under a temporary prefix, so that ExecStart= names an existing binary.
        let prefix = try Harness.temporaryDirectory("install-units")
        let result = try Self.install(["--prefix", prefix.path, "--skip-build", "--build-dir", Harness.binDirectory.path, "--no-man"])
        #expect(result.status == 0, "\(result.stderr)")
        let system = prefix.path + "/lib/systemd/system", user = prefix.path + "/lib/systemd/user"
        let verify = try Harness.run(analyze, ["verify", "--man=no", "\(system)/uspd.service", "\(system)/uspd.socket"])
        #expect(verify.status == 0 && verify.stderr.isEmpty, "\(verify.stdout)\(verify.stderr)")
        // --user needs a runtime directory, which a session without a login manager lacks.
        let runtime = try Harness.temporaryDirectory("xdg-runtime")
        chmod(runtime.path, 0o700)
        let userVerify = try Harness.run(analyze, ["verify", "--user", "--man=no", "\(user)/usp-agent.service", "\(user)/usp-agent.socket"],
                                         environment: ["XDG_RUNTIME_DIR": runtime.path])
        #expect(userVerify.status == 0, "\(userVerify.stdout)\(userVerify.stderr)")
        let removed = try Self.install(["--prefix", prefix.path, "--uninstall"])
        #expect(removed.status == 0, "\(removed.stderr)")
    }

    /// uspd.service's NoNewPrivileges= and CapabilityBoundingSet=, applied with setpriv as systemd
    /// applies them, still let uspd start an application as another user in the no-network sandbox
    /// (setuid, setgid, a network namespace); the application inherits no_new_privs.
    @Test func theServiceConfinementLetsApplicationsRunAsAnotherUserInTheSandbox() throws {
        guard geteuid() == 0, let setpriv = Self.tool("setpriv") else {
            if Harness.strict { Issue.record("needs root and setpriv (util-linux)") } else { print("SKIP: needs root and setpriv") }
            return
        }
        let unit = try String(contentsOfFile: Harness.packageRoot.appendingPathComponent("contrib/systemd/uspd.service").path, encoding: .utf8)
        let settings = Dictionary(unit.split(separator: "\n").filter { !$0.hasPrefix("#") && $0.contains("=") }.map { line in
            let parts = line.split(separator: "=", maxSplits: 1)
            return (String(parts[0]), String(parts[1]))
        }, uniquingKeysWith: { $1 })
        let capabilities = try #require(settings["CapabilityBoundingSet"]).split(separator: " ")
            .map { "+" + $0.lowercased().replacingOccurrences(of: "cap_", with: "") }
        var wrapper = [setpriv, "--bounding-set", (["-all"] + capabilities).joined(separator: ",")]
        if settings["NoNewPrivileges"] == "yes" { wrapper.append("--no-new-privs") }
        let daemon = try DaemonFixture(apps: [
            "boxed.toml": IsolationTests.app("boxed", ["/bin/sh", "-c", "id -u; grep NoNewPrivs /proc/self/status; cat /proc/net/dev | wc -l"],
                                             launch: "sandbox = \"no-network\"\nuser = \"nobody\""),
        ], wrapper: wrapper)
        let boxed = try daemon.usp(["connect", daemon.uri, "boxed"], stdin: "")
        #expect(boxed.status == 0, "\(boxed.stderr)\(daemon.process?.stderr ?? "")")
        let lines = boxed.stdout.split(separator: "\n").map { $0.split(whereSeparator: \.isWhitespace).joined(separator: " ") }
        // nobody; no_new_privs; /proc/net/dev: two header lines and `lo` only.
        #expect(lines == ["65534", "NoNewPrivs: 1", "3"], "\(boxed.stdout)")
    }

    /// What Type=notify in uspd.service relies on: READY=1 once the listener is bound (here a socket
    /// passed as uspd.socket passes it), STOPPING=1 when SIGTERM starts the drain.
    @Test func uspdTellsTheServiceManagerWhenItIsReadyAndWhenItStops() throws {
        let data = try Harness.temporaryDirectory("notify")
        let notify = try NotifySocket(directory: data)
        let port = try Harness.freePort()
        let listener = socket(AF_INET, CInt(SOCK_STREAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue), 0)
        defer { close(listener) }
        var one: CInt = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<CInt>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        #expect(bound == 0 && Glibc.listen(listener, 16) == 0)

        let uspd = try RunningProcess("uspd (socket activated)", executable: "/bin/sh",
                                      arguments: ["-c", #"export LISTEN_FDS=1 LISTEN_PID=$$; exec "$0" "$@""#, try Harness.executable("uspd"),
                                                  "serve", "--data-dir", data.appendingPathComponent("data").path],
                                      environment: ["NOTIFY_SOCKET": notify.path], descriptor3: listener)
        defer { uspd.stop() }
        #expect(try notify.receive() == "READY=1")
        // Ready means serving: the passed socket is uspd's listener and the URI is printed (both
        // before READY=1; the test's reader threads may lag behind).
        _ = try uspd.waitForOutput(timeout: 10) { $0.contains("@127.0.0.1:\(port)") && $0.contains("listening on inherited socket 3") }
        let menu = try Harness.run(try Harness.executable("usp"), ["--home", data.appendingPathComponent("client").path,
                                                                   "menu", "usp://127.0.0.1:\(port)"])
        #expect(menu.status == 0, "\(menu.stderr)\(uspd.stderr)")
        uspd.signal(SIGTERM)
        #expect(try notify.receive() == "STOPPING=1")
        #expect(try uspd.wait() == 0, "\(uspd.stderr)")
    }
}
