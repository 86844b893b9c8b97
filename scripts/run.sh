#!/usr/bin/env bash
# Builds Outrider and runs the collector with its embedded defaults (Zipkin API,
# UI paths and /metrics on :9411, OTLP/HTTP on :4318), then sends it a small
# demo trace through both ingest paths so there is something to look at.
# Stays in the foreground; Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)"
BIN=build/release/bin
ZIPKIN=${OUTRIDER_ZIPKIN_LISTEN:-0.0.0.0:9411}
OTLP=${OUTRIDER_OTLP_LISTEN:-0.0.0.0:4318}
"$BIN/outrider-collector" --zipkin-listen "$ZIPKIN" --otlp-listen "$OTLP" "$@" &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null' EXIT INT TERM
zport=${ZIPKIN##*:}; oport=${OTLP##*:}
for _ in $(seq 100); do
  curl -fsS "http://127.0.0.1:$zport/health" >/dev/null 2>&1 && break
  kill -0 $PID 2>/dev/null || { echo "outrider-collector did not start (see above)"; exit 1; }
  sleep 0.1
done
# a demo trace: the frontend calls reviews (Zipkin JSON), reviews calls ratings (OTLP JSON)
now_us=$(( $(date +%s%N) / 1000 )); tid=$(printf '%016x%016x' $RANDOM$RANDOM $now_us)
curl -fsS -X POST "http://127.0.0.1:$zport/api/v2/spans" -H 'Content-Type: application/json' -d "[
 {\"traceId\":\"$tid\",\"id\":\"000000000000000a\",\"kind\":\"SERVER\",\"name\":\"get /productpage\",
  \"timestamp\":$now_us,\"duration\":42000,\"localEndpoint\":{\"serviceName\":\"productpage.default\"},
  \"tags\":{\"http.method\":\"GET\",\"http.status_code\":\"200\"}},
 {\"traceId\":\"$tid\",\"parentId\":\"000000000000000a\",\"id\":\"000000000000000b\",\"kind\":\"CLIENT\",
  \"name\":\"get /reviews/1\",\"timestamp\":$((now_us+1000)),\"duration\":30000,
  \"localEndpoint\":{\"serviceName\":\"productpage.default\"},\"remoteEndpoint\":{\"serviceName\":\"reviews.default\"},
  \"tags\":{\"http.method\":\"GET\",\"http.status_code\":\"200\"}},
 {\"traceId\":\"$tid\",\"parentId\":\"000000000000000a\",\"id\":\"000000000000000b\",\"kind\":\"SERVER\",\"shared\":true,
  \"name\":\"get /reviews/1\",\"timestamp\":$((now_us+2000)),\"duration\":28000,
  \"localEndpoint\":{\"serviceName\":\"reviews.default\"},\"tags\":{\"http.method\":\"GET\",\"http.status_code\":\"200\"}}]"
curl -fsS -o /dev/null -X POST "http://127.0.0.1:$oport/v1/traces" -H 'Content-Type: application/json' -d "{
 \"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\",\"value\":{\"stringValue\":\"reviews.default\"}}]},
 \"scopeSpans\":[{\"spans\":[{\"traceId\":\"$tid\",\"spanId\":\"000000000000000c\",\"parentSpanId\":\"000000000000000b\",
  \"name\":\"GET /ratings/1\",\"kind\":3,\"startTimeUnixNano\":\"$(( (now_us+3000)*1000 ))\",\"endTimeUnixNano\":\"$(( (now_us+23000)*1000 ))\",
  \"attributes\":[{\"key\":\"peer.service\",\"value\":{\"stringValue\":\"ratings.default\"}},
                  {\"key\":\"http.status_code\",\"value\":{\"intValue\":\"503\"}}],
  \"status\":{\"code\":2,\"message\":\"upstream reset\"}}]}]}]}"
cat <<TXT

Outrider collector is running (pid $PID). A demo trace $tid is stored.
  traces (Zipkin API)   http://127.0.0.1:$zport/api/v2/trace/$tid
  services              http://127.0.0.1:$zport/api/v2/services
  dependencies          http://127.0.0.1:$zport/api/v2/dependencies?endTs=$(( now_us/1000 + 60000 ))
  Prometheus metrics    http://127.0.0.1:$zport/metrics
  send Zipkin spans     POST http://127.0.0.1:$zport/api/v2/spans
  send OTLP             POST http://127.0.0.1:$oport/v1/traces|metrics|logs
Point the Zipkin UI or Grafana's Zipkin data source at http://127.0.0.1:$zport (see README).
Ctrl-C stops it.
TXT
wait $PID
