#!/usr/bin/env bash
# Debian bookworm's stock libcyrus_imap.so.0 (cyrus-common 3.6.1), unpacked
# into DIR without installing the package (which would pull in an MTA), plus
# the shared libraries it needs. The hot-path benchmark calls its notify().
set -euo pipefail
DIR=${1:?usage: fetch-debian-cyrus.sh DIR}
LIB="$DIR/usr/lib/x86_64-linux-gnu/libcyrus_imap.so.0"
[ -e "$LIB" ] && { echo "fetch-debian-cyrus: cached $LIB"; exit 0; }
[ "$(id -u)" -eq 0 ] || { echo "fetch-debian-cyrus: run as root (apt)" >&2; exit 1; }
need=()
for p in libxapian30 libpcre3 libjansson-dev libical3 libsqlite3-0 libsasl2-2 libssl3 libicu72 libuuid1 zlib1g; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" \
        || { echo "fetch-debian-cyrus: apt-get install ${need[*]} failed" >&2; exit 1; }
fi
mkdir -p "$DIR"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
( cd "$tmp" && apt-get download cyrus-common >/dev/null 2>&1 ) \
    || { apt-get update -qq; ( cd "$tmp" && apt-get download cyrus-common ); } \
    || { echo "fetch-debian-cyrus: apt-get download cyrus-common failed" >&2; exit 1; }
dpkg-deb -x "$tmp"/cyrus-common_*.deb "$DIR"
ver=$(dpkg-deb -f "$tmp"/cyrus-common_*.deb Version)
case $ver in 3.6.1-*) ;; *) echo "fetch-debian-cyrus: expected 3.6.1, got $ver" >&2; exit 1 ;; esac
echo "$ver" > "$DIR/VERSION"
echo "fetch-debian-cyrus: Debian cyrus-common $ver unpacked in $DIR"
