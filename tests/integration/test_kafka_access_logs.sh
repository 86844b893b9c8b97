#!/usr/bin/env bash
# Access logs of live sidecars reach Kafka: app A (curl) -> A's sidecar -> B's sidecar -> app B,
# both sidecars in namespace shop exporting to a collector that publishes to librdkafka's mock
# cluster. outrider-access-logs then holds one JSON record per hop (reporter source and
# destination), keyed by the trace id, with both sides' workload and namespace, the request,
# the status as a number, durations and bytes.
. "$(dirname "$0")/../lib.sh"
command -v kcat >/dev/null || fail "kcat is needed (scripts/deps.sh installs it)"

start_kafka_mock --topic outrider-access-logs:3
start_collector --set kafka.brokers="$KAFKA_BOOTSTRAP" --set kafka.producer.linger.ms=1
start_backend reviews-app
APP_B=$BACKEND_PORT
B_IN=$(free_port)
cat >"$T/b.yaml" <<YAML
apiVersion: outrider.io/v1alpha1
kind: Proxy
metadata: {name: reviews-v1, namespace: shop, labels: {app: reviews, version: v1}}
spec:
  inbound: {listen: 127.0.0.1:$B_IN, forwardTo: 127.0.0.1:$APP_B}
  outbound: {listen: 127.0.0.1:0}
  admin: {listen: 127.0.0.1:0}
  telemetry: {otlpEndpoint: $OTLP_URL, samplingPercent: 100, flushInterval: 100ms}
YAML
cat >"$T/a.yaml" <<YAML
apiVersion: outrider.io/v1alpha1
kind: Proxy
metadata: {name: productpage-v1, namespace: shop, labels: {app: productpage, version: v1}}
spec:
  outbound: {listen: 127.0.0.1:0}
  admin: {listen: 127.0.0.1:0}
  telemetry: {otlpEndpoint: $OTLP_URL, samplingPercent: 100, flushInterval: 100ms}
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
start_proxy b "$T/b.yaml"
start_proxy a "$T/a.yaml"
A_OUT=$PROXY_OUT

code=$(curl -sS --max-time 20 -o "$T/headers.txt" -w '%{http_code}' -H 'Host: reviews:9080' \
    "http://127.0.0.1:$A_OUT/headers?q=%C3%A9t%C3%A9")
assert_eq 200 "$code" "request through both sidecars"
tp=$(awk '$1=="traceparent:" {print $2}' "$T/headers.txt")
[[ $tp =~ ^00-([0-9a-f]{32})- ]] || fail "no traceparent at app B: $(cat "$T/headers.txt")"
TRACE=${BASH_REMATCH[1]}

delivered() {
    [[ $(curl -fsS "$ZIPKIN_URL/metrics" |
        awk '$1 == "outrider_kafka_records_total{topic=\"outrider-access-logs\",result=\"delivered\"}" {print $2}') == 2 ]]
}
wait_until -n 400 -i 0.1 delivered || fail "the two access log records were not delivered: $(curl -fsS "$ZIPKIN_URL/metrics" | grep access-logs)"
assert_eq 2 "$(kafka_read outrider-access-logs "$T/logs")" "access log messages"
for k in 0 1; do
    assert_eq "$TRACE" "$(cat "$T/logs/$k.key")" "message $k keyed by the trace id"
done
src=$(jq -c 'select(.reporter == "source")' "$T/logs/0.value" "$T/logs/1.value")
dst=$(jq -c 'select(.reporter == "destination")' "$T/logs/0.value" "$T/logs/1.value")
[[ -n $src && -n $dst ]] || fail "want one record per reporter: $(cat "$T"/logs/*.value)"
for rec in "$src" "$dst"; do
    assert_json_eq '{"trace_id":"'"$TRACE"'","method":"GET","path":"/headers?q=%C3%A9t%C3%A9","response_code":200,"response_flags":"-","source_workload":"productpage-v1","source_namespace":"shop","destination_workload":"reviews-v1","destination_namespace":"shop"}' \
        "$(jq -c '{trace_id, method, path, response_code, response_flags, source_workload, source_namespace, destination_workload, destination_namespace}' <<<"$rec")" \
        "access log record of reporter $(jq -r .reporter <<<"$rec")"
    jq -e '(.duration | type) == "number" and (.bytes_sent | type) == "number" and .bytes_sent > 0
           and (.start_time | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z$")) and (.span_id | test("^[0-9a-f]{16}$"))' \
        <<<"$rec" >/dev/null || fail "typed fields: $rec"
done
assert_eq reviews:9080 "$(jq -r .authority <<<"$src")" "authority"
assert_eq "127.0.0.1:$B_IN" "$(jq -r .upstream_host <<<"$src")" "upstream host of the source hop"
assert_eq "127.0.0.1:$APP_B" "$(jq -r .upstream_host <<<"$dst")" "upstream host of the destination hop"
assert_eq productpage.shop "$(jq -r .service <<<"$src")" "service of the source record"
echo "1 passed, 0 failed"
