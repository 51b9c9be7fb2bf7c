# Sourced by scripts/install.sh and scripts/bench-daemon.sh: how a --static-swift-stdlib build is
# compiled and linked, so that both build the same binaries in .build-static. Each flag was
# measured on `usp connect`'s CPU per connection (docs/BENCHMARKS.md).
#
# -prespecialize-generic-metadata
#                       the compiler emits the metadata of generic types used with concrete
#                       arguments (Dictionary<UInt32, StreamState>, Optional<ClientSession>...)
#                       instead of leaving the runtime to build them from mangled names on first
#                       use, each with a conformance lookup that scans every conformance record of
#                       the program: that had been about a sixth of a short connection's CPU.
# --no-export-dynamic   the static Swift runtime's link arguments export every symbol of the
#                       program (18,000 for usp), which nothing here looks up; at start the runtime's
#                       dladdr then walks that whole table. 440 remain (what the C libraries need).
# --disable-local-rpath no RUNPATH $ORIGIN: with the Swift libraries inside the binary there is
#                       nothing to find beside it, and ld.so searched it (and its hwcaps
#                       subfolders) for each of libm, libstdc++, libresolv, libgcc_s and libc first.
STATIC_BUILD_FLAGS=(--static-swift-stdlib
                    -Xswiftc -Xfrontend -Xswiftc -prespecialize-generic-metadata
                    -Xlinker --no-export-dynamic --disable-local-rpath)
