#!/usr/bin/env bash
# Istio's Telemetry API (telemetry.istio.io/v1) on two real sidecars in
# namespace `shop`, with the mesh root namespace moved to `mesh-root`,
# exporting to a real collector:
#  - precedence: a root-namespace document, a namespace document and a
#    workload document (selector) layer as in Istio; a second namespace-wide
#    document is warned about and ignored;
#  - metrics: REMOVE of source_principal, destination_principal and (for
#    istio_requests_total only) response_code merges the series at the
#    collector while the duration histogram keeps its codes; an UPSERT from a
#    request header and from request.host appears as labels ("unknown" when
#    the header is absent); a disabled metric is not exported;
#  - tracing: randomSamplingPercentage 100 (client side) against 0 (server
#    side, from the root) is honoured; customTags (literal, header with
#    default, environment) appear on the spans;
#  - access logs: disabled at the root, re-enabled for one workload with
#    filter `response.code >= 400`: only its errors are logged;
#  - /config_dump shows the effective telemetry and where it came from;
#    SIGHUP applies a changed document; --check reports bad documents with
#    file:line:col.
# Sidecar A runs two workers, so its series are merged across workers too.
. "$(dirname "$0")/../lib.sh"

BIN=$OUTRIDER_BIN/outrider-proxy
start_collector
start_backend reviews-app
APP_B=$BACKEND_PORT
B_IN=$(free_port)

cat >"$T/b.yaml" <<YAML
apiVersion: outrider.io/v1alpha1
kind: Proxy
metadata: {name: reviews-v1, namespace: shop, labels: {app: reviews, version: v1}}
spec:
  rootNamespace: mesh-root
  inbound: {listen: 127.0.0.1:$B_IN, forwardTo: 127.0.0.1:$APP_B}
  outbound: {listen: 127.0.0.1:0}
  admin: {listen: 127.0.0.1:0}
  telemetry: {otlpEndpoint: $OTLP_URL, samplingPercent: 100, flushInterval: 200ms}
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: mesh-root}
spec:
  tracing:
  - randomSamplingPercentage: 0
  accessLogging:
  - disabled: true
YAML

# A: the root document, its namespace's and its workload's
cat >"$T/a-docs.yaml" <<YAML
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: mesh-root}
spec:
  metrics:
  - providers: [{name: prometheus}]
    overrides:
    - tagOverrides:
        source_principal: {operation: REMOVE}
        destination_principal: {operation: REMOVE}
  tracing:
  - randomSamplingPercentage: 0
  accessLogging:
  - disabled: true
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: shop-wide}
spec:
  metrics:
  - overrides:
    - match: {metric: REQUEST_COUNT, mode: CLIENT}
      tagOverrides:
        response_code: {operation: REMOVE}
        x_user: {value: "request.headers['x-user']"}
        request_host: {value: request.host}
    - match: {metric: REQUEST_SIZE}
      disabled: true
  tracing:
  - match: {mode: CLIENT}
    randomSamplingPercentage: 100
    customTags:
      team: {literal: {value: payments}}
      user: {header: {name: x-user, defaultValue: anonymous}}
      pod: {environment: {name: OUTRIDER_TEST_POD, defaultValue: none}}
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: shop-wide-too, namespace: shop}
spec:
  tracing:
  - randomSamplingPercentage: 0
---
apiVersion: telemetry.istio.io/v1alpha1
kind: Telemetry
metadata: {name: productpage-logs, namespace: shop}
spec:
  selector: {matchLabels: {app: productpage}}
  accessLogging:
  - disabled: false
    filter: {expression: "response.code >= 400"}
YAML
write_a() { # extra sed expression for the Telemetry documents
    cat >"$T/a.yaml" <<YAML
apiVersion: outrider.io/v1alpha1
kind: Proxy
metadata: {name: productpage-v1, namespace: shop, labels: {app: productpage, version: v1}}
spec:
  rootNamespace: mesh-root
  outbound: {listen: 127.0.0.1:0}
  admin: {listen: 127.0.0.1:0}
  telemetry: {otlpEndpoint: $OTLP_URL, samplingPercent: 0, flushInterval: 200ms}
  workers: 2
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews}
spec:
  hosts: [reviews]
  ports: [{number: 9080, name: http}]
  resolution: STATIC
  endpoints:
  - {address: 127.0.0.1, ports: {http: $B_IN}, labels: {app: reviews, version: v1}}
YAML
    sed -e "${1:-}" "$T/a-docs.yaml" >>"$T/a.yaml"
}
write_a

# --check: valid, with the warning about the second namespace-wide document
"$BIN" --config "$T/a.yaml" --check >"$T/check.out" 2>"$T/check.err" ||
    fail "--check of a.yaml: $(cat "$T/check.out" "$T/check.err")"
grep -q "a.yaml:[0-9]*:[0-9]*: Telemetry shop-wide-too: .*not used: Telemetry shop-wide" "$T/check.err" ||
    fail "no warning about two namespace-wide Telemetry documents: $(cat "$T/check.err")"

start_proxy b "$T/b.yaml"
B_ADMIN=$PROXY_ADMIN
OUTRIDER_TEST_POD=pod-7 start_proxy a "$T/a.yaml"
A_PID=$PROXY_PID
A_LOG=$PROXY_LOG
A_OUT=$PROXY_OUT
A_ADMIN=$PROXY_ADMIN

# ---- /config_dump: the effective telemetry and where it came from ----
dump=$(curl -sS --max-time 20 "http://127.0.0.1:$A_ADMIN/config_dump")
assert_eq "rootNamespace:mesh-root/mesh-default namespace:shop/shop-wide workload:shop/productpage-logs" \
    "$(jq -r '[.effectiveTelemetry.appliedFrom[] | "\(.level):\(.namespace)/\(.name)"] | join(" ")' <<<"$dump")" \
    "Telemetry documents applied to A"
assert_eq REMOVE "$(jq -r '.effectiveTelemetry.client.metrics.REQUEST_COUNT.tagOverrides.response_code.operation' <<<"$dump")" \
    "client REQUEST_COUNT removes response_code"
assert_eq null "$(jq -r '.effectiveTelemetry.server.metrics.REQUEST_COUNT.tagOverrides.response_code' <<<"$dump")" \
    "server REQUEST_COUNT keeps response_code"
assert_eq REMOVE "$(jq -r '.effectiveTelemetry.server.metrics.TCP_SENT_BYTES.tagOverrides.source_principal.operation' <<<"$dump")" \
    "the root's REMOVE reaches every metric"
assert_eq true "$(jq -r '.effectiveTelemetry.client.metrics.REQUEST_SIZE.disabled' <<<"$dump")" "REQUEST_SIZE disabled"
assert_eq "100 Telemetry" "$(jq -r '.effectiveTelemetry.client.tracing | "\(.randomSamplingPercentage) \(.samplingFrom)"' <<<"$dump")" \
    "client sampling from the namespace document"
assert_eq "0 Telemetry" "$(jq -r '.effectiveTelemetry.server.tracing | "\(.randomSamplingPercentage) \(.samplingFrom)"' <<<"$dump")" \
    "server sampling from the root document"
assert_eq "true response.code >= 400" \
    "$(jq -r '.effectiveTelemetry.client.accessLogging | "\(.enabled) \(.filter)"' <<<"$dump")" \
    "A's access log: the workload document re-enables it with a filter"

# ---- traffic: 6 x 200 (3 with x-user: alice), 2 x 404, 2 x 500 (not retried) ----
for i in 1 2 3; do
    assert_eq 200 "$(http_status GET "http://127.0.0.1:$A_OUT/" -H 'Host: reviews:9080' -H 'x-user: alice')" "200 #$i"
    assert_eq 200 "$(http_status GET "http://127.0.0.1:$A_OUT/" -H 'Host: reviews:9080')" "200 (no user) #$i"
done
for i in 1 2; do
    assert_eq 404 "$(http_status GET "http://127.0.0.1:$A_OUT/status/404" -H 'Host: reviews:9080')" "404 #$i"
    assert_eq 500 "$(http_status GET "http://127.0.0.1:$A_OUT/status/500" -H 'Host: reviews:9080' -H 'x-user: bøb 東京')" "500 #$i"
done

# ---- metrics at the collector ----
sum_of() { metric_values "$T/metrics.txt" "$@" | awk '{ s += $1 } END { printf "%d\n", s }'; }
scrape() { curl -sS --max-time 20 "$ZIPKIN_URL/metrics" >"$T/metrics.txt"; }
counted() {
    scrape
    [[ $(sum_of istio_requests_total reporter=source) == 10 && $(sum_of istio_requests_total reporter=destination) == 10 ]]
}
wait_until -n 150 -i 0.1 counted ||
    fail "the collector never counted 10 requests per side: $(grep '^istio_requests_total' "$T/metrics.txt")"
src_lines=$(grep '^istio_requests_total{' "$T/metrics.txt" | grep 'reporter="source"')
note "client-side istio_requests_total series: $(wc -l <<<"$src_lines")"
grep -q 'response_code=' <<<"$src_lines" && fail "response_code was removed on the client side: $src_lines"
grep -q '_principal=' <<<"$src_lines" && fail "principals were removed: $src_lines"
# without response_code the client side is one series per x_user value: alice, 'bøb 東京' (UTF-8 in a header) and unknown
assert_eq 3 "$(wc -l <<<"$src_lines")" "client-side series after removing response_code (one per x_user)"
assert_eq 3 "$(sum_of istio_requests_total reporter=source x_user=alice request_host=reviews:9080)" "x_user=alice"
assert_eq 2 "$(sum_of istio_requests_total reporter=source 'x_user=bøb 東京')" "x_user=bøb 東京"
assert_eq 5 "$(sum_of istio_requests_total reporter=source x_user=unknown)" "x_user=unknown (header absent)"
# the histogram of the same requests keeps its codes and has no x_user
assert_eq 2 "$(sum_of istio_request_duration_milliseconds_count reporter=source response_code=500)" \
    "duration histogram keeps response_code"
grep '^istio_request_duration_milliseconds_count{' "$T/metrics.txt" | grep 'reporter="source"' | grep -q x_user &&
    fail "x_user leaked into the duration histogram"
[[ -z $(metric_values "$T/metrics.txt" istio_request_bytes_count reporter=source) ]] ||
    fail "REQUEST_SIZE is disabled yet exported: $(grep '^istio_request_bytes_count' "$T/metrics.txt")"
assert_eq 10 "$(sum_of istio_request_bytes_count reporter=destination)" "B (no metric overrides) still sends REQUEST_SIZE"
# B's server side: its root document has no metric overrides, so principals and codes stay
assert_eq 2 "$(sum_of istio_requests_total reporter=destination response_code=404 source_principal=unknown)" \
    "B's series keep response_code and principals"

# ---- traces: the client side sampled at 100%, the server side at 0% (but it follows the client's decision) ----
spans_ready() {
    curl -sS --max-time 20 "$ZIPKIN_URL/api/v2/traces?serviceName=productpage.shop&limit=100" >"$T/traces.json"
    [[ $(jq '[.[][] | select(.kind == "CLIENT")] | length' "$T/traces.json") == 10 ]]
}
wait_until -n 150 -i 0.1 spans_ready ||
    fail "expected 10 CLIENT spans from A: $(head -c 1500 "$T/traces.json")"
assert_eq 10 "$(jq '[.[][] | select(.kind == "CLIENT" and .tags.team == "payments" and .tags.pod == "pod-7")] | length' "$T/traces.json")" \
    "spans with the literal and environment custom tags"
assert_eq 5 "$(jq '[.[][] | select(.kind == "CLIENT" and .tags.user == "anonymous")] | length' "$T/traces.json")" \
    "header custom tag falls back to its default"
assert_eq 3 "$(jq '[.[][] | select(.kind == "CLIENT" and .tags.user == "alice")] | length' "$T/traces.json")" \
    "header custom tag takes the header"
# requests straight to B's inbound, no trace context: B's own decision is the root's 0%
for i in 1 2 3 4 5; do
    assert_eq 200 "$(http_status GET "http://127.0.0.1:$B_IN/?direct=$i" -H 'x-request-id: direct-'"$i")" "direct to B #$i"
done
# ---- access logs: A logs only its 4 errors; B logs nothing ----
logs_ready() { scrape; [[ $(sum_of outrider_collector_log_records_total transport=otlp_http) -ge 4 ]]; }
wait_until -n 150 -i 0.1 logs_ready || fail "no access logs: $(grep log_records "$T/metrics.txt")"
sleep 1 # one more flush of both proxies: nothing else may arrive
scrape
assert_eq 4 "$(sum_of outrider_collector_log_records_total transport=otlp_http)" \
    "log records: A's 4 errors only (B's logs are disabled, A's 200s filtered out)"
b_server_spans=$(curl -sS "$ZIPKIN_URL/api/v2/traces?serviceName=reviews.shop&limit=100" |
    jq '[.[][] | select(.kind == "SERVER" and (.tags["http.url"] // "" | contains("direct=")))] | length')
assert_eq 0 "$b_server_spans" "B sampled none of its own requests (randomSamplingPercentage 0)"
curl -sS "http://127.0.0.1:$B_ADMIN/config_dump" | jq -e '.effectiveTelemetry.server.accessLogging.enabled == false' >/dev/null ||
    fail "B's config_dump should show access logging off"

# ---- SIGHUP: the namespace document stops removing response_code ----
write_a '/response_code: {operation: REMOVE}/d'
kill -HUP "$A_PID"
wait_until grep -q 'reloaded ' "$A_LOG" || fail "reload not applied: $(tail "$A_LOG")"
curl -sS "http://127.0.0.1:$A_ADMIN/config_dump" |
    jq -e '.effectiveTelemetry.client.metrics.REQUEST_COUNT.tagOverrides | has("response_code") | not' >/dev/null ||
    fail "config_dump after reload still removes response_code"
assert_eq 404 "$(http_status GET "http://127.0.0.1:$A_OUT/status/404" -H 'Host: reviews:9080' -H 'x-user: carol')" "404 after reload"
coded() { scrape; [[ $(sum_of istio_requests_total reporter=source response_code=404 x_user=carol) == 1 ]]; }
wait_until -n 150 -i 0.1 coded ||
    fail "after reload the client side should have response_code again: $(grep '^istio_requests_total{' "$T/metrics.txt")"

# ---- --check: bad documents, each with file:line:col ----
cat >"$T/bad.yaml" <<'YAML'
apiVersion: outrider.io/v1alpha1
kind: Proxy
metadata: {name: pp, namespace: shop}
spec: {}
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: bad}
spec:
  targetRef: {kind: Gateway, name: gw}
  metrics:
  - overrides:
    - match: {metric: REQUEST_COUNTS}
      tagOverrides:
        "9bad": {operation: REMOVE}
        host: {value: "request.hots"}
        code: {operation: REMOVE, value: x}
  accessLogging:
  - filter: {expression: "response.code"}
YAML
RC=0
"$BIN" --config "$T/bad.yaml" --check >"$T/bad.out" 2>&1 || RC=$?
assert_eq 1 "$RC" "--check exit code on bad Telemetry documents"
for want in 'bad.yaml:10:3: Telemetry bad: spec.targetRef: ' \
    'bad.yaml:13:23: Telemetry bad: spec.metrics\[0\].overrides\[0\].match.metric: ' \
    'bad.yaml:15:10: Telemetry bad: spec.metrics\[0\].overrides\[0\].tagOverrides.9bad: .*not a valid label name' \
    'bad.yaml:16:24: Telemetry bad: spec.metrics\[0\].overrides\[0\].tagOverrides.host.value: .*request.hots' \
    'bad.yaml:17:42: Telemetry bad: spec.metrics\[0\].overrides\[0\].tagOverrides.code.value: a value is only for operation UPSERT' \
    'bad.yaml:19:27: Telemetry bad: spec.accessLogging\[0\].filter.expression: .*boolean'; do
    grep -q "$want" "$T/bad.out" || fail "--check output lacks /$want/: $(cat "$T/bad.out")"
done

# ---- the README's example document passes --check ----
{
    printf 'apiVersion: outrider.io/v1alpha1\nkind: Proxy\nmetadata: {name: pp}\nspec: {}\n---\n'
    awk '/^### What is measured/ { on = 1 } on && /^```yaml/ { grab = 1; next } grab && /^```/ { exit } grab' \
        "$OUTRIDER_SRC/README.md"
} >"$T/readme.yaml"
grep -q 'kind: Telemetry' "$T/readme.yaml" || fail "no Telemetry example found in the README"
"$BIN" --config "$T/readme.yaml" --check >"$T/readme.out" 2>&1 || fail "README example: $(cat "$T/readme.out")"

collector_alive
kill -0 "$A_PID" || fail "proxy A died"
note "Telemetry API: all checks passed"
