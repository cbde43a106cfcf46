#!/usr/bin/env bash
# fuzz/run.sh SECONDS: build the fuzz targets (cargo-fuzz, libFuzzer, ASan)
# and run each for SECONDS/4; print the executions each reached; fail on any
# crash, panic, leak or timeout, leaving the input under build/fuzz/artifacts.
#
# Stable Rust only: cargo-fuzz passes nightly flags (-Zsanitizer=address,
# sancov), which RUSTC_BOOTSTRAP=1 lets the stable compiler accept.
# Seeds: fuzz/seeds/<target> (read only, committed; fuzz/corpus is where a
# plain `cargo fuzz run` writes, ignored by git); what a run finds goes to
# build/fuzz/corpus/<target> and is reused by the next run.
set -euo pipefail

total=${1:-60}
per=$(( total / 4 ))
(( per >= 1 )) || per=1
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
targets=(api_calls json_writer dlist_parsers config_set)

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz/run.sh: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi
host=$(rustc -vV | sed -n 's/^host: //p')
echo "fuzz/run.sh: building ${targets[*]}"
RUSTC_BOOTSTRAP=1 cargo fuzz build --release --debug-assertions 2>&1 | grep -E '^(error|warning: unused)|Finished' || true
bin="$root/fuzz/target/$host/release"
for t in "${targets[@]}"; do
    [ -x "$bin/$t" ] || { echo "fuzz/run.sh: $bin/$t was not built"; exit 1; }
done

work="$root/build/fuzz"
mkdir -p "$work/tmp"
status=0
printf '%-15s %12s %9s %8s  %s\n' target executions exec/s corpus result
for t in "${targets[@]}"; do
    mkdir -p "$work/corpus/$t" "$work/artifacts/$t" "fuzz/seeds/$t"
    log="$work/$t.log"
    set +e
    # TMPDIR: where api_calls binds its receiver socket.
    TMPDIR="$work/tmp" "$bin/$t" "$work/corpus/$t" "fuzz/seeds/$t" \
        -max_total_time="$per" -timeout=20 -rss_limit_mb=4096 -print_final_stats=1 \
        -artifact_prefix="$work/artifacts/$t/" >"$log" 2>&1
    rc=$?
    set -e
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    corpus=$(find "$work/corpus/$t" -type f | wc -l)
    if [ $rc -ne 0 ]; then
        status=1
        crash=$(ls -t "$work/artifacts/$t"/* 2>/dev/null | head -1 || true)
        printf '%-15s %12s %9s %8s  %s\n' "$t" "${runs:-?}" "${rate:-?}" "$corpus" "FAILED (exit $rc)"
        grep -E 'panicked at|ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer)|SUMMARY' "$log" | head -5 | sed 's/^/    /'
        [ -n "$crash" ] && echo "    input: $crash (reproduce: $bin/$t $crash)"
        echo "    log: $log"
    else
        printf '%-15s %12s %9s %8s  %s\n' "$t" "${runs:-?}" "${rate:-?}" "$corpus" ok
    fi
done
rm -rf "$work/tmp"
exit $status
