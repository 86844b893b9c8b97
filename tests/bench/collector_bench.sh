#!/usr/bin/env bash
# Collector benchmark (figures go to docs/benchmarks.md). Bounded in count; uses the release
# build in build/release (or $OUTRIDER_BIN).
#
# The load has the shape sidecars send, not the shape the store is best at: OTLP protobuf+zstd
# (and Zipkin v2 JSON), 1000 spans per request, 5 services x 50 traces of 4 spans in each
# request, fresh random 128-bit trace ids (high and low halves independent) and span ids in
# every request, trace start times spread at random over the last 10 minutes (so they arrive
# out of order). Bodies are built before each step's clock starts; the figure is spans per
# second of the collector's own CPU time (utime+stime from /proc/PID/stat), i.e. per core.
#
#   1. fill curve: for each format and each number of concurrent senders, the store fills
#      from empty to STEPS x STEP_REQUESTS x 1000 spans (default 10 x 1000 x 1000 = 10M, with
#      store.maxSpans, store.maxBytes and limits.memoryLimit raised so nothing is evicted or
#      refused); one line per step shows the rate at that fill level and its ratio to the
#      first step: how cost grows with what is stored. Each curve is run ROUNDS times with a
#      fresh collector (the same request bodies, built once and cached in a temporary
#      directory) and every step shows the median, min and max of the rounds: this machine's
#      rates move by 20-40% between identical runs.
#   2. memory per stored span with 1,000,000 spans stored (store accounting and RSS growth)
#   3. p50/p99 of /api/v2/trace/{id} and /api/v2/traces?serviceName= with 1,000,000 spans stored
#
# usage: tests/bench/collector_bench.sh
# env:   FORMATS ("otlp-proto-zstd zipkin-json"), SENDERS ("1 4 16"), STEPS (10),
#        STEP_REQUESTS (1000), SPREAD_MS (600000), ROUNDS (3), SKIP_FILL=1 / SKIP_MEM=1,
#        PRETOUCH=1 (fill curves with store.preTouch on and store.maxBytes at 256 bytes a span)
# Disk: the cached bodies of one format (about 0.4 GB for OTLP, 7 GB for Zipkin JSON at 10M
# spans) live in the temporary directory until the script ends.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${OUTRIDER_BIN:-build/release/bin}
FORMATS=${FORMATS:-otlp-proto-zstd zipkin-json}
SENDERS=${SENDERS:-1 4 16}
STEPS=${STEPS:-10}
STEP_REQUESTS=${STEP_REQUESTS:-1000}
ROUNDS=${ROUNDS:-3}
SPREAD_MS=${SPREAD_MS:-600000}
SHAPE=(--batch 1000 --services 5 --spans-per-trace 4 --spread-ms "$SPREAD_MS")
W=$(mktemp -d); PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$W"' EXIT

start() { # name, extra args → sets ZP OP CPID
  local name=$1; shift
  "$BIN/outrider-collector" --zipkin-listen 127.0.0.1:0 --otlp-listen 127.0.0.1:0 "$@" 2>"$W/$name.log" &
  CPID=$!; PIDS+=("$CPID")
  for _ in $(seq 1200); do
    ZP=$(sed -n 's/.*listening zipkin http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$W/$name.log")
    OP=$(sed -n 's/.*listening otlp http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$W/$name.log")
    [ -n "$ZP" ] && [ -n "$OP" ] && return 0
    sleep 0.05
  done
  echo "collector did not start: $(cat "$W/$name.log")"; exit 1
}
stop() { kill "$CPID"; wait "$CPID" 2>/dev/null || true; }
url_of() { # format → ingest URL of the running collector
  case $1 in otlp*) echo "http://127.0.0.1:$OP/v1/traces" ;; *) echo "http://127.0.0.1:$ZP/api/v2/spans" ;; esac
}
kv() { sed -n "s/.*[[:space:]]$1=\([^[:space:]]*\).*/\1/p"; }

echo "# outrider-collector benchmark, $(date -u +%F), $(nproc) cores, $(uname -r)"
echo "# shape: 1000 spans/request, 5 services x 50 traces x 4 spans, fresh random ids, start times spread over ${SPREAD_MS} ms"
total=$((STEPS * STEP_REQUESTS * 1000))
if [ -z "${SKIP_FILL:-}" ]; then
  for fmt in $FORMATS; do
    mkdir -p "$W/cache"
    for c in $SENDERS; do
      for r in $(seq "$ROUNDS"); do
        if [ -n "${PRETOUCH:-}" ]; then
          mem=(--set store.maxBytes=$(((total + 1000000) * 256)) --set store.preTouch=true)
        else
          mem=(--set store.maxBytes=16GiB)
        fi
        start "fill-$fmt-$c-$r" --max-spans $((total + 1000000)) "${mem[@]}" --set limits.memoryLimit=20GiB
        "$BIN/span_load" send --url "$(url_of "$fmt")" --format "$fmt" --requests 20 --seed 99 "${SHAPE[@]}" >/dev/null # warm-up
        "$BIN/span_load" send --url "$(url_of "$fmt")" --format "$fmt" --requests "$STEP_REQUESTS" --steps "$STEPS" \
          --connections "$c" --pid "$CPID" --seed 1 --cache "$W/cache" "${SHAPE[@]}" >"$W/round-$r.txt" || true
        awk '/VmRSS/ {printf "%.0f\n", $2/1024}' "/proc/$CPID/status" >"$W/rss-$r.txt"
        stop
      done
      echo "## fill curve: $fmt, $c concurrent senders: spans per collector CPU-second at each fill level," \
        "median (min-max) of $ROUNDS rounds; user: the same over user-mode CPU only (without the kernel's"\
        "network stack and first-touch page faults)"
      printf '%-12s %-10s %-19s %-9s %-10s %-9s %s\n' stored_before median min-max vs_first user user_vs failures
      for r in $(seq "$ROUNDS"); do
        while read -r line; do
          echo "$(echo "$line" | kv step) $(echo "$line" | kv stored_before) $(echo "$line" | kv spans_per_cpu_s)" \
            "$(echo "$line" | kv spans_per_user_cpu_s) $(echo "$line" | kv failures)"
        done <"$W/round-$r.txt"
      done | awk '
        function median(a, n,   i, j, t) { # sorts a[1..n] in place
          for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
          return a[int((n + 1) / 2)]
        }
        { s = $1; n[s]++; at[s] = $2; f[s] += $5; if (s > last) last = s
          tot[s, n[s]] = $3 + 0; usr[s, n[s]] = $4 + 0 }
        END {
          for (s = 0; s <= last; s++) {
            delete a; delete b
            for (i = 1; i <= n[s]; i++) { a[i] = tot[s, i]; b[i] = usr[s, i] }
            m = median(a, n[s]); u = median(b, n[s])
            if (s == 0) { first = m; ufirst = u }
            printf "%-12s %-10s %-19s %-9.2f %-10s %-9.2f %s\n", at[s], m, a[1] "-" a[n[s]], first ? m / first : 0,
              u, ufirst ? u / ufirst : 0, f[s]
          }
        }'
      echo "rss_mib_at_end=$(cat "$W/rss-1.txt")"
    done
    rm -rf "$W/cache"
  done
fi

if [ -z "${SKIP_MEM:-}" ]; then
  start mem --max-spans 1000000 --set store.maxBytes=4GiB
  rss0=$(awk '/VmRSS/ {print $2*1024}' "/proc/$CPID/status")
  "$BIN/span_load" send --url "http://127.0.0.1:$OP/v1/traces" --format otlp-proto-zstd --requests 1000 --connections 2 \
    --seed 1 "${SHAPE[@]}" >/dev/null
  metrics=$(curl -fsS "http://127.0.0.1:$ZP/metrics")
  spans=$(echo "$metrics" | awk '$1=="outrider_store_spans" {printf "%d", $2}')
  bytes=$(echo "$metrics" | awk '$1=="outrider_store_bytes" {printf "%d", $2}')
  rss1=$(awk '/VmRSS/ {print $2*1024}' "/proc/$CPID/status")
  awk -v s="$spans" -v b="$bytes" -v r0="$rss0" -v r1="$rss1" 'BEGIN {
    printf "memory: spans_stored=%d store_bytes_per_span=%.1f rss_delta_per_span=%.1f rss_mib=%.1f\n", s, b/s, (r1-r0)/s, r1/1048576 }'
  "$BIN/span_load" query --url "http://127.0.0.1:$ZP/" --requests 1000 --count 2000 --seed 1 --services 5 \
    --spans-per-trace 4 | sed 's/^/latency with 1M spans: /'
  stop
fi
