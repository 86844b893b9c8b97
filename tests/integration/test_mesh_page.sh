#!/usr/bin/env bash
# The collector's service graph: /api/mesh and the /mesh page.
#
# A small mesh in namespace shop on loopback, as deploy/demo has it: curl ->
# productpage's sidecar -> productpage (scripts/demo_app.py) -> its sidecar ->
# the sidecars of reviews v1 and v2 (80/20 canary) -> the reviews apps; all
# sidecars export to the collector every 200 ms. Besides, a service café (an
# OTLP push of istio_* points for café -> ratings, 8 answered and 1 failed,
# durations with a hand-computed p99 of 24.4 ms) and a traced caller without a
# sidecar (Zipkin spans legacy-web -> café.shop, 1 of 3 failed).
#
# Checks: /api/mesh?window=1h has every node and edge, with the requests,
# errors, p99 and canary split of istio_requests_total and
# istio_request_duration_milliseconds at /metrics (tests/mesh/check_api.py,
# p99 as Prometheus's histogram_quantile); an edge's zipkin link finds its
# traces, in the API and in the Zipkin UI's search; bad windows get 400 and other methods 405; the page's files are
# served with their types and a CSP. Then headless Chromium (playwright-core,
# tests/mesh/mesh_page.mjs): no console or page errors, nodes and edges in the
# SVG and the table with the figures of /api/mesh and /metrics, the window
# picker. The screenshot goes to $MESH_SCREENSHOT (default: the temp dir;
# MESH_SCREENSHOT=$PWD/docs/mesh.png refreshes the one in the docs).
# variants: ns-explicit-w2 (tests/lib.sh: every sidecar with two workers, each counting its share of the calls)
. "$(dirname "$0")/../lib.sh"

command -v jq >/dev/null || fail "jq is needed"
[[ -x ${CHROMIUM:-/usr/bin/chromium} ]] || fail "no Chromium at ${CHROMIUM:-/usr/bin/chromium} (scripts/deps.sh installs it)"
SCREENSHOT=${MESH_SCREENSHOT:-$T/mesh.png}
REQUESTS=100

start_collector

# ---- the mesh: apps on free ports, one sidecar each, in namespace shop ----
PP_APP=$(free_port)
PP_IN=$(free_port)
PP_OUT=$(free_port)
RV1_APP=$(free_port)
RV1_IN=$(free_port)
RV2_APP=$(free_port)
RV2_IN=$(free_port)
start_app() { # name args...
    local name=$1
    shift
    python3 "$OUTRIDER_SRC/scripts/demo_app.py" "$@" >>"$T/app-$name.log" 2>&1 &
    track_pid $!
}
start_app reviews-v1 reviews "$RV1_APP" v1
start_app reviews-v2 reviews "$RV2_APP" v2
start_app productpage productpage "$PP_APP" "127.0.0.1:$PP_OUT"
for port in "$RV1_APP" "$RV2_APP" "$PP_APP"; do
    wait_until -n 200 port_open "$port" || fail "demo app on :$port did not start: $(cat "$T"/app-*.log)"
done

reviews_sidecar() { # version inbound app
    cat <<YAML
apiVersion: outrider.io/v1alpha1
kind: Proxy
metadata: {name: reviews-$1, namespace: shop, labels: {app: reviews, version: $1}}
spec:
  inbound: {listen: 127.0.0.1:$2, forwardTo: 127.0.0.1:$3}
  outbound: {listen: 127.0.0.1:0}
  admin: {listen: 127.0.0.1:0}
  telemetry: {otlpEndpoint: $OTLP_URL, samplingPercent: 100, flushInterval: 200ms}
YAML
}
reviews_sidecar v1 "$RV1_IN" "$RV1_APP" >"$T/reviews-v1.yaml"
reviews_sidecar v2 "$RV2_IN" "$RV2_APP" >"$T/reviews-v2.yaml"
cat >"$T/productpage.yaml" <<YAML
apiVersion: outrider.io/v1alpha1
kind: Proxy
metadata: {name: productpage-v1, namespace: shop, labels: {app: productpage, version: v1}}
spec:
  inbound: {listen: 127.0.0.1:$PP_IN, forwardTo: 127.0.0.1:$PP_APP}
  outbound: {listen: 127.0.0.1:$PP_OUT}
  admin: {listen: 127.0.0.1:0}
  telemetry: {otlpEndpoint: $OTLP_URL, samplingPercent: 100, flushInterval: 200ms}
$(yaml_reviews_v1_v2 "$RV1_IN" "$RV2_IN")
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - name: canary
    route:
    - destination: {host: reviews, subset: v1}
      weight: 80
    - destination: {host: reviews, subset: v2}
      weight: 20
YAML
start_proxy reviews-v1 "$T/reviews-v1.yaml"
start_proxy reviews-v2 "$T/reviews-v2.yaml"
start_proxy productpage "$T/productpage.yaml"

# ---- traffic: REQUESTS calls from outside the mesh to productpage, each calling reviews ----
v1=0 v2=0
for ((i = 0; i < REQUESTS; i++)); do
    out=$(curl -sS --max-time 20 "http://127.0.0.1:$PP_IN/productpage") || fail "request $i through the mesh failed"
    case $out in
        *'"version": "v1"'*) v1=$((v1 + 1)) ;;
        *'"version": "v2"'*) v2=$((v2 + 1)) ;;
        *) fail "request $i: unexpected answer $out" ;;
    esac
done
note "reviews answered v1 $v1 times, v2 $v2 times"
((v1 > 0 && v2 > 0)) || fail "the 80/20 split sent nothing to one version (v1 $v1, v2 $v2)"

# ---- café (an OTLP push, as a sidecar would send it) and a traced caller without a sidecar ----
now_s=$(date +%s)
attrs='{"key":"reporter","value":{"stringValue":"source"}},
 {"key":"source_workload","value":{"stringValue":"café-v1"}},
 {"key":"source_canonical_service","value":{"stringValue":"café"}},
 {"key":"source_app","value":{"stringValue":"café"}},
 {"key":"source_workload_namespace","value":{"stringValue":"shop"}},
 {"key":"destination_service","value":{"stringValue":"ratings.shop.svc.cluster.local"}},
 {"key":"destination_service_name","value":{"stringValue":"ratings"}},
 {"key":"destination_service_namespace","value":{"stringValue":"shop"}},
 {"key":"destination_workload","value":{"stringValue":"ratings-v1"}},
 {"key":"destination_version","value":{"stringValue":"v1"}}'
point() { # response_code count
    printf '{"attributes":[%s,{"key":"response_code","value":{"stringValue":"%s"}}],"startTimeUnixNano":"%s","timeUnixNano":"%s","asInt":"%s"}' \
        "$attrs" "$1" "$((now_s - 5))000000000" "${now_s}000000000" "$2"
}
cat >"$T/cafe.json" <<JSON
{"resourceMetrics":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"café.shop"}}]},
 "scopeMetrics":[{"metrics":[
  {"name":"istio_requests_total","sum":{"aggregationTemporality":1,"isMonotonic":true,"dataPoints":[$(point 200 8),$(point 503 1)]}},
  {"name":"istio_request_duration_milliseconds","unit":"ms","histogram":{"aggregationTemporality":1,"dataPoints":[
   {"attributes":[$attrs,{"key":"response_code","value":{"stringValue":"200"}}],
    "startTimeUnixNano":"$((now_s - 5))000000000","timeUnixNano":"${now_s}000000000","count":"4","sum":31,
    "explicitBounds":[1,5,10,25],"bucketCounts":["0","1","2","1","0"]}]}}]}]}]}
JSON
code=$(http_status POST "$OTLP_URL/v1/metrics" -H 'Content-Type: application/json' --data-binary "@$T/cafe.json")
assert_eq 200 "$code" "OTLP push of café's points ($(cat "$LAST_BODY"))"
now_us=$(($(date +%s%N) / 1000))
spans='['
for t in 1 2 3; do
    err=''
    ((t == 3)) && err=',"tags":{"error":"timeout"}'
    spans+=$(printf '{"traceId":"5af7183fb1d4cf5f5af7183fb1d4cf0%s","id":"6b221d5bc9e6496%s","kind":"CLIENT","name":"get /menu","timestamp":%s,"duration":2000,"localEndpoint":{"serviceName":"legacy-web"},"remoteEndpoint":{"serviceName":"café.shop"}},' "$t" "$t" "$now_us")
    spans+=$(printf '{"traceId":"5af7183fb1d4cf5f5af7183fb1d4cf0%s","parentId":"6b221d5bc9e6496%s","id":"7c332e6cdaf7507%s","kind":"SERVER","name":"get /menu","timestamp":%s,"duration":1500,"localEndpoint":{"serviceName":"café.shop"},"remoteEndpoint":{"serviceName":"legacy-web"}%s}' "$t" "$t" "$t" "$((now_us + 100))" "$err")
    ((t < 3)) && spans+=','
done
spans+=']'
code=$(http_status POST "$ZIPKIN_URL/api/v2/spans" -H 'Content-Type: application/json' --data-binary "$spans")
assert_eq 202 "$code" "Zipkin spans of legacy-web -> café.shop ($(cat "$LAST_BODY"))"

# ---- wait for the telemetry: every request counted by both sides, and the traced calls linked ----
# sum_requests REPORTER DESTINATION_SERVICE_NAME: istio_requests_total at /metrics
sum_requests() {
    curl -sS "$ZIPKIN_URL/metrics" >"$T/m.txt" || return 1
    metric_values "$T/m.txt" istio_requests_total "reporter=$1" "destination_service_name=$2" | awk '{s += $1} END {print s + 0}'
}
all_counted() {
    [[ $(sum_requests source reviews) -ge $REQUESTS && $(sum_requests destination reviews) -ge $REQUESTS &&
        $(sum_requests destination productpage) -ge $REQUESTS && $(sum_requests source ratings) -eq 9 ]]
}
wait_until -n 200 -i 0.1 all_counted ||
    fail "telemetry did not arrive: $(grep '^istio_requests_total' "$T/m.txt" | head -20)"
linked() {
    curl -sS "$ZIPKIN_URL/api/v2/dependencies?endTs=$(($(date +%s%N) / 1000000 + 60000))" |
        jq -e '[.[] | select(.parent == "legacy-web" and .child == "café.shop" and .callCount == 3)] | length == 1'
}
wait_until -n 100 -i 0.1 linked || fail "dependency link legacy-web -> café.shop: $(curl -sS "$ZIPKIN_URL/api/v2/dependencies?endTs=$(($(date +%s) * 1000 + 60000))")"

# ---- /api/mesh against /metrics (the telemetry is all in: both stay put while compared) ----
matches_metrics() {
    curl -sS "$ZIPKIN_URL/metrics" >"$T/metrics.txt" &&
        curl -sS "$ZIPKIN_URL/api/mesh?window=1h" >"$T/api.json" &&
        curl -sS "$ZIPKIN_URL/metrics" >"$T/metrics2.txt" &&
        cmp -s <(grep '^istio_' "$T/metrics.txt") <(grep '^istio_' "$T/metrics2.txt") &&
        python3 "$OUTRIDER_SRC/tests/mesh/check_api.py" "$T/api.json" "$T/metrics.txt" "$T/expected.json" >"$T/check.txt"
}
wait_until -n 50 -i 0.2 matches_metrics || fail "/api/mesh differs from /metrics: $(cat "$T/check.txt"); $(cat "$T/api.json")"
api=$(cat "$T/api.json")
note "/api/mesh: $(jq -c '[(.nodes | length), (.edges | length), .coveredSeconds]' <<<"$api") (nodes, edges, covered s)"

PP=productpage.shop.svc.cluster.local
RV=reviews.shop.svc.cluster.local
CAFE=café.shop.svc.cluster.local
edge() { jq -c --arg s "$1" --arg d "$2" '.edges[] | select(.source == $s and .destination == $d)' <<<"$api"; }
api_node() { jq -c --arg s "$1" '.nodes[] | select(.service == $s)' <<<"$api"; }
assert_eq "5m" "$(curl -sS "$ZIPKIN_URL/api/mesh" | jq -r .window)" "the default window"
assert_eq '1h 3600 false' "$(jq -r '"\(.window) \(.windowSeconds) \(.truncated)"' <<<"$api")" "window and truncation"
assert_eq "$CAFE>ratings.shop.svc.cluster.local legacy-web>$CAFE $PP>$RV unknown>$PP" \
    "$(jq -r '[.edges[] | "\(.source)>\(.destination)"] | join(" ")' <<<"$api")" "edges, sorted"
fail_if_not() { jq -e "$2" <<<"$1" >/dev/null || fail "$3: $1"; }
fail_if_not "$(edge "$PP" "$RV")" ".reporter == \"source\" and .requests == $REQUESTS and .errors == 0 and .successRate == 1 and .p99Ms > 0" \
    "productpage -> reviews, counted once (by productpage's sidecar)"
fail_if_not "$(edge unknown "$PP")" ".reporter == \"destination\" and .requests == $REQUESTS" "curl (outside the mesh) -> productpage"
fail_if_not "$(edge "$CAFE" ratings.shop.svc.cluster.local)" \
    '.requests == 9 and .errors == 1 and (.successRate - 8/9 | fabs) < 1e-5 and .p99Ms == 24.4' "café -> ratings (hand-computed p99 24.4)"
fail_if_not "$(edge legacy-web "$CAFE")" '.reporter == "trace" and .requests == 3 and .errors == 1 and .p99Ms == null' \
    "legacy-web -> café, from the traces"
fail_if_not "$(api_node "$RV")" ".name == \"reviews\" and .namespace == \"shop\" and .requests == $REQUESTS and
    ([.versions[] | \"\(.version)=\(.requests)\"] == [\"v1=$v1\", \"v2=$v2\"]) and
    (.versions[0].share - $v1 / $REQUESTS | fabs) < 1e-5" "reviews' canary split (v1 $v1, v2 $v2)"
fail_if_not "$(api_node "$CAFE")" '.name == "café" and .namespace == "shop" and .kind == "service"' "the node café"
fail_if_not "$(api_node legacy-web)" '.kind == "traced"' "the node legacy-web"
assert_eq 6 "$(jq '.nodes | length' <<<"$api")" "nodes: unknown, productpage, reviews, café, ratings, legacy-web"

# an edge's links find its traces: the API search, and the same search on the Zipkin UI's page
# (mesh.zipkinUi, /zipkin/ by default), whose query zipkin-lens turns into that API call
lens_to_api() { # /zipkin/?serviceName=..&lookback=millis&millis=W&endTs=T&limit=10 -> /api/v2/traces?...
    local q=${1#*\?}
    q=$(sed -E 's/(^|&)lookback=millis(&|$)/\1/; s/(^|&)millis=/\1lookback=/' <<<"$q")
    echo "/api/v2/traces?$q"
}
for pair in "$PP $RV" "legacy-web $CAFE"; do
    read -r s d <<<"$pair"
    link=$(edge "$s" "$d" | jq -r .traces)
    n=$(curl -sS "$ZIPKIN_URL$link" | jq 'length') || fail "traces link $link"
    [[ $n -ge 1 ]] || fail "the traces link of $s -> $d finds no trace: $link"
    ui=$(edge "$s" "$d" | jq -r .zipkin)
    [[ $ui == /zipkin/\?serviceName=* && $ui == *"&lookback=millis&millis=3600000&endTs=$(jq .generatedAtMs <<<"$api")&limit=10" ]] ||
        fail "the Zipkin UI link of $s -> $d: $ui"
    assert_eq "$n" "$(curl -sS "$ZIPKIN_URL$(lens_to_api "$ui")" | jq 'length')" "the Zipkin UI search of $s -> $d, as the UI asks it"
    assert_eq 200 "$(http_status GET "$ZIPKIN_URL$ui")" "the collector's page behind $ui"
    grep -q 'mesh.zipkinUi' "$LAST_BODY" || fail "$ui: the collector's page does not say how to point at a Zipkin UI"
done
assert_eq 3 "$(curl -sS "$ZIPKIN_URL$(edge legacy-web "$CAFE" | jq -r .traces)" | jq 'length')" "traces behind legacy-web -> café"

# ---- parameters, methods, files ----
for w in 0m 5s 2h 61m 5 abc 1.5m -1m 1mm 9999999999s; do
    assert_eq 400 "$(http_status GET "$ZIPKIN_URL/api/mesh?window=$w")" "window=$w"
    grep -q 'window should be' "$LAST_BODY" || fail "window=$w: no reason: $(cat "$LAST_BODY")"
done
for w in 10s 1m 15m 60m 1h; do
    assert_eq 200 "$(http_status GET "$ZIPKIN_URL/api/mesh?window=$w")" "window=$w"
done
assert_eq 405 "$(http_status POST "$ZIPKIN_URL/api/mesh")" "POST /api/mesh"
assert_eq 405 "$(http_status DELETE "$ZIPKIN_URL/mesh")" "DELETE /mesh"
assert_eq 404 "$(http_status GET "$ZIPKIN_URL/mesh/nothing.js")" "an unknown file"
for f in /mesh:text/html /mesh/:text/html /mesh/mesh.js:text/javascript /mesh/mesh.css:text/css /mesh/favicon.svg:image/svg+xml; do
    path=${f%%:*}
    curl -sS -D "$T/h.txt" -o "$T/body" "$ZIPKIN_URL$path" || fail "GET $path"
    grep -qi "^content-type: ${f#*:}" "$T/h.txt" || fail "$path: $(cat "$T/h.txt")"
    grep -qi "^content-security-policy: default-src 'self'" "$T/h.txt" || fail "$path has no CSP: $(cat "$T/h.txt")"
    file=${path#/mesh/}
    [[ $path == /mesh || $path == /mesh/ ]] && file=index.html
    cmp -s "$T/body" "$OUTRIDER_SRC/collector/mesh_page/$file" || fail "$path differs from collector/mesh_page/$file"
done
grep -c '<script' "$OUTRIDER_SRC/collector/mesh_page/index.html" | grep -qx 1 || fail "index.html: one script, by src"
grep -q '<script src=' "$OUTRIDER_SRC/collector/mesh_page/index.html" || fail "index.html: inline script"
collector_alive

# ---- the page in headless Chromium ----
npm_ready "$OUTRIDER_SRC/tests/compat"
node "$OUTRIDER_SRC/tests/mesh/mesh_page.mjs" "$ZIPKIN_URL" "$T/expected.json" "$SCREENSHOT" >"$T/page.log" 2>&1 ||
    fail "the /mesh page: $(cat "$T/page.log")"
cat "$T/page.log" >&2
[[ -s $SCREENSHOT ]] || fail "no screenshot at $SCREENSHOT"
collector_alive

# ---- the sampler's own series: it followed the sidecars' series into rows, within its limits ----
curl -sS "$ZIPKIN_URL/metrics" >"$T/m2.txt"
mval() { awk -v n="$1" '$1 == n {print $2}' "$T/m2.txt"; }
[[ $(mval outrider_mesh_samples_total) -ge 2 ]] || fail "outrider_mesh_samples_total: $(grep outrider_mesh "$T/m2.txt")"
[[ $(mval outrider_mesh_series) -gt 0 && $(mval outrider_mesh_rows) -gt 0 ]] || fail "outrider_mesh_series/rows: $(grep outrider_mesh "$T/m2.txt")"
assert_eq "8192 65536" "$(mval outrider_mesh_rows_limit) $(mval outrider_mesh_series_limit)" "default limits at /metrics"
assert_eq "0 0" "$(mval 'outrider_mesh_dropped_total{what="rows"}') $(mval 'outrider_mesh_dropped_total{what="series"}')" "nothing dropped"
awk '$1 == "outrider_mesh_sample_cpu_seconds_total" && $2 > 0 {ok = 1} END {exit !ok}' "$T/m2.txt" ||
    fail "outrider_mesh_sample_cpu_seconds_total: $(grep outrider_mesh "$T/m2.txt")"

# two viewers of one window before the next sample get one answer, built once
cached_n() { curl -sS "$ZIPKIN_URL/metrics" | awk '$1 == "outrider_mesh_answers_total{how=\"cached\"}" {print $2}'; }
twice_same() {
    local before a b
    before=$(cached_n)
    a=$(curl -sS "$ZIPKIN_URL/api/mesh?window=15m") && b=$(curl -sS "$ZIPKIN_URL/api/mesh?window=15m") || return 1
    # (the sampler may take a sample between the two: then the second is built again)
    [[ $a == "$b" && $(cached_n) -gt $before ]]
}
wait_until -n 5 -i 0.2 twice_same || fail "two requests for one window back to back were both built"

# ---- the graph's limits and the Zipkin UI address are settings ----
bad=$("$OUTRIDER_BIN/outrider-collector" --set mesh.maxEdges=0 --check 2>&1) && fail "mesh.maxEdges=0 accepted"
grep -q 'mesh.maxEdges' <<<"$bad" || fail "mesh.maxEdges=0: $bad"
FIRST_URL=$ZIPKIN_URL
start_collector --set mesh.maxNodes=7 --set mesh.maxEdges=9 --set mesh.maxRows=33 --set mesh.maxSeries=444 \
    --set mesh.zipkinUi=
assert_eq '7 9 33 444' "$(curl -sS "$ZIPKIN_URL/api/mesh" | jq -r '.limits | "\(.maxNodes) \(.maxEdges) \(.maxRows) \(.maxSeries)"')" \
    "limits from the settings"
curl -sS "$ZIPKIN_URL/metrics" >"$T/m3.txt"
assert_eq "33 444" "$(awk '$1 == "outrider_mesh_rows_limit" || $1 == "outrider_mesh_series_limit" {printf "%s%s", s, $2; s = " "}' "$T/m3.txt")" \
    "the limits at /metrics"

# ---- a collector that keeps no store (role query) says so instead of drawing an empty graph ----
STORE_URL=$FIRST_URL
start_collector --set role=query --set "query.peers=${STORE_URL#http://}"
for path in /api/mesh /mesh; do
    assert_eq 404 "$(http_status GET "$ZIPKIN_URL$path")" "$path at role query"
    grep -q 'role query keeps none' "$LAST_BODY" || fail "$path at role query: $(cat "$LAST_BODY")"
done
echo "1 passed, 0 failed"
