#!/usr/bin/env bash
# make bench's relay rows (also on its own): cmev-relay into NATS JetStream
# against a minimal JetStream publisher in the same run (relay/examples/relay_bench.rs).
#   benches/relay.sh [OUT.md]     BENCH_RELAY_EVENTS (50000), BENCH_RELAY_RATE (1000/s)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-build/bench/relay.md}
mkdir -p "$(dirname "$OUT")"
command -v nats-server >/dev/null || { echo "benches/relay.sh: needs nats-server (apt-get install nats-server)" >&2; exit 1; }
cargo build --release -q -p cmev-relay --bin cmev-relay --example relay_bench
CMEV_RELAY=target/release/cmev-relay target/release/examples/relay_bench "$OUT" \
    "${BENCH_RELAY_EVENTS:-50000}" "${BENCH_RELAY_RATE:-1000}"
