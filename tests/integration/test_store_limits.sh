#!/usr/bin/env bash
# The trace store's bounds as a user sees them: store.maxSpans evicts the oldest traces
# (counted), store.maxSpansPerTrace caps one trace (the extra spans are rejected in the
# OTLP partial success and counted as dropped).
. "$(dirname "$0")/../lib.sh"
start_collector --max-spans 50 --set store.maxSpansPerTrace=3

now_ns=$(( $(date +%s%N) ))
spans=""
for i in 1 2 3 4 5; do
    spans+="${spans:+,}{\"traceId\":\"000000000000000000000000000000aa\",\"spanId\":\"00000000000000a$i\",\"name\":\"s$i\",\"kind\":2,\"startTimeUnixNano\":\"$((now_ns + i * 1000))\",\"endTimeUnixNano\":\"$((now_ns + i * 1000 + 5000))\"}"
done
body="{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\",\"value\":{\"stringValue\":\"capped\"}}]},\"scopeSpans\":[{\"spans\":[$spans]}]}]}"
code=$(http_status POST "$OTLP_URL/v1/traces" -H 'Content-Type: application/json' -d "$body")
assert_eq 200 "$code" "OTLP post over the per-trace cap"
assert_eq 2 "$(jq -r '.partialSuccess.rejectedSpans | tonumber' "$LAST_BODY")" "spans over the cap rejected"
jq -r '.partialSuccess.errorMessage' "$LAST_BODY" | grep -q maxSpansPerTrace || fail "reason: $(cat "$LAST_BODY")"
assert_eq 3 "$(http_get_json "$ZIPKIN_URL/api/v2/trace/000000000000000000000000000000aa" trace | jq length)" "spans kept"

# 20 traces of 3 spans = 60 more spans into a store bounded at 50: the oldest traces go, whole
ts=$(( now_ns / 1000 ))
for t in $(seq 10 29); do
    body="["
    for i in 1 2 3; do
        body+="{\"traceId\":\"00000000000000$t\",\"id\":\"000000000000000$i\",\"name\":\"op\",\"timestamp\":$((ts + t)),\"duration\":10,\"localEndpoint\":{\"serviceName\":\"evict\"}}"
        [[ $i -lt 3 ]] && body+=","
    done
    body+="]"
    assert_eq 202 "$(http_status POST "$ZIPKIN_URL/api/v2/spans" -H 'Content-Type: application/json' -d "$body")" "post trace $t"
done
curl -fsS "$ZIPKIN_URL/metrics" >"$T/m.txt"
held=$(metric_values "$T/m.txt" outrider_store_spans)
(( ${held%.*} <= 50 )) || fail "store holds $held spans, over maxSpans 50"
evicted=$(metric_values "$T/m.txt" outrider_store_evicted_spans_total)
assert_num_eq $(( 63 - ${held%.*} )) "$evicted" "evicted spans = received - held"
assert_eq 404 "$(http_status GET "$ZIPKIN_URL/api/v2/trace/0000000000000010")" "oldest trace evicted"
assert_eq 3 "$(http_get_json "$ZIPKIN_URL/api/v2/trace/0000000000000029" newest | jq length)" "newest trace whole"
assert_eq 404 "$(http_status GET "$ZIPKIN_URL/api/v2/trace/000000000000000000000000000000aa")" "first (capped) trace evicted"
n=$(http_get_json "$ZIPKIN_URL/api/v2/traces?serviceName=evict&limit=100" search | jq length)
assert_eq $(( ${held%.*} / 3 )) "$n" "search sees only held traces"

# store.preTouch: the store's memory is written at start (and said so); a bound it would put over
# limits.memoryLimit is refused at start, with the reason, instead of answering 503 to every ingest
plain_kib=$(awk '/VmRSS/ {print $2}' "/proc/$COLLECTOR_PID/status")
stop_pid "$COLLECTOR_PID"
start_collector --set store.preTouch=true --set store.maxBytes=64MiB
grep -q 'pre-touched 64 MiB of span memory' "$COLLECTOR_LOG" || fail "no pre-touch line: $(cat "$COLLECTOR_LOG")"
rss_kib=$(awk '/VmRSS/ {print $2}' "/proc/$COLLECTOR_PID/status")
(( rss_kib >= 8192 )) || fail "collector resident ${rss_kib} KiB, below the pre-touched 64 MiB"
assert_eq 202 "$(http_status POST "$ZIPKIN_URL/api/v2/spans" -H 'Content-Type: application/json' -d "$body")" "post with preTouch"
assert_eq 3 "$(http_get_json "$ZIPKIN_URL/api/v2/trace/0000000000000029" pretouched | jq length)" "trace stored with preTouch"
stop_pid "$COLLECTOR_PID"
if "$OUTRIDER_BIN/outrider-collector" --zipkin-listen 127.0.0.1:0 --otlp-listen 127.0.0.1:0 --set store.preTouch=true \
    --set store.maxBytes=64MiB --set limits.memoryLimit=32MiB >"$T/bad.log" 2>&1; then
    fail "collector started with a pre-touched store over limits.memoryLimit"
fi
grep -q 'store.preTouch.*limits.memoryLimit' "$T/bad.log" || fail "no reason given: $(cat "$T/bad.log")"
echo "1 passed, 0 failed"
