#!/usr/bin/env bash
# build-cyrus.sh — robust, cached build of a minimal Cyrus IMAP 3.6.1, 3.10.2 or 3.12.4
# (docs/stock-cyrus.md, "Building a minimal Cyrus 3.6.1" and "Cyrus 3.10").
#
# Usage:
#   cyrus-patch/build-cyrus.sh [options] OUTDIR
#   cyrus-patch/build-cyrus.sh --patched LIBDIR [options] OUTDIR
#   cyrus-patch/build-cyrus.sh --series 3.10|3.12 [--fetch-only] OUTDIR
#
# Options:
#   --series S        the Cyrus series: 3.6 (default: 3.6.1, Debian bookworm's source
#                     package), 3.10 (3.10.2, Debian trixie's) or 3.12 (3.12.4, Debian
#                     sid's and forky's 3.12.4-1; trixie-backports has 3.12.3, not used).
#                     3.10 and 3.12 add a deb-src entry for their suite (trixie, sid)
#                     beside bookworm's if missing, and are configured with --enable-idled
#                     too. Env CYRUS=S works too. `make cyrus-stock CYRUS=3.10` uses
#                     OUTDIR build/cyrus-3.10 (3.12: build/cyrus-3.12); 3.6's is build/cyrus.
#   --fetch-only      only get (or check the cached) source into OUTDIR/src and stop.
#   --patched LIBDIR  build the patched variant: apply the series' patches,
#                     cyrus-patch/patches/<series>/series (patch -p1, in order), and link
#                     LIBDIR/lib/libcyrus_mboxevent.so (header
#                     LIBDIR/include/cyrus_mboxevent.h). Installs to OUTDIR/patched.
#   --force           ignore the cache stamp and rebuild.
#   --jobs N          make parallelism (default 2; env JOBS works too).
#   --no-apt          never call apt (fail instead if something is missing).
#   -h, --help        this text.
# Environment: JOBS (make -j), CYRUS_PATCH_DIR (patch dir instead of cyrus-patch/patches/<series>).
#
# Layout under OUTDIR:
#   src/            cached Debian source files (orig tarball, .dsc, debian.tar.xz if any)
#                   + src/SOURCE-INFO (what was fetched, versions, sha256s)
#                   + (3.10, 3.12) src/debian-tree/cyrus-imapd-<version>: Debian's tree
#                   (the orig with debian/ and debian/patches applied, by dpkg-source -x),
#                   for checking patches against it; the build uses the upstream orig
#   build/<variant> fresh build tree (recreated on every non-cached build)
#   <variant>/      install prefix: stock/ or patched/ (libexec/ sbin/ bin/ lib/ ...)
#   <variant>/.build-key      cache stamp (written only after a successful install)
#   <variant>/.build-info     human-readable inputs of that stamp
#   logs/<variant>-<step>.log full output of each step
#
# Exit status: 0 on success (built or cached), non-zero with "build-cyrus: ERROR [step]" message.
set -Eeuo pipefail

RECIPE_VERSION=1            # bump when the recipe changes in a way the key does not capture
SRC_PACKAGE=cyrus-imapd
SERIES=${CYRUS:-3.6}        # --series overrides; the per-series values are set below

# Why these flags: docs/stock-cyrus.md; keep the two in sync (the string is part of
# the cache key).
CONFIGURE_FLAGS=(--disable-pcre --disable-http --disable-calalarmd --disable-jmap
  --disable-xapian --disable-murder --disable-nntp --disable-replication --disable-backup
  --disable-unit-tests --disable-gssapi --without-ldap --without-mysql --without-pgsql
  --without-zephyr --without-clamav --without-krb --without-zeroskip --without-chardet
  --without-cld2 --without-perl)
SERIES_FLAGS=()             # per series, appended to CONFIGURE_FLAGS (3.6: none)

BUILD_DEPS=(build-essential pkg-config bison flex comerr-dev libsasl2-dev
  libjansson-dev libical-dev libsqlite3-dev libssl-dev uuid-dev zlib1g-dev libicu-dev patch)
# Not needed to build, needed to run the sandbox (saslpasswd2, PLAIN/LOGIN mechs, python client).
RUNTIME_DEPS=(sasl2-bin libsasl2-modules python3)
AUTORECONF_DEPS=(autoconf automake libtool)

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# ---------------------------------------------------------------- helpers
STEP=init
T0=$(date +%s.%N)
say()  { printf 'build-cyrus: %s\n' "$*"; }
warn() { printf 'build-cyrus: WARNING: %s\n' "$*" >&2; }
die()  { printf 'build-cyrus: ERROR [%s]: %s\n' "$STEP" "$*" >&2; exit 1; }
elapsed() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}'; }
trap 'rc=$?; [ $rc -ne 0 ] && printf "build-cyrus: ERROR [%s]: unexpected failure (exit %d) at line %d: %s\n" "$STEP" $rc "$LINENO" "$BASH_COMMAND" >&2' ERR

# run_logged NAME CMD...: run with output to logs/VARIANT-NAME.log; on failure show the tail.
run_logged() {
  local name=$1; shift
  local log="$LOGDIR/$VARIANT-$name.log"
  local t=$(date +%s)
  if ! "$@" >"$log" 2>&1; then
    printf -- '----- last 40 lines of %s -----\n' "$log" >&2
    tail -n 40 "$log" >&2
    printf -- '-----\n' >&2
    die "'$name' failed (full log: $log)"
  fi
  say "  $name ok ($(( $(date +%s) - t )) s, log: $log)"
}

sha256() { sha256sum "$1" | cut -d' ' -f1; }

usage() { sed -n '2,/^set -E/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }

# ---------------------------------------------------------------- arguments
ORIG_ARGS="$*"
LIBDIR=""; FORCE=0; JOBS=${JOBS:-2}; USE_APT=1; OUTDIR=""; FETCH_ONLY=0
while [ $# -gt 0 ]; do
  case $1 in
    --series) [ $# -ge 2 ] || { STEP=args; die "--series needs an argument (3.6, 3.10 or 3.12)"; }
              SERIES=$2; shift 2 ;;
    --series=*) SERIES=${1#*=}; shift ;;
    --fetch-only) FETCH_ONLY=1; shift ;;
    --patched) [ $# -ge 2 ] || { STEP=args; die "--patched needs a LIBDIR argument"; }
               LIBDIR=$2; shift 2 ;;
    --patched=*) LIBDIR=${1#*=}; shift ;;
    --force) FORCE=1; shift ;;
    --jobs) JOBS=$2; shift 2 ;;
    --jobs=*) JOBS=${1#*=}; shift ;;
    --no-apt) USE_APT=0; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) STEP=args; die "unknown option '$1' (see --help)" ;;
    *) [ -z "$OUTDIR" ] || { STEP=args; die "more than one OUTDIR given ('$OUTDIR', '$1')"; }
       OUTDIR=$1; shift ;;
  esac
done
STEP=args
[ -n "$OUTDIR" ] || { usage >&2; die "missing OUTDIR"; }
[[ $JOBS =~ ^[0-9]+$ ]] && [ "$JOBS" -ge 1 ] || die "--jobs must be a positive integer (got '$JOBS')"

if [ -n "$LIBDIR" ]; then VARIANT=patched; else VARIANT=stock; fi

# ---------------------------------------------------------------- series
# CYRUS_VERSION, the orig tarball (and its sha256, pinned), the apt-get source specs tried in
# order, the suite whose deb-src entry they need, the Debian revision expected, flags.
DEBIAN_TREE=0; EXPECTED_DEB_VERSION=""
case $SERIES in
  3.6|3.6.1)
    SERIES=3.6; CYRUS_VERSION=3.6.1
    ORIG_TARBALL="${SRC_PACKAGE}_${CYRUS_VERSION}.orig.tar.gz"; TAR_Z=z
    # Debian's orig tarball for 3.6.1 (same in every 3.6.1-4+deb12uN .dsc).
    EXPECTED_ORIG_SHA256=32d6926123667952d5df76831de7c4ed02f389f41ac0d9c88a2427f3343a8e79
    # The bookworm (non-security) version first: on this mirror the security pool 404s for
    # sources, and the debian.tar.xz of bookworm's version may 404 too — we only need the orig.
    APT_SPECS=("$SRC_PACKAGE/bookworm" "$SRC_PACKAGE")
    DEBSRC_SUITE=bookworm ;;
  3.10|3.10.2)
    SERIES=3.10; CYRUS_VERSION=3.10.2
    ORIG_TARBALL="${SRC_PACKAGE}_${CYRUS_VERSION}.orig.tar.xz"; TAR_Z=J
    # Debian's orig tarball for 3.10.2 (trixie's 3.10.2-1+deb13uN: the upstream release).
    EXPECTED_ORIG_SHA256=f21d6e73d530b39498fed9c8a9182ab5c5b0fe1bbb27af881307258e8d32cd10
    # trixie's source package; bookworm-backports lists 3.10.x sources whose files are gone.
    APT_SPECS=("$SRC_PACKAGE/trixie")
    DEBSRC_SUITE=trixie; EXPECTED_DEB_VERSION=3.10.2-1+deb13u2; DEBIAN_TREE=1
    # idled: IMAP IDLE and NOTIFY are fed through mboxevent in 3.10 (tests/e2e/idle.py)
    SERIES_FLAGS=(--enable-idled) ;;
  3.12|3.12.4)
    SERIES=3.12; CYRUS_VERSION=3.12.4
    ORIG_TARBALL="${SRC_PACKAGE}_${CYRUS_VERSION}.orig.tar.xz"; TAR_Z=J
    # Debian's orig tarball for 3.12.4 (sid's and forky's 3.12.4-1: the upstream release).
    EXPECTED_ORIG_SHA256=d8e7ba7dd9d14387e70263137dadc662c8833b524289fc61fdd32db6fc068bc6
    # sid's source package (forky has the same 3.12.4-1; trixie-backports only 3.12.3).
    APT_SPECS=("$SRC_PACKAGE/sid")
    DEBSRC_SUITE=sid; EXPECTED_DEB_VERSION=3.12.4-1; DEBIAN_TREE=1
    # idled: as in 3.10, IMAP IDLE and NOTIFY are fed through mboxevent
    SERIES_FLAGS=(--enable-idled) ;;
  *) STEP=args; die "unknown series '$SERIES' (3.6, 3.10 or 3.12)" ;;
esac
CONFIGURE_FLAGS+=("${SERIES_FLAGS[@]}")
PATCH_DIR="${CYRUS_PATCH_DIR:-$SCRIPT_DIR/patches/$SERIES}"   # env override for tests
INSTALLED_BINS=(libexec/master libexec/imapd libexec/lmtpd libexec/notifyd sbin/ctl_cyrusdb)
[ ${#SERIES_FLAGS[@]} -gt 0 ] && [[ " ${SERIES_FLAGS[*]} " == *" --enable-idled "* ]] && INSTALLED_BINS+=(libexec/idled)

# ---------------------------------------------------------------- 1. root
STEP=root
[ "$(id -u)" -eq 0 ] || die "must run as root (installs Debian packages, creates the 'cyrus' user); try: sudo $0 $ORIG_ARGS"

mkdir -p "$OUTDIR" || die "cannot create OUTDIR '$OUTDIR'"
OUTDIR=$(cd "$OUTDIR" && pwd)
SRCDIR="$OUTDIR/src"; LOGDIR="$OUTDIR/logs"
PREFIX="$OUTDIR/$VARIANT"; BUILDROOT="$OUTDIR/build/$VARIANT"
mkdir -p "$SRCDIR" "$LOGDIR"

# One build per OUTDIR at a time.
exec 9>"$OUTDIR/.lock"
flock -n 9 || { say "another build-cyrus.sh holds $OUTDIR/.lock; waiting"; flock 9; }

say "variant=$VARIANT outdir=$OUTDIR prefix=$PREFIX"

# ---------------------------------------------------------------- patched inputs
PATCHES=()
if [ "$VARIANT" = patched ]; then
  STEP=patched-inputs
  [ -d "$LIBDIR" ] || die "LIBDIR '$LIBDIR' is not a directory"
  LIBDIR=$(cd "$LIBDIR" && pwd)
  [ -f "$LIBDIR/lib/libcyrus_mboxevent.so" ] || die "missing $LIBDIR/lib/libcyrus_mboxevent.so (build the Rust library and install it there first)"
  [ -f "$LIBDIR/include/cyrus_mboxevent.h" ] || die "missing $LIBDIR/include/cyrus_mboxevent.h"
  [ -f "$PATCH_DIR/series" ] || die "--patched given but there is no patch series for Cyrus $SERIES ($PATCH_DIR/series; an empty series = link-only build)"
  while IFS= read -r line || [ -n "$line" ]; do
    line=${line%%#*}; line=$(echo "$line" | xargs)   # strip comments/whitespace
    [ -n "$line" ] || continue
    set -- $line
    [ $# -eq 1 ] || die "series line '$line': only bare patch names are supported (always applied with -p1)"
    [ -f "$PATCH_DIR/$1" ] || die "series lists '$1' but $PATCH_DIR/$1 does not exist"
    PATCHES+=("$PATCH_DIR/$1")
  done < "$PATCH_DIR/series"
  [ ${#PATCHES[@]} -gt 0 ] || warn "patch series is empty: building stock sources linked against $LIBDIR"
fi

# ---------------------------------------------------------------- 2. source
STEP=source
TARBALL="$SRCDIR/$ORIG_TARBALL"

have_debsrc() {
  grep -Eqs '^[[:space:]]*Types:.*\bdeb-src\b' /etc/apt/sources.list.d/*.sources 2>/dev/null && return 0
  grep -Eqs '^[[:space:]]*deb-src[[:space:]]' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null && return 0
  return 1
}
ensure_debsrc() {
  have_debsrc && return 0
  local base=/etc/apt/sources.list.d/debian.sources
  [ -f "$base" ] || die "no deb-src entry and no $base to derive one from; add a deb-src line for bookworm by hand"
  say "adding deb-src twin of $base -> /etc/apt/sources.list.d/debian-src.sources"
  sed 's/^Types: deb$/Types: deb-src/' "$base" > /etc/apt/sources.list.d/debian-src.sources
  APT_UPDATED_NEEDED=1
}
# A deb-src entry for a suite other than bookworm (3.10: trixie, 3.12: sid), beside the machine's
# bookworm one: same URIs, Components and Signed-By, only `Suites:` differs.
# deb822 stanzas (*.sources) and one-line entries (*.list) are both understood.
SUITE_SOURCES=/etc/apt/sources.list.d/debian-%s-src.sources
have_debsrc_suite() {   # $1 = suite
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk -v s="$1" 'BEGIN { RS = ""; FS = "\n" }
      { t = 0; u = 0; en = 1
        for (i = 1; i <= NF; i++) { l = $i
          if (l ~ /^[[:space:]]*#/) continue
          if (l ~ /^Types:/ && l ~ /[[:space:]]deb-src([[:space:]]|$)/) t = 1
          if (l ~ /^Suites:/) { n = split(substr(l, 8), a, /[[:space:]]+/); for (j = 1; j <= n; j++) if (a[j] == s) u = 1 }
          if (l ~ /^Enabled:[[:space:]]*no/) en = 0 }
        if (t && u && en) found = 1 }
      END { exit !found }' "$f" && return 0
  done
  grep -Eqs "^[[:space:]]*deb-src[[:space:]]+(\[[^]]*\][[:space:]]+)?[^[:space:]]+[[:space:]]+$1[[:space:]]" \
    /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null && return 0
  return 1
}
ensure_debsrc_suite() {  # $1 = suite
  local suite=$1 out f stanza="" line
  have_debsrc_suite "$suite" && return 0
  out=$(printf "$SUITE_SOURCES" "$suite")
  # the machine's bookworm entry (deb or deb-src) for the main archive
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    stanza=$(awk 'BEGIN { RS = ""; FS = "\n" }
      { b = 0; for (i = 1; i <= NF; i++) if ($i ~ /^Suites:/) { n = split(substr($i, 8), a, /[[:space:]]+/); for (j = 1; j <= n; j++) if (a[j] == "bookworm") b = 1 }
        if (b) { print; exit } }' "$f")
    [ -n "$stanza" ] && break
  done
  if [ -n "$stanza" ]; then
    local uris comps signed
    uris=$(sed -n 's/^URIs:[[:space:]]*//p' <<<"$stanza" | head -n1)
    comps=$(sed -n 's/^Components:[[:space:]]*//p' <<<"$stanza" | head -n1)
    signed=$(sed -n 's/^Signed-By:[[:space:]]*//p' <<<"$stanza" | head -n1)
    [ -n "$uris" ] || die "the bookworm entry in $f has no URIs: add a deb-src entry for $suite by hand"
    say "adding a deb-src entry for $suite beside $f's bookworm one -> $out"
    { echo "# Added by cyrus-mboxevent's cyrus-patch/build-cyrus.sh: Debian $suite's source packages"
      echo "# (apt-get source cyrus-imapd/$suite). Same URIs and Signed-By as the bookworm entry of $f."
      echo "Types: deb-src"
      echo "URIs: $uris"
      echo "Suites: $suite"
      echo "Components: ${comps:-main}"
      [ -n "$signed" ] && echo "Signed-By: $signed"
    } > "$out"
  else
    line=$(grep -hE '^[[:space:]]*deb(-src)?[[:space:]]+(\[[^]]*\][[:space:]]+)?[^[:space:]]+[[:space:]]+bookworm[[:space:]]' \
             /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | head -n1 || true)
    [ -n "$line" ] || die "no bookworm entry to derive a deb-src entry for $suite from; add one by hand"
    out=${out%.sources}.list
    say "adding a deb-src line for $suite beside the bookworm one -> $out"
    sed -E "s/^[[:space:]]*deb(-src)?[[:space:]]/deb-src /; s/[[:space:]]bookworm[[:space:]]/ $suite /" <<<"$line" > "$out"
  fi
  APT_UPDATED_NEEDED=1
}
# apt_get ARGS: apt-get, one at a time on this machine: builds of several series may run at
# once (make check's e2e-all) and apt-get refuses to run beside another (dpkg's and the
# lists' locks); the same lock covers creating the cyrus user.
APT_LOCK=/run/lock/cyrus-mboxevent-apt.lock
[ -d /run/lock ] || APT_LOCK=/tmp/cyrus-mboxevent-apt.lock
apt_get() { flock "$APT_LOCK" env DEBIAN_FRONTEND=noninteractive apt-get "$@"; }
APT_UPDATED=0
apt_update() {
  [ $APT_UPDATED -eq 1 ] && return 0
  say "apt-get update"
  if ! apt_get update >"$LOGDIR/apt-update.log" 2>&1; then
    tail -n 20 "$LOGDIR/apt-update.log" >&2
    die "apt-get update failed — are the Debian mirrors reachable? (log: $LOGDIR/apt-update.log)"
  fi
  APT_UPDATED=1
}

verify_tarball() {   # $1 = file; dies on mismatch
  local f=$1 got
  got=$(sha256 "$f")
  [ "$got" = "$EXPECTED_ORIG_SHA256" ] || die "$f: sha256 $got != expected Debian $CYRUS_VERSION orig $EXPECTED_ORIG_SHA256"
  local v
  v=$(tar -x${TAR_Z}Of "$f" "cyrus-imapd-$CYRUS_VERSION/VERSION" 2>/dev/null | tr -d '[:space:]') \
    || die "$f: no cyrus-imapd-$CYRUS_VERSION/VERSION inside (not a $CYRUS_VERSION tarball?)"
  [ "$v" = "$CYRUS_VERSION" ] || die "$f: VERSION says '$v', expected $CYRUS_VERSION"
  local dsc
  for dsc in "$SRCDIR"/${SRC_PACKAGE}_${CYRUS_VERSION}-*.dsc; do
    [ -f "$dsc" ] || continue
    local want
    want=$(awk -v n="$ORIG_TARBALL" '/^Checksums-Sha256:/{s=1;next} /^[^ ]/{s=0} s && $3==n {print $1}' "$dsc")
    [ -n "$want" ] || die "$dsc has no Checksums-Sha256 entry for $ORIG_TARBALL"
    [ "$want" = "$got" ] || die "$ORIG_TARBALL sha256 $got does not match $dsc ($want)"
  done
}

fetch_source() {
  [ $USE_APT -eq 1 ] || die "$TARBALL missing and --no-apt given"
  if [ "$DEBSRC_SUITE" = bookworm ]; then ensure_debsrc; else ensure_debsrc_suite "$DEBSRC_SUITE"; fi
  # (capture first: with pipefail, 'apt-cache | grep -q' fails on SIGPIPE)
  src_known() { local out; out=$(apt-cache showsrc "$SRC_PACKAGE" 2>/dev/null || true)
                grep -q "^Version: $CYRUS_VERSION-" <<<"$out"; }
  if [ "${APT_UPDATED_NEEDED:-0}" = 1 ] || ! src_known; then
    apt_update
    src_known || die "apt knows no source package $SRC_PACKAGE $CYRUS_VERSION-* even after apt-get update (deb-src entry for $DEBSRC_SUITE missing?)"
  fi
  local dl="$SRCDIR/download.$$"
  rm -rf "$dl"; mkdir -p "$dl"
  local spec ok=0
  for spec in "${APT_SPECS[@]}"; do
    say "apt-get source --download-only $spec"
    ( cd "$dl" && apt_get -o APT::Sandbox::User=root source --download-only "$spec" ) \
      >>"$LOGDIR/apt-source.log" 2>&1 || true
    if [ -f "$dl/$ORIG_TARBALL" ]; then ok=1; break; fi
    grep -q -E 'Temporary failure resolving|Could not connect|Unable to connect|Connection failed|Network is unreachable|Could not resolve' "$LOGDIR/apt-source.log" \
      && die "Debian mirror unreachable while fetching source (log: $LOGDIR/apt-source.log)"
  done
  if [ $ok -ne 1 ]; then
    tail -n 20 "$LOGDIR/apt-source.log" >&2
    die "apt-get source did not deliver $ORIG_TARBALL (log: $LOGDIR/apt-source.log)"
  fi
  grep -E '^(E|W): ' "$LOGDIR/apt-source.log" | grep -v 'unsandboxed' | sed 's/^/  apt (tolerated, only the orig tarball is required): /' || true
  mv -f "$dl"/* "$SRCDIR"/
  rmdir "$dl"
}

# ensure_tools PKG...: packages the source step itself needs (3.10, 3.12: xz for the .tar.xz,
# dpkg-source for Debian's tree), installed before the build dependencies are.
ensure_tools() {
  local p miss=()
  for p in "$@"; do
    [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null)" = "ii " ] || miss+=("$p")
  done
  [ ${#miss[@]} -eq 0 ] && return 0
  [ $USE_APT -eq 1 ] || die "missing packages and --no-apt given: ${miss[*]}"
  say "installing ${miss[*]}"
  apt_get install -y --no-install-recommends "${miss[@]}" >>"$LOGDIR/apt-install.log" 2>&1 \
    || { apt_update; apt_get install -y --no-install-recommends "${miss[@]}" >>"$LOGDIR/apt-install.log" 2>&1; } \
    || die "could not install ${miss[*]} (log: $LOGDIR/apt-install.log)"
}
[ "$TAR_Z" = J ] && ensure_tools xz-utils

if [ -f "$TARBALL" ] && [ "$(sha256 "$TARBALL")" = "$EXPECTED_ORIG_SHA256" ]; then
  say "source: cached $TARBALL"
else
  [ -f "$TARBALL" ] && { warn "cached $TARBALL has a wrong sha256; refetching"; rm -f "$TARBALL"; }
  fetch_source
  # record what we got
  {
    echo "fetched: $(date -u +%FT%TZ) (apt-get source --download-only ${APT_SPECS[*]})"
    for f in "$SRCDIR"/*; do
      case $f in *.dsc|*.tar.*) echo "$(sha256 "$f")  $(basename "$f")";; esac
    done
    if ls "$SRCDIR"/${SRC_PACKAGE}_${CYRUS_VERSION}-*.debian.tar.xz >/dev/null 2>&1; then
      if [ $DEBIAN_TREE -eq 1 ]; then
        echo "debian.tar.xz: available (unpacked with debian/patches applied in src/debian-tree; the build uses the upstream orig)"
      else
        echo "debian.tar.xz: available (Debian patches NOT applied; build uses the upstream orig)"
      fi
    else
      echo "debian.tar.xz: not available from this mirror (404) — optional, not used"
    fi
  } > "$SRCDIR/SOURCE-INFO"
fi
verify_tarball "$TARBALL"
TARBALL_SHA=$(sha256 "$TARBALL")
say "source: $ORIG_TARBALL verified (sha256 ${TARBALL_SHA:0:16}…, VERSION $CYRUS_VERSION)"

# Debian's own tree (3.10, 3.12): orig + debian.tar.xz, debian/patches applied by dpkg-source -x,
# for a later check that our patches apply to what Debian builds too. Not used by the build.
if [ $DEBIAN_TREE -eq 1 ]; then
  STEP=debian-tree
  DSC=$(ls "$SRCDIR"/${SRC_PACKAGE}_${CYRUS_VERSION}-*.dsc 2>/dev/null | sort -V | tail -n1 || true)
  [ -n "$DSC" ] || die "no ${SRC_PACKAGE}_${CYRUS_VERSION}-*.dsc in $SRCDIR (remove $TARBALL to refetch)"
  DEB_VERSION=$(sed -n 's/^Version:[[:space:]]*//p' "$DSC" | head -n1)
  [ -z "$EXPECTED_DEB_VERSION" ] || [ "$DEB_VERSION" = "$EXPECTED_DEB_VERSION" ] \
    || warn "Debian's source package is $DEB_VERSION, not $EXPECTED_DEB_VERSION (same upstream orig: the build is unaffected)"
  DEBTAR="$SRCDIR/${SRC_PACKAGE}_${DEB_VERSION}.debian.tar.xz"
  [ -f "$DEBTAR" ] || die "$DEBTAR missing (apt-get source did not deliver it; log: $LOGDIR/apt-source.log)"
  DTREE="$SRCDIR/debian-tree/cyrus-imapd-$CYRUS_VERSION"
  DKEY="$(sha256 "$DSC") $(sha256 "$DEBTAR") $TARBALL_SHA"
  if [ -f "$DTREE/.debian-tree-key" ] && [ "$(cat "$DTREE/.debian-tree-key")" = "$DKEY" ]; then
    say "debian tree: cached $DTREE ($DEB_VERSION)"
  else
    ensure_tools dpkg-dev
    rm -rf "$SRCDIR/debian-tree"; mkdir -p "$SRCDIR/debian-tree"
    run_logged debian-tree dpkg-source -x "$DSC" "$DTREE"
    [ -f "$DTREE/debian/patches/series" ] || die "$DTREE/debian/patches/series missing after dpkg-source -x"
    echo "$DKEY" > "$DTREE/.debian-tree-key"
    say "debian tree: $DTREE ($DEB_VERSION, $(grep -cvE '^[[:space:]]*(#|$)' "$DTREE/debian/patches/series") Debian patches applied)"
  fi
fi
if [ $FETCH_ONLY -eq 1 ]; then
  say "source ready in $SRCDIR (--fetch-only, $(elapsed) s)"
  exit 0
fi

# ---------------------------------------------------------------- 3. packages + cyrus user
STEP=deps
NEED_AUTORECONF=0
for p in "${PATCHES[@]}"; do
  if grep -Eq '^\+\+\+ [^[:space:]]*/(configure\.ac|Makefile\.am|[^[:space:]]*\.m4)([[:space:]]|$)' "$p"; then
    NEED_AUTORECONF=1
  fi
done
WANT=("${BUILD_DEPS[@]}" "${RUNTIME_DEPS[@]}")
[ $NEED_AUTORECONF -eq 1 ] && WANT+=("${AUTORECONF_DEPS[@]}")
MISSING=()
for p in "${WANT[@]}"; do
  [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null)" = "ii " ] || MISSING+=("$p")
done
if [ ${#MISSING[@]} -gt 0 ]; then
  [ $USE_APT -eq 1 ] || die "missing packages and --no-apt given: ${MISSING[*]}"
  say "installing missing packages: ${MISSING[*]}"
  inst() { apt_get install -y --no-install-recommends "$@" >>"$LOGDIR/apt-install.log" 2>&1; }
  if ! inst "${MISSING[@]}"; then
    warn "apt-get install failed; running apt-get update and retrying"
    apt_update
    if ! inst "${MISSING[@]}"; then
      warn "retrying with -t bookworm (non-security versions)"
      inst -t bookworm "${MISSING[@]}" || { tail -n 20 "$LOGDIR/apt-install.log" >&2
        die "could not install: ${MISSING[*]} (log: $LOGDIR/apt-install.log)"; }
    fi
  fi
else
  say "packages: all ${#WANT[@]} present"
fi

STEP=cyrus-user
# Lighter than the cyrus-common package (which would pull exim4, clamav, xapian, zephyr, ...).
getent group mail >/dev/null || die "group 'mail' does not exist (base-passwd should provide it)"
if ! getent passwd cyrus >/dev/null; then
  exec 8>"$APT_LOCK"; flock 8   # another series' build may be creating it just now
  if ! getent passwd cyrus >/dev/null; then
    say "creating system user 'cyrus' (primary group mail)"
    useradd --system --gid mail --home-dir /var/spool/cyrus --no-create-home \
            --shell /usr/sbin/nologin --comment "Cyrus Mailsystem User" cyrus \
      || die "useradd cyrus failed"
  fi
  exec 8>&-
fi

# ---------------------------------------------------------------- 5. cache key
STEP=cache
ENV_ARGS=()
if [ "$VARIANT" = patched ]; then
  # patches/0001 teaches configure this switch (it adds the rpath too)
  ENV_ARGS=("--with-mboxevent=$LIBDIR")
fi
INFO=$(
  echo "recipe $RECIPE_VERSION"
  echo "variant $VARIANT"
  echo "tarball $TARBALL_SHA"
  echo "configure --prefix=$PREFIX ${CONFIGURE_FLAGS[*]} ${ENV_ARGS[*]}"
  echo "autoreconf $NEED_AUTORECONF"
  for p in "${PATCHES[@]}"; do echo "patch $(sha256 "$p") $(basename "$p")"; done
  if [ "$VARIANT" = patched ]; then
    # Only the ABI matters: imapd loads the library at run time through its
    # rpath, so a rebuilt library needs no rebuilt Cyrus.
    echo "header $(sha256 "$LIBDIR/include/cyrus_mboxevent.h") $LIBDIR/include/cyrus_mboxevent.h"
  fi
)
KEY=$(printf '%s\n' "$INFO" | sha256sum | cut -d' ' -f1)
STAMP="$PREFIX/.build-key"
if [ $FORCE -eq 0 ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$KEY" ] \
   && [ -x "$PREFIX/libexec/imapd" ] && [ -x "$PREFIX/libexec/master" ]; then
  say "CACHED: $PREFIX is up to date (key ${KEY:0:16}); nothing to do ($(elapsed) s). Use --force to rebuild."
  exit 0
fi
say "building (key ${KEY:0:16}$( [ $FORCE -eq 1 ] && echo ', --force'))"

# ---------------------------------------------------------------- 4. build
STEP=extract
rm -f "$STAMP"
rm -rf "$BUILDROOT"; mkdir -p "$BUILDROOT"
tar -x${TAR_Z}f "$TARBALL" -C "$BUILDROOT" --no-same-owner || die "extracting $TARBALL failed"
TREE="$BUILDROOT/cyrus-imapd-$CYRUS_VERSION"
[ -x "$TREE/configure" ] || die "$TREE/configure missing after extraction"

STEP=patch
: > "$LOGDIR/$VARIANT-patch.log"
for p in "${PATCHES[@]}"; do
  say "applying $(basename "$p")"
  if ! ( cd "$TREE" && patch -p1 --batch --forward --no-backup-if-mismatch -i "$p" ) >>"$LOGDIR/$VARIANT-patch.log" 2>&1; then
    tail -n 20 "$LOGDIR/$VARIANT-patch.log" >&2
    die "patch $(basename "$p") does not apply to cyrus-imapd $CYRUS_VERSION (log: $LOGDIR/$VARIANT-patch.log)"
  fi
done
if [ $NEED_AUTORECONF -eq 1 ]; then
  STEP=autoreconf
  run_logged autoreconf bash -c "cd '$TREE' && autoreconf -fi"
fi

STEP=configure
say "configure (prefix $PREFIX)"
run_logged configure bash -c 'cd "$1" && shift && ./configure "$@"' _ "$TREE" \
  --prefix="$PREFIX" "${CONFIGURE_FLAGS[@]}" "${ENV_ARGS[@]}"

STEP=make
say "make -j$JOBS"
run_logged make make -C "$TREE" -j"$JOBS"

STEP=install
say "make install"
rm -rf "$PREFIX"
run_logged install make -C "$TREE" install
for b in "${INSTALLED_BINS[@]}"; do
  [ -x "$PREFIX/$b" ] || die "expected $PREFIX/$b after make install, not found"
done
if [ "$VARIANT" = patched ]; then
  grep -q "$LIBDIR/lib/libcyrus_mboxevent.so" <<<"$(ldd "$PREFIX/libexec/imapd")" \
    || warn "imapd does not load $LIBDIR/lib/libcyrus_mboxevent.so (no symbol used yet? check ldd)"
fi

printf '%s\n' "$INFO" > "$PREFIX/.build-info"
echo "$KEY" > "$STAMP"
say "DONE: $VARIANT Cyrus $CYRUS_VERSION installed in $PREFIX ($(elapsed) s)"
