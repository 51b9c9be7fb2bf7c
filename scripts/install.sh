#!/usr/bin/env bash
# Builds usp and uspd in release mode and installs them with their man pages, shell completions
# and systemd units; or builds a Debian package of the same files; or uninstalls.
#
#   bash scripts/install.sh --prefix "$HOME/.local"  # swift build -c release, install there
#   bash scripts/install.sh --build-only             # build as yourself, then
#   sudo bash scripts/install.sh --skip-build        # install under /usr/local (no swift needed)
#   bash scripts/install.sh --uninstall              # removes exactly what the manifest lists
#   bash scripts/install.sh --deb usp.deb            # a .deb (static stdlib, --prefix /usr)
#
# Every file installed is listed in PREFIX/share/usp/install-manifest (with the directories the
# install created, marked by a trailing /); --uninstall removes those and nothing else. Installing
# again overwrites the same files and keeps the manifest's earlier entries, so it can be re-run.
# Exit status: 0 done, 1 a step failed, 64 a usage error; an error is one line on stderr.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: scripts/install.sh [options]

Builds usp and uspd (swift build -c release) and installs, under PREFIX:
  bin/usp, bin/uspd
  share/man/man1/usp*.1, uspd*.1                 (swift-argument-parser's generate-manual)
  share/bash-completion/completions/usp, uspd
  share/zsh/site-functions/_usp, _uspd
  share/fish/vendor_completions.d/usp.fish, uspd.fish
  lib/systemd/system/uspd.service, uspd.socket   (--systemd-dir)
  lib/systemd/user/usp-agent.service, .socket    (--systemd-user-dir)
  share/usp/install-manifest                     (what --uninstall removes)

Options:
  --prefix DIR            where to install (default /usr/local; /usr with --deb)
  --destdir DIR           stage under DIR (files go to DIR/PREFIX; units name PREFIX/bin)
  --build-only            build usp, uspd and the man pages; install nothing
  --skip-build            do not build: take usp and uspd from --build-dir, the man pages
                          from the last build's (or --man-dir); needs no swift
  --build-dir DIR         the folder holding the built usp and uspd
                          (default .build-static/release; .build/release with --dynamic-stdlib)
  --static-stdlib         the default: link the Swift runtime and Foundation statically
                          (swift build --static-swift-stdlib, in .build-static): the binaries
                          run without a Swift toolchain installed, and a usp connect takes
                          about two thirds of the CPU (no dynamic linking of the Swift
                          libraries; flags in scripts/static-build-flags.sh)
  --dynamic-stdlib        load the Swift runtime from the toolchain instead (in .build):
                          smaller binaries that run only where the toolchain is installed
  --no-strip              keep the binaries' debug information (stripped by default with
                          strip --strip-debug: a third of the size; symbols stay for backtraces)
  --man-dir DIR           install the *.1 pages found in DIR instead of generating them
  --no-man                no man pages
  --no-systemd            no systemd units
  --systemd-dir DIR       system units (default PREFIX/lib/systemd/system)
  --systemd-user-dir DIR  user units (default PREFIX/lib/systemd/user)
  --deb OUT.deb           build a Debian package with dpkg-deb instead of installing
  --uninstall             remove what PREFIX/share/usp/install-manifest lists
  -h, --help              this text
EOF
}

die() { echo "install.sh: $*" >&2; exit 1; }
usage_error() { echo "install.sh: $*; see --help" >&2; exit 64; }

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PREFIX=/usr/local
PREFIX_GIVEN=0
DESTDIR=""
SKIP_BUILD=0
BUILD_ONLY=0
BUILD_DIR=""
STATIC=1
STRIP=1
MAN_DIR=""
WITH_MAN=1
WITH_SYSTEMD=1
SYSTEMD_DIR=""
SYSTEMD_USER_DIR=""
DEB=""
UNINSTALL=0

need_value() { [[ $# -ge 2 && -n $2 ]] || usage_error "$1 needs a value"; }
while [[ $# -gt 0 ]]; do
    case $1 in
        --prefix) need_value "$@"; PREFIX=$2; PREFIX_GIVEN=1; shift 2 ;;
        --destdir) need_value "$@"; DESTDIR=$2; shift 2 ;;
        --skip-build) SKIP_BUILD=1; shift ;;
        --build-only) BUILD_ONLY=1; shift ;;
        --build-dir) need_value "$@"; BUILD_DIR=$2; shift 2 ;;
        --static-stdlib) STATIC=1; shift ;;
        --dynamic-stdlib) STATIC=0; shift ;;
        --no-strip) STRIP=0; shift ;;
        --man-dir) need_value "$@"; MAN_DIR=$2; shift 2 ;;
        --no-man) WITH_MAN=0; shift ;;
        --no-systemd) WITH_SYSTEMD=0; shift ;;
        --systemd-dir) need_value "$@"; SYSTEMD_DIR=$2; shift 2 ;;
        --systemd-user-dir) need_value "$@"; SYSTEMD_USER_DIR=$2; shift 2 ;;
        --deb) need_value "$@"; DEB=$2; shift 2 ;;
        --uninstall) UNINSTALL=1; shift ;;
        -h|--help) usage; exit 0 ;;
        --*=*) usage_error "write ${1%%=*} VALUE, not ${1}" ;;
        *) usage_error "unknown option: $1" ;;
    esac
done

[[ $PREFIX == /* ]] || usage_error "--prefix must be an absolute path, not $PREFIX"
PREFIX=${PREFIX%/}
[[ -n $PREFIX ]] || PREFIX=/
if [[ -n $DESTDIR ]]; then
    mkdir -p "$DESTDIR" || die "cannot create --destdir $DESTDIR"
    DESTDIR=$(cd "$DESTDIR" && pwd)
fi
[[ $BUILD_ONLY == 0 || $SKIP_BUILD == 0 ]] || usage_error "--build-only and --skip-build do not go together"
if [[ -n $DEB ]]; then
    [[ $UNINSTALL == 0 ]] || usage_error "--deb and --uninstall do not go together"
    [[ $PREFIX_GIVEN == 1 ]] || PREFIX=/usr
    # A .deb cannot depend on the toolchain's libswiftCore.so: no Debian package ships it.
    STATIC=1
fi
SYSTEMD_DIR=${SYSTEMD_DIR:-$PREFIX/lib/systemd/system}
SYSTEMD_USER_DIR=${SYSTEMD_USER_DIR:-$PREFIX/lib/systemd/user}
MANIFEST=$PREFIX/share/usp/install-manifest

# --- uninstall ---------------------------------------------------------------------------------

if [[ $UNINSTALL == 1 ]]; then
    list=$DESTDIR$MANIFEST
    [[ -f $list ]] || die "no manifest at $list: nothing installed under --prefix $PREFIX${DESTDIR:+ (--destdir $DESTDIR)}"
    removed=0
    # Files first, then the directories the install created, deepest first, if they are empty.
    while IFS= read -r path; do
        [[ -n $path && $path != */ ]] || continue
        if [[ -e $DESTDIR$path || -L $DESTDIR$path ]]; then
            rm -f -- "$DESTDIR$path" || die "cannot remove $DESTDIR$path"
            removed=$((removed + 1))
        fi
    done <"$list"
    dirs=$(grep '/$' "$list" | awk '{ print length($0) "\t" $0 }' | sort -rn | cut -f2- || true)
    rm -f -- "$list" || die "cannot remove $list"
    while IFS= read -r dir; do
        [[ -n $dir ]] || continue
        rmdir -- "$DESTDIR${dir%/}" 2>/dev/null || true
    done <<<"$dirs"
    echo "uninstalled: $removed file(s) listed in $MANIFEST"
    exit 0
fi

# --- build -------------------------------------------------------------------------------------

BUILD_PATH=$ROOT/.build
BUILD_FLAGS=(-c release)
if [[ $STATIC == 1 ]]; then
    BUILD_PATH=$ROOT/.build-static
    # shellcheck source=scripts/static-build-flags.sh
    source "$ROOT/scripts/static-build-flags.sh"
    BUILD_FLAGS+=("${STATIC_BUILD_FLAGS[@]}")
fi
BUILD_FLAGS+=(--build-path "$BUILD_PATH")

STAGE_LOG=$(mktemp "${TMPDIR:-/tmp}/usp-install-log.XXXXXX")
trap 'rm -f "$STAGE_LOG"' EXIT
if [[ $SKIP_BUILD == 0 ]]; then
    command -v swift >/dev/null || die "swift not found on PATH (needed to build; or give --skip-build --build-dir DIR)"
    for product in uspd usp; do
        echo "building $product: swift build ${BUILD_FLAGS[*]} --product $product"
        (cd "$ROOT" && swift build "${BUILD_FLAGS[@]}" --product "$product") || die "swift build of $product failed"
    done
fi
# Man pages, one per command and subcommand, by swift-argument-parser's generate-manual: the tool
# behind `swift package plugin generate-manual --multi-page`, run here on the two binaries just
# built (the plugin would build every product of the package again, and cannot take
# --static-swift-stdlib). It runs each with --experimental-dump-help.
GENERATED_MAN=$BUILD_PATH/man
if [[ $SKIP_BUILD == 0 && $WITH_MAN == 1 && -z $MAN_DIR ]]; then
    echo "generating man pages: generate-manual --multi-page"
    (cd "$ROOT" && swift build "${BUILD_FLAGS[@]}" --product generate-manual) >"$STAGE_LOG" 2>&1 \
        || die "swift build --product generate-manual failed ($(tail -1 "$STAGE_LOG")); or pass --no-man"
    rm -rf "$GENERATED_MAN"
    for product in usp uspd; do
        mkdir -p "$GENERATED_MAN/$product"
        "$BUILD_PATH/release/generate-manual" "$BUILD_PATH/release/$product" --multi-page --output-directory "$GENERATED_MAN/$product" \
            >"$STAGE_LOG" 2>&1 || die "generate-manual $product failed: $(tail -1 "$STAGE_LOG"); or pass --no-man"
    done
fi
if [[ $BUILD_ONLY == 1 ]]; then
    echo "built usp and uspd in $BUILD_PATH/release$([[ $WITH_MAN == 0 ]] || echo ", man pages in $GENERATED_MAN"); install with --skip-build"
    exit 0
fi
BUILD_DIR=${BUILD_DIR:-$BUILD_PATH/release}
for product in usp uspd; do
    [[ -x $BUILD_DIR/$product ]] || die "$BUILD_DIR/$product is not there or not executable (build it, or name the folder with --build-dir)"
done

# --- staging -----------------------------------------------------------------------------------

STAGE=$(mktemp -d "${TMPDIR:-/tmp}/usp-install.XXXXXX")
trap 'rm -rf "$STAGE" "$STAGE_LOG"' EXIT
FILES=()   # installed paths, as they will be on the target (under PREFIX, no DESTDIR)

# stage SOURCE TARGET MODE: puts SOURCE at $STAGE$TARGET.
stage() {
    install -D -m "$3" "$1" "$STAGE$2" || die "cannot stage $1 as $2"
    FILES+=("$2")
}

for product in usp uspd; do
    stage "$BUILD_DIR/$product" "$PREFIX/bin/$product" 755
    if [[ $STRIP == 1 ]]; then
        command -v strip >/dev/null || die "strip not found (apt-get install binutils), or pass --no-strip"
        strip --strip-debug "$STAGE$PREFIX/bin/$product" || die "strip --strip-debug $product failed"
    fi
done

# Man pages: from --man-dir, or those generate-manual made above (or in the last build).
if [[ $WITH_MAN == 1 ]]; then
    if [[ -z $MAN_DIR ]]; then
        MAN_DIR=$GENERATED_MAN
        [[ -f $MAN_DIR/uspd/uspd.1 ]] || die "no man pages in $MAN_DIR: build first (without --skip-build, or --build-only), or pass --man-dir DIR or --no-man"
    fi
    [[ -d $MAN_DIR ]] || die "--man-dir $MAN_DIR is not a directory"
    # One folder per program (man/usp/, or the plugin's outputs/usp/, ...): look one level down too.
    mapfile -t pages < <(find "$MAN_DIR" -maxdepth 2 -type f \( -name usp.1 -o -name 'usp.*.1' -o -name uspd.1 -o -name 'uspd.*.1' \) | sort)
    names=" ${pages[*]##*/} "
    [[ $names == *" usp.1 "* && $names == *" uspd.1 "* ]] || die "no usp.1 and uspd.1 in $MAN_DIR (or in a folder of it)"
    for page in "${pages[@]}"; do
        # A blank line between a discussion's paragraphs is an mdoc warning: make it a paragraph (.Pp).
        sed 's/^[[:space:]]*$/.Pp/' "$page" >"$STAGE/page" || die "cannot read $page"
        if [[ -n $DEB ]]; then
            # Debian policy: man pages compressed with gzip -9n.
            gzip -9nc "$STAGE/page" >"$STAGE/page.gz" || die "cannot compress $page"
            stage "$STAGE/page.gz" "$PREFIX/share/man/man1/$(basename "$page").gz" 644
        else
            stage "$STAGE/page" "$PREFIX/share/man/man1/$(basename "$page")" 644
        fi
    done
    rm -f "$STAGE/page" "$STAGE/page.gz"
fi

# Shell completions, as each program prints them.
for product in usp uspd; do
    for shell in bash zsh fish; do
        out=$STAGE/completion.$shell
        "$BUILD_DIR/$product" --generate-completion-script "$shell" >"$out" 2>"$STAGE/completion.err" \
            || die "$product --generate-completion-script $shell failed: $(head -1 "$STAGE/completion.err")"
        [[ -s $out ]] || die "$product --generate-completion-script $shell printed nothing"
        case $shell in
            bash) stage "$out" "$PREFIX/share/bash-completion/completions/$product" 644 ;;
            zsh) stage "$out" "$PREFIX/share/zsh/site-functions/_$product" 644 ;;
            fish) stage "$out" "$PREFIX/share/fish/vendor_completions.d/$product.fish" 644 ;;
        esac
    done
done

# systemd units, with ExecStart= naming this PREFIX's bin.
if [[ $WITH_SYSTEMD == 1 ]]; then
    unit() {
        sed "s|/usr/local/bin/|$PREFIX/bin/|g" "$ROOT/contrib/systemd/$1" >"$STAGE/$1" || die "cannot read contrib/systemd/$1"
        stage "$STAGE/$1" "$2/$1" 644
    }
    unit uspd.service "$SYSTEMD_DIR"
    unit uspd.socket "$SYSTEMD_DIR"
    unit usp-agent.service "$SYSTEMD_USER_DIR"
    unit usp-agent.socket "$SYSTEMD_USER_DIR"
fi

# --- Debian package ----------------------------------------------------------------------------

if [[ -n $DEB ]]; then
    command -v dpkg-deb >/dev/null || die "dpkg-deb not found (apt-get install dpkg)"
    version=$("$BUILD_DIR/uspd" --version 2>/dev/null) || die "$BUILD_DIR/uspd --version failed"
    arch=$(dpkg --print-architecture) || die "dpkg --print-architecture failed"
    # Depends: the Debian package of every shared library the binaries load, at least the version
    # installed here (what they were linked against).
    declare -A packages=()
    for product in usp uspd; do
        while read -r name path; do
            [[ $path == /* ]] || die "$product needs $name, which is not found (ldd)"
            owner=$(dpkg -S "$(readlink -f "$path")" 2>/dev/null | head -1 | cut -d: -f1) || true
            [[ -n $owner ]] || owner=$(dpkg -S "$path" 2>/dev/null | head -1 | cut -d: -f1) || true
            [[ -n $owner ]] || die "$product loads $path, which no Debian package provides (the Swift runtime? a .deb needs binaries built with the static Swift stdlib, install.sh's default)"
            packages[$owner]=1
        done < <(ldd "$BUILD_DIR/$product" | awk '$2 == "=>" { print $1, $3 } $2 != "=>" && $1 ~ /^\// { print $1, $1 }')
    done
    depends=""
    for owner in $(printf '%s\n' "${!packages[@]}" | sort); do
        upstream=$(dpkg-query -W -f '${Version}' "$owner" | sed -E 's/^[0-9]+://; s/-[^-]*$//')
        depends+="${depends:+, }$owner (>= $upstream)"
    done
    size=$(du -sk "$STAGE$PREFIX" | cut -f1)
    mkdir -p "$STAGE/DEBIAN"
    cat >"$STAGE/DEBIAN/control" <<EOF
Package: usp
Version: $version
Architecture: $arch
Maintainer: ${DEBFULLNAME:-USP developers} <${DEBEMAIL:-root@localhost}>
Installed-Size: $size
Depends: $depends
Section: net
Priority: optional
Description: Universal Session Protocol: daemon (uspd) and client (usp)
 USP puts every application of a host behind one endpoint, encrypted from the
 first byte with a Noise handshake. uspd is the server, usp the client and its
 agent. Includes man pages, bash, zsh and fish completions and systemd units.
EOF
    rm -f "$STAGE"/completion.* "$STAGE"/*.service "$STAGE"/*.socket
    chmod -R u+rwX,go+rX,go-w "$STAGE"
    chmod 755 "$STAGE"
    dpkg-deb --root-owner-group --build "$STAGE" "$DEB" >/dev/null || die "dpkg-deb --build failed"
    echo "built $DEB: usp $version ($arch), Depends: $depends"
    exit 0
fi

# --- install -----------------------------------------------------------------------------------

# The directories this install creates (so that --uninstall can remove them again).
created=()
for path in "${FILES[@]}" "$MANIFEST"; do
    dir=$(dirname "$path")
    missing=()
    while [[ ! -d $DESTDIR$dir ]]; do missing+=("$dir/"); dir=$(dirname "$dir"); done
    [[ ${#missing[@]} -eq 0 ]] || created+=("${missing[@]}")
done

for path in "${FILES[@]}"; do
    mode=644
    [[ $path == "$PREFIX/bin/"* ]] && mode=755
    install -D -m "$mode" "$STAGE$path" "$DESTDIR$path" || die "cannot install $DESTDIR$path"
done

# The manifest: this install's files and created directories, plus the earlier install's entries
# that are still there (a re-run with fewer parts must not forget files it put in place before).
target=$DESTDIR$MANIFEST
mkdir -p "$(dirname "$target")" || die "cannot create $(dirname "$target")"
{
    printf '%s\n' "${FILES[@]}" "${created[@]}"
    if [[ -f $target ]]; then
        while IFS= read -r old; do
            [[ -n $old && ( -e $DESTDIR${old%/} || -L $DESTDIR${old%/} ) ]] && echo "$old"
        done <"$target"
    fi
} | sort -u >"$STAGE/manifest" || die "cannot write the manifest"
install -m 644 "$STAGE/manifest" "$target" || die "cannot write $target"

echo "installed usp and uspd in $DESTDIR$PREFIX/bin (${#FILES[@]} files; list: $MANIFEST)"
if [[ $WITH_SYSTEMD == 1 && -z $DESTDIR ]]; then
    case $SYSTEMD_DIR in
        /etc/systemd/system|/usr/local/lib/systemd/system|/usr/lib/systemd/system|/lib/systemd/system)
            echo "systemd: systemctl daemon-reload && systemctl enable --now uspd.service   (data in /var/lib/uspd)" ;;
        *) echo "systemd does not read $SYSTEMD_DIR: link the units from there into /etc/systemd/system (systemctl link PATH)" ;;
    esac
fi
