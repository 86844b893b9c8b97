#!/usr/bin/env bash
# OpenTelemetry OTLP/HTTP protobuf exporters against the collector's OTLP port.
# Traces: exporter-trace-otlp-proto posts the scenario to /v1/traces; the
# Zipkin API must return it under the OpenTelemetry -> Zipkin mapping (ns -> µs,
# kinds, status -> otel.status_code/error tags, events -> annotations,
# peer.service -> remoteEndpoint.serviceName, parent/child links).
# Metrics: exporter-metrics-otlp-proto (DELTA, gzip) posts a counter and a
# histogram twice; /metrics must show the sums.
# shellcheck source=../lib.sh
. "$(dirname "$0")/../lib.sh"
HERE=$OUTRIDER_SRC/tests/compat

npm_ready "$HERE"
start_collector

# --- traces -----------------------------------------------------------------
node "$HERE/otel_otlp_client.mjs" traces "$OTLP_URL" "$T/traces.json" || fail "OTLP trace client failed"
TRACE=$(jq -r .traceId "$T/traces.json")
[[ $TRACE =~ ^[0-9a-f]{32}$ ]] || fail "client reported no trace id: $TRACE"
jq -e '.posts | length > 0 and all(.status == 200 and .path == "/v1/traces" and .contentType == "application/x-protobuf")' \
    "$T/traces.json" >/dev/null ||
    fail "POST /v1/traces (protobuf) did not answer 200 to every batch: $(jq -c .posts "$T/traces.json")"
assert_eq 5 "$(jq '.expected | length' "$T/traces.json")" "spans the client recorded"

trace_has_5() {
    [[ $(http_status GET "$ZIPKIN_URL/api/v2/trace/$TRACE") == 200 ]] && [[ $(jq length "$LAST_BODY") == 5 ]]
}
wait_until -n 200 -i 0.05 trace_has_5 ||
    fail "GET /api/v2/trace/$TRACE never returned 5 spans; last: $(head -c 2000 "$LAST_BODY")"
http_get_json "$ZIPKIN_URL/api/v2/trace/$TRACE" "trace by id" >"$T/trace.json"
node "$HERE/otel_otlp_check.mjs" "$T/traces.json" "$T/trace.json" ||
    fail "GET /api/v2/trace/$TRACE differs from the OpenTelemetry -> Zipkin mapping (list above); got: $(jq -c . "$T/trace.json")"

assert_json_eq '["checkout-svc"]' "$(http_get_json "$ZIPKIN_URL/api/v2/services" services)" "GET /api/v2/services"
assert_json_eq '["charge card","compute-tax","consume order","get /checkout","publish order"]' \
    "$(http_get_json "$ZIPKIN_URL/api/v2/spans?serviceName=checkout-svc" "span names")" "GET /api/v2/spans?serviceName=checkout-svc"
assert_json_eq '["payments"]' "$(http_get_json "$ZIPKIN_URL/api/v2/remoteServices?serviceName=checkout-svc" "remote services")" \
    "GET /api/v2/remoteServices?serviceName=checkout-svc (from peer.service)"
GOT=$(http_get_json "$ZIPKIN_URL/api/v2/traces" "traces by tag" -G --data-urlencode serviceName=checkout-svc \
    --data-urlencode 'annotationQuery=otel.status_code=ERROR and tax.region=EU' | jq -c 'map(map(.id) | sort)')
assert_json_eq "[$(jq -c '[.expected[].span.id] | sort' "$T/traces.json")]" "$GOT" \
    "GET /api/v2/traces?serviceName=checkout-svc&annotationQuery=otel.status_code=ERROR and tax.region=EU (span ids)"
END_TS=$(($(date +%s) * 1000 + 60000))
GOT=$(http_get_json "$ZIPKIN_URL/api/v2/dependencies?endTs=$END_TS&lookback=86400000" dependencies |
    jq -c 'map(select(.parent == "checkout-svc" and .child == "payments") | {callCount, errorCount: (.errorCount // 0)})')
assert_json_eq '[{"callCount":1,"errorCount":1}]' "$GOT" "GET /api/v2/dependencies: checkout-svc -> payments (client span with error)"

# --- metrics ----------------------------------------------------------------
node "$HERE/otel_otlp_client.mjs" metrics "$OTLP_URL" "$T/metrics.json" || fail "OTLP metrics client failed"
jq -e '.posts | length == 2 and all(.status == 200 and .path == "/v1/metrics" and .contentEncoding == "gzip")' \
    "$T/metrics.json" >/dev/null ||
    fail "POST /v1/metrics (protobuf, gzip) did not answer 200 to both exports: $(jq -c .posts "$T/metrics.json")"

counter_done() {
    [[ $(http_status GET "$ZIPKIN_URL/metrics") == 200 ]] || return 1
    cp "$LAST_BODY" "$T/metrics.txt"
    [[ $(metric_values "$T/metrics.txt" compat_requests_total route=/a code=200) == 7* ]]
}
wait_until -n 200 -i 0.05 counter_done ||
    fail "/metrics never showed compat_requests_total{route=\"/a\",code=\"200\"} 7 (3 + 4 as DELTA); it has: $(grep '^compat_' "$T/metrics.txt" 2>/dev/null | head -20)"
while IFS=$'\t' read -r value labels; do
    # shellcheck disable=SC2086 # labels are space-separated key=value words
    GOT=$(metric_values "$T/metrics.txt" compat_requests_total $labels)
    assert_eq 1 "$(grep -c . <<<"$GOT" || true)" "samples of compat_requests_total{$labels}"
    assert_num_eq "$value" "$GOT" "compat_requests_total{$labels}"
done < <(jq -r '.expected.counter.series[] | "\(.value)\t\(.labels | to_entries | map("\(.key)=\(.value)") | join(" "))"' "$T/metrics.json")
assert_eq counter "$(awk '$1 == "#" && $2 == "TYPE" && ($3 == "compat_requests_total" || $3 == "compat_requests") { print $4 }' "$T/metrics.txt" | head -n1)" \
    "TYPE of compat_requests_total"
assert_num_eq 3 "$(metric_values "$T/metrics.txt" compat_latency_ms_count route=/a)" "compat_latency_ms_count{route=\"/a\"}"
assert_num_eq 755 "$(metric_values "$T/metrics.txt" compat_latency_ms_sum route=/a)" "compat_latency_ms_sum{route=\"/a\"}"
for le in 10 100 1000 +Inf; do
    want=$(jq -r --arg le "$le" '.expected.histogram.buckets[$le]' "$T/metrics.json")
    got=$(metric_values "$T/metrics.txt" compat_latency_ms_bucket route=/a "le=$le")
    if [[ -z $got && $le != +Inf ]]; then # 10 may be written 10.0
        got=$(metric_values "$T/metrics.txt" compat_latency_ms_bucket route=/a "le=$le.0")
    fi
    assert_num_eq "$want" "$got" "compat_latency_ms_bucket{route=\"/a\",le=\"$le\"}"
done
assert_eq histogram "$(awk '$1 == "#" && $2 == "TYPE" && $3 == "compat_latency_ms" { print $4 }' "$T/metrics.txt" | head -n1)" \
    "TYPE of compat_latency_ms"

collector_alive
echo "PASS: OTLP protobuf traces and DELTA metrics from the OpenTelemetry JS exporters"
