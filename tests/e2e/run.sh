#!/usr/bin/env bash
# tests/e2e/run.sh — end-to-end tests of the patched Cyrus IMAP 3.6.1, 3.10.2 and 3.12.4 (for `make check`).
#
#   tests/e2e/run.sh [--no-build] [--only runner,golden,selftest,stock,extra,durable]
#   tests/e2e/run.sh --series 3.10|3.12 [--no-build] [--only runner,golden,selftest,stock,idle,extra,durable]
#   tests/e2e/run.sh --series 3.6,3.10,3.12 [--no-build] [--only ...]   # at once (make e2e-all), below
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
# --series 3.10 (`make e2e-3.10`), --series 3.12 (`make e2e-3.12`): the same with the patched
#    build of `make cyrus CYRUS=<series>` (idled running) against the series' golden capture,
#    tests/golden/stock-3.10.1-<profile> or stock-3.12.4-<profile> (the same named rules);
#    stock: the unpatched build of `make cyrus-stock CYRUS=<series>` must reproduce both
#    profiles exactly (compare.py --strict); idle: idle.py on ours and on stock, event_notifier
#    unset and set (IDLE and NOTIFY clients told of 100 LMTP deliveries and 100 flag changes
#    through idled): none missed, p50/p99 printed side by side (`idle-ours`, `idle-stock`:
#    one build only); extra and durable as for 3.6 (extra.py and durability.py --series).
#    Logs: build/e2e-3.10/, build/e2e-3.12/. Series, versions, goldens and directories come
#    from one table, SERIES in tests/e2e/e2elib.py.
# Only the builds the chosen checks use must exist (runner: either; stock, idle-stock: the
# unpatched one): `--only runner,stock,idle-stock` needs no patched build.
# Every sandbox is stopped on exit, failure or signal. Logs: build/e2e/. Needs root.
# Last line: `N passed, M failed`; exit status 1 if anything failed.
set -uo pipefail
export PYTHONDONTWRITEBYTECODE=1
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
E2E=$REPO/tests/e2e
RUNNER=$REPO/cyrus-patch/run-sandbox.sh
GOLDEN=${GOLDEN:-$REPO/tests/golden}
BUILD=1; ONLY=
SERIES=3.6
while [ $# -gt 0 ]; do
  case $1 in
    --no-build) BUILD=0 ;;
    --only) ONLY=$2; shift ;;
    --series) SERIES=$2; shift ;;
    *) sed -n '2,/^set -uo/p' "$0" | sed '$d'; exit 2 ;;
  esac
  shift
done

# ------------------------------------------------------------------ several series at once
# --series 3.6,3.10,3.12 (`make e2e-all`): the run.sh of each series at the same time, each in
# a mount namespace of its own whose /dev is private (a tmpfs with the host's /dev entries
# bound in, /dev/log left out), so that the /dev/log listener a sandbox starts
# (run-sandbox.sh) hears only the Cyrus processes of its own series and is not removed under
# the feet of another series' sandboxes; everything else a series uses is its own already
# (sandbox directories, ports, logs in build/e2e*/). A series' e2e waits most of the time
# (docs/design.md), so three at once take little longer than the longest one. Where
# mount namespaces are refused (a container without CAP_SYS_ADMIN), the series run one after
# the other. Each series' output is printed when it ends (and kept in its logs directory as
# run.out); the last line sums them up.
# private_dev: (in the new mount namespace) a /dev of our own, without /dev/log
private_dev() {
  local T e n
  T=$(mktemp -d /tmp/cmev-e2e-dev.XXXXXX) || return 1
  mount -t tmpfs -o mode=0755,size=1m cmev-e2e-dev "$T" || return 1
  for e in /dev/* /dev/.[!.]*; do
    [ -e "$e" ] || [ -L "$e" ] || continue
    n=${e#/dev/}
    [ "$n" = log ] && continue
    if [ -L "$e" ]; then cp -P "$e" "$T/$n"
    elif [ -d "$e" ]; then mkdir "$T/$n" && mount --rbind "$e" "$T/$n"
    else : > "$T/$n" && mount --bind "$e" "$T/$n"
    fi || return 1
  done
  mount --move "$T" /dev && rmdir "$T"
}
if [ "${E2E_PRIVATE_DEV:-}" = 1 ]; then
  private_dev || { echo "e2e: could not set up a private /dev"; echo "0 passed, 1 failed"; exit 1; }
  export E2E_PRIVATE_DEV=done
fi
if [[ $SERIES == *,* ]]; then
  [ "$(id -u)" -eq 0 ] || { echo "e2e: must run as root (Cyrus runs as user cyrus)"; echo "0 passed, 1 failed"; exit 1; }
  T0=$(date +%s); ALL=(${SERIES//,/ }); declare -A OUT PID IDLED
  for s in "${ALL[@]}"; do
    rows=$(python3 "$E2E/e2elib.py" --shell "$s") || { echo "e2e: --series $s"; exit 2; }
    OUT[$s]=$(eval "$rows"; mkdir -p "$LOGS" && echo "$LOGS/run.out")
    IDLED[$s]=$(eval "$rows"; echo "$SINCE_3_8")
  done
  if [ $BUILD -eq 1 ]; then
    for s in "${ALL[@]}"; do
      t=$(date +%s)
      ( cd "$REPO" && make --no-print-directory cyrus cyrus-stock CYRUS="$s" ) >"${OUT[$s]%.out}.build.log" 2>&1 \
        || { tail -n 30 "${OUT[$s]%.out}.build.log"; echo "FAIL build of Cyrus $s (log ${OUT[$s]%.out}.build.log)"; echo "0 passed, 1 failed"; exit 1; }
      echo "e2e: make cyrus cyrus-stock CYRUS=$s ($(( $(date +%s) - t )) s)"
    done
    ( cd "$REPO" && cargo build --release -q ) || { echo "FAIL cargo build --release"; echo "0 passed, 1 failed"; exit 1; }
  fi
  NS=(unshare --mount --propagation private env E2E_PRIVATE_DEV=1)
  if ! unshare --mount --propagation private true 2>/dev/null; then
    echo "e2e: no mount namespace here (unshare --mount failed): the series run one after the other"
    NS=()
  fi
  child_args() {  # the arguments of series $1's run: --only without what it cannot run
    local o="" c
    for c in ${ONLY//,/ }; do
      [[ $c == idle* ]] && [ "${IDLED[$1]}" != 1 ] && continue
      o=$o${o:+,}$c
    done
    echo --no-build --series "$1" ${ONLY:+--only $o}
  }
  if [ -n "$ONLY" ]; then   # a series none of --only applies to is left out
    keep=(); for s in "${ALL[@]}"; do [[ $(child_args "$s") == *"--only "?* ]] && keep+=("$s"); done
    [ ${#keep[@]} -eq ${#ALL[@]} ] || echo "e2e: --only $ONLY: nothing to run for Cyrus $(comm -23 <(printf '%s\n' "${ALL[@]}" | sort) <(printf '%s\n' "${keep[@]}" | sort) | xargs)"
    ALL=("${keep[@]}")
  fi
  P=0; F=0
  report() {  # report SERIES SECONDS: its output, its counts added up
    local last
    echo "==================== Cyrus $1 ($2 s; ${OUT[$1]})"
    cat "${OUT[$1]}"
    last=$(tail -n1 "${OUT[$1]}")
    if [[ $last =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed ]]; then
      P=$((P + BASH_REMATCH[1])); F=$((F + BASH_REMATCH[2]))
    else
      F=$((F + 1)); echo "FAIL e2e of Cyrus $1 did not finish: $last"
    fi
  }
  if [ ${#NS[@]} -eq 0 ]; then
    for s in "${ALL[@]}"; do t=$(date +%s); "$0" $(child_args "$s") >"${OUT[$s]}" 2>&1; report "$s" $(( $(date +%s) - t )); done
  else
    trap 'trap - INT TERM; for s in "${!PID[@]}"; do kill -TERM "${PID[$s]}" 2>/dev/null; done; wait; echo "FAIL e2e interrupted"; exit 130' INT TERM
    for s in "${ALL[@]}"; do "${NS[@]}" "$0" $(child_args "$s") >"${OUT[$s]}" 2>&1 & PID[$s]=$!; done
    echo "e2e: Cyrus ${ALL[*]} at once, each with a private /dev (pids ${PID[*]}); each one's output when it ends"
    while [ ${#PID[@]} -gt 0 ]; do
      wait -n -p done "${PID[@]}"
      for s in "${!PID[@]}"; do [ "${PID[$s]}" = "$done" ] && { unset "PID[$s]"; report "$s" $(( $(date +%s) - T0 )); }; done
    done
  fi
  echo "e2e: Cyrus ${ALL[*]}: $(( $(date +%s) - T0 )) s"
  echo "$P passed, $F failed"
  [ "$F" -eq 0 ]; exit
fi
# The series' row of e2elib.py's table: SERIES VERSION GOLDEN_VERSION (the golden folders
# are stock-$GOLDEN_VERSION-<profile>) PREFIX STOCK_PREFIX LOGS STOCK_PROFILES (those the
# unpatched build must replay exactly) SINCE_3_8 (idled: IMAP IDLE/NOTIFY through mboxevent)
rows=$(python3 "$E2E/e2elib.py" --shell "$SERIES") || { echo "e2e: --series $SERIES"; exit 2; }
eval "$rows"
ALL_CHECKS=runner,golden,selftest,stock,extra,durable
[ "$SINCE_3_8" = 1 ] && ALL_CHECKS=runner,golden,selftest,stock,idle,extra,durable
ONLY=${ONLY:-$ALL_CHECKS}
for c in ${ONLY//,/ }; do
  ok=$ALL_CHECKS; [ "$SINCE_3_8" = 1 ] && ok=$ok,idle-ours,idle-stock
  [[ ",$ok," == *",$c,"* ]] || { echo "e2e: '$c' cannot run for Cyrus $SERIES (only: $ok)"; exit 2; }
done
want() { [[ ",$ONLY," == *",$1,"* ]]; }
# which builds the chosen checks run on
need_ours() { want golden || want selftest || want extra || want durable || want idle || want idle-ours; }

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
# runner exercises run-sandbox.sh, not a build: the patched one, or the unpatched one if it
# is the only build there is (`--only runner,stock` before the patched build exists)
RUNNER_PREFIX=$PREFIX
need_ours || [ -x "$PREFIX/libexec/imapd" ] || RUNNER_PREFIX=$STOCK_PREFIX
if need_ours || want runner; then   # (RUNNER_PREFIX is PREFIX when need_ours)
  for b in master imapd lmtpd; do
    [ -x "$RUNNER_PREFIX/libexec/$b" ] || { bad "missing $RUNNER_PREFIX/libexec/$b"; finish; exit 1; }
  done
fi
[ -x "$REPO/target/release/cmev-tap" ] || { bad "missing $REPO/target/release/cmev-tap"; finish; exit 1; }

# ------------------------------------------------------------------ runner robustness
if want runner; then
  # Compared is whether someone listens at /dev/log: `up` may remove a stale socket there.
  devlog_live() { python3 -c 'import socket; s=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.connect("/dev/log")' 2>/dev/null && echo live || echo none; }
  devlog_before=$(devlog_live)
  out=$("$RUNNER" up /nonexistent/prefix "$GOLDEN/stock-$GOLDEN_VERSION-default" 2>&1)
  if [ $? -ne 0 ] && grep -q "does not exist" <<<"$out"; then ok "runner: missing PREFIX refused ($out)"; else bad "runner: missing PREFIX: $out"; fi
  out=$(CMEV_TAP=/bin/false SANDBOX_DIR_FILE=$TMPD/sdir.failing "$RUNNER" up "$RUNNER_PREFIX" "$GOLDEN/stock-$GOLDEN_VERSION-default" 2>&1)
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
  S=$(SANDBOX_WATCH_PID=$owner SANDBOX_DIR_FILE=$TMPD/sdir.watch "$RUNNER" up "$RUNNER_PREFIX" "$GOLDEN/stock-$GOLDEN_VERSION-default" 2>>"$LOGS/watch.up.log")
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
        [ "$SINCE_3_8" = 1 ] && sdesc=" $VERSION ($([ "$(cat "$S/rig/idled" 2>/dev/null)" = 1 ] && echo "idled running" || echo "no idled"))"
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
if [ "$SINCE_3_8" = 1 ] && { want idle || want idle-ours || want idle-stock; }; then
  tables=()
  for nf in unset set; do
    for v in ours stock; do
      want idle || want idle-$v || continue
      if [ $v = ours ]; then P=$PREFIX; else P=$STOCK_PREFIX; fi
      [ -x "$P/libexec/imapd" ] || { bad "idle $v: $P not built"; continue; }
      t=$(date +%s); name=idle-$v-notifier-$nf
      if bg bash -c 'E2E_LOGS=$1 timeout -k 5 300 python3 "$2/idle.py" --prefix "$3" --profile "$7" --label "$4" $5 --json "$1/$6.json" >"$1/$6.log" 2>&1' \
           _ "$LOGS" "$E2E" "$P" "$v, event_notifier $nf" "$([ $nf = set ] && echo --notifier)" "$name" "$GOLDEN/stock-$GOLDEN_VERSION-default"; then
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
