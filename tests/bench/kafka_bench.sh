#!/usr/bin/env bash
# Kafka export cost (figures go to docs/benchmarks.md): spans per collector CPU-second with
# Kafka export off, and on in each span encoding, in the same run, on the collector benchmark's
# shape (OTLP protobuf+zstd, 1000 spans per request, 5 services x 50 traces of 4 spans, fresh
# random ids, start times spread over 10 minutes: 250 messages per request), SENDERS concurrent
# senders. The brokers are librdkafka's mock cluster (tests/tools/kafka_mock, 3 brokers, topic
# of 6 partitions) on the same 2 cores: its CPU is not counted, but it competes with the
# collector for them. Each figure is the median of ROUNDS fresh collectors; the produce latency
# (produce call to broker acknowledgement, from outrider_kafka_produce_latency_seconds) is the
# bucket bound under which 50% and 99% of the messages of the last round were acknowledged.
#
# usage: tests/bench/kafka_bench.sh     env: REQUESTS (300), SENDERS (4), ROUNDS (3),
#        MODES ("off json proto3 otlp ingest-json"; ingest-ENC is an ingest member, role=ingest,
#        which stores nothing and exports in ENC), OUTRIDER_BIN (build/release/bin),
#        KAFKA_SET (more settings for the export runs, e.g. "kafka.producer.compression.type=lz4")
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${OUTRIDER_BIN:-build/release/bin}
REQUESTS=${REQUESTS:-300}
SENDERS=${SENDERS:-4}
ROUNDS=${ROUNDS:-3}
MODES=${MODES:-off json proto3 otlp ingest-json}
W=$(mktemp -d)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; exec 9>&- 2>/dev/null; rm -rf "$W"' EXIT
SHAPE=(--batch 1000 --services 5 --spans-per-trace 4 --spread-ms 600000)

mkfifo "$W/kafka.in"
"$BIN/kafka_mock" --topic zipkin:6 <"$W/kafka.in" >"$W/kafka.out" 2>"$W/kafka.err" &
PIDS+=($!)
exec 9>"$W/kafka.in"
for _ in $(seq 200); do grep -q '^bootstrap ' "$W/kafka.out" && break; sleep 0.05; done
BOOT=$(awk '/^bootstrap / {print $2}' "$W/kafka.out")
[ -n "$BOOT" ] || { echo "mock cluster did not start: $(cat "$W/kafka.err")"; exit 1; }

start() { # extra args -> ZP OP CPID
  "$BIN/outrider-collector" --zipkin-listen 127.0.0.1:0 --otlp-listen 127.0.0.1:0 --max-spans 5000000 \
    --set store.maxBytes=4GiB --set limits.memoryLimit=16GiB "$@" 2>"$W/c.log" &
  CPID=$!; PIDS+=("$CPID")
  for _ in $(seq 400); do
    ZP=$(sed -n 's/.*listening zipkin http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$W/c.log")
    OP=$(sed -n 's/.*listening otlp http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$W/c.log")
    [ -n "$ZP" ] && [ -n "$OP" ] && return 0
    sleep 0.05
  done
  echo "collector did not start: $(cat "$W/c.log")"; exit 1
}
metric() { curl -fsS "http://127.0.0.1:$ZP/metrics" | awk -v n="$1" '$1 == n {print $2}'; }
quantile() { # q -> bucket bound holding the q-quantile of the produce latency (topic zipkin)
  curl -fsS "http://127.0.0.1:$ZP/metrics" | awk -v q="$1" '
    /^outrider_kafka_produce_latency_seconds_bucket\{topic="zipkin"/ {
      match($0, /le="[^"]*"/); le = substr($0, RSTART + 4, RLENGTH - 5); n++; b[n] = le; c[n] = $2 }
    END { if (n == 0 || c[n] == 0) { print "-"; exit }
          for (i = 1; i <= n; i++) if (c[i] >= q * c[n]) { print (b[i] == "+Inf" ? ">10" : b[i] * 1000) "ms"; exit } }'
}

echo "# outrider-collector Kafka export benchmark, $(date -u +%F), $(nproc) cores; $REQUESTS requests of 1000 spans, $SENDERS senders, median of $ROUNDS"
printf '%-12s %-16s %-9s %-12s %-9s %-9s %s\n' export spans_per_cpu_s vs_off messages p50_ack p99_ack failed_or_dropped
base=""
for mode in $MODES; do
  rates=()
  for r in $(seq "$ROUNDS"); do
    if [ "$mode" = off ]; then
      start
    else
      extra=()
      for kv in ${KAFKA_SET:-}; do extra+=(--set "$kv"); done
      [ "${mode#ingest-}" != "$mode" ] && extra+=(--set role=ingest)
      start --set kafka.brokers="$BOOT" --set kafka.spans.encoding="${mode#ingest-}" --set kafka.spans.topic=zipkin \
        "${extra[@]}"
    fi
    "$BIN/span_load" send --url "http://127.0.0.1:$OP/v1/traces" --format otlp-proto-zstd --requests 20 --seed 99 \
      "${SHAPE[@]}" >/dev/null
    line=$("$BIN/span_load" send --url "http://127.0.0.1:$OP/v1/traces" --format otlp-proto-zstd \
      --requests "$REQUESTS" --connections "$SENDERS" --pid "$CPID" --seed "$r" "${SHAPE[@]}" | tail -n1)
    rates+=("$(echo "$line" | sed -n 's/.*spans_per_cpu_s=\([0-9]*\).*/\1/p')")
    msgs="-" p50="-" p99="-" bad="-"
    if [ "$mode" != off ]; then
      for _ in $(seq 600); do # wait for every message's delivery report
        q=$(metric 'outrider_kafka_messages_total{topic="zipkin",result="queued"}')
        d=$(metric 'outrider_kafka_messages_total{topic="zipkin",result="delivered"}')
        [ "$q" = "$d" ] && break
        sleep 0.1
      done
      msgs=$d
      p50=$(quantile 0.5); p99=$(quantile 0.99)
      bad=$(( $(metric 'outrider_kafka_messages_total{topic="zipkin",result="failed"}') +
              $(metric 'outrider_kafka_messages_total{topic="zipkin",result="dropped"}') ))
    fi
    kill "$CPID"; wait "$CPID" 2>/dev/null || true
  done
  med=$(printf '%s\n' "${rates[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  [ -z "$base" ] && base=$med
  printf '%-12s %-16s %-9.2f %-12s %-9s %-9s %s\n' "$mode" "$med ($(printf '%s ' "${rates[@]}" | sed 's/ $//'))" \
    "$(awk -v a="$med" -v b="$base" 'BEGIN {print a / b}')" "$msgs" "$p50" "$p99" "$bad"
done
