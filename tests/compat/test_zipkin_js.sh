#!/usr/bin/env bash
# zipkin-js (tracer + zipkin-transport-http HttpLogger, JSON_V2) against the
# collector's Zipkin port: the client posts a CLIENT span, the shared SERVER
# span that joins it and a local span; every query endpoint must then return
# exactly what the client sent, as a Zipkin server would store it.
# shellcheck source=../lib.sh
. "$(dirname "$0")/../lib.sh"
HERE=$OUTRIDER_SRC/tests/compat
JQ=(jq -L "$HERE")

npm_ready "$HERE"
start_collector

node "$HERE/zipkin_js_client.mjs" "$ZIPKIN_URL" "$T/sent.json" || fail "zipkin-js client failed"
TRACE=$(jq -r .traceId "$T/sent.json")
[[ $TRACE =~ ^[0-9a-f]{32}$ ]] || fail "client reported no 128-bit trace id: $TRACE"
jq -e '.posts | length > 0 and all(.status == 202)' "$T/sent.json" >/dev/null ||
    fail "POST /api/v2/spans did not answer 202 to every batch: $(jq -c '[.posts[] | {status, response}]' "$T/sent.json")"

EXPECTED=$("${JQ[@]}" -c 'include "zipkin"; [.posts[].body[] | zipkin_expected] | zipkin_sorted' "$T/sent.json")
assert_eq 3 "$(jq length <<<"$EXPECTED")" "spans the client sent"

trace_has_3() {
    [[ $(http_status GET "$ZIPKIN_URL/api/v2/trace/$TRACE") == 200 ]] && [[ $(jq length "$LAST_BODY") == 3 ]]
}
wait_until -n 200 -i 0.05 trace_has_3 ||
    fail "GET /api/v2/trace/$TRACE never returned 3 spans; last: HTTP $(http_status GET "$ZIPKIN_URL/api/v2/trace/$TRACE") $(head -c 2000 "$LAST_BODY")"

# /api/v2/trace/{id}: field by field
GOT=$(http_get_json "$ZIPKIN_URL/api/v2/trace/$TRACE" "trace by id" | "${JQ[@]}" -c 'include "zipkin"; zipkin_sorted')
assert_json_eq "$EXPECTED" "$GOT" "GET /api/v2/trace/$TRACE"

# the same under the UI mount; an unknown id is a 404
GOT=$(http_get_json "$ZIPKIN_URL/zipkin/api/v2/trace/$TRACE" "trace by id under /zipkin" | "${JQ[@]}" -c 'include "zipkin"; zipkin_sorted')
assert_json_eq "$EXPECTED" "$GOT" "GET /zipkin/api/v2/trace/$TRACE"
assert_eq 404 "$(http_status GET "$ZIPKIN_URL/api/v2/trace/00000000000000000000000000abcdef")" "GET unknown trace id"

# /api/v2/services, /spans, /remoteServices
assert_json_eq '["backend","frontend"]' "$(http_get_json "$ZIPKIN_URL/api/v2/services" services)" "GET /api/v2/services"
assert_json_eq '["compute-price","post"]' \
    "$(http_get_json "$ZIPKIN_URL/api/v2/spans?serviceName=backend" "span names")" "GET /api/v2/spans?serviceName=backend"
assert_json_eq '["post"]' \
    "$(http_get_json "$ZIPKIN_URL/api/v2/spans?serviceName=frontend" "span names")" "GET /api/v2/spans?serviceName=frontend"
assert_json_eq '["backend"]' \
    "$(http_get_json "$ZIPKIN_URL/api/v2/remoteServices?serviceName=frontend" "remote services")" \
    "GET /api/v2/remoteServices?serviceName=frontend"

# /api/v2/traces with annotationQuery (tag key=value, tag key, annotation value)
traces_query() { # WHAT curl-args...: the traces found, each trace's spans sorted
    local what=$1
    shift
    http_get_json "$ZIPKIN_URL/api/v2/traces" "$what" -G "$@" | "${JQ[@]}" -c 'include "zipkin"; map(zipkin_sorted)'
}
GOT=$(traces_query "traces by tag" --data-urlencode serviceName=backend \
    --data-urlencode 'annotationQuery=user.tier=Gold and price.currency and cache miss')
assert_json_eq "[$EXPECTED]" "$GOT" "GET /api/v2/traces?serviceName=backend&annotationQuery=user.tier=Gold and price.currency and cache miss"
GOT=$(traces_query "traces by span name" --data-urlencode serviceName=frontend --data-urlencode spanName=post \
    --data-urlencode minDuration=1 --data-urlencode limit=10)
assert_json_eq "[$EXPECTED]" "$GOT" "GET /api/v2/traces?serviceName=frontend&spanName=post&minDuration=1"
GOT=$(traces_query "traces, no match" --data-urlencode serviceName=backend --data-urlencode 'annotationQuery=user.tier=Silver')
assert_json_eq '[]' "$GOT" "GET /api/v2/traces?serviceName=backend&annotationQuery=user.tier=Silver"
MAXD=$(jq '[.[].duration] | max' <<<"$EXPECTED")
GOT=$(traces_query "traces above every duration" --data-urlencode serviceName=frontend --data-urlencode "minDuration=$((MAXD + 1))")
assert_json_eq '[]' "$GOT" "GET /api/v2/traces?serviceName=frontend&minDuration=$((MAXD + 1))"

# /api/v2/traceMany: only the traces found; like Zipkin, one id alone is a 400
UNKNOWN=00000000000000000000000000abcdef
GOT=$(http_get_json "$ZIPKIN_URL/api/v2/traceMany?traceIds=$TRACE,$UNKNOWN" traceMany | "${JQ[@]}" -c 'include "zipkin"; map(zipkin_sorted)')
assert_json_eq "[$EXPECTED]" "$GOT" "GET /api/v2/traceMany?traceIds=$TRACE,$UNKNOWN"
assert_eq 400 "$(http_status GET "$ZIPKIN_URL/api/v2/traceMany?traceIds=$TRACE")" "GET /api/v2/traceMany with one id"

# /api/v2/dependencies: one frontend -> backend call
END_TS=$(($(date +%s) * 1000 + 60000))
GOT=$(http_get_json "$ZIPKIN_URL/api/v2/dependencies?endTs=$END_TS&lookback=86400000" dependencies |
    jq -c 'map({parent, child, callCount, errorCount: (.errorCount // 0)})')
assert_json_eq '[{"parent":"frontend","child":"backend","callCount":1,"errorCount":0}]' "$GOT" \
    "GET /api/v2/dependencies?endTs=$END_TS&lookback=86400000"

# autocomplete endpoints answer with JSON arrays
http_get_json "$ZIPKIN_URL/api/v2/autocompleteKeys" autocompleteKeys | jq -e 'type == "array"' >/dev/null ||
    fail "autocompleteKeys is not an array: $(cat "$LAST_BODY")"
http_get_json "$ZIPKIN_URL/api/v2/autocompleteValues?key=user.tier" autocompleteValues | jq -e 'type == "array"' >/dev/null ||
    fail "autocompleteValues is not an array: $(cat "$LAST_BODY")"

collector_alive
echo "PASS: zipkin-js trace $TRACE round-trips through the Zipkin API"
