#!/usr/bin/env bash
# demo.sh — `make demo`: a real Cyrus IMAP 3.6.1 (patched to send its events through
# libcyrus_mboxevent) in a throw-away sandbox, a short IMAP/LMTP session, and every event
# printed LIVE as cmev-tap receives it. Needs root (Cyrus runs as user cyrus).
#
#   cyrus-patch/demo.sh [--raw]      # --raw: the event JSON instead of one summary line
#
# Builds what it needs (cached: seconds when nothing changed): `make cyrus`, cmev-tap.
# Environment: DEMO_NO_BUILD=1 skips the build; DEMO_PROFILE (default: golden `all`).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
PROFILE=${DEMO_PROFILE:-$REPO/tests/golden/stock-3.6.1-all}
RAW=${1:-}
[ "$(id -u)" -eq 0 ] || { echo "demo: run as root (Cyrus runs as user cyrus; the sandbox is chowned to it)" >&2; exit 1; }

if [ -z "${DEMO_NO_BUILD:-}" ]; then
  echo "demo: building (cached) ..."
  ( cd "$REPO" && make --no-print-directory cyrus >/tmp/cmev-demo-build.log 2>&1 && cargo build --release -q ) \
    || { tail -n 30 /tmp/cmev-demo-build.log >&2; echo "demo: build failed (log /tmp/cmev-demo-build.log)" >&2; exit 1; }
fi

S=; FOLLOW=
SDIR=$(mktemp /tmp/cmev-demo.XXXXXX)
cleanup() {
  [ -n "$FOLLOW" ] && kill "$FOLLOW" 2>/dev/null || true
  [ -z "$S" ] && [ -s "$SDIR" ] && S=$(cat "$SDIR")
  [ -n "$S" ] && "$HERE/run-sandbox.sh" down "$S" >/dev/null 2>&1 || true
  rm -f "$SDIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

S=$(SANDBOX_WATCH_PID=$$ SANDBOX_DIR_FILE=$SDIR "$HERE/run-sandbox.sh" up "$REPO/build/cyrus/patched" "$PROFILE")
echo "demo: Cyrus 3.6.1 + libcyrus_mboxevent running in $S (imap 127.0.0.1:$(cat "$S/rig/port"), profile $(basename "$PROFILE"))"
echo "demo: cmev-tap listens at $(cat "$S/rig/notifysocket"); events appear below as they arrive"
echo
python3 "$REPO/tests/e2e/pretty.py" --follow ${RAW:+--raw} "$S/events.jsonl" &
FOLLOW=$!

PYTHONDONTWRITEBYTECODE=1 PYTHONPATH="$REPO/tests/e2e" python3 - "$S" <<'EOF'
import sys, time
from e2elib import Sandbox, Session, message, INTERNALDATE
sb = Sandbox(sys.argv[1])
def say(text):
    sb.wait_quiet(0.4)
    print(f"\n> {text}", flush=True)
    time.sleep(0.1)
admin, alice = Session(sb, 'admin'), Session(sb, 'alice')
say("admin logs in and creates user/alice")
admin.connect(); admin.do("CREATE", lambda m: m.create('user/alice'))
say("alice logs in, creates INBOX/Projects")
alice.connect(); alice.do("CREATE", lambda m: m.create('INBOX/Projects'))
say("alice APPENDs a message to INBOX")
alice.do("APPEND", lambda m: m.append('INBOX', None, INTERNALDATE, message(1, "hello from the demo")))
say("an MTA delivers a message to alice over LMTP")
sb.lmtp_deliver(message(2, "delivered by LMTP"))
say("alice selects INBOX and flags message 1 \\Flagged, marks message 2 \\Seen")
alice.select('INBOX')
alice.do("STORE", lambda m: m.store('1', '+FLAGS', '(\\Flagged)'))
alice.do("STORE", lambda m: m.store('2', '+FLAGS', '(\\Seen)'))
say("alice MOVEs message 1 to INBOX/Projects")
alice.do("MOVE", lambda m: m.uid('MOVE', '1', 'INBOX/Projects'))
say("alice deletes message 2 and EXPUNGEs")
alice.do("STORE", lambda m: m.store('1', '+FLAGS', '(\\Deleted)'))
alice.do("EXPUNGE", lambda m: m.expunge())
say("alice and admin log out")
alice.logout(); admin.logout()
n = sb.wait_quiet(0.6)
print(f"\ndemo: {n} events received", flush=True)
EOF
sleep 0.3
kill "$FOLLOW" 2>/dev/null || true; FOLLOW=
"$HERE/run-sandbox.sh" down "$S"
cp "$S/events.jsonl" /tmp/cmev-demo-events.jsonl
rm -rf "$S"; S=
echo "demo: sandbox stopped and removed; the raw events (cmev-tap --envelope lines): /tmp/cmev-demo-events.jsonl"
