#!/usr/bin/env bash
# demo.sh — `make demo`: a real Cyrus IMAP 3.6.1, 3.10.2 or 3.12.4 (patched to send its events
# through libcyrus_mboxevent) in a throw-away sandbox, a short IMAP/LMTP session, and every
# event printed LIVE as cmev-tap receives it. Needs root (Cyrus runs as user cyrus).
#
#   cyrus-patch/demo.sh [--raw]      # --raw: the event JSON instead of one summary line
#   CYRUS=3.10 cyrus-patch/demo.sh   # `make demo CYRUS=3.10`: Cyrus 3.10.2, with idled
#   CYRUS=3.12 cyrus-patch/demo.sh   # `make demo CYRUS=3.12`: Cyrus 3.12.4, with idled
#
# Builds what it needs (cached: seconds when nothing changed): `make cyrus`, cmev-tap.
# Environment: CYRUS (3.6, the default, 3.10 or 3.12); DEMO_NO_BUILD=1 skips the build;
# DEMO_PROFILE (default: the series' golden `all`); DEMO_RELAY=1 (`make demo-relay`):
# cmev-relay takes notifyd's place, publishes into a nats-server (JetStream, a user and
# password, a loopback port) and a consumer of the stream prints each event with its id.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
# the series' row of tests/e2e/e2elib.py's table: SERIES VERSION GOLDEN_VERSION PREFIX
# SINCE_3_8 (idled) ... (it says which series there are if CYRUS is none of them)
rows=$(python3 "$REPO/tests/e2e/e2elib.py" --shell "${CYRUS:-3.6}") || { echo "demo: CYRUS=${CYRUS:-3.6}" >&2; exit 2; }
eval "$rows"
PROFILE=${DEMO_PROFILE:-$REPO/tests/golden/stock-$GOLDEN_VERSION-all}
RAW=${1:-}
[ "$(id -u)" -eq 0 ] || { echo "demo: run as root (Cyrus runs as user cyrus; the sandbox is chowned to it)" >&2; exit 1; }

if [ -z "${DEMO_NO_BUILD:-}" ]; then
  echo "demo: building (cached) ..."
  ( cd "$REPO" && make --no-print-directory cyrus CYRUS=$SERIES >/tmp/cmev-demo-build.log 2>&1 && cargo build --release -q \
      && { [ -z "${DEMO_RELAY:-}" ] || cargo build --release -q -p cmev-relay --bin cmev-relay --example consume; } ) \
    || { tail -n 30 /tmp/cmev-demo-build.log >&2; echo "demo: build failed (log /tmp/cmev-demo-build.log)" >&2; exit 1; }
fi

S=; FOLLOW=; RELAY_PIDS=
SDIR=$(mktemp /tmp/cmev-demo.XXXXXX)
cleanup() {
  [ -n "$FOLLOW" ] && kill "$FOLLOW" 2>/dev/null || true
  for p in $RELAY_PIDS; do kill "$p" 2>/dev/null || true; done
  [ -z "$S" ] && [ -s "$SDIR" ] && S=$(cat "$SDIR")
  [ -n "$S" ] && "$HERE/run-sandbox.sh" down "$S" >/dev/null 2>&1 || true
  rm -f "$SDIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ -n "${DEMO_RELAY:-}" ] && export CMEV_TAP=none
S=$(SANDBOX_WATCH_PID=$$ SANDBOX_DIR_FILE=$SDIR "$HERE/run-sandbox.sh" up "$PREFIX" "$PROFILE")
echo "demo: Cyrus $VERSION + libcyrus_mboxevent running in $S (imap 127.0.0.1:$(cat "$S/rig/port"), profile $(basename "$PROFILE")$([ "$(cat "$S/rig/idled" 2>/dev/null)" = 1 ] && echo ", idled running"))"
if [ -n "${DEMO_RELAY:-}" ]; then
  # nats-server, the relay at notifysocket, and the consumer writing S/events.jsonl
  # (which the session waits on and pretty.py follows), all root's, in S/rig/relay.
  RD=$S/rig/relay; mkdir -m 700 "$RD"
  NS=$(cat "$S/rig/notifysocket")
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  PASS=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
  printf 'listen: 127.0.0.1:%s\njetstream { store_dir: "%s/jetstream" }\nauthorization { user: cyrus-relay, password: "%s" }\n' \
    "$PORT" "$RD" "$PASS" > "$RD/nats.conf"
  nats-server -c "$RD/nats.conf" >"$RD/nats.log" 2>&1 & RELAY_PIDS="$RELAY_PIDS $!"
  # Listening before the relay starts, so that its counters show no failed first connect.
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.05; done
  case $NS in dlist:*) INPUT="dlist = \"${NS#dlist:}\"" ;; *) INPUT="datagram = \"$NS\"" ;; esac
  cat > "$RD/relay.toml" <<TOML
host = "demo.example.org"
stats_file = "$RD/stats.json"
[store]
dir = "$RD/store"
[input]
$INPUT
socket_mode = "0666"
[nats]
servers = ["nats://127.0.0.1:$PORT"]
user = "cyrus-relay"
password = "$PASS"
TOML
  "$REPO/target/release/cmev-relay" "$RD/relay.toml" 2>"$RD/relay.log" & RELAY_PIDS="$RELAY_PIDS $!"
  for _ in $(seq 100); do [ -S "${NS#dlist:}" ] && break; sleep 0.05; done
  [ -S "${NS#dlist:}" ] || { cat "$RD/relay.log" >&2; echo "demo: cmev-relay did not bind $NS" >&2; exit 1; }
  NATS_USER=cyrus-relay NATS_PASSWORD=$PASS "$REPO/target/release/examples/consume" "nats://127.0.0.1:$PORT" \
    >>"$S/events.jsonl" 2>"$RD/consume.err" & RELAY_PIDS="$RELAY_PIDS $!"
  echo "demo: cmev-relay listens at $NS and publishes to JetStream on 127.0.0.1:$PORT (stream CYRUS_EVENTS,"
  echo "demo: subjects cyrus.events.demo_example_org.<Event>); a consumer of the stream prints each event with its id"
else
  echo "demo: cmev-tap listens at $(cat "$S/rig/notifysocket"); events appear below as they arrive"
fi
echo
python3 "$REPO/tests/e2e/pretty.py" --follow ${RAW:+--raw} "$S/events.jsonl" &
FOLLOW=$!

PYTHONDONTWRITEBYTECODE=1 PYTHONPATH="$REPO/tests/e2e" python3 - "$S" "$SINCE_3_8" <<'EOF'
import socket, sys, time
from e2elib import Sandbox, Session, message, INTERNALDATE
sb = Sandbox(sys.argv[1])
idle = None


class Idler:
    """Cyrus 3.10, 3.12: another alice connection in IMAP IDLE on INBOX; idled wakes it
    with what mboxevent hands over (event_notifier or not)."""
    def __init__(self):
        self.s = socket.create_connection(('127.0.0.1', sb.port), timeout=5)
        self.buf = b''
        self.line()
        for tag, cmd in (('i1', f'LOGIN alice {sb.users["alice"]}'), ('i2', 'SELECT INBOX'), ('i3', 'IDLE')):
            self.s.sendall(f'{tag} {cmd}\r\n'.encode())
            while not self.line().startswith((tag.encode(), b'+')):
                pass

    def line(self, timeout=5):
        self.s.settimeout(timeout)
        while b'\r\n' not in self.buf:
            d = self.s.recv(4096)
            if not d:
                raise EOFError
            self.buf += d
        l, self.buf = self.buf.split(b'\r\n', 1)
        return l

    def heard(self):
        lines = []
        try:
            while True:
                lines.append(self.line(0.3).decode())
        except (socket.timeout, EOFError):
            pass
        print(f"  IDLE  alice's other connection heard: {'; '.join(lines) or 'nothing'}", flush=True)

    def close(self):
        self.s.sendall(b'DONE\r\ni4 LOGOUT\r\n')
        try:
            while not self.line().startswith(b'i4 '):
                pass
        except (socket.timeout, EOFError):
            pass
        self.s.close()


def say(text):
    sb.wait_quiet(0.4)
    print(f"\n> {text}", flush=True)
    time.sleep(0.1)
admin, alice = Session(sb, 'admin'), Session(sb, 'alice')
say("admin logs in and creates user/alice")
admin.connect(); admin.do("CREATE", lambda m: m.create('user/alice'))
say("alice logs in, creates INBOX/Projects")
alice.connect(); alice.do("CREATE", lambda m: m.create('INBOX/Projects'))
if sys.argv[2] == '1':   # 3.8 and later: idled
    say("alice's second connection SELECTs INBOX and waits in IDLE (idled wakes it)")
    idle = Idler()
say("alice APPENDs a message to INBOX")
alice.do("APPEND", lambda m: m.append('INBOX', None, INTERNALDATE, message(1, "hello from the demo")))
idle and idle.heard()
say("an MTA delivers a message to alice over LMTP")
sb.lmtp_deliver(message(2, "delivered by LMTP"))
idle and idle.heard()
say("alice selects INBOX and flags message 1 \\Flagged, marks message 2 \\Seen")
alice.select('INBOX')
alice.do("STORE", lambda m: m.store('1', '+FLAGS', '(\\Flagged)'))
alice.do("STORE", lambda m: m.store('2', '+FLAGS', '(\\Seen)'))
idle and idle.heard()
say("alice MOVEs message 1 to INBOX/Projects")
alice.do("MOVE", lambda m: m.uid('MOVE', '1', 'INBOX/Projects'))
say("alice deletes message 2 and EXPUNGEs")
alice.do("STORE", lambda m: m.store('1', '+FLAGS', '(\\Deleted)'))
alice.do("EXPUNGE", lambda m: m.expunge())
idle and idle.heard()
say("alice and admin log out")
if idle:
    idle.close()
alice.logout(); admin.logout()
n = sb.wait_quiet(0.6)
print(f"\ndemo: {n} events received", flush=True)
EOF
sleep 0.3
kill "$FOLLOW" 2>/dev/null || true; FOLLOW=
"$HERE/run-sandbox.sh" down "$S"
if [ -n "${DEMO_RELAY:-}" ]; then
  for p in $RELAY_PIDS; do kill "$p" 2>/dev/null || true; done; RELAY_PIDS=
  sleep 0.3; echo "demo: the relay's counters: $(cat "$RD/stats.json")"
fi
cp "$S/events.jsonl" /tmp/cmev-demo-events.jsonl
rm -rf "$S"; S=
echo "demo: sandbox stopped and removed; the raw events (cmev-tap --envelope lines): /tmp/cmev-demo-events.jsonl"
