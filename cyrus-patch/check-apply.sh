#!/usr/bin/env bash
# The patch series must apply to the upstream 3.6.1 tarball and to Debian's
# patched tree (the orig tarball plus debian/patches from the bookworm
# source package). build-cyrus.sh covers the first; this checks the second.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=${1:?usage: check-apply.sh SRCDIR, the src directory of build-cyrus.sh}
SRC=$(cd "$SRC" && pwd)
ORIG="$SRC/cyrus-imapd_3.6.1.orig.tar.gz"
[ -f "$ORIG" ] || { echo "check-apply: $ORIG missing (run make cyrus first)" >&2; exit 1; }
DEB=$(ls "$SRC"/cyrus-imapd_3.6.1-*.debian.tar.xz 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$DEB" ]; then
    # the newest 3.6.1 Debian revision apt knows (not just the newest version: with the
    # trixie deb-src entry of `make cyrus-stock CYRUS=3.10` that would be 3.10.2)
    V=$(apt-cache showsrc cyrus-imapd 2>/dev/null | sed -n 's/^Version: \(3\.6\.1-.*\)$/\1/p' | sort -V | tail -1 || true)
    ( cd "$SRC" && apt-get source --download-only -qq "cyrus-imapd${V:+=$V}" >/dev/null 2>&1 || true )
    DEB=$(ls "$SRC"/cyrus-imapd_3.6.1-*.debian.tar.xz 2>/dev/null | sort -V | tail -1 || true)
fi
[ -n "$DEB" ] || { echo "check-apply: Debian's debian.tar.xz could not be fetched" >&2; exit 1; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
tar xzf "$ORIG" -C "$T"
cd "$T/cyrus-imapd-3.6.1"
tar xJf "$DEB"
while read -r p; do
    case $p in ''|'#'*) continue ;; esac
    patch -p1 -s --batch < "debian/patches/$p" || { echo "check-apply: Debian's $p does not apply" >&2; exit 1; }
done < debian/patches/series
while read -r p; do
    case $p in ''|'#'*) continue ;; esac
    patch -p1 --batch --forward < "$HERE/patches/$p" > "$T/out" 2>&1 \
        || { cat "$T/out"; echo "check-apply: $p does not apply to Debian's tree" >&2; exit 1; }
done < "$HERE/patches/series"
echo "check-apply: the series applies to Debian's $(basename "$DEB" .debian.tar.xz) tree"
