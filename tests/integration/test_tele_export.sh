#!/usr/bin/env bash
# The proxy's telemetry exporter (proxy/telemetry.c, driven by tests/tools/tele_drive)
# against the real collector: OTLP protobuf + zstd on one keep-alive connection.
#  - metrics: istio_requests_total per reporter and the duration histogram reach /metrics;
#  - traces: every span is queryable through the Zipkin API with its HTTP tags, and
#    5xx spans carry the error tag;
#  - logs: the collector counts the access log records;
#  - an endpoint where nothing listens: tele_drive still ends within its deadline,
#    counting failures and dropped records.
# shellcheck source=../lib.sh
. "$(dirname "$0")/../lib.sh"

DRIVE=$OUTRIDER_BIN/tele_drive
[[ -x $DRIVE ]] || fail "no tele_drive at $DRIVE (built from tests/tools/tele_drive.c)"

start_collector
OTLP_PORT=${OTLP_URL##*:}
N=40 # requests: N/2 pairs of a CLIENT (reporter=source) and a SERVER (reporter=destination) hop; codes cycle 200 200 404 503

# stat NAME FILE: the value of a key=value line
stat() {
    sed -n "s/^$1=//p" "$2"
}

TELE_DRIVE_PROM=1 timeout 60 "$DRIVE" 127.0.0.1 "$OTLP_PORT" "$N" 100 5000 >"$T/drive.out" 2>"$T/drive.err" ||
    fail "tele_drive failed: $(cat "$T/drive.out" "$T/drive.err")"
note "tele_drive: $(tr '\n' ' ' <"$T/drive.out")"
assert_eq "$N" "$(stat spans_exported "$T/drive.out")" "spans_exported"
assert_eq "$N" "$(stat logs_exported "$T/drive.out")" "logs_exported"
assert_eq 0 "$(stat export_failures "$T/drive.out")" "export_failures"
assert_eq 0 "$(stat spans_dropped "$T/drive.out")" "spans_dropped"
assert_eq 0 "$(stat metric_batches_dropped "$T/drive.out")" "metric_batches_dropped"
POINTS=$(stat metric_points_exported "$T/drive.out")
[[ $POINTS -gt 0 ]] || fail "no metric points exported"

# the proxy's own /stats/prometheus page (printed to stderr by TELE_DRIVE_PROM): promtool must accept it;
# its only lint is Istio's metric name in milliseconds
grep -q '^istio_requests_total{reporter="source",' "$T/drive.err" || fail "no page from tele_drive: $(head -c 2000 "$T/drive.err")"
if command -v promtool >/dev/null 2>&1; then
    lint=$(promtool check metrics <"$T/drive.err" 2>&1 | grep -v 'use base unit "seconds" instead of "milliseconds"' || true)
    [[ -z $lint ]] || fail "promtool check metrics on the proxy page: $lint"
fi

# --- metrics ------------------------------------------------------------------
sum_of() { # FILE NAME LABEL=VALUE...
    metric_values "$@" | awk '{ s += $1 } END { printf "%d\n", s }'
}
metrics_ready() {
    [[ $(http_status GET "$ZIPKIN_URL/metrics") == 200 ]] || return 1
    cp "$LAST_BODY" "$T/metrics.txt"
    [[ $(sum_of "$T/metrics.txt" istio_requests_total reporter=destination) == $((N / 2)) ]]
}
wait_until -n 100 -i 0.05 metrics_ready ||
    fail "/metrics never counted $((N / 2)) destination requests: $(grep istio_requests_total "$T/metrics.txt" | head -5)"
assert_eq $((N / 2)) "$(sum_of "$T/metrics.txt" istio_requests_total reporter=source)" \
    "istio_requests_total{reporter=source} summed"
assert_eq $((N / 2)) "$(sum_of "$T/metrics.txt" istio_requests_total reporter=destination)" \
    "istio_requests_total{reporter=destination} summed"
# codes cycle 200 200 404 503 per pair: 5 of the 20 source hops are 503 with flag UF
assert_eq 5 "$(sum_of "$T/metrics.txt" istio_requests_total reporter=source response_code=503 response_flags=UF)" \
    "istio_requests_total{reporter=source,response_code=503}"
assert_eq 10 "$(sum_of "$T/metrics.txt" istio_requests_total reporter=destination response_code=200 \
    connection_security_policy=none source_workload=unknown destination_workload=tele-drive)" \
    "istio_requests_total{reporter=destination,response_code=200} with the proxy as destination"
assert_eq 10 "$(sum_of "$T/metrics.txt" istio_requests_total reporter=source response_code=200 \
    source_workload=tele-drive destination_workload=reviews-v2 destination_canonical_revision=v2)" \
    "istio_requests_total{reporter=source,response_code=200} with the peer as destination"
assert_eq $((N / 2)) "$(sum_of "$T/metrics.txt" istio_request_duration_milliseconds_bucket reporter=source 'le=+Inf')" \
    "istio_request_duration_milliseconds_bucket{le=+Inf} summed"
[[ -n $(metric_values "$T/metrics.txt" istio_request_duration_milliseconds_bucket reporter=destination le=25) ]] ||
    fail "no istio_request_duration_milliseconds_bucket{le=\"25\"} series"
assert_eq $((N / 2)) "$(sum_of "$T/metrics.txt" istio_request_duration_milliseconds_count reporter=destination)" \
    "istio_request_duration_milliseconds_count{reporter=destination}"
assert_eq $((N / 2)) "$(sum_of "$T/metrics.txt" istio_response_bytes_count reporter=source)" \
    "istio_response_bytes_count{reporter=source}"
assert_eq "$POINTS" "$(sum_of "$T/metrics.txt" outrider_collector_metric_points_total transport=otlp_http)" \
    "collector metric points accepted"

# --- logs ---------------------------------------------------------------------
assert_eq "$N" "$(sum_of "$T/metrics.txt" outrider_collector_log_records_total transport=otlp_http)" \
    "outrider_collector_log_records_total{transport=otlp_http}"
assert_eq 0 "$(sum_of "$T/metrics.txt" outrider_collector_log_records_dropped_total transport=otlp_http)" \
    "log records rejected"

# --- traces -------------------------------------------------------------------
traces_ready() {
    http_get_json "$ZIPKIN_URL/api/v2/traces?serviceName=tele-drive.default&limit=1000" traces >"$T/traces.json"
    [[ $(jq '[.[][]] | length' "$T/traces.json") == "$N" ]]
}
wait_until -n 100 -i 0.05 traces_ready ||
    fail "the Zipkin API never showed $N spans: $(head -c 2000 "$T/traces.json")"
assert_eq $((N / 2)) "$(jq 'length' "$T/traces.json")" "traces"
assert_eq $((N / 2)) "$(jq '[.[][] | select(.kind == "CLIENT")] | length' "$T/traces.json")" "CLIENT spans"
assert_eq $((N / 2)) "$(jq '[.[][] | select(.kind == "SERVER" and .parentId != null)] | length' "$T/traces.json")" \
    "SERVER spans with a parent"
assert_eq "$N" "$(jq '[.[][] | select(.tags["http.method"] != null and .tags["http.status_code"] != null
    and (.tags["http.url"] | startswith("http://reviews:9080/api/items/")))] | length' "$T/traces.json")" \
    "spans with http.method, http.status_code and http.url"
assert_eq 10 "$(jq '[.[][] | select(.tags["http.status_code"] == "503" and (.tags | has("error")))] | length' \
    "$T/traces.json")" "503 spans with the error tag"
assert_eq 0 "$(jq '[.[][] | select(.tags["http.status_code"] != "503" and (.tags | has("error")))] | length' \
    "$T/traces.json")" "non-5xx spans with the error tag"
assert_eq reviews "$(jq -r '[.[][] | select(.kind == "CLIENT")][0].remoteEndpoint.serviceName' "$T/traces.json")" \
    "CLIENT remote service"
assert_eq "outbound|9080||reviews.default.svc.cluster.local" \
    "$(jq -r '[.[][] | select(.kind == "CLIENT")][0].tags.upstream_cluster' "$T/traces.json")" "upstream_cluster tag"
code=$(http_status GET "$ZIPKIN_URL/api/v2/services")
assert_eq 200 "$code" "GET /api/v2/services"
jq -e 'index("tele-drive.default") != null' "$LAST_BODY" >/dev/null ||
    fail "service tele-drive.default not listed: $(cat "$LAST_BODY")"

# --- nothing listens ----------------------------------------------------------
DEAD_PORT=$(free_port)
"$DRIVE" 127.0.0.1 "$DEAD_PORT" "$N" 100 1500 >"$T/dead.out" 2>"$T/dead.err" ||
    fail "tele_drive against a dead endpoint failed (rc $?): $(cat "$T/dead.out" "$T/dead.err")"
note "tele_drive (dead endpoint): $(tr '\n' ' ' <"$T/dead.out")"
[[ $(stat export_failures "$T/dead.out") -gt 0 ]] || fail "export_failures is 0 against a dead endpoint"
assert_eq "$N" "$(stat spans_dropped "$T/dead.out")" "spans_dropped (dead endpoint)"
assert_eq "$N" "$(stat logs_dropped "$T/dead.out")" "logs_dropped (dead endpoint)"
assert_eq 1 "$(stat metric_batches_dropped "$T/dead.out")" "metric_batches_dropped (dead endpoint)"
assert_eq 0 "$(stat spans_exported "$T/dead.out")" "spans_exported (dead endpoint)"
assert_eq 0 "$(stat queue_bytes "$T/dead.out")" "queue_bytes after stop (dead endpoint)"

collector_alive
echo "PASS"
