#!/usr/bin/env bash
# tests/valgrind.sh TEST...: run C tests (plain, non-ASan builds) under
# valgrind memcheck. Fails when valgrind reports an error (invalid access,
# uninitialised value, definite leak) in any process, including the children
# the tests fork; the tests' own verdicts are printed, and judged by
# `make test-c` / `test-hardening`, not here.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
logdir="$root/build/valgrind"
mkdir -p "$logdir"
status=0
for t in "$@"; do
    name=$(basename "$t")
    rm -f "$logdir/$name".*.log
    start=$(date +%s)
    # CMEV_TEST_SLOW: time bounds x20 (valgrind runs threads one at a time).
    CMEV_TEST_SLOW=20 CMEV_FAULTS_SCALE=0.05 valgrind --leak-check=full \
        --errors-for-leak-kinds=definite --error-exitcode=1 \
        --suppressions="$root/tests/valgrind.supp" \
        --log-file="$logdir/$name.%p.log" "$t" >"$logdir/$name.out" 2>&1
    rc=$?
    # every process (forked children too) ends its log with an ERROR SUMMARY
    errors=$(grep -l "ERROR SUMMARY: [1-9]" "$logdir/$name".*.log 2>/dev/null || true)
    verdict=$(grep -E '^[a-z_]+: [0-9]+ passed, [0-9]+ failed' "$logdir/$name.out" | tail -1)
    if [ -n "$errors" ]; then
        status=1
        echo "valgrind: $name: memory errors (see $errors)"
        grep -h -B2 -A14 "Invalid\|uninitialised\|definitely lost in\|Mismatched" $errors | head -60
    else
        echo "valgrind: $name: clean, $(ls "$logdir/$name".*.log | wc -l) processes, $(( $(date +%s) - start )) s (test said: ${verdict:-exit $rc})"
    fi
done
exit $status
