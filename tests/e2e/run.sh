#!/usr/bin/env bash
# tests/e2e/run.sh — end-to-end tests of the patched Cyrus IMAP 3.6.1 and 3.10.2 (for `make check`).
#
#   tests/e2e/run.sh [--no-build] [--only runner,golden,selftest,stock,extra,durable]
#   tests/e2e/run.sh --series 3.10 [--no-build] [--only runner,golden,selftest,stock,idle,extra,durable]
#
# 1. builds what it needs (cached): `make cyrus`, `cargo build --release` (cmev-tap)
# 2. runner: cyrus-patch/run-sandbox.sh fails cleanly and leaves nothing behind
# 3. golden: for the `default` and `all` profiles: sandbox up, scenario.py
#    (the 54 golden steps), down, compare.py against
#    tests/golden/stock-3.6.1-<profile> (only the fixes of docs/stock-cyrus.md, each named)
# 4. selftest: compare.py catches differences planted into a copy of the `all` run
#    stock: if `make cyrus-stock` was built, the same scenario on the UNPATCHED build must
#    reproduce the golden `all` run exactly (compare.py --strict: crashes, reconnects and
#    all): proves the scenario replays what the golden run did
# 5. extra: extra.py (quota, content modes, >datagram event, listener
#    restart, dlist, notifyd)
# 6. durable: durability.py (lmtpd and imapd SIGKILLed right after their replies,
#    SIGTERM with the listener down: no event lost, one flush), both profiles
# --series 3.10 (`make e2e-3.10`): the same with the patched 3.10.2 of `make cyrus CYRUS=3.10`
#    (idled running) against tests/golden/stock-3.10.1-<profile> (the same named rules);
#    stock: the unpatched 3.10.2 of `make cyrus-stock CYRUS=3.10` must reproduce both 3.10.1
#    profiles exactly (compare.py --strict); idle: idle.py on ours and on stock, event_notifier
#    unset and set (IDLE and NOTIFY clients told of 100 LMTP deliveries and 100 flag changes
#    through idled): none missed, p50/p99 printed side by side; extra and durable as for 3.6
#    (extra.py and durability.py --series 3.10). Logs: build/e2e-3.10/.
# Every sandbox is stopped on exit, failure or signal. Logs: build/e2e/. Needs root.
# Last line: `N passed, M failed`; exit status 1 if anything failed.
set -uo pipefail
export PYTHONDONTWRITEBYTECODE=1
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
E2E=$REPO/tests/e2e
RUNNER=$REPO/cyrus-patch/run-sandbox.sh
GOLDEN=${GOLDEN:-$REPO/tests/golden}
PREFIX=$REPO/build/cyrus/patched
LOGS=$REPO/build/e2e
BUILD=1; ONLY=
STOCK_PREFIX=$REPO/build/cyrus/stock
SERIES=3.6
while [ $# -gt 0 ]; do
  case $1 in
    --no-build) BUILD=0 ;;
    --only) ONLY=$2; shift ;;
    --series) SERIES=$2; shift ;;
    *) sed -n '2,27p' "$0"; exit 2 ;;
  esac
  shift
done
# Per series: the golden folders (stock-$GOLDEN_VERSION-<profile>), the profiles the
# unpatched build must replay exactly, and what can run at all.
case $SERIES in
  3.6|3.6.1)
    SERIES=3.6; GOLDEN_VERSION=3.6.1; STOCK_PROFILES="all"
    ALL_CHECKS=runner,golden,selftest,stock,extra,durable ;;
  3.10|3.10.2)
    SERIES=3.10; GOLDEN_VERSION=3.10.1; STOCK_PROFILES="default all"
    ALL_CHECKS=runner,golden,selftest,stock,idle,extra,durable
    STOCK_PREFIX=$REPO/build/cyrus-3.10/stock
    PREFIX=$REPO/build/cyrus-3.10/patched
    LOGS=$REPO/build/e2e-3.10 ;;
  *) echo "e2e: unknown series '$SERIES' (3.6 or 3.10)"; exit 2 ;;
esac
ONLY=${ONLY:-$ALL_CHECKS}
for c in ${ONLY//,/ }; do
  [[ ",$ALL_CHECKS," == *",$c,"* ]] || { echo "e2e: '$c' cannot run for Cyrus $SERIES (only: $ALL_CHECKS)"; exit 2; }
done
want() { [[ ",$ONLY," == *",$1,"* ]]; }

PASSED=0; FAILED=0; T0=$(date +%s)
ok()   { PASSED=$((PASSED + 1)); echo "PASS $*"; }
bad()  { FAILED=$((FAILED + 1)); echo "FAIL $*"; }
finish() {
  echo "e2e: $(( $(date +%s) - T0 )) s, logs in $LOGS"
  echo "$PASSED passed, $FAILED failed"
  [ "$FAILED" -eq 0 ]
}

[ "$(id -u)" -eq 0 ] || { echo "e2e: must run as root (Cyrus runs as user cyrus)"; bad "e2e needs root"; finish; exit 1; }
mkdir -p "$LOGS"
TMPD=$(mktemp -d /tmp/cmev-e2e-run.XXXXXX)
SANDBOXES=$TMPD/sandboxes; : > "$SANDBOXES"
CHILD=
# kill_tree PID: TERM a child and its descendants, by PID (found through /proc)
kill_tree() {
  local p=$1 c
  for c in $(ps -o pid= --ppid "$p" 2>/dev/null); do kill_tree "$c"; done
  kill -TERM "$p" 2>/dev/null || true
}
# bg CMD...: run a long step in the background and wait for it, so that a signal to the
# driver is handled at once (bash runs traps only after a foreground command ends)
bg() { "$@" & CHILD=$!; wait "$CHILD"; local rc=$?; CHILD=; return $rc; }
cleanup() {
  local S f
  [ -n "$CHILD" ] && { kill_tree "$CHILD"; wait "$CHILD" 2>/dev/null; }
  for f in "$TMPD"/sdir.*; do [ -s "$f" ] && cat "$f" >> "$SANDBOXES"; done
  sort -u "$SANDBOXES" | while read -r S; do
    [ -n "$S" ] && [ -d "$S/rig" ] || continue
    [ -e "$S/rig/down" ] || "$RUNNER" down "$S" >/dev/null 2>&1
    rm -rf "$S"
  done
  rm -rf "$TMPD"
}
trap cleanup EXIT
exec 3>&1   # the driver's own stdout, for a trap that fires inside a redirected step
trap 'trap - INT TERM; bad "e2e interrupted" >&3; finish >&3; exit 130' INT TERM

up() {  # up NAME PROFILE_DIR [EXTRA] -> prints S
  SANDBOX_WATCH_PID=$$ SANDBOX_DIR_FILE=$TMPD/sdir.$1 "$RUNNER" up "$PREFIX" "${@:2}" 2>>"$LOGS/$1.up.log"
}

# ------------------------------------------------------------------ build
if [ $BUILD -eq 1 ]; then
  t=$(date +%s)
  if [ "$SERIES" = 3.6 ]; then what="make cyrus"; else what="make cyrus cyrus-stock CYRUS=$SERIES"; fi
  if bg bash -c 'cd "$1" && make --no-print-directory ${2#make } && cargo build --release' _ "$REPO" "$what" >"$LOGS/build.log" 2>&1; then
    ok "build: $what + cargo build --release ($(( $(date +%s) - t )) s)"
  else
    tail -n 30 "$LOGS/build.log"; bad "build (log $LOGS/build.log)"; finish; exit 1
  fi
fi
for b in "$PREFIX/libexec/master" "$PREFIX/libexec/imapd" "$PREFIX/libexec/lmtpd" "$REPO/target/release/cmev-tap"; do
  [ -x "$b" ] || { bad "missing $b"; finish; exit 1; }
done

# ------------------------------------------------------------------ runner robustness
if want runner; then
  # Compared is whether someone listens at /dev/log: `up` may remove a stale socket there.
  devlog_live() { python3 -c 'import socket; s=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.connect("/dev/log")' 2>/dev/null && echo live || echo none; }
  devlog_before=$(devlog_live)
  out=$("$RUNNER" up /nonexistent/prefix "$GOLDEN/stock-$GOLDEN_VERSION-default" 2>&1)
  if [ $? -ne 0 ] && grep -q "does not exist" <<<"$out"; then ok "runner: missing PREFIX refused ($out)"; else bad "runner: missing PREFIX: $out"; fi
  out=$(CMEV_TAP=/bin/false SANDBOX_DIR_FILE=$TMPD/sdir.failing "$RUNNER" up "$PREFIX" "$GOLDEN/stock-$GOLDEN_VERSION-default" 2>&1)
  rc=$?; S=$(cat "$TMPD/sdir.failing" 2>/dev/null)
  left=""
  for f in "$S"/rig/*.pid; do [ -e "$f" ] && left="$left $(basename "$f")"; done
  devlog_after=$(devlog_live)
  if [ $rc -ne 0 ] && [ -z "$left" ] && [ "$devlog_after" = "$devlog_before" ] && grep -q "did not bind" <<<"$out"; then
    ok "runner: a failing up (listener cannot start) stops what it started, /dev/log as before"
  else
    bad "runner: failing up: rc=$rc leftover pid files:[$left] /dev/log before=$devlog_before after=$devlog_after: $out"
  fi
  sleep 2 & owner=$!
  S=$(SANDBOX_WATCH_PID=$owner SANDBOX_DIR_FILE=$TMPD/sdir.watch "$RUNNER" up "$PREFIX" "$GOLDEN/stock-$GOLDEN_VERSION-default" 2>>"$LOGS/watch.up.log")
  mpid=$(cat "$S/rig/master.pid" 2>/dev/null); tpid=$(cat "$S/rig/tap.pid" 2>/dev/null)
  wait $owner
  for _ in $(seq 150); do [ -e "$S/rig/down" ] && ! kill -0 "$mpid" 2>/dev/null && break; sleep 0.1; done
  if [ -n "$mpid" ] && ! kill -0 "$mpid" 2>/dev/null && ! kill -0 "$tpid" 2>/dev/null && [ -e "$S/rig/down" ]; then
    ok "runner: watchdog stopped the sandbox when its caller ($owner) went away"
  else
    bad "runner: watchdog: master $mpid / tap $tpid still running after the caller exited"
  fi
  for f in "$TMPD/sdir.failing" "$TMPD/sdir.watch"; do
    S=$(cat "$f" 2>/dev/null); [ -n "$S" ] && [ -e "$S/rig/down" ] && rm -rf "$S"
  done
fi

# ------------------------------------------------------------------ golden scenario
declare -A RUNS
if want golden || want selftest; then
  for profile in default all; do
    G=$GOLDEN/stock-$GOLDEN_VERSION-$profile
    t=$(date +%s)
    S=$(up "$profile" "$G") || { bad "golden $profile: sandbox did not come up (see $LOGS/$profile.up.log)"; continue; }
    RUNS[$profile]=$S
    if bg timeout -k 5 240 python3 "$E2E/scenario.py" "$S" >"$LOGS/$profile.scenario.log" 2>&1; then
      ok "golden $profile: scenario, $(tail -n1 "$LOGS/$profile.scenario.log" | sed -e 's/^scenario: //' -e 's/; steps in .*//') ($(( $(date +%s) - t )) s)"
    else
      cat "$LOGS/$profile.scenario.log"; bad "golden $profile: scenario"
    fi
    "$RUNNER" down "$S" >/dev/null 2>&1
    cp "$S/events.jsonl" "$LOGS/$profile.events.jsonl"; cp "$S/steps.json" "$LOGS/$profile.steps.json" 2>/dev/null
    cp "$S/rig/transcript.log" "$LOGS/$profile.transcript.log" 2>/dev/null
    cp "$S/rig/syslog" "$LOGS/$profile.syslog" 2>/dev/null
    if want golden; then
      python3 "$E2E/compare.py" "$G" "$S" >"$LOGS/$profile.compare.log" 2>&1; rc=$?
      cat "$LOGS/$profile.compare.log"
      if [ $rc -eq 0 ]; then
        ok "golden $profile: $(grep '^summary' "$LOGS/$profile.compare.log" | sed 's/^summary [a-z]*: //')"
      else
        bad "golden $profile: compare (see above, $LOGS/$profile.compare.log)"
      fi
    fi
  done
fi

if want selftest && [ -n "${RUNS[all]:-}" ]; then
  if bg python3 "$E2E/compare_selftest.py" "$GOLDEN/stock-$GOLDEN_VERSION-all" "${RUNS[all]}" >"$LOGS/selftest.log" 2>&1; then
    ok "compare self-test: $(grep -c 'caught:' "$LOGS/selftest.log") planted differences all caught"
  else
    cat "$LOGS/selftest.log"; bad "compare self-test"
  fi
fi
for S in "${RUNS[@]}"; do rm -rf "$S"; done

if want stock; then
  if [ -x "$STOCK_PREFIX/libexec/imapd" ]; then
    for profile in $STOCK_PROFILES; do
      t=$(date +%s); G=$GOLDEN/stock-$GOLDEN_VERSION-$profile
      S=$(SANDBOX_WATCH_PID=$$ SANDBOX_DIR_FILE=$TMPD/sdir.stock-$profile "$RUNNER" up "$STOCK_PREFIX" "$G" 2>>"$LOGS/stock.up.log")
      if [ -n "$S" ]; then
        sdesc=""
        [ "$SERIES" = 3.6 ] || sdesc=" $SERIES.2 ($([ "$(cat "$S/rig/idled" 2>/dev/null)" = 1 ] && echo "idled running" || echo "no idled"))"
        bg timeout -k 5 240 python3 "$E2E/scenario.py" "$S" >"$LOGS/stock-$profile.scenario.log" 2>&1
        "$RUNNER" down "$S" >/dev/null 2>&1
        cp "$S/events.jsonl" "$LOGS/stock-$profile.events.jsonl"
        cp "$S/steps.json" "$LOGS/stock-$profile.steps.json" 2>/dev/null
        if python3 "$E2E/compare.py" --strict "$G" "$S" >"$LOGS/stock-$profile.compare.log" 2>&1; then
          ok "stock build$sdesc replays golden $([ "$SERIES" = 3.6 ] || echo "$GOLDEN_VERSION ")$profile exactly: $(grep '^summary' "$LOGS/stock-$profile.compare.log" | sed 's/^summary [a-z0-9.-]*: //') ($(( $(date +%s) - t )) s)"
        else
          cat "$LOGS/stock-$profile.compare.log"; bad "stock build vs golden $([ "$SERIES" = 3.6 ] || echo "$GOLDEN_VERSION ")$profile (--strict)"
        fi
        rm -rf "$S"
      else
        bad "stock: sandbox did not come up (see $LOGS/stock.up.log)"
      fi
    done
  elif [ "$SERIES" = 3.6 ]; then
    echo "SKIP stock: $STOCK_PREFIX not built (make cyrus-stock) — the unpatched replay is not run"
  else
    bad "stock: $STOCK_PREFIX not built (make cyrus-stock CYRUS=$SERIES)"
  fi
fi

# ------------------------------------------------------------------ IDLE / NOTIFY through idled
# ours and stock side by side, event_notifier unset and set: nothing missed (asserted), the
# latencies printed as a table (not asserted: the machine's load decides them)
if [ "$SERIES" != 3.6 ] && want idle; then
  tables=()
  for nf in unset set; do
    for v in ours stock; do
      if [ $v = ours ]; then P=$PREFIX; else P=$STOCK_PREFIX; fi
      [ -x "$P/libexec/imapd" ] || { bad "idle $v: $P not built"; continue; }
      t=$(date +%s); name=idle-$v-notifier-$nf
      if bg bash -c 'E2E_LOGS=$1 timeout -k 5 300 python3 "$2/idle.py" --prefix "$3" --label "$4" $5 --json "$1/$6.json" >"$1/$6.log" 2>&1' \
           _ "$LOGS" "$E2E" "$P" "$v, event_notifier $nf" "$([ $nf = set ] && echo --notifier)" "$name"; then
        ok "idle $v, event_notifier $nf: $(grep -c ' 0 missed' "$LOGS/$name.log") measurements, nothing missed$(
             sed -n 's/^notifyd: \([0-9]*\/[0-9]*\) MessageNew.*/; notifyd got \1 MessageNew/p' "$LOGS/$name.log") ($(( $(date +%s) - t )) s)"
        tables+=("$LOGS/$name.json")
      else
        cat "$LOGS/$name.log"; bad "idle $v, event_notifier $nf: idle.py (log $LOGS/$name.log)"
      fi
    done
  done
  [ ${#tables[@]} -gt 0 ] && python3 "$E2E/idle.py" --table "${tables[@]}" | tee "$LOGS/idle-table.md"
fi

# ------------------------------------------------------------------ extra checks
if want extra; then
  t=$(date +%s)
  # extra.py downs its sandboxes itself; if it is killed (timeout), their watchdogs do
  bg bash -c 'E2E_LOGS=$1 timeout -k 5 600 python3 "$2/extra.py" --prefix "$3" --series "$4" 2>&1 | tee "$1/extra.log" |
               grep -E "^(PASS|FAIL|SKIP|Traceback|  File|[A-Za-z]*Error)"' _ "$LOGS" "$E2E" "$PREFIX" "$SERIES"
  p=$(grep -c '^PASS ' "$LOGS/extra.log"); f=$(grep -c '^FAIL ' "$LOGS/extra.log")
  last=$(tail -n1 "$LOGS/extra.log")
  PASSED=$((PASSED + p)); FAILED=$((FAILED + f))
  if ! grep -q '^extra: ' <<<"$last"; then bad "extra.py did not finish: $last"; fi
  echo "e2e: extra checks $(( $(date +%s) - t )) s"
fi

# ------------------------------------------------------------------ durability
if want durable; then
  t=$(date +%s)
  # durability.py downs its sandboxes itself; if it is killed (timeout), their watchdogs do
  bg bash -c 'E2E_LOGS=$1 timeout -k 5 400 python3 "$2/durability.py" --prefix "$3" --series "$4" 2>&1 | tee "$1/durability.log" |
               grep -E "^(PASS|FAIL|SKIP|Traceback|  File|[A-Za-z]*Error)"' _ "$LOGS" "$E2E" "$PREFIX" "$SERIES"
  p=$(grep -c '^PASS ' "$LOGS/durability.log"); f=$(grep -c '^FAIL ' "$LOGS/durability.log")
  last=$(tail -n1 "$LOGS/durability.log")
  PASSED=$((PASSED + p)); FAILED=$((FAILED + f))
  if ! grep -q '^durability: ' <<<"$last"; then bad "durability.py did not finish: $last"; fi
  echo "e2e: durability checks $(( $(date +%s) - t )) s"
fi

finish
