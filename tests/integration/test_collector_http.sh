#!/usr/bin/env bash
# The collector's HTTP surface as a user meets it: bound addresses, Zipkin and OTLP
# ingest answers (202/200, 400 with a reason, 413, 415, 503), compression and bombs,
# the UI paths, /health, /info, the query API's errors, and --check.
. "$(dirname "$0")/../lib.sh"

# --- --check: every error with file:line:col, non-zero exit ---
cat >"$T/bad.yaml" <<'YAML'
zipkin:
  listen: nowhere
store:
  maxSpans: lots
  colour: blue
YAML
if "$OUTRIDER_BIN/outrider-collector" --config "$T/bad.yaml" --check >"$T/check.out" 2>&1; then
    fail "--check accepted a bad file"
fi
grep -q "bad.yaml:2:11: zipkin.listen: expected HOST:PORT" "$T/check.out" || fail "no zipkin.listen error: $(cat "$T/check.out")"
grep -q "bad.yaml:4:13: store.maxSpans: expected a non-negative integer" "$T/check.out" || fail "no maxSpans error: $(cat "$T/check.out")"
grep -q "bad.yaml:5:3: store.colour: unknown setting" "$T/check.out" || fail "no unknown-key error: $(cat "$T/check.out")"
printf 'store: {maxSpans: 5000}\n' >"$T/good.yaml"
"$OUTRIDER_BIN/outrider-collector" --config "$T/good.yaml" --check >/dev/null 2>&1 || fail "--check refused a good file"

start_collector --set limits.maxBodyBytes=64KiB --set limits.maxDecodedBytes=256KiB
collector_alive
grep -q "listening zipkin http://127.0.0.1:" "$COLLECTOR_LOG" || fail "no zipkin listening line"

now_us=$(( $(date +%s%N) / 1000 ))
span() { # traceId id name
    printf '{"traceId":"%s","id":"%s","kind":"SERVER","name":"%s","timestamp":%s,"duration":1000,"localEndpoint":{"serviceName":"Web"}}' "$1" "$2" "$3" "$now_us"
}

# --- Zipkin ingest ---
assert_eq 202 "$(http_status POST "$ZIPKIN_URL/api/v2/spans" -H 'Content-Type: application/json' -d "[$(span 00000000000000000000000000000abc 000000000000000a Home)]")" "zipkin JSON post"
printf '[%s]' "$(span 0000000000000def 000000000000000b gz)" | gzip >"$T/spans.gz"
assert_eq 202 "$(http_status POST "$ZIPKIN_URL/api/v2/spans" -H 'Content-Type: application/json' -H 'Content-Encoding: gzip' --data-binary @"$T/spans.gz")" "gzip post"
# sniffed: no content type
assert_eq 202 "$(http_status POST "$ZIPKIN_URL/api/v2/spans" -H 'Content-Type:' --data-binary "[$(span 0000000000000eee 000000000000000c sniff)]")" "sniffed JSON"
code=$(http_status POST "$ZIPKIN_URL/api/v2/spans" -H 'Content-Type: application/json' -d '[{"traceId":"zz","id":"1"}]')
assert_eq 400 "$code" "bad trace id"
[[ -s $LAST_BODY ]] || fail "400 without a reason"
code=$(http_status POST "$ZIPKIN_URL/api/v2/spans" -H 'Content-Type: application/json' -d '[{"traceId":')
assert_eq 400 "$code" "truncated JSON"
code=$(http_status POST "$ZIPKIN_URL/api/v2/spans" -H 'Content-Type: application/json' -H 'Content-Encoding: gzip' -d 'not gzip')
assert_eq 400 "$code" "bad gzip"
grep -qi "decompress" "$LAST_BODY" || fail "bad gzip reason: $(cat "$LAST_BODY")"
code=$(http_status POST "$ZIPKIN_URL/api/v2/spans" -H 'Content-Type: application/json' -H 'Content-Encoding: br' -d '[]')
assert_eq 415 "$code" "unknown content encoding"

# --- size limits: declared too large, chunked too large, bombs ---
head -c 100000 /dev/zero | tr '\0' ' ' >"$T/big"
code=$(http_status POST "$ZIPKIN_URL/api/v2/spans" -H 'Content-Type: application/json' --data-binary @"$T/big")
assert_eq 413 "$code" "Content-Length over maxBodyBytes"
code=$(http_status POST "$ZIPKIN_URL/api/v2/spans" -H 'Content-Type: application/json' -H 'Transfer-Encoding: chunked' --data-binary @"$T/big")
assert_eq 413 "$code" "chunked body over maxBodyBytes"
head -c 50000000 /dev/zero | gzip -9 >"$T/bomb.gz"
head -c 50000000 /dev/zero | zstd -q -19 -c >"$T/bomb.zst" 2>/dev/null || python3 -c "
import sys; sys.exit(1)" || true
code=$(http_status POST "$ZIPKIN_URL/api/v2/spans" -H 'Content-Type: application/json' -H 'Content-Encoding: gzip' --data-binary @"$T/bomb.gz")
assert_eq 413 "$code" "gzip bomb"
if [[ -s $T/bomb.zst ]]; then
    code=$(http_status POST "$OTLP_URL/v1/traces" -H 'Content-Type: application/x-protobuf' -H 'Content-Encoding: zstd' --data-binary @"$T/bomb.zst")
    assert_eq 413 "$code" "zstd bomb"
fi
rss_kb=$(awk '/VmRSS/ {print $2}' /proc/$COLLECTOR_PID/status)
(( rss_kb < 200000 )) || fail "collector RSS ${rss_kb} KiB after bombs: did it inflate them?"
collector_alive

# --- OTLP ingest ---
otlp_json='{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"Checkout"}}]},"scopeSpans":[{"spans":[
 {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"GET /cart","kind":2,
  "startTimeUnixNano":"'$(( now_us * 1000 ))'","endTimeUnixNano":"'$(( now_us * 1000 + 2500000 ))'",
  "status":{"code":2,"message":"boom"}},
 {"traceId":"00000000000000000000000000000000","spanId":"eee19b7ec3c1b175","name":"bad"}]}]}]}'
code=$(http_status POST "$OTLP_URL/v1/traces" -H 'Content-Type: application/json' -d "$otlp_json")
assert_eq 200 "$code" "OTLP JSON with one bad span"
assert_eq 1 "$(jq -r '.partialSuccess.rejectedSpans | tonumber' "$LAST_BODY")" "partial success count"
code=$(http_status POST "$OTLP_URL/v1/traces" -H 'Content-Type: text/plain' -d 'x')
assert_eq 415 "$code" "OTLP unknown content type"
code=$(http_status POST "$OTLP_URL/v1/traces" -H 'Content-Type: application/x-protobuf' --data-binary $'\x0a\xff\xff\xff\xff\x0f')
assert_eq 400 "$code" "OTLP malformed protobuf"
code=$(http_status GET "$OTLP_URL/v1/traces")
assert_eq 405 "$code" "GET on OTLP path"
code=$(http_status POST "$OTLP_URL/v2/nothing" -H 'Content-Type: application/json' -d '{}')
assert_eq 404 "$code" "unknown OTLP path"

# --- read back, API errors ---
trace=$(http_get_json "$ZIPKIN_URL/api/v2/trace/5b8efff798038103d269b633813fc60c" "otlp trace")
assert_eq checkout "$(jq -r '.[0].localEndpoint.serviceName' <<<"$trace")" "service.name lowercased"
assert_eq 2500 "$(jq -r '.[0].duration' <<<"$trace")" "ns to us"
assert_eq boom "$(jq -r '.[0].tags.error' <<<"$trace")" "status to error tag"
assert_eq SERVER "$(jq -r '.[0].kind' <<<"$trace")" "kind"
http_get_json "$ZIPKIN_URL/zipkin/api/v2/trace/0000000000000abc" "zipkin mount, 16-hex id of a 128-bit trace with zero high" >/dev/null
assert_eq 404 "$(http_status GET "$ZIPKIN_URL/api/v2/trace/00000000000000000000000000000123")" "unknown trace"
grep -q "not found" "$LAST_BODY" || fail "404 body: $(cat "$LAST_BODY")"
assert_eq 400 "$(http_status GET "$ZIPKIN_URL/api/v2/trace/xyz")" "bad trace id in path"
assert_eq 400 "$(http_status GET "$ZIPKIN_URL/api/v2/traceMany?traceIds=0000000000000abc")" "traceMany with one id"
many=$(http_get_json "$ZIPKIN_URL/api/v2/traceMany?traceIds=0000000000000abc,0000000000000def,00000000000000ff" "traceMany")
assert_eq 2 "$(jq length <<<"$many")" "traceMany returns the found traces"
assert_eq 400 "$(http_status GET "$ZIPKIN_URL/api/v2/spans")" "spans without serviceName"
assert_eq 400 "$(http_status GET "$ZIPKIN_URL/api/v2/traces?limit=abc")" "bad limit"
assert_eq 400 "$(http_status GET "$ZIPKIN_URL/api/v2/traces?maxDuration=5")" "maxDuration without minDuration"
assert_eq 400 "$(http_status GET "$ZIPKIN_URL/api/v2/dependencies")" "dependencies without endTs"
services=$(http_get_json "$ZIPKIN_URL/api/v2/services" "services")
assert_eq '["checkout","web"]' "$(jq -c . <<<"$services")" "service names"

# --- UI paths, health, info ---
assert_eq 302 "$(http_status GET "$ZIPKIN_URL/")" "/ redirects"
curl -sS -o /dev/null -w '%{redirect_url}' "$ZIPKIN_URL/zipkin" | grep -q '/zipkin/$' || fail "/zipkin does not redirect to /zipkin/"
http_get_json "$ZIPKIN_URL/zipkin/config.json" "config.json" | jq -e '.searchEnabled == true and .dependency.enabled == true' >/dev/null || fail "config.json fields"
http_get_json "$ZIPKIN_URL/health" "health" | jq -e '.status == "UP"' >/dev/null || fail "health"
http_get_json "$ZIPKIN_URL/info" "info" | jq -e '.zipkin.version' >/dev/null || fail "info"

# --- CORS, as the Zipkin server allows any origin by default ---
curl -sS -D "$T/cors" -o /dev/null -X OPTIONS -H 'Origin: http://ui.example' -H 'Access-Control-Request-Method: POST' "$ZIPKIN_URL/api/v2/spans"
grep -qi '^access-control-allow-origin: \*' "$T/cors" || fail "no CORS on preflight: $(cat "$T/cors")"
grep -qi '^access-control-allow-methods: .*POST' "$T/cors" || fail "preflight without methods: $(cat "$T/cors")"
curl -sS -D "$T/cors" -o /dev/null -H 'Origin: http://ui.example' "$ZIPKIN_URL/api/v2/services"
grep -qi '^access-control-allow-origin: \*' "$T/cors" || fail "no CORS on GET: $(cat "$T/cors")"

# --- counters reflect what happened ---
curl -fsS "$ZIPKIN_URL/metrics" >"$T/metrics.txt"
assert_num_eq 3 "$(metric_values "$T/metrics.txt" zipkin_collector_spans_total transport=http)" "zipkin spans counted"
assert_num_eq 1 "$(metric_values "$T/metrics.txt" zipkin_collector_spans_total transport=otlp_http)" "otlp spans counted"
assert_num_eq 1 "$(metric_values "$T/metrics.txt" zipkin_collector_spans_dropped_total transport=otlp_http)" "otlp rejected span counted"
promtool check metrics <"$T/metrics.txt" >"$T/promtool.out" 2>&1 || true
[[ ! -s $T/promtool.out ]] || fail "promtool check metrics on the collector's own series: $(cat "$T/promtool.out")"
dropped=$(metric_values "$T/metrics.txt" zipkin_collector_messages_dropped_total transport=http)
(( ${dropped%.*} >= 6 )) || fail "zipkin dropped messages: $dropped"
collector_alive

# --- memory guard: above limits.memoryLimit ingest answers 503 + Retry-After, queries still work ---
kill "$COLLECTOR_PID"; wait "$COLLECTOR_PID" 2>/dev/null || true
start_collector --set limits.memoryLimit=16MiB
"$OUTRIDER_BIN/span_load" send --url "$OTLP_URL/v1/traces" --format otlp-proto --requests 100 --connections 1 >/dev/null 2>&1 || true
rss_kb=$(awk '/VmRSS/ {print $2}' /proc/$COLLECTOR_PID/status)
(( rss_kb > 16384 )) || fail "could not push RSS over 16 MiB (at ${rss_kb} KiB)"
sleep 0.2 # the guard re-reads RSS at most every 100 ms
code=$(curl -sS -o "$LAST_BODY" -D "$T/headers" -w '%{http_code}' -X POST "$OTLP_URL/v1/traces" -H 'Content-Type: application/json' -d "$otlp_json")
assert_eq 503 "$code" "OTLP over the memory limit"
grep -qi '^retry-after: [0-9]' "$T/headers" || fail "503 without Retry-After"
http_get_json "$ZIPKIN_URL/api/v2/services" "queries over the memory limit" >/dev/null
curl -fsS "$ZIPKIN_URL/metrics" >"$T/metrics.txt"
(( $(metric_values "$T/metrics.txt" outrider_memory_refusals_total | cut -d. -f1) >= 1 )) || fail "refusal not counted"
echo "1 passed, 0 failed"
