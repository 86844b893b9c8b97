#!/usr/bin/env bash
# @opentelemetry/exporter-zipkin (BasicTracerProvider, service.name resource)
# against the collector's Zipkin port: what the exporter posted must come back
# from the query API as a Zipkin server stores it (names lowercased), and the
# OpenTelemetry -> Zipkin mapping must show through: service.name as
# localEndpoint.serviceName, span kinds, the error tag, events as annotations,
# parent/child links.
# shellcheck source=../lib.sh
. "$(dirname "$0")/../lib.sh"
HERE=$OUTRIDER_SRC/tests/compat
JQ=(jq -L "$HERE")

npm_ready "$HERE"
start_collector

node "$HERE/otel_zipkin_client.mjs" "$ZIPKIN_URL" "$T/sent.json" || fail "exporter-zipkin client failed"
TRACE=$(jq -r .traceId "$T/sent.json")
[[ $TRACE =~ ^[0-9a-f]{32}$ ]] || fail "client reported no trace id: $TRACE"
jq -e '.posts | length > 0 and all(.status == 202 and .path == "/api/v2/spans")' "$T/sent.json" >/dev/null ||
    fail "POST /api/v2/spans did not answer 202 to every batch: $(jq -c '[.posts[] | {path, status, response}]' "$T/sent.json")"

EXPECTED=$("${JQ[@]}" -c 'include "zipkin"; [.posts[].body[] | zipkin_expected] | zipkin_sorted' "$T/sent.json")
assert_eq 5 "$(jq length <<<"$EXPECTED")" "spans the exporter sent"

trace_has_5() {
    [[ $(http_status GET "$ZIPKIN_URL/api/v2/trace/$TRACE") == 200 ]] && [[ $(jq length "$LAST_BODY") == 5 ]]
}
wait_until -n 200 -i 0.05 trace_has_5 ||
    fail "GET /api/v2/trace/$TRACE never returned 5 spans; last: $(head -c 2000 "$LAST_BODY")"

GOT=$(http_get_json "$ZIPKIN_URL/api/v2/trace/$TRACE" "trace by id" | "${JQ[@]}" -c 'include "zipkin"; zipkin_sorted')
assert_json_eq "$EXPECTED" "$GOT" "GET /api/v2/trace/$TRACE (vs. what the exporter sent)"

# the mapping, read from what the collector returned
BYNAME=$(jq -c 'map({key: .name, value: .}) | from_entries' <<<"$GOT")
assert_json_eq '["charge card","compute-tax","consume order","get /checkout","publish order"]' \
    "$(jq -c 'keys' <<<"$BYNAME")" "span names (lowercased)"
assert_json_eq '["checkout-svc"]' "$(jq -c '[.[] | .localEndpoint.serviceName] | unique' <<<"$BYNAME")" \
    "service.name -> localEndpoint.serviceName"
assert_json_eq '{"charge card":"CLIENT","compute-tax":null,"consume order":"CONSUMER","get /checkout":"SERVER","publish order":"PRODUCER"}' \
    "$(jq -c 'map_values(.kind)' <<<"$BYNAME")" "span kinds (INTERNAL has none)"
assert_json_eq '{"charge card":"get /checkout","compute-tax":"get /checkout","consume order":"publish order","get /checkout":null,"publish order":"compute-tax"}' \
    "$(jq -c '. as $m | map_values(.parentId as $p | if $p then ($m | to_entries[] | select(.value.id == $p) | .key) else null end)' <<<"$BYNAME")" \
    "parent/child links"
assert_json_eq '{"error":"card declined","otel.status_code":"ERROR"}' \
    "$(jq -c '."charge card".tags | {error, "otel.status_code"}' <<<"$BYNAME")" "status ERROR -> error tag"
assert_json_eq '{"error":null,"otel.status_code":"OK"}' \
    "$(jq -c '."get /checkout".tags | {error, "otel.status_code"}' <<<"$BYNAME")" "status OK -> no error tag"
assert_json_eq '["retry","gave up"]' "$(jq -c '[."charge card".annotations[].value]' <<<"$BYNAME")" "events -> annotations"

# query API views of the same data
assert_json_eq '["checkout-svc"]' "$(http_get_json "$ZIPKIN_URL/api/v2/services" services)" "GET /api/v2/services"
assert_json_eq '["charge card","compute-tax","consume order","get /checkout","publish order"]' \
    "$(http_get_json "$ZIPKIN_URL/api/v2/spans?serviceName=checkout-svc" "span names")" "GET /api/v2/spans?serviceName=checkout-svc"
GOT=$(http_get_json "$ZIPKIN_URL/api/v2/traces" "traces by error tag" -G --data-urlencode serviceName=checkout-svc \
    --data-urlencode 'annotationQuery=error=card declined' | "${JQ[@]}" -c 'include "zipkin"; map(zipkin_sorted)')
assert_json_eq "[$EXPECTED]" "$GOT" "GET /api/v2/traces?serviceName=checkout-svc&annotationQuery=error=card declined"
GOT=$(http_get_json "$ZIPKIN_URL/api/v2/traces" "traces by span name" -G --data-urlencode serviceName=checkout-svc \
    --data-urlencode 'spanName=charge card' | "${JQ[@]}" -c 'include "zipkin"; map(zipkin_sorted)')
assert_json_eq "[$EXPECTED]" "$GOT" "GET /api/v2/traces?serviceName=checkout-svc&spanName=charge card"
GOT=$(http_get_json "$ZIPKIN_URL/zipkin/api/v2/traces" "traces under /zipkin" -G --data-urlencode serviceName=checkout-svc |
    "${JQ[@]}" -c 'include "zipkin"; map(zipkin_sorted)')
assert_json_eq "[$EXPECTED]" "$GOT" "GET /zipkin/api/v2/traces?serviceName=checkout-svc"

collector_alive
echo "PASS: exporter-zipkin trace $TRACE round-trips through the Zipkin API"
