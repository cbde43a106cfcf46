#!/usr/bin/env bash
# run-sandbox.sh — run a Cyrus IMAP 3.6.1, 3.10.2 or 3.12.4 built by build-cyrus.sh in a throw-away
# directory, with the event listener (cmev-tap) bound at notifysocket.
#
#   cyrus-patch/run-sandbox.sh up PREFIX PROFILE_DIR [EXTRA_CONF_FILE]   # prints the sandbox dir S
#   cyrus-patch/run-sandbox.sh down S [S...]     # stop master, tap, syslog listener (by PID)
#   cyrus-patch/run-sandbox.sh tap-stop S        # stop the listener (socket file removed)
#   cyrus-patch/run-sandbox.sh tap-start S       # start it again (appends to S/events.jsonl)
#   cyrus-patch/run-sandbox.sh tap-restart S [SECONDS]   # stop, wait SECONDS (default 1), start
#   cyrus-patch/run-sandbox.sh status S          # what runs, where the logs are
#
# PREFIX      build/cyrus/patched or build/cyrus/stock (libexec/{master,imapd,lmtpd}, sbin/),
#             or build/cyrus-3.10/stock, build/cyrus-3.12/patched, ...
# PROFILE_DIR a folder with imapd.conf + cyrus.conf using @SANDBOX@, e.g.
#             tests/golden/stock-3.6.1-default. cyrus.conf's /usr/lib/cyrus/bin/ paths
#             are rewritten to PREFIX, the imap port to a free loopback port. If PREFIX has
#             libexec/idled (3.10 and 3.12 builds: --enable-idled), master also starts idled
#             from cyrus.conf's DAEMON section (listening at idlesocket), unless SANDBOX_IDLED=0.
#             3.6.1, 3.10.2 and 3.12.4 take the same imapd.conf and cyrus.conf otherwise.
# EXTRA_CONF_FILE  imapd.conf lines (@SANDBOX@ allowed) added to the profile's; an option that
#             the profile already sets is replaced (Cyrus refuses an option given twice).
#
# Environment:
#   CMEV_TAP           listener binary (default <repo>/target/release/cmev-tap); `none` = no tap.
#                      No tap either when a cyrus.conf service (notifyd) listens at notifysocket.
#   SANDBOX_WATCH_PID  if set, a watchdog runs `down` as soon as that process is gone, so a
#                      killed caller never leaves Cyrus running (callers should also `trap`).
#   SANDBOX_DIR_FILE   if set, `up` writes S there as soon as the directory exists, so the
#                      caller can `down` it even when `up` itself fails or is interrupted.
#   SANDBOX_STOP_TIMEOUT  seconds master gets after SIGTERM before SIGKILL (default 5).
#   SANDBOX_BASE       where S is made (default /tmp); make bench uses a tmpfs, so that disk
#                      flushes do not drown the CPU cost it measures.
#   SANDBOX_IDLED      0 = no idled even if PREFIX has one (IMAP IDLE then polls); 1 = require
#                      it (fail if PREFIX has none); default: idled when PREFIX has it.
#
# Layout of S (owned by cyrus:mail, mode 750): conf/ (imapd.conf, cyrus.conf, sasldb2),
# var/ spool/ sieve/ socket/ (lmtp, notify), events.jsonl (cmev-tap --envelope lines), and
# rig/ (root's: pids, port, users, master.out, tap.err, syslog, imapd.conf as run).
# Users in conf/sasldb2 (realm cyrus-rig.test): admin/adminpw, alice/alicepw, bob/bobpw
# (rig/users). Cyrus logs only through syslog(3): if /dev/log does not exist, `up` listens
# there (rig/syslog) and `down` removes it; otherwise the host's syslog gets the lines.
set -Eeuo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
SELF="$HERE/$(basename "${BASH_SOURCE[0]}")"
REALM=cyrus-rig.test
USERS=("admin:adminpw" "alice:alicepw" "bob:bobpw")

die()  { echo "run-sandbox: ERROR: $*" >&2; exit 1; }
note() { echo "run-sandbox: $*" >&2; }
usage() { sed -n '2,12p' "$SELF" | sed 's/^# \{0,1\}//' >&2; exit 2; }

need_root() { [ "$(id -u)" -eq 0 ] || die "must run as root (it chowns the sandbox to cyrus, binds sockets for cyrus and may create /dev/log)"; }

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }
pidof_file() { [ -s "$1" ] && cat "$1" || true; }

# stop_pid PIDFILE NAME TIMEOUT_TENTHS: TERM, wait, KILL; removes the pid file.
stop_pid() {
  local f=$1 name=$2 t=${3:-30} pid
  pid=$(pidof_file "$f")
  if alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq "$t"); do alive "$pid" || break; sleep 0.1; done
    if alive "$pid"; then note "$name ($pid) ignored SIGTERM: SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; fi
    for _ in $(seq 20); do alive "$pid" || break; sleep 0.05; done
  fi
  rm -f "$f"
}

children_of() {  # direct children of PID, from /proc
  local p=$1 d
  for d in /proc/[0-9]*; do
    [ -r "$d/stat" ] || continue
    # field 4 of /proc/PID/stat is the ppid (comm may contain spaces: cut after the last ')')
    local st; st=$(cat "$d/stat" 2>/dev/null) || continue
    st=${st##*) }
    set -- $st
    [ "${2:-}" = "$p" ] && echo "${d#/proc/}"
  done
  return 0
}

# The effective notifysocket of S's imapd.conf (last setting wins; default under configdirectory).
notifysocket_of() {
  local conf=$1 v cd
  v=$(sed -n 's/^[[:space:]]*notifysocket:[[:space:]]*//p' "$conf" | tail -n1 | sed 's/[[:space:]]*$//')
  if [ -z "$v" ]; then
    cd=$(sed -n 's/^[[:space:]]*configdirectory:[[:space:]]*//p' "$conf" | tail -n1 | sed 's/[[:space:]]*$//')
    v="${cd:-/var/lib/cyrus}/socket/notify"
  fi
  echo "$v"
}

syslog_listener() {  # $1 = socket path, $2 = output file; prints the PID
  setsid python3 - "$1" "$2" </dev/null >/dev/null 2>&1 <<'EOF' &
import os, signal, socket, sys
path, out = sys.argv[1:3]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
try:
    os.unlink(path)
except FileNotFoundError:
    pass
s.bind(path)
os.chmod(path, 0o666)
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
with open(out, 'ab', buffering=0) as f:
    while True:
        d = s.recv(1 << 20)
        f.write(d.rstrip(b'\0\n') + b'\n')
EOF
  echo $!
}

# /dev/log present but nobody listening (left by a killed run): treat as absent.
devlog_stale() {
  [ -S /dev/log ] || return 1
  ! python3 -c 'import socket; s=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.connect("/dev/log")' 2>/dev/null
}

tap_start() {
  local S=$1 R=$1/rig tap ns path flags=()
  tap=$(cat "$R/tap.bin")
  [ "$tap" = none ] && die "no tap in this sandbox ($(cat "$R/tap.why" 2>/dev/null))"
  alive "$(pidof_file "$R/tap.pid")" && die "tap already running (pid $(cat "$R/tap.pid"))"
  ns=$(cat "$R/notifysocket")
  path=${ns#dlist:}
  [ "$path" != "$ns" ] && flags+=(--dlist)
  [ -S "$path" ] && rm -f "$path"     # a socket file left by a killed listener
  setsid "$tap" "${flags[@]}" --envelope --mode 666 "$path" </dev/null >>"$S/events.jsonl" 2>>"$R/tap.err" &
  echo $! > "$R/tap.pid"
  for _ in $(seq 100); do [ -S "$path" ] && break; alive "$(cat "$R/tap.pid")" || break; sleep 0.05; done
  [ -S "$path" ] || die "cmev-tap did not bind $path: $(tail -n3 "$R/tap.err" 2>/dev/null)"
}

tap_stop() {
  local R=$1/rig
  stop_pid "$R/tap.pid" cmev-tap 30
}

do_down() {
  local S=$1 R=$1/rig pid kids k t
  [ -d "$R" ] || { note "$S: not a sandbox (no rig/)"; return 1; }
  t=$(( ${SANDBOX_STOP_TIMEOUT:-5} * 10 ))
  pid=$(pidof_file "$R/master.pid")
  if alive "$pid"; then
    kids=$(children_of "$pid")
    kill -TERM "$pid" 2>/dev/null || true        # master: clean shutdown, reaps its children
    for _ in $(seq "$t"); do alive "$pid" || break; sleep 0.1; done
    if alive "$pid"; then
      note "master ($pid) still running ${SANDBOX_STOP_TIMEOUT:-5} s after SIGTERM: SIGKILL"
      kids="$kids $(children_of "$pid")"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    for k in $kids; do   # services master had started (only if they outlived it)
      if alive "$k"; then kill -KILL "$k" 2>/dev/null || true; fi
    done
  fi
  rm -f "$R/master.pid"
  tap_stop "$S"
  if [ -s "$R/syslog.pid" ]; then  # we created /dev/log in `up`: remove it again
    stop_pid "$R/syslog.pid" syslog-listener 20
    rm -f /dev/log
  fi
  touch "$R/down"
  pid=$(pidof_file "$R/watchdog.pid")      # it ignores TERM; it is our own helper: KILL
  if alive "$pid" && [ "$pid" != "$PPID" ]; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -f "$R/watchdog.pid"
  return 0
}

do_up() {
  local PREFIX G EXTRA S R PORT tap ns nspath conf
  PREFIX=${1:-}; G=${2:-}; EXTRA=${3:-}
  [ -n "$PREFIX" ] && [ -n "$G" ] || usage
  need_root
  [ -d "$PREFIX" ] || die "PREFIX $PREFIX does not exist (make cyrus / make cyrus-stock)"
  PREFIX=$(cd "$PREFIX" && pwd)
  local b
  for b in libexec/master libexec/imapd libexec/lmtpd sbin/ctl_cyrusdb; do
    [ -x "$PREFIX/$b" ] || die "$PREFIX/$b missing (make cyrus builds it)"
  done
  # idled (3.10, 3.12 builds): IMAP IDLE and NOTIFY are pushed through it (fed by mboxevent)
  local idled=0
  case ${SANDBOX_IDLED:-auto} in
    0) ;;
    1) [ -x "$PREFIX/libexec/idled" ] || die "SANDBOX_IDLED=1 but $PREFIX/libexec/idled does not exist (built without --enable-idled)"
       idled=1 ;;
    *) [ -x "$PREFIX/libexec/idled" ] && idled=1 ;;
  esac
  [ -f "$G/imapd.conf" ] && [ -f "$G/cyrus.conf" ] || die "$G: imapd.conf and cyrus.conf expected"
  G=$(cd "$G" && pwd)
  [ -z "$EXTRA" ] || [ -f "$EXTRA" ] || die "extra config $EXTRA not found"
  getent passwd cyrus >/dev/null || die "no user 'cyrus' (build-cyrus.sh creates it: useradd -r -g mail cyrus)"
  command -v setpriv >/dev/null || die "setpriv missing (util-linux)"
  command -v saslpasswd2 >/dev/null || die "saslpasswd2 missing: apt-get install sasl2-bin"
  command -v python3 >/dev/null || die "python3 missing"

  local tapbin=${CMEV_TAP:-$REPO/target/release/cmev-tap}
  if [ "$tapbin" != none ] && [ ! -x "$tapbin" ] && ! grep -q 'cmd="notifyd' "$G/cyrus.conf"; then
    die "cmev-tap not found at $tapbin (cargo build --release, or set CMEV_TAP)"
  fi

  S=$(mktemp -d "${SANDBOX_BASE:-/tmp}/cyrus-sbx.XXXXXX")
  R=$S/rig
  mkdir -p "$R"
  [ -n "${SANDBOX_DIR_FILE:-}" ] && echo "$S" > "$SANDBOX_DIR_FILE"
  # From here on, a failure, die or a signal stops whatever was started.
  UP_S=$S; UP_OK=0
  trap 'rc=$?; trap "" INT TERM HUP; if [ "$UP_OK" != 1 ]; then note "up failed (exit $rc): stopping $UP_S"; do_down "$UP_S" >/dev/null 2>&1 || true; fi' EXIT
  trap 'exit 130' INT TERM HUP

  PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
  mkdir -p "$S"/{conf,sieve,socket} "$S"/var/{db,proc,socket,log,msg,ptclient,sync,lock} \
           "$S"/spool/{stage.,sync.}
  conf=$S/conf/imapd.conf
  sed "s|@SANDBOX@|$S|g" "$G/imapd.conf" > "$conf"
  if [ -n "$EXTRA" ]; then
    local line key
    echo "# --- extra ($EXTRA) ---" >> "$conf.extra"
    while IFS= read -r line || [ -n "$line" ]; do
      line=${line//@SANDBOX@/$S}
      case $line in ''|'#'*) continue ;; esac
      key=${line%%:*}; key=$(echo "$key" | tr -d '[:space:]')
      [ -n "$key" ] || continue
      # drop the profile's own setting of that option (Cyrus: "specified twice" is fatal)
      sed -i "/^[[:space:]]*${key//./\\.}[[:space:]]*:/d" "$conf"
      echo "$line" >> "$conf.extra"
    done < "$EXTRA"
    cat "$conf.extra" >> "$conf"; rm -f "$conf.extra"
  fi
  sed -e "s|@SANDBOX@|$S|g" \
      -e "s|/usr/lib/cyrus/bin/ctl_cyrusdb|$PREFIX/sbin/ctl_cyrusdb|g" \
      -e "s|/usr/lib/cyrus/bin/|$PREFIX/libexec/|g" \
      -e "s|listen=\"127.0.0.1:[0-9]*\"|listen=\"127.0.0.1:$PORT\"|" \
      "$G/cyrus.conf" > "$S/conf/cyrus.conf"
  if [ $idled -eq 1 ] && ! grep -q 'cmd="[^"]*idled' "$S/conf/cyrus.conf"; then
    local iline="  idled    cmd=\"$PREFIX/libexec/idled -C $conf\""
    if grep -q '^DAEMON[[:space:]]*{' "$S/conf/cyrus.conf"; then
      awk -v l="$iline" '{ print } /^DAEMON[[:space:]]*\{/ { print l }' "$S/conf/cyrus.conf" > "$S/conf/cyrus.conf.new"
      mv "$S/conf/cyrus.conf.new" "$S/conf/cyrus.conf"
    else
      printf 'DAEMON {\n%s\n}\n' "$iline" >> "$S/conf/cyrus.conf"
    fi
  fi
  echo "$idled" > "$R/idled"
  local u
  for u in "${USERS[@]}"; do
    echo "${u#*:}" | saslpasswd2 -p -c -f "$S/conf/sasldb2" -u "$REALM" "${u%%:*}"
  done
  printf '%s\n' "${USERS[@]}" > "$R/users"
  echo "$PORT" > "$R/port"
  echo "$PREFIX" > "$R/prefix"
  echo "$G" > "$R/profile"
  cp "$conf" "$R/imapd.conf"
  : > "$S/events.jsonl"
  chown -R cyrus:mail "$S"; chown -R root:root "$R" "$S/events.jsonl"
  chmod 750 "$S"; chmod 640 "$S/conf/sasldb2"

  # Listener at notifysocket
  ns=$(notifysocket_of "$conf"); nspath=${ns#dlist:}
  echo "$ns" > "$R/notifysocket"
  tap=${CMEV_TAP:-$REPO/target/release/cmev-tap}
  if [ "$tap" = none ]; then
    echo "CMEV_TAP=none" > "$R/tap.why"
  elif grep -q "listen=\"$nspath\"" "$S/conf/cyrus.conf"; then
    tap=none; echo "a cyrus.conf service listens at $nspath" > "$R/tap.why"
  else
    [ -x "$tap" ] || die "cmev-tap not found at $tap (cargo build --release, or set CMEV_TAP)"
    tap=$(cd "$(dirname "$tap")" && pwd)/$(basename "$tap")
  fi
  echo "$tap" > "$R/tap.bin"

  # syslog: only if nobody listens at /dev/log
  if [ ! -e /dev/log ] || devlog_stale; then
    [ -S /dev/log ] && rm -f /dev/log
    syslog_listener /dev/log "$R/syslog" > "$R/syslog.pid"
    for _ in $(seq 100); do [ -S /dev/log ] && break; sleep 0.05; done
    [ -S /dev/log ] || die "syslog listener did not bind /dev/log"
  else
    echo "host syslog (/dev/log existed)" > "$R/syslog.where"
  fi

  [ "$tap" = none ] || tap_start "$S"

  ( cd "$S" && exec setsid setpriv --reuid=cyrus --regid=mail --init-groups \
      "$PREFIX/libexec/master" -D -C "$conf" -M "$S/conf/cyrus.conf" \
      -p "$S/var/master.pid" ) </dev/null >"$R/master.out" 2>&1 &
  echo $! > "$R/master.pid"

  if [ -n "${SANDBOX_WATCH_PID:-}" ]; then
    # its own session, deaf to INT/TERM/HUP: a signal to the caller's process group
    # (Ctrl-C, timeout(1)) must not take the watchdog down with the caller
    setsid bash -c 'trap "" INT TERM HUP
      while [ ! -e "$1/rig/down" ]; do
        kill -0 "$2" 2>/dev/null || { "$3" down "$1"; exit 0; }
        sleep 1
      done' _ "$S" "$SANDBOX_WATCH_PID" "$SELF" </dev/null >/dev/null 2>&1 &
    echo $! > "$R/watchdog.pid"
  fi

  local ok=0 lmtp idlesock=""
  lmtp=$(sed -n 's/^[[:space:]]*lmtpsocket:[[:space:]]*//p' "$conf" | tail -n1)
  if [ "$idled" -eq 1 ]; then
    idlesock=$(sed -n 's/^[[:space:]]*idlesocket:[[:space:]]*//p' "$conf" | tail -n1)
    if [ -z "$idlesock" ]; then
      idlesock=$(sed -n 's/^[[:space:]]*configdirectory:[[:space:]]*//p' "$conf" | tail -n1 | sed 's/[[:space:]]*$//')
      idlesock="${idlesock:-/var/lib/cyrus}/socket/idle"
    fi
  fi
  for _ in $(seq 150); do
    alive "$(cat "$R/master.pid")" || break
    if python3 -c "import socket; socket.create_connection(('127.0.0.1',$PORT),0.2).close()" 2>/dev/null \
       && { [ -z "$lmtp" ] || [ -S "$lmtp" ]; } && { [ -z "$idlesock" ] || [ -S "$idlesock" ]; }; then ok=1; break; fi
    sleep 0.1
  done
  if [ $ok -ne 1 ]; then
    echo "--- $R/master.out:" >&2; tail -n 20 "$R/master.out" >&2 || true
    [ -f "$R/syslog" ] && { echo "--- $R/syslog:" >&2; tail -n 20 "$R/syslog" >&2; }
    die "master did not come up on 127.0.0.1:$PORT (logs in $R)"
  fi
  UP_OK=1
  trap - EXIT INT TERM HUP
  echo "$S"
}

do_status() {
  local S=$1 R=$1/rig f pid
  [ -d "$R" ] || die "$S: not a sandbox"
  echo "sandbox  $S (profile $(cat "$R/profile"), prefix $(cat "$R/prefix"))"
  echo "imap     127.0.0.1:$(cat "$R/port")   notifysocket $(cat "$R/notifysocket")   idled $( [ "$(cat "$R/idled" 2>/dev/null)" = 1 ] && echo yes || echo no)"
  for f in master tap syslog watchdog; do
    pid=$(pidof_file "$R/$f.pid")
    if [ -z "$pid" ]; then echo "$f: -"; elif alive "$pid"; then echo "$f: running ($pid)"; else echo "$f: dead ($pid)"; fi
  done
  echo "events   $S/events.jsonl ($(wc -l < "$S/events.jsonl") lines)"
  echo "logs     $R/master.out $R/tap.err ${R}/syslog"
}

cmd=${1:-}; shift || true
case $cmd in
  up) do_up "$@" ;;
  down)
    [ $# -ge 1 ] || usage
    need_root
    trap '' INT TERM HUP     # a half-done down would leave processes: finish it (bounded)
    rc=0; for S in "$@"; do do_down "$S" || rc=1; done; exit $rc ;;
  tap-stop) need_root; tap_stop "${1:?sandbox dir}" ;;
  tap-start) need_root; tap_start "${1:?sandbox dir}" ;;
  tap-restart) need_root; tap_stop "${1:?sandbox dir}"; sleep "${2:-1}"; tap_start "$1" ;;
  status) do_status "${1:?sandbox dir}" ;;
  *) usage ;;
esac
