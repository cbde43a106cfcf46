#!/usr/bin/env bash
# check-apply.sh [--series 3.6|3.10|3.12] SRCDIR
#
# A series' patches (cyrus-patch/patches/<series>/series) must apply, each
# cleanly and in order, to the upstream tarball and to Debian's patched tree
# (the orig tarball with debian/patches applied): bookworm's 3.6.1 for 3.6,
# trixie's 3.10.2 for 3.10, sid's (and forky's) 3.12.4-1 for 3.12. SRCDIR is the
# src directory of build-cyrus.sh for that series (build/cyrus/src,
# build/cyrus-3.10/src, build/cyrus-3.12/src), which holds the orig tarball and,
# for 3.10 and 3.12, Debian's tree already unpacked (src/debian-tree).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SERIES=3.6
if [ "${1:-}" = --series ]; then SERIES=${2:?--series needs 3.6, 3.10 or 3.12}; shift 2; fi
SRC=${1:?usage: check-apply.sh [--series 3.6|3.10|3.12] SRCDIR, the src directory of build-cyrus.sh}
SRC=$(cd "$SRC" && pwd)
# DTREE=1: build-cyrus.sh unpacked Debian's tree in SRC/debian-tree (3.6: fetched here)
case $SERIES in
    3.6|3.6.1)   SERIES=3.6;  V=3.6.1;  ORIG="$SRC/cyrus-imapd_3.6.1.orig.tar.gz";  Z=z; DTREE=0 ;;
    3.10|3.10.2) SERIES=3.10; V=3.10.2; ORIG="$SRC/cyrus-imapd_3.10.2.orig.tar.xz"; Z=J; DTREE=1 ;;
    3.12|3.12.4) SERIES=3.12; V=3.12.4; ORIG="$SRC/cyrus-imapd_3.12.4.orig.tar.xz"; Z=J; DTREE=1 ;;
    *) echo "check-apply: unknown series '$SERIES' (3.6, 3.10 or 3.12)" >&2; exit 2 ;;
esac
PATCHES=$HERE/patches/$SERIES
[ -f "$PATCHES/series" ] || { echo "check-apply: $PATCHES/series missing" >&2; exit 1; }
[ -f "$ORIG" ] || { echo "check-apply: $ORIG missing (run make cyrus CYRUS=$SERIES first)" >&2; exit 1; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

# apply_ours TREE WHAT: our series, in order, each cleanly (no fuzz, offsets allowed)
apply_ours() {
    local p
    while read -r p; do
        case $p in ''|'#'*) continue ;; esac
        ( cd "$1" && patch -p1 --batch --forward --fuzz=0 < "$PATCHES/$p" ) > "$T/out" 2>&1 \
            || { cat "$T/out"; echo "check-apply: $SERIES/$p does not apply to $2" >&2; exit 1; }
    done < "$PATCHES/series"
}

# upstream
mkdir "$T/upstream"
tar x${Z}f "$ORIG" -C "$T/upstream" --no-same-owner
apply_ours "$T/upstream/cyrus-imapd-$V" "the upstream $V tarball"

# Debian's tree
mkdir "$T/debian"
if [ "$DTREE" = 1 ]; then
    DTREE="$SRC/debian-tree/cyrus-imapd-$V"
    [ -f "$DTREE/debian/patches/series" ] \
        || { echo "check-apply: $DTREE missing (run cyrus-patch/build-cyrus.sh --series $SERIES --fetch-only first)" >&2; exit 1; }
    cp -a "$DTREE" "$T/debian/"
    DEBV=$(sed -n '1s/^[^(]*(\([^)]*\)).*/\1/p' "$DTREE/debian/changelog")
else
    DEB=$(ls "$SRC"/cyrus-imapd_3.6.1-*.debian.tar.xz 2>/dev/null | sort -V | tail -1 || true)
    if [ -z "$DEB" ]; then
        # the newest 3.6.1 Debian revision apt knows (not just the newest version: with the
        # deb-src entries of `make cyrus-stock CYRUS=3.10` or `CYRUS=3.12` that would be 3.10.2 or 3.12.4)
        DV=$(apt-cache showsrc cyrus-imapd 2>/dev/null | sed -n 's/^Version: \(3\.6\.1-.*\)$/\1/p' | sort -V | tail -1 || true)
        ( cd "$SRC" && apt-get source --download-only -qq "cyrus-imapd${DV:+=$DV}" >/dev/null 2>&1 || true )
        DEB=$(ls "$SRC"/cyrus-imapd_3.6.1-*.debian.tar.xz 2>/dev/null | sort -V | tail -1 || true)
    fi
    [ -n "$DEB" ] || { echo "check-apply: Debian's debian.tar.xz could not be fetched" >&2; exit 1; }
    tar xzf "$ORIG" -C "$T/debian" --no-same-owner
    ( cd "$T/debian/cyrus-imapd-$V" && tar xJf "$DEB" )
    while read -r p; do
        case $p in ''|'#'*) continue ;; esac
        ( cd "$T/debian/cyrus-imapd-$V" && patch -p1 -s --batch < "debian/patches/$p" ) \
            || { echo "check-apply: Debian's $p does not apply" >&2; exit 1; }
    done < "$T/debian/cyrus-imapd-$V/debian/patches/series"
    DEBV=$(basename "$DEB" .debian.tar.xz); DEBV=${DEBV#cyrus-imapd_}
fi
apply_ours "$T/debian/cyrus-imapd-$V" "Debian's $DEBV tree"
echo "check-apply: the $SERIES series ($(grep -cvE '^[[:space:]]*(#|$)' "$PATCHES/series") patches) applies to upstream $V and to Debian's $DEBV tree"
