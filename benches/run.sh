#!/usr/bin/env bash
# make bench: every comparison in one run, written to build/bench/results.md
# (and copied to benches/results/), with the growth plot. What each program
# measures: benches/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
CFLAGS=(-std=c11 -O2 -g -Wall -Wextra -Werror -Iinclude -pthread)
# `run.sh check` (make check): the programs still compile (the scripts parse), nothing is run.
if [ "${1:-}" = check ]; then
    for f in benches/*.c; do gcc "${CFLAGS[@]}" -fsyntax-only "$f"; done
    python3 -c 'import ast, sys; [ast.parse(open(f).read(), f) for f in sys.argv[1:]]' benches/*.py
    exit 0
fi
OUT=build/bench
mkdir -p "$OUT" benches/results
DEB="$OUT/debian"
benches/fetch-debian-cyrus.sh "$DEB"
python3 -c "import matplotlib" 2>/dev/null || pip install -q matplotlib
D="$DEB/usr/lib/x86_64-linux-gnu"
OURS=(-Lbuild/lib -lcyrus_mboxevent -Wl,--disable-new-dtags,-rpath,"$PWD/build/lib:$PWD/$D")
gcc "${CFLAGS[@]}" -o "$OUT/hotpath" benches/hotpath.c "${OURS[@]}" -ljansson \
    -L"$D" -l:libcyrus_imap.so.0 -l:libcyrus_sieve.so.0 -l:libcyrus_min.so.0 -l:libcyrus.so.0
gcc "${CFLAGS[@]}" -o "$OUT/throughput" benches/throughput.c "${OURS[@]}"
gcc "${CFLAGS[@]}" -shared -fPIC -o "$OUT/onoff.so" benches/onoff.c -ldl

echo "bench: hot path (a few minutes)"
"$OUT/hotpath" "$OUT"
echo "bench: throughput and memory"
"$OUT/throughput" "$OUT"
python3 benches/plot.py "$OUT/growth.csv" "$OUT/growth.png"
echo "bench: real Cyrus, stock and patched builds (several minutes)"
make --no-print-directory cyrus cyrus-stock >/dev/null
cargo build --release -q
python3 benches/realcyrus.py "$OUT/realcyrus.md" "${BENCH_MESSAGES:-2000}" "${BENCH_CHUNKS:-100}" "${BENCH_ROUNDS:-3}"
echo "bench: real Cyrus sending its events, beside leaving them to cmev-relay (event_delivery: relay)"
command -v nats-server >/dev/null || { echo "bench: needs nats-server (apt-get install nats-server)" >&2; exit 1; }
cargo build --release -q -p cmev-relay --bin cmev-relay
python3 benches/relaycyrus.py "$OUT/relaycyrus.md" "${BENCH_MESSAGES:-2000}" "${BENCH_CHUNKS:-100}" "${BENCH_ROUNDS:-3}"
echo "bench: events lost to killed Cyrus processes, stock, patched without and with its spool"
python3 benches/crashloss.py "$OUT/crashloss.md"
# The later series (idled fed by mboxevent): the real-Cyrus comparison and IDLE/NOTIFY latency
# of each (BENCH_SERIES: which of them, default both).
for s in ${BENCH_SERIES:-3.10 3.12}; do
    echo "bench: real Cyrus $s, stock and patched builds (several minutes)"
    make --no-print-directory cyrus cyrus-stock CYRUS=$s >/dev/null
    python3 benches/realcyrus.py --series $s "$OUT/realcyrus-$s.md" "${BENCH_MESSAGES:-2000}" "${BENCH_CHUNKS:-100}" "${BENCH_ROUNDS:-3}"
    echo "bench: IMAP IDLE and NOTIFY latency on Cyrus $s, stock and patched"
    python3 benches/idlelatency.py --series $s "$OUT/idle-$s.md" "${BENCH_IDLE:-300}" "${BENCH_IDLE_ROUNDS:-2}"
done
echo "bench: cmev-relay into NATS JetStream, beside a minimal publisher"
benches/relay.sh "$OUT/relay.md"
echo "bench: real Cyrus at a low rate (STOREs 30 ms apart)"
python3 benches/lowrate.py "$OUT/lowrate.md" "$OUT/onoff.so" "${BENCH_LOWRATE:-200}"

{
    echo "# Benchmark results"
    echo
    echo "Produced by \`make bench\` on $(date -u +%Y-%m-%d) ($(nproc) cores, $(uname -r));"
    echo "stock = Debian's cyrus-common $(cat "$DEB/VERSION") libcyrus_imap.so.0 called directly."
    echo
    cat "$OUT/hotpath.md"
    echo
    cat "$OUT/throughput.md"
    echo
    cat "$OUT/realcyrus.md"
    echo
    cat "$OUT/relaycyrus.md"
    echo
    cat "$OUT/crashloss.md"
    echo
    for s in ${BENCH_SERIES:-3.10 3.12}; do
        cat "$OUT/realcyrus-$s.md"
        echo
        cat "$OUT/idle-$s.md"
        echo
    done
    cat "$OUT/lowrate.md"
    echo
    cat "$OUT/relay.md"
    echo
    echo "![cost growth](growth.png)"
} > "$OUT/results.md"
cp "$OUT/results.md" "$OUT/growth.png" "$OUT/growth.csv" benches/results/
echo "bench: results in $OUT/results.md (copied to benches/results/)"
