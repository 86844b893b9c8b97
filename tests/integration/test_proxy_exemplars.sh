#!/usr/bin/env bash
# Exemplars on the sidecars' istio_request_duration_milliseconds, end to end:
# app (curl) -> A's sidecar (outbound) -> B's sidecar (inbound) -> app B
# (tests/backend.py), both at samplingPercent 100 and exporting to a real
# outrider-collector, whose /metrics is read as OpenMetrics. Checks:
#  - both reporters' duration series carry exemplars, and each one leads to a
#    real trace: its trace_id and span_id are a span the collector's Zipkin
#    API has (reporter="source": A's CLIENT span, "destination": B's SERVER
#    span), its value is that span's duration in ms and lies in the bucket it
#    is written on, its timestamp is the span's end;
#  - a sidecar at samplingPercent 0 sends none (its requests still counted),
#    until a request forces sampling (x-b3-sampled: 1): then that request's
#    trace is the exemplar;
#  - a sidecar at 100% under a Telemetry document with disableSpanReporting
#    reports no span and so no exemplar.
. "$(dirname "$0")/../lib.sh"

start_collector
start_backend app
APP=$BACKEND_PORT
B_IN=$(free_port)

# proxy_yaml NAME APP SAMPLING [EXTRA-SPEC-LINES]: a sidecar whose outbound "reviews" goes to UPSTREAM_PORT
proxy_yaml() {
    cat <<YAML
apiVersion: outrider.io/v1alpha1
kind: Proxy
metadata: {name: $1, namespace: default, labels: {app: $2, version: v1}}
spec:
  outbound: {listen: 127.0.0.1:0}
  admin: {listen: 127.0.0.1:0}
  telemetry: {otlpEndpoint: $OTLP_URL, samplingPercent: $3, flushInterval: 200ms}
${4:-}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews}
spec:
  hosts: [reviews]
  ports: [{number: 9080, name: http}]
  resolution: STATIC
  endpoints:
  - {address: 127.0.0.1, ports: {http: $UPSTREAM_PORT}, labels: {app: reviews, version: v1}}
YAML
}

UPSTREAM_PORT=$APP
proxy_yaml reviews-v1 reviews 100 "  inbound: {listen: 127.0.0.1:$B_IN, forwardTo: 127.0.0.1:$APP}" >"$T/b.yaml"
UPSTREAM_PORT=$B_IN
proxy_yaml productpage-v1 productpage 100 >"$T/a.yaml"
UPSTREAM_PORT=$APP
proxy_yaml details-v1 details 0 >"$T/c.yaml"
{
    proxy_yaml ratings-v1 ratings 100
    cat <<YAML
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: no-spans, namespace: default}
spec:
  tracing:
  - disableSpanReporting: true
YAML
} >"$T/d.yaml"
start_proxy b "$T/b.yaml"
start_proxy a "$T/a.yaml"
A_OUT=$PROXY_OUT
start_proxy c "$T/c.yaml"
C_OUT=$PROXY_OUT
start_proxy d "$T/d.yaml"
D_OUT=$PROXY_OUT

# requests of several durations (ms), so that the exemplars land in several buckets; each flush
# interval (200 ms) of a series sends its latest traced request
DELAYS=(0 3 30 120 0 7 60 250 2 15)
for ms in "${DELAYS[@]}"; do
    assert_eq 200 "$(http_status GET "http://127.0.0.1:$A_OUT/delay/$ms" -H 'Host: reviews')" "A -> B /delay/$ms"
    assert_eq 200 "$(http_status GET "http://127.0.0.1:$C_OUT/delay/$ms" -H 'Host: reviews')" "C /delay/$ms"
    assert_eq 200 "$(http_status GET "http://127.0.0.1:$D_OUT/delay/$ms" -H 'Host: reviews')" "D /delay/$ms"
done
N=${#DELAYS[@]}

OM=$T/metrics.om
fetch_om() {
    curl -sS --max-time 20 -o "$OM" -H 'Accept: application/openmetrics-text; version=1.0.0' "$ZIPKIN_URL/metrics"
}

# count WORKLOAD REPORTER: istio_requests_total of that source workload and reporter (text format)
count() {
    curl -sS --max-time 20 "$ZIPKIN_URL/metrics" | grep '^istio_requests_total{' | grep "source_workload=\"$1\"" |
        grep "reporter=\"$2\"" | awk '{s += $NF} END {print s + 0}'
}
all_counted() {
    [[ $(count productpage-v1 source) == "$N" && $(count productpage-v1 destination) == "$N" &&
        $(count details-v1 source) == "$N" && $(count ratings-v1 source) == "$N" ]]
}
wait_until -n 200 -i 0.1 all_counted ||
    fail "requests not all counted: A $(count productpage-v1 source)/$(count productpage-v1 destination)," \
        "C $(count details-v1 source), D $(count ratings-v1 source) of $N"

# exemplars WORKLOAD: one line per exemplar on that workload's duration buckets (OpenMetrics in $OM):
# "reporter trace_id span_id value timestamp lower_le upper_le"
exemplars() {
    python3 - "$OM" "$1" <<'PY'
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
if not text.endswith("# EOF\n"):
    sys.exit("OpenMetrics text does not end with # EOF")
line_re = re.compile(r'^istio_request_duration_milliseconds_bucket\{(.*)\} (\S+)(?: # \{(.*)\} (\S+) (\S+))?$')
label_re = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
prev = {}
for line in text.splitlines():
    m = line_re.match(line)
    if not m:
        continue
    labels = dict(label_re.findall(m.group(1)))
    if labels.get("source_workload") != sys.argv[2]:
        continue
    key = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
    le = float(labels["le"])
    lower = prev.get(key, float("-inf"))
    prev[key] = le
    if m.group(3) is None:
        continue
    ex = dict(label_re.findall(m.group(3)))
    print(labels["reporter"], ex.get("trace_id", "-"), ex.get("span_id", "-"), m.group(4), m.group(5), lower, le)
PY
}

# ---- A and B at 100%: exemplars on both reporters, each leading to its span ----
both_reporters() {
    fetch_om || return 1
    exemplars productpage-v1 >"$T/ex_a.txt" || return 1
    grep -q '^source ' "$T/ex_a.txt" && grep -q '^destination ' "$T/ex_a.txt"
}
wait_until -n 200 -i 0.1 both_reporters ||
    fail "no exemplars on both reporters' duration series: $(cat "$T/ex_a.txt"; grep -m5 '^istio_request_duration_milliseconds_bucket' "$OM")"
note "exemplars of A->B: $(wc -l <"$T/ex_a.txt") ($(awk '{print $1 "/" $4}' "$T/ex_a.txt" | tr '\n' ' '))"

spans_json() {
    http_get_json "$ZIPKIN_URL/api/v2/traces?serviceName=$1&limit=1000" "traces of $1"
}
# every exemplar's span is at the collector (its export may trail the metrics by a moment)
spans_there() {
    spans_json productpage.default >"$T/spans_a.json" || return 1
    spans_json reviews.default >"$T/spans_b.json" || return 1
    local rep trace span rest
    while read -r rep trace span rest; do
        local f=$T/spans_a.json
        [[ $rep == destination ]] && f=$T/spans_b.json
        jq -e --arg t "$trace" --arg s "$span" '[.[][] | select(.traceId == $t and .id == $s)] | length == 1' "$f" \
            >/dev/null || return 1
    done <"$T/ex_a.txt"
}
wait_until -n 200 -i 0.1 spans_there || fail "an exemplar's span is not at the collector: $(cat "$T/ex_a.txt")"

while read -r rep trace span value ts lower upper; do
    [[ $trace =~ ^[0-9a-f]{32}$ ]] || fail "exemplar trace_id '$trace' is not 32 hex digits"
    [[ $span =~ ^[0-9a-f]{16}$ ]] || fail "exemplar span_id '$span' is not 16 hex digits"
    f=$T/spans_a.json kind=CLIENT
    [[ $rep == destination ]] && f=$T/spans_b.json kind=SERVER
    s=$(jq -c --arg t "$trace" --arg s "$span" '[.[][] | select(.traceId == $t and .id == $s)][0]' "$f")
    assert_eq "$kind" "$(jq -r .kind <<<"$s")" "kind of the span of the reporter=$rep exemplar"
    # the value is in the bucket the exemplar is written on, and is the span's duration (us -> ms)
    awk -v v="$value" -v lo="$lower" -v hi="$upper" 'BEGIN { exit !(v > lo && v <= hi) }' ||
        fail "exemplar value $value is not in its bucket ($lower, $upper]"
    dur=$(jq -r .duration <<<"$s")
    awk -v v="$value" -v d="$dur" 'BEGIN { x = v * 1000 - d; exit !(x >= -1 && x <= 1) }' ||
        fail "exemplar value $value ms is not the span's duration $dur us"
    # its timestamp (s, ms precision) is the span's end
    end_us=$(jq -r '.timestamp + .duration' <<<"$s")
    awk -v ts="$ts" -v e="$end_us" 'BEGIN { x = ts * 1000 - e / 1000; exit !(x >= -2 && x <= 2) }' ||
        fail "exemplar timestamp $ts is not the span's end ($end_us us)"
done <"$T/ex_a.txt"

# OpenMetrics through promtool, when it reads that format (2.x's check metrics reads the text format only
# and stops at the first exemplar: then this is skipped)
if command -v promtool >/dev/null 2>&1; then
    if promtool check metrics <"$OM" >"$T/promtool.out" 2>&1; then
        :
    elif grep -q 'text format parsing error' "$T/promtool.out"; then
        note "skipped: promtool check metrics does not read OpenMetrics ($(head -c 160 "$T/promtool.out"))"
    else
        lint=$(grep -v 'should be "_seconds"\|use base unit\|_total" suffix' "$T/promtool.out" || true)
        [[ -z $lint ]] || fail "promtool check metrics on OpenMetrics: $lint"
    fi
fi

# ---- C at 0%: no exemplar; a request that forces sampling becomes one ----
fetch_om
exemplars details-v1 >"$T/ex_c.txt"
[[ ! -s $T/ex_c.txt ]] || fail "exemplars from the unsampled sidecar: $(cat "$T/ex_c.txt")"
grep -q '^istio_request_duration_milliseconds_bucket{.*source_workload="details-v1"' "$OM" ||
    fail "no duration series of the unsampled sidecar"
FORCED=4bf92f3577b34da6a3ce929d0e0e4736
assert_eq 200 "$(http_status GET "http://127.0.0.1:$C_OUT/delay/4" -H 'Host: reviews' \
    -H "x-b3-traceid: $FORCED" -H 'x-b3-spanid: 00f067aa0ba902b7' -H 'x-b3-sampled: 1')" "C, forced sampling"
forced_exemplar() {
    fetch_om || return 1
    exemplars details-v1 >"$T/ex_c.txt" || return 1
    [[ $(wc -l <"$T/ex_c.txt") == 1 ]] && grep -q "^source $FORCED " "$T/ex_c.txt"
}
wait_until -n 200 -i 0.1 forced_exemplar || fail "the forced request is not C's exemplar: $(cat "$T/ex_c.txt")"
forced_span() {
    spans_json details.default | jq -e --arg t "$FORCED" '[.[][] | select(.traceId == $t)] | length == 1' >/dev/null
}
wait_until -n 200 -i 0.1 forced_span || fail "the forced request's span is not at the collector"

# ---- D at 100% with disableSpanReporting: no span, no exemplar ----
exemplars ratings-v1 >"$T/ex_d.txt"
[[ ! -s $T/ex_d.txt ]] || fail "exemplars although span reporting is disabled: $(cat "$T/ex_d.txt")"
grep -q '^istio_request_duration_milliseconds_bucket{.*source_workload="ratings-v1"' "$OM" ||
    fail "no duration series of the sidecar without spans"
assert_eq 0 "$(spans_json ratings.default | jq '[.[][]] | length')" "spans of the sidecar without span reporting"

collector_alive
note "proxy exemplars: all checks passed"
