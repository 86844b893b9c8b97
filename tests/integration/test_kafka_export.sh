#!/usr/bin/env bash
# Kafka export against librdkafka's mock cluster (3 brokers, the real protocol), read back
# with kcat: spans sent over Zipkin JSON and OTLP reach the spans topic one message per trace,
# keyed by trace id, in each encoding (json compared field by field with what was sent;
# proto3 and otlp decoded with protoc --decode); log records reach the logs topic; the
# delivery counters in /metrics add up.
. "$(dirname "$0")/../lib.sh"
command -v kcat >/dev/null || fail "kcat is needed (scripts/deps.sh installs it)"
command -v protoc >/dev/null || fail "protoc is needed (scripts/deps.sh installs protobuf-compiler)"
PROTO=$OUTRIDER_SRC/common/proto

start_kafka_mock --topic zipkin:3 --topic batched:4 --topic spans-proto3:2 --topic spans-otlp:2 --topic outrider-access-logs:2

metric() { # name labels -> value (0 when absent)
    curl -fsS "$ZIPKIN_URL/metrics" | awk -v n="$1" -v l="$2" '$1 == n l {print $2; f=1} END {if (!f) print 0}'
}
delivered() { # topic records -> succeeds when that many records of topic were delivered
    [[ $(metric outrider_kafka_records_total "{topic=\"$1\",result=\"delivered\"}") == "$2" ]]
}

now_us=$(( $(date +%s) * 1000000 ))
T1=463ac35c9f6413ad48485a3953bb6124
T2=0000000000000b0b
zipkin_body() {
    cat <<EOF
[{"traceId":"$T1","id":"a2fb4a1d1a96d312","kind":"SERVER","name":"get /api","timestamp":$now_us,"duration":1200,
  "localEndpoint":{"serviceName":"frontend","ipv4":"10.0.0.1","port":8080},"tags":{"http.method":"GET","http.status_code":"200"},
  "annotations":[{"timestamp":$((now_us + 5)),"value":"wr"}]},
 {"traceId":"$T2","id":"0000000000000001","kind":"CLIENT","name":"call","timestamp":$((now_us - 600000000)),"duration":800,
  "localEndpoint":{"serviceName":"émail-sender"},"remoteEndpoint":{"serviceName":"backend","ipv4":"10.0.0.2","port":9080},
  "tags":{"error":"timeout"}},
 {"traceId":"$T1","parentId":"a2fb4a1d1a96d312","id":"b2fb4a1d1a96d312","kind":"CLIENT","name":"call","timestamp":$((now_us + 10)),"duration":800,
  "localEndpoint":{"serviceName":"frontend"},"remoteEndpoint":{"serviceName":"backend"}}]
EOF
}

# ---- json: what a Zipkin server's Kafka collector reads; one message per trace ----
start_collector --set kafka.brokers="$KAFKA_BOOTSTRAP" --set kafka.producer.linger.ms=1 --set kafka.spans.batch=false
zipkin_body >"$T/spans.json"
assert_eq 202 "$(http_status POST "$ZIPKIN_URL/api/v2/spans" -H 'Content-Type: application/json' --data-binary @"$T/spans.json")" \
    "zipkin post"
wait_until -n 400 delivered zipkin 3 || fail "3 spans not delivered: $(curl -fsS "$ZIPKIN_URL/metrics" | grep kafka_records)"
n=$(kafka_read zipkin "$T/json")
assert_eq 2 "$n" "messages in zipkin (one per trace)"
for k in 0 1; do
    key=$(cat "$T/json/$k.key")
    # the message is the trace's spans as sent, in arrival order: compare every field
    jq -S --arg t "$key" '[.[] | select(.traceId == $t)]' \
        "$T/spans.json" >"$T/want.$k"
    jq -S . "$T/json/$k.value" >"$T/got.$k"
    if ! diff -u "$T/want.$k" "$T/got.$k" >&2; then
        fail "message $k (key $key) differs from the spans sent"
    fi
done
sort <(cut -d' ' -f4 "$T/json/index") >"$T/keys"
assert_eq "$(printf '%s\n%s' "$T1" "$T2" | sort)" "$(cat "$T/keys")" "message keys are the trace ids"
# Kafka's default partitioner (murmur2 of the key, as the Java client): computed here independently
partition_of() { # key partitions -> partition
    python3 -c '
import sys
def murmur2(b):
    m, h = 0x5bd1e995, (0x9747b28c ^ len(b)) & 0xffffffff
    i = 0
    while i + 4 <= len(b):
        k = int.from_bytes(b[i:i + 4], "little")
        k = (k * m) & 0xffffffff; k ^= k >> 24; k = (k * m) & 0xffffffff
        h = (h * m) & 0xffffffff; h ^= k; i += 4
    r = len(b) - i
    if r == 3: h ^= b[i + 2] << 16
    if r >= 2: h ^= b[i + 1] << 8
    if r >= 1: h ^= b[i]; h = (h * m) & 0xffffffff
    h ^= h >> 13; h = (h * m) & 0xffffffff; h ^= h >> 15
    return h
print((murmur2(sys.argv[1].encode()) & 0x7fffffff) % int(sys.argv[2]))' "$1" "$2"
}
while read -r k part off key; do
    assert_eq "$(partition_of "$key" 3)" "$part" "partition of the message keyed $key"
done <"$T/json/index"

# OTLP spans go the same way: one trace, two spans, one message
otlp_trace=5b8efff798038103d269b633813fc60c
cat >"$T/otlp.json" <<EOF
{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"checkout"}}]},
 "scopeSpans":[{"spans":[
  {"traceId":"$otlp_trace","spanId":"eee19b7ec3c1b174","name":"POST /pay","kind":2,
   "startTimeUnixNano":"$((now_us * 1000))","endTimeUnixNano":"$((now_us * 1000 + 3000000))",
   "attributes":[{"key":"http.method","value":{"stringValue":"POST"}}]},
  {"traceId":"$otlp_trace","spanId":"eee19b7ec3c1b175","parentSpanId":"eee19b7ec3c1b174","name":"db","kind":3,
   "startTimeUnixNano":"$((now_us * 1000 + 1000))","endTimeUnixNano":"$((now_us * 1000 + 2000000))"}]}]}]}
EOF
assert_eq 200 "$(http_status POST "$OTLP_URL/v1/traces" -H 'Content-Type: application/json' --data-binary @"$T/otlp.json")" \
    "otlp post"
wait_until -n 400 delivered zipkin 5 || fail "OTLP spans not delivered"
n=$(kafka_read zipkin "$T/json2")
assert_eq 3 "$n" "messages after the OTLP trace"
k=$(awk -v t="$otlp_trace" '$4 == t {print $1}' "$T/json2/index")
[[ -n $k ]] || fail "no message keyed $otlp_trace: $(cat "$T/json2/index")"
assert_eq '["post /pay","db"]' "$(jq -c '[.[].name]' "$T/json2/$k.value")" "OTLP spans in one message, in order"
assert_eq '"checkout"' "$(jq -c '.[0].localEndpoint.serviceName' "$T/json2/$k.value")" "service of the OTLP span"
assert_eq 3000 "$(jq '.[0].duration' "$T/json2/$k.value")" "duration of the OTLP span"

# the counters add up: queued = delivered, nothing failed or dropped
assert_eq 5 "$(metric outrider_kafka_records_total '{topic="zipkin",result="queued"}')" "records queued"
assert_eq 3 "$(metric outrider_kafka_messages_total '{topic="zipkin",result="delivered"}')" "messages delivered"
assert_eq 0 "$(metric outrider_kafka_messages_total '{topic="zipkin",result="failed"}')" "messages failed"
assert_eq 1 "$(metric outrider_kafka_up '')" "kafka up"
assert_eq 3 "$(metric outrider_kafka_produce_latency_seconds_count '{topic="zipkin"}')" "produce latencies observed"
curl -fsS "$ZIPKIN_URL/health" | jq -e '.zipkin.details | to_entries[] | select(.key | startswith("KafkaSender")) |
    .value.status == "UP"' >/dev/null || fail "health: $(curl -fsS "$ZIPKIN_URL/health")"

# log records: one JSON object each, the access-log fields typed as Envoy writes them
cat >"$T/logs.json" <<EOF
{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"reviews"}}]},
 "scopeLogs":[{"scope":{"name":"outrider"},"logRecords":[
  {"timeUnixNano":"1764968400123000000","severityText":"INFO","body":{"stringValue":"[2025-12-05T21:00:00.123Z] \"GET /r\" 200"},
   "traceId":"$otlp_trace","spanId":"eee19b7ec3c1b174",
   "attributes":[{"key":"method","value":{"stringValue":"GET"}},{"key":"path","value":{"stringValue":"/r?ü=1"}},
     {"key":"response_code","value":{"intValue":"200"}},{"key":"response_flags","value":{"stringValue":"-"}},
     {"key":"duration","value":{"intValue":"12"}},{"key":"bytes_sent","value":{"intValue":"512"}},
     {"key":"upstream_host","value":{"stringValue":"127.0.0.1:9080"}}]},
  {"timeUnixNano":"1764968400200000000","body":{"stringValue":"plain line"}}]}]}]}
EOF
assert_eq 200 "$(http_status POST "$OTLP_URL/v1/logs" -H 'Content-Type: application/json' --data-binary @"$T/logs.json")" \
    "logs post"
wait_until -n 400 delivered outrider-access-logs 2 || fail "log records not delivered"
n=$(kafka_read outrider-access-logs "$T/logs")
assert_eq 2 "$n" "one message per log record"
k=$(awk -v t="$otlp_trace" '$4 == t {print $1}' "$T/logs/index")
[[ -n $k ]] || fail "access log not keyed by its trace id: $(cat "$T/logs/index")"
assert_json_eq "$(jq -S . "$T/logs/$k.value")" "$(jq -S -n --arg t "$otlp_trace" '{start_time:"2025-12-05T21:00:00.123Z",
    trace_id:$t, span_id:"eee19b7ec3c1b174", service:"reviews", severity:"INFO", method:"GET", path:"/r?ü=1",
    response_code:200, response_flags:"-", duration:12, bytes_sent:512, upstream_host:"127.0.0.1:9080"}')" \
    "access log record"
k=$(awk '$4 == "" {print $1}' "$T/logs/index")
assert_eq '"plain line"' "$(jq '.message' "$T/logs/$k.value")" "a plain record keeps its body"
stop_pid "$COLLECTOR_PID"

# ---- kafka.spans.batch (the default): the traces of a request that share a partition share a message ----
start_collector --set kafka.brokers="$KAFKA_BOOTSTRAP" --set kafka.producer.linger.ms=1 --set kafka.spans.topic=batched
wait_until -n 400 -i 0.05 grep -q 'kafka: batched has 4 partitions' "$COLLECTOR_LOG" || fail "partitions of batched not learnt"
body=""
for i in $(seq 1 40); do
    for s in 1 2; do
        body+="${body:+,}{\"traceId\":\"$(printf '%016x' $((0x5000 + i)))\",\"id\":\"$(printf '%016x' $((i * 10 + s)))\",\"name\":\"op$s\",\"timestamp\":$((now_us + i)),\"duration\":9,\"localEndpoint\":{\"serviceName\":\"batch-svc\"}}"
    done
done
assert_eq 202 "$(http_status POST "$ZIPKIN_URL/api/v2/spans" -H 'Content-Type: application/json' -d "[$body]")" "post 40 traces"
wait_until -n 400 delivered batched 80 || fail "80 batched spans not delivered"
n=$(kafka_read batched "$T/b")
[[ $n -ge 1 && $n -le 4 ]] || fail "40 traces in 4 partitions should be 1 to 4 messages, got $n"
total=0
while read -r k part off key; do
    ids=$(jq -r '.[].traceId' "$T/b/$k.value" | sort -u)
    grep -qx "$key" <<<"$ids" || fail "message $k is keyed $key, not one of its traces"
    for id in $ids; do
        assert_eq "$part" "$(partition_of "$id" 4)" "trace $id in partition $part"
        assert_eq 2 "$(jq --arg t "$id" '[.[] | select(.traceId == $t)] | length' "$T/b/$k.value")" "spans of trace $id"
    done
    total=$((total + $(wc -l <<<"$ids")))
done <"$T/b/index"
assert_eq 40 "$total" "traces in the batched messages"
stop_pid "$COLLECTOR_PID"

# ---- proto3: Zipkin's ListOfSpans ----
start_collector --set kafka.brokers="$KAFKA_BOOTSTRAP" --set kafka.spans.topic=spans-proto3 \
    --set kafka.spans.encoding=proto3 --set kafka.spans.batch=false
assert_eq 202 "$(http_status POST "$ZIPKIN_URL/api/v2/spans" -H 'Content-Type: application/json' --data-binary @"$T/spans.json")" \
    "zipkin post (proto3)"
wait_until -n 400 delivered spans-proto3 3 || fail "proto3 spans not delivered"
n=$(kafka_read spans-proto3 "$T/p3")
assert_eq 2 "$n" "proto3 messages"
k=$(awk -v t="$T1" '$4 == t {print $1}' "$T/p3/index")
protoc -I "$PROTO" --decode zipkin.proto3.ListOfSpans zipkin/zipkin.proto <"$T/p3/$k.value" >"$T/p3.txt" ||
    fail "protoc cannot decode the proto3 message"
for want in 'name: "get /api"' 'kind: SERVER' "timestamp: $now_us" 'duration: 1200' 'service_name: "frontend"' \
    'port: 8080' 'key: "http.method"' 'value: "GET"' 'value: "wr"' 'name: "call"' 'kind: CLIENT' \
    'service_name: "backend"'; do
    grep -qF "$want" "$T/p3.txt" || fail "proto3 message lacks '$want': $(cat "$T/p3.txt")"
done
assert_eq 2 "$(grep -c '^spans {' "$T/p3.txt")" "spans in the proto3 message"
stop_pid "$COLLECTOR_PID"

# ---- otlp: ExportTraceServiceRequest, as the OpenTelemetry Collector's Kafka receiver reads ----
start_collector --set kafka.brokers="$KAFKA_BOOTSTRAP" --set kafka.spans.topic=spans-otlp \
    --set kafka.spans.encoding=otlp --set kafka.logs.encoding=otlp --set kafka.spans.batch=false
assert_eq 202 "$(http_status POST "$ZIPKIN_URL/api/v2/spans" -H 'Content-Type: application/json' --data-binary @"$T/spans.json")" \
    "zipkin post (otlp)"
wait_until -n 400 delivered spans-otlp 3 || fail "otlp spans not delivered"
n=$(kafka_read spans-otlp "$T/ot")
assert_eq 2 "$n" "otlp messages"
decode_trace() {
    protoc -I "$PROTO" --decode opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest \
        opentelemetry/proto/collector/trace/v1/trace_service.proto <"$1"
}
k=$(awk -v t="$T2" '$4 == t {print $1}' "$T/ot/index")
decode_trace "$T/ot/$k.value" >"$T/ot2.txt" || fail "protoc cannot decode the otlp message"
for want in 'string_value: "\303\251mail-sender"' 'name: "call"' 'kind: SPAN_KIND_CLIENT' \
    "start_time_unix_nano: $(( (now_us - 600000000) * 1000 ))" "end_time_unix_nano: $(( (now_us - 600000000 + 800) * 1000 ))" \
    'key: "peer.service"' 'string_value: "backend"' 'string_value: "10.0.0.2"' 'int_value: 9080' \
    'code: STATUS_CODE_ERROR' 'message: "timeout"'; do
    grep -qF "$want" "$T/ot2.txt" || fail "otlp message lacks '$want': $(cat "$T/ot2.txt")"
done
grep -qF 'trace_id: "\000\000\000\000\000\000\000\000\000\000\000\000\000\000\013\013"' "$T/ot2.txt" ||
    fail "otlp trace id: $(grep trace_id "$T/ot2.txt")"
k=$(awk -v t="$T1" '$4 == t {print $1}' "$T/ot/index")
decode_trace "$T/ot/$k.value" >"$T/ot1.txt"
assert_eq 1 "$(grep -c 'resource_spans {' "$T/ot1.txt")" "one resource for the one service of trace 1"
assert_eq 2 "$(grep -c '^    spans {' "$T/ot1.txt")" "spans of trace 1"
grep -qF 'parent_span_id: "\242\373J\035\032\226\323\022"' "$T/ot1.txt" || fail "parent span id: $(cat "$T/ot1.txt")"
grep -qF 'time_unix_nano: '"$(( (now_us + 5) * 1000 ))" "$T/ot1.txt" || fail "annotation as event: $(cat "$T/ot1.txt")"

# logs as one ExportLogsServiceRequest per ingest request
assert_eq 200 "$(http_status POST "$OTLP_URL/v1/logs" -H 'Content-Type: application/json' --data-binary @"$T/logs.json")" \
    "logs post (otlp)"
wait_until -n 400 delivered outrider-access-logs 2 || fail "otlp logs not delivered"
n=$(kafka_read outrider-access-logs "$T/ol")
assert_eq 3 "$n" "logs topic: two json records before, one otlp message now"
k=$(awk '$4 == "" {k=$1} END {print k}' "$T/ol/index")
for i in $(awk '{print $1}' "$T/ol/index"); do
    protoc -I "$PROTO" --decode opentelemetry.proto.collector.logs.v1.ExportLogsServiceRequest \
        opentelemetry/proto/collector/logs/v1/logs_service.proto <"$T/ol/$i.value" >"$T/ol.txt" 2>/dev/null || continue
    grep -q 'log_records {' "$T/ol.txt" && break
done
assert_eq 2 "$(grep -c 'log_records {' "$T/ol.txt")" "records in the otlp logs message"
for want in 'string_value: "reviews"' 'name: "outrider"' 'time_unix_nano: 1764968400123000000' 'severity_text: "INFO"' \
    'string_value: "plain line"' 'key: "response_code"'; do
    grep -qF "$want" "$T/ol.txt" || fail "otlp logs message lacks '$want': $(cat "$T/ol.txt")"
done
stop_pid "$COLLECTOR_PID"
assert_eq 0 "$STOP_RC" "collector exit status"
echo "1 passed, 0 failed"
