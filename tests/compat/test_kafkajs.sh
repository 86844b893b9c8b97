#!/usr/bin/env bash
# Kafka with independent clients: zipkin-js (Zipkin JSON over HTTP) and the OpenTelemetry
# OTLP protobuf exporter send to the collector, which publishes to Kafka (librdkafka's mock
# cluster). kafkajs, a consumer-group member written from the protocol, and kcat read the
# topic back: both see the same messages, one per trace keyed by its id, and the spans in
# them are what the clients sent, field by field (the Zipkin rules for zipkin-js, the
# OpenTelemetry -> Zipkin mapping for OTLP). kafkajs as a producer feeds the collector's
# consumer.
# shellcheck source=../lib.sh
. "$(dirname "$0")/../lib.sh"
HERE=$OUTRIDER_SRC/tests/compat
JQ=(jq -L "$HERE")
command -v kcat >/dev/null || fail "kcat is needed (scripts/deps.sh installs it)"

npm_ready "$HERE"
start_kafka_mock --topic zipkin:3 --topic from-kafkajs:2
# kafkajs decodes gzip by itself (zstd, the default, needs its native @kafkajs/zstd codec)
start_collector --set kafka.brokers="$KAFKA_BOOTSTRAP" --set kafka.spans.batch=false --set kafka.consume.topics=from-kafkajs \
    --set kafka.producer.linger.ms=1 --set kafka.producer.compression.type=gzip

metric() {
    curl -fsS "$ZIPKIN_URL/metrics" | awk -v n="$1" -v l="$2" '$1 == n l {print $2; f=1} END {if (!f) print 0}'
}
delivered() { [[ $(metric outrider_kafka_records_total '{topic="zipkin",result="delivered"}') == "$1" ]]; }

node "$HERE/zipkin_js_client.mjs" "$ZIPKIN_URL" "$T/sent.json" || fail "zipkin-js client failed"
TRACE=$(jq -r .traceId "$T/sent.json")
node "$HERE/otel_otlp_client.mjs" traces "$OTLP_URL" "$T/otlp.json" || fail "OTLP trace client failed"
OTRACE=$(jq -r .traceId "$T/otlp.json")
wait_until -n 600 -i 0.1 delivered 8 ||
    fail "8 spans (3 zipkin-js, 5 OTLP) not delivered: $(metric outrider_kafka_records_total '{topic="zipkin",result="delivered"}')"
N=$(metric outrider_kafka_messages_total '{topic="zipkin",result="delivered"}')

node "$HERE/kafkajs_client.mjs" consume "$KAFKA_BOOTSTRAP" zipkin "$N" "$T/kafkajs.json" || fail "kafkajs consumer failed"
assert_eq "$N" "$(kafka_read zipkin "$T/kcat")" "messages kcat reads"
jq -S '[.[] | {key, value: (.value | fromjson)}] | sort_by(.key, (.value | tostring))' "$T/kafkajs.json" >"$T/a"
for i in $(seq 0 $((N - 1))); do
    jq -n --rawfile k "$T/kcat/$i.key" --slurpfile v "$T/kcat/$i.value" '{key: $k, value: $v[0]}'
done | jq -S -s 'sort_by(.key, (.value | tostring))' >"$T/b"
diff -u "$T/a" "$T/b" >&2 || fail "kafkajs and kcat read different messages"
jq -e 'all(.[]; .key == (.value | fromjson | .[0].traceId) and (.value | fromjson | map(.traceId) | unique | length == 1))' \
    "$T/kafkajs.json" >/dev/null || fail "a message mixes traces or is keyed by something else: $(cat "$T/kafkajs.json")"

# zipkin-js: the spans in Kafka are the spans the client sent, as a Zipkin server stores them
EXPECTED=$("${JQ[@]}" -c 'include "zipkin"; [.posts[].body[] | zipkin_expected] | zipkin_sorted' "$T/sent.json")
GOT=$("${JQ[@]}" -c --arg t "$TRACE" 'include "zipkin"; [.[] | select(.key == $t) | .value | fromjson | .[]] | zipkin_sorted' \
    "$T/kafkajs.json")
assert_json_eq "$EXPECTED" "$GOT" "zipkin-js trace $TRACE as kafkajs read it"

# OTLP: the OpenTelemetry -> Zipkin mapping, checked field by field
jq --arg t "$OTRACE" '[.[] | select(.key == $t) | .value | fromjson | .[]]' "$T/kafkajs.json" >"$T/otrace.json"
assert_eq 5 "$(jq length "$T/otrace.json")" "OTLP spans in Kafka"
node "$HERE/otel_otlp_check.mjs" "$T/otlp.json" "$T/otrace.json" ||
    fail "the OTLP trace in Kafka differs from the OpenTelemetry -> Zipkin mapping (list above)"

# kafkajs as the producer: the collector's consumer stores what it sends
now_us=$(( $(date +%s) * 1000000 ))
for i in 1 2; do
    printf '[{"traceId":"00000000000000000000000000f00d0%d","id":"000000000000000%d","name":"via kafkajs","timestamp":%d,"duration":4,"localEndpoint":{"serviceName":"kafkajs-svc"}}]\n' \
        "$i" "$i" $((now_us + i))
done >"$T/produce.txt"
node "$HERE/kafkajs_client.mjs" produce "$KAFKA_BOOTSTRAP" from-kafkajs "$T/produce.txt" || fail "kafkajs producer failed"
stored() { [[ $(http_status GET "$ZIPKIN_URL/api/v2/trace/00000000000000000000000000f00d02") == 200 ]]; }
wait_until -n 600 -i 0.1 stored || fail "spans kafkajs produced were not consumed"
assert_eq '"via kafkajs"' "$(jq '.[0].name' "$LAST_BODY")" "span produced by kafkajs"
assert_json_eq '["kafkajs-svc"]' "$(http_get_json "$ZIPKIN_URL/api/v2/services" s | jq -c 'map(select(. == "kafkajs-svc"))')" \
    "service of the consumed spans"
echo "1 passed, 0 failed"
