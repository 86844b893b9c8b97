#!/usr/bin/env bash
# A real Prometheus (Debian's /usr/bin/prometheus) scrapes the collector's
# /metrics: an OTLP JSON DELTA sum posted twice must be stored as the
# cumulative sum with its labels, the collector's own
# zipkin_collector_spans_total{transport="http"} must count the Zipkin spans
# posted, and `promtool check metrics` must find nothing to complain about.
# shellcheck source=../lib.sh
. "$(dirname "$0")/../lib.sh"

PROMETHEUS=${PROMETHEUS:-$(command -v prometheus || true)}
PROMTOOL=${PROMTOOL:-$(command -v promtool || true)}
[[ -x $PROMETHEUS ]] || fail "prometheus is not installed (Debian package prometheus)"
[[ -x $PROMTOOL ]] || fail "promtool is not installed (Debian package prometheus)"

start_collector

# --- Zipkin spans: 3 as JSON, 2 as gzip JSON --------------------------------
NOW_US=$(($(date +%s) * 1000000))
span_json() { # TRACE_ID SPAN_ID NAME KIND OFFSET_US
    printf '{"traceId":"%s","id":"%s","name":"%s","kind":"%s","timestamp":%d,"duration":1500,"localEndpoint":{"serviceName":"scrape-test"}}' \
        "$1" "$2" "$3" "$4" $((NOW_US + $5))
}
printf '[%s,%s,%s]' "$(span_json 00000000000000000000000000000a01 0000000000000a01 get SERVER 0)" \
    "$(span_json 00000000000000000000000000000a01 0000000000000a02 query CLIENT 100)" \
    "$(span_json 00000000000000000000000000000a02 0000000000000a03 get SERVER 200)" >"$T/spans1.json"
printf '[%s,%s]' "$(span_json 00000000000000000000000000000a03 0000000000000a04 get SERVER 300)" \
    "$(span_json 00000000000000000000000000000a03 0000000000000a05 put CLIENT 400)" | gzip -c >"$T/spans2.json.gz"
SPANS_SENT=5
code=$(http_status POST "$ZIPKIN_URL/api/v2/spans" -H 'Content-Type: application/json' --data-binary "@$T/spans1.json")
assert_eq 202 "$code" "POST /api/v2/spans (JSON, 3 spans); body: $(cat "$LAST_BODY")"
code=$(http_status POST "$ZIPKIN_URL/api/v2/spans" -H 'Content-Type: application/json' -H 'Content-Encoding: gzip' \
    --data-binary "@$T/spans2.json.gz")
assert_eq 202 "$code" "POST /api/v2/spans (gzip JSON, 2 spans); body: $(cat "$LAST_BODY")"

# --- OTLP JSON metrics: the same DELTA sum twice ----------------------------
otlp_sum() { # OK_VALUE ERR_VALUE|- TIME_S
    local err_point=
    if [[ $2 != - ]]; then
        err_point=$(printf ',{"attributes":[{"key":"reporter","value":{"stringValue":"source"}},{"key":"source_workload","value":{"stringValue":"productpage-v1"}},{"key":"destination_service","value":{"stringValue":"reviews.default.svc.cluster.local"}},{"key":"response_code","value":{"stringValue":"503"}}],"startTimeUnixNano":"%s000000000","timeUnixNano":"%s000000000","asInt":"%s"}' \
            $(($3 - 10)) "$3" "$2")
    fi
    printf '{"resourceMetrics":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"outrider-proxy"}}]},"scopeMetrics":[{"scope":{"name":"outrider"},"metrics":[{"name":"istio_requests_total","description":"Requests handled, by reporter, workload, service and response code.","sum":{"aggregationTemporality":1,"isMonotonic":true,"dataPoints":[{"attributes":[{"key":"reporter","value":{"stringValue":"source"}},{"key":"source_workload","value":{"stringValue":"productpage-v1"}},{"key":"destination_service","value":{"stringValue":"reviews.default.svc.cluster.local"}},{"key":"response_code","value":{"stringValue":"200"}}],"startTimeUnixNano":"%s000000000","timeUnixNano":"%s000000000","asInt":"%s"}%s]}}]}]}]}' \
        $(($3 - 10)) "$3" "$1" "$err_point"
}
T0=$(date +%s)
otlp_sum 5 1 $((T0 - 10)) >"$T/m1.json"
otlp_sum 7 - "$T0" >"$T/m2.json"
for f in m1 m2; do
    jq -e . "$T/$f.json" >/dev/null || fail "test bug: $f.json is not JSON"
    code=$(http_status POST "$OTLP_URL/v1/metrics" -H 'Content-Type: application/json' --data-binary "@$T/$f.json")
    assert_eq 200 "$code" "POST /v1/metrics (OTLP JSON, $f); body: $(cat "$LAST_BODY")"
done

# --- OTLP JSON histogram with an exemplar that carries a trace id ------------
EXEMPLAR_TRACE=4bf92f3577b34da6a3ce929d0e0e4736
otlp_istio_histogram "$T0" "$EXEMPLAR_TRACE" >"$T/h.json"
code=$(http_status POST "$OTLP_URL/v1/metrics" -H 'Content-Type: application/json' --data-binary "@$T/h.json")
assert_eq 200 "$code" "POST /v1/metrics (histogram with exemplar); body: $(cat "$LAST_BODY")"

# --- /metrics itself ---------------------------------------------------------
metrics_ready() {
    [[ $(http_status GET "$ZIPKIN_URL/metrics") == 200 ]] || return 1
    cp "$LAST_BODY" "$T/metrics.txt"
    [[ -n $(metric_values "$T/metrics.txt" istio_requests_total reporter=source response_code=200) ]] &&
        [[ -n $(metric_values "$T/metrics.txt" zipkin_collector_spans_total transport=http) ]]
}
wait_until -n 200 -i 0.05 metrics_ready ||
    fail "/metrics never showed istio_requests_total and zipkin_collector_spans_total{transport=\"http\"}: $(head -c 3000 "$T/metrics.txt" 2>/dev/null)"
assert_num_eq 12 "$(metric_values "$T/metrics.txt" istio_requests_total reporter=source response_code=200)" \
    "/metrics istio_requests_total{response_code=\"200\"} (5 + 7)"
assert_num_eq "$SPANS_SENT" "$(metric_values "$T/metrics.txt" zipkin_collector_spans_total transport=http)" \
    "/metrics zipkin_collector_spans_total{transport=\"http\"}"

# Prometheus text 0.0.4 by default, and promtool must be happy with it
curl -sS -D "$T/metrics.headers" -o "$T/metrics.txt" "$ZIPKIN_URL/metrics" || fail "GET /metrics failed"
grep -qi '^content-type: text/plain; *version=0\.0\.4' "$T/metrics.headers" ||
    fail "GET /metrics: Content-Type is not text/plain; version=0.0.4: $(grep -i '^content-type' "$T/metrics.headers")"
# One finding is expected and allowed: names sent over OTLP are kept as sent, and Istio's own
# istio_request_duration_milliseconds draws promtool's base-unit lint (as it does from Istio itself).
"$PROMTOOL" check metrics <"$T/metrics.txt" >"$T/promtool.out" 2>&1 || true
grep -v '^istio_request_duration_milliseconds use base unit "seconds" instead of "milliseconds"$' "$T/promtool.out" >"$T/promtool.rest" || true
if [[ -s $T/promtool.rest ]]; then
    fail "promtool check metrics is not clean: $(cat "$T/promtool.rest")"
fi
# OpenMetrics when asked for it
curl -sS -D "$T/om.headers" -o "$T/om.txt" -H 'Accept: application/openmetrics-text; version=1.0.0; charset=utf-8' \
    "$ZIPKIN_URL/metrics" || fail "GET /metrics (OpenMetrics) failed"
grep -qi '^content-type: application/openmetrics-text' "$T/om.headers" ||
    fail "GET /metrics with Accept: application/openmetrics-text: Content-Type is $(grep -i '^content-type' "$T/om.headers")"
assert_eq '# EOF' "$(tail -n1 "$T/om.txt")" "last line of the OpenMetrics exposition"
grep -q "^istio_request_duration_milliseconds_bucket{reporter=\"destination\",le=\"10\"} 3 # {trace_id=\"$EXEMPLAR_TRACE\",span_id=\"00f067aa0ba902b7\"} 7" "$T/om.txt" ||
    fail "no exemplar with the trace id on the le=10 bucket: $(grep istio_request_duration "$T/om.txt")"
if grep -q 'trace_id' "$T/metrics.txt"; then fail "exemplar in the 0.0.4 text format"; fi

# gzip, as Prometheus asks for it on every scrape; streamed (chunked), and the same series as plain text
curl -sS -D "$T/gz.headers" -o "$T/metrics.gz" -H 'Accept-Encoding: gzip' "$ZIPKIN_URL/metrics" || fail "GET /metrics (gzip) failed"
grep -qi '^content-encoding: gzip' "$T/gz.headers" || fail "Accept-Encoding: gzip answered without gzip: $(cat "$T/gz.headers")"
grep -qi '^vary: accept-encoding' "$T/gz.headers" || fail "a gzip /metrics without Vary: Accept-Encoding"
grep -qi '^transfer-encoding: chunked' "$T/gz.headers" || fail "/metrics is not streamed: $(cat "$T/gz.headers")"
gzip -t "$T/metrics.gz" || fail "the gzip body does not check"
assert_eq "$(grep '^istio_' "$T/metrics.txt")" "$(gzip -dc "$T/metrics.gz" | grep '^istio_')" "istio_ series, gzip vs plain"
curl -sS -D "$T/q0.headers" -o /dev/null -H 'Accept-Encoding: gzip;q=0, identity' "$ZIPKIN_URL/metrics"
if grep -qi '^content-encoding' "$T/q0.headers"; then fail "gzip;q=0 answered compressed"; fi
# the scraper's own timeout: within it the body is whole; past it the rest is not written, and that is counted
curl -sS -o "$T/to.txt" -H 'X-Prometheus-Scrape-Timeout-Seconds: 10' "$ZIPKIN_URL/metrics" || fail "GET /metrics with a 10 s scrape timeout failed"
grep -q '^istio_requests_total' "$T/to.txt" || fail "a scrape within its timeout lacks the OTLP series"
abandoned() { metric_values <(curl -s "$ZIPKIN_URL/metrics") outrider_metrics_scrapes_abandoned_total; }
assert_num_eq 0 "$(abandoned)" "scrapes abandoned before an expired one"
curl -s -o "$T/expired.txt" -H 'X-Prometheus-Scrape-Timeout-Seconds: 0.0001' "$ZIPKIN_URL/metrics" || true
if grep -q '^istio_requests_total' "$T/expired.txt"; then fail "the OTLP series were written after the scraper's timeout"; fi
assert_num_eq 1 "$(abandoned)" "scrapes abandoned after the expired one"

# --- a real Prometheus scrapes it -------------------------------------------
ZIPKIN_HOSTPORT=${ZIPKIN_URL#http://}
cat >"$T/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: outrider-collector
    metrics_path: /metrics
    static_configs:
      - targets: ['$ZIPKIN_HOSTPORT']
YAML
"$PROMTOOL" check config "$T/prometheus.yml" >"$T/promtool-config.out" 2>&1 ||
    fail "test bug: prometheus.yml rejected: $(cat "$T/promtool-config.out")"
PROM_PORT=$(free_port)
PROM_URL=http://127.0.0.1:$PROM_PORT
"$PROMETHEUS" --config.file="$T/prometheus.yml" --storage.tsdb.path="$T/tsdb" \
    --web.listen-address="127.0.0.1:$PROM_PORT" --enable-feature=exemplar-storage >"$T/prometheus.log" 2>&1 &
PROM_PID=$!
track_pid "$PROM_PID"
prom_ready() {
    kill -0 "$PROM_PID" 2>/dev/null && [[ $(http_status GET "$PROM_URL/-/ready") == 200 ]]
}
wait_until -n 600 -i 0.05 prom_ready || prom_fail "prometheus did not become ready on $PROM_URL"
target_up() {
    [[ $(http_status GET "$PROM_URL/api/v1/targets") == 200 ]] &&
        jq -e '.data.activeTargets | length == 1 and .[0].health == "up"' "$LAST_BODY" >/dev/null
}
wait_until -n 600 -i 0.05 target_up ||
    prom_fail "scrape target never became up: $(jq -c '.data.activeTargets[] | {scrapeUrl, health, lastError}' "$LAST_BODY" 2>/dev/null)"

has_result() {
    [[ $(prom_query "$1" | jq length) -gt 0 ]]
}
wait_until -n 600 -i 0.05 has_result istio_requests_total ||
    prom_fail "query istio_requests_total stayed empty"
wait_until -n 600 -i 0.05 has_result 'zipkin_collector_spans_total{transport="http"}' ||
    prom_fail "query zipkin_collector_spans_total{transport=\"http\"} stayed empty"

RESULT=$(prom_query istio_requests_total)
GOT=$(jq -c 'map({labels: (.metric | {__name__, reporter, source_workload, destination_service, response_code, job}), value: (.value[1] | tonumber)})
             | sort_by(.labels.response_code)' <<<"$RESULT")
assert_json_eq '[{"labels":{"__name__":"istio_requests_total","reporter":"source","source_workload":"productpage-v1","destination_service":"reviews.default.svc.cluster.local","response_code":"200","job":"outrider-collector"},"value":12},
                 {"labels":{"__name__":"istio_requests_total","reporter":"source","source_workload":"productpage-v1","destination_service":"reviews.default.svc.cluster.local","response_code":"503","job":"outrider-collector"},"value":1}]' \
    "$GOT" "Prometheus query istio_requests_total (DELTA 5 + 7 and 1, labels kept); raw: $RESULT"
RESULT=$(prom_query 'zipkin_collector_spans_total{transport="http"}')
assert_num_eq "$SPANS_SENT" "$(jq -r 'if length == 1 then .[0].value[1] else "series: \(length)" end' <<<"$RESULT")" \
    "Prometheus query zipkin_collector_spans_total{transport=\"http\"}; raw: $RESULT"
RESULT=$(prom_query 'up{job="outrider-collector"}')
assert_num_eq 1 "$(jq -r '.[0].value[1]' <<<"$RESULT")" "up{job=\"outrider-collector\"}"

# the exemplar reached Prometheus's exemplar storage with its trace id
exemplar_stored() {
    [[ $(http_status GET "$PROM_URL/api/v1/query_exemplars" -G --data-urlencode 'query=istio_request_duration_milliseconds_bucket' \
        --data-urlencode "start=$((T0 - 3600))" --data-urlencode "end=$(($(date +%s) + 60))") == 200 ]] &&
        jq -e --arg t "$EXEMPLAR_TRACE" '[.data[].exemplars[].labels.trace_id] | index($t) != null' "$LAST_BODY" >/dev/null
}
wait_until -n 600 -i 0.05 exemplar_stored ||
    prom_fail "Prometheus has no exemplar with trace_id $EXEMPLAR_TRACE: $(cat "$LAST_BODY")"

# every query of the collector's own dashboard is valid PromQL as written (it uses no template
# variables); the mesh dashboards' queries, with Grafana's variables filled in, are run on a
# whole mesh by test_dashboards.sh
dash=$OUTRIDER_SRC/dashboards/outrider-collector.json
n_expr=0
while IFS= read -r expr; do
    [[ $expr == *'$'* ]] && continue # a Grafana variable ($__rate_interval): test_dashboards.sh fills those
    code=$(http_status GET "$PROM_URL/api/v1/query" -G --data-urlencode "query=$expr")
    [[ $code == 200 ]] || prom_fail "dashboard $(basename "$dash"): query '$expr' -> HTTP $code $(cat "$LAST_BODY")"
    n_expr=$((n_expr + 1))
done < <(jq -r '.. | objects | select(has("targets")) | .targets[] | .expr // empty' "$dash")
((n_expr > 0)) || fail "no query of $dash could be run as written"
has_result 'outrider_store_spans' || prom_fail "dashboard series outrider_store_spans missing"

kill "$PROM_PID" 2>/dev/null || true
collector_alive
echo "PASS: Prometheus scraped the collector: DELTA sums accumulated, labels kept, span counter right, promtool clean"
