#!/usr/bin/env bash
# Collector benchmark (figures go to docs/benchmarks.md). Bounded in count: no run lasts
# more than a few minutes on 2 cores. Uses the release build in build/release.
#   1. ingest rate per core: OTLP protobuf+zstd, 1000-span batches; Zipkin JSON, 1000-span batches
#      (spans per second of the collector's own CPU time, read from /proc/PID/stat)
#   2. memory per stored span with 1,000,000 spans stored (store accounting and RSS)
#   3. p50/p99 of /api/v2/trace/{id} and /api/v2/traces?serviceName= with 1,000,000 spans stored
# usage: tests/bench/collector_bench.sh    env: REQUESTS (batches per ingest run, default 1000)
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${OUTRIDER_BIN:-build/release/bin}
REQUESTS=${REQUESTS:-1000}
W=$(mktemp -d); PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$W"' EXIT

start() { # name, extra args → sets ZP OP CPID
  local name=$1; shift
  "$BIN/outrider-collector" --zipkin-listen 127.0.0.1:0 --otlp-listen 127.0.0.1:0 "$@" 2>"$W/$name.log" &
  CPID=$!; PIDS+=("$CPID")
  for _ in $(seq 200); do
    ZP=$(sed -n 's/.*listening zipkin http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$W/$name.log")
    OP=$(sed -n 's/.*listening otlp http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$W/$name.log")
    [ -n "$ZP" ] && [ -n "$OP" ] && return 0
    sleep 0.05
  done
  echo "collector did not start: $(cat "$W/$name.log")"; exit 1
}
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p"; }

echo "# outrider-collector benchmark, $(date -u +%F), $(nproc) cores, $(uname -r)"
start otlp --max-spans 2000000 --set store.maxBytes=4GiB
"$BIN/span_load" send --url "http://127.0.0.1:$OP/v1/traces" --format otlp-proto-zstd --requests 20 --seed 9 >/dev/null # warm-up
out=$("$BIN/span_load" send --url "http://127.0.0.1:$OP/v1/traces" --format otlp-proto-zstd --requests "$REQUESTS" --connections 2 --pid "$CPID" --seed 1)
echo "ingest otlp-proto-zstd: $out"
kill "$CPID"; wait "$CPID" 2>/dev/null || true

start zipkin --max-spans 2000000 --set store.maxBytes=4GiB
"$BIN/span_load" send --url "http://127.0.0.1:$ZP/api/v2/spans" --format zipkin-json --requests 20 --seed 9 >/dev/null
out=$("$BIN/span_load" send --url "http://127.0.0.1:$ZP/api/v2/spans" --format zipkin-json --requests "$REQUESTS" --connections 2 --pid "$CPID" --seed 1)
echo "ingest zipkin-json: $out"
kill "$CPID"; wait "$CPID" 2>/dev/null || true

start mem --max-spans 1000000 --set store.maxBytes=4GiB
rss0=$(awk '/VmRSS/ {print $2*1024}' /proc/$CPID/status)
"$BIN/span_load" send --url "http://127.0.0.1:$OP/v1/traces" --format otlp-proto-zstd --requests 1000 --connections 2 --seed 1 >/dev/null
metrics=$(curl -fsS "http://127.0.0.1:$ZP/metrics")
spans=$(echo "$metrics" | awk '$1=="outrider_store_spans" {printf "%d", $2}')
bytes=$(echo "$metrics" | awk '$1=="outrider_store_bytes" {printf "%d", $2}')
rss1=$(awk '/VmRSS/ {print $2*1024}' /proc/$CPID/status)
awk -v s="$spans" -v b="$bytes" -v r0="$rss0" -v r1="$rss1" 'BEGIN {
  printf "memory: spans_stored=%d store_bytes_per_span=%.1f rss_delta_per_span=%.1f rss_mib=%.1f\n", s, b/s, (r1-r0)/s, r1/1048576 }'
"$BIN/span_load" query --url "http://127.0.0.1:$ZP/" --requests 1000 --batch 1000 --count 2000 --seed 1 | sed 's/^/latency with 1M spans: /'
