# Sourced by scripts/install.sh and scripts/bench-daemon.sh: how a --static-swift-stdlib build is
# linked, so that both build the same binaries in .build-static.
#
# --no-export-dynamic   the static Swift runtime's link arguments export every symbol of the
#                       program (18,000 for usp), which nothing here looks up; at start the runtime's
#                       dladdr then walks that whole table. 440 remain (what the C libraries need).
# --disable-local-rpath no RUNPATH $ORIGIN: with the Swift libraries inside the binary there is
#                       nothing to find beside it, and ld.so searched it (and its hwcaps
#                       subfolders) for each of libm, libstdc++, libresolv, libgcc_s and libc first.
STATIC_LINK_FLAGS=(--static-swift-stdlib -Xlinker --no-export-dynamic --disable-local-rpath)
