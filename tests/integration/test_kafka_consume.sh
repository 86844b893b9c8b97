#!/usr/bin/env bash
# The collector as a Kafka consumer, against librdkafka's mock cluster: Zipkin JSON written to
# the topic by kcat (as a Zipkin Kafka sender writes it) and the proto3 and OTLP messages another
# collector publishes all end up queryable; a bad message is skipped and counted; two members
# of one group share the partitions and together hold every trace once.
. "$(dirname "$0")/../lib.sh"
command -v kcat >/dev/null || fail "kcat is needed (scripts/deps.sh installs it)"

start_kafka_mock --topic zipkin:4 --topic zipkin-proto3:2 --topic zipkin-otlp:2
metric_of() { # url name labels -> value (0 when absent)
    curl -fsS "$1/metrics" | awk -v n="$2" -v l="$3" '$1 == n l {print $2; f=1} END {if (!f) print 0}'
}
trace_len() { # url trace-id -> number of spans stored (0 when none)
    local code
    code=$(curl -s -o "$T/tr.json" -w '%{http_code}' "$1/api/v2/trace/$2")
    if [[ $code == 200 ]]; then jq length "$T/tr.json"; else echo 0; fi
}
has_spans() { [[ $(trace_len "$1" "$2") == "$3" ]]; }

now_us=$(( $(date +%s) * 1000000 ))
# ---- Zipkin JSON written straight to Kafka ----
for i in 1 2 3; do
    printf '[{"traceId":"%016x","id":"000000000000000%d","name":"from kafka","timestamp":%d,"duration":7,"localEndpoint":{"serviceName":"kafka-reporter"},"tags":{"n":"%d"}}]\n' \
        $((0xabc0 + i)) "$i" $((now_us + i)) "$i"
done >"$T/msgs"
echo 'not a span list' >>"$T/msgs"
kcat -P -b "$KAFKA_BOOTSTRAP" -t zipkin -l "$T/msgs" 2>"$T/kcat.err" || fail "kcat -P: $(cat "$T/kcat.err")"

start_collector --set kafka.brokers="$KAFKA_BOOTSTRAP" --set kafka.consume.topics=zipkin
C1=$ZIPKIN_URL
# the messages went to partitions at random, read in no particular order: wait for all three
three_read() { has_spans "$C1" 000000000000abc1 1 && has_spans "$C1" 000000000000abc2 1 && has_spans "$C1" 000000000000abc3 1; }
wait_until -n 600 -i 0.1 three_read || fail "spans from Kafka not stored"
for i in 1 2; do
    assert_eq 1 "$(trace_len "$C1" "$(printf %016x $((0xabc0 + i)))")" "trace $i read from Kafka"
done
assert_eq '"from kafka"' "$(jq '.[0].name' "$T/tr.json")" "span name"
assert_eq '{"n":"2"}' "$(jq -c '.[0].tags' "$T/tr.json")" "span tags"
bad_counted() { [[ $(metric_of "$C1" zipkin_collector_messages_dropped_total '{transport="kafka"}') == 1 ]]; }
wait_until -n 200 -i 0.1 bad_counted ||
    fail "the bad message is not counted"
assert_eq 3 "$(metric_of "$C1" zipkin_collector_spans_total '{transport="kafka"}')" "spans counted under transport kafka"
assert_eq 4 "$(metric_of "$C1" zipkin_collector_messages_total '{transport="kafka"}')" "messages counted"
grep -q 'message dropped' "$COLLECTOR_LOG" || fail "the bad message is not logged"
# consumed spans are not published again (that would loop): nothing new in the topic
assert_eq 4 "$(kafka_read zipkin "$T/z")" "messages in zipkin after consuming"
stop_pid "$COLLECTOR_PID"

# ---- proto3 and OTLP messages, published by one collector and read by another ----
for enc in proto3 otlp; do
    start_collector --set kafka.brokers="$KAFKA_BOOTSTRAP" --set kafka.spans.topic="zipkin-$enc" \
        --set kafka.spans.encoding="$enc" --set kafka.producer.linger.ms=1
    P=$ZIPKIN_URL
    PPID_=$COLLECTOR_PID
    body="[{\"traceId\":\"5b8efff798038103d269b633813fc60c\",\"id\":\"eee19b7ec3c1b174\",\"kind\":\"SERVER\",\"name\":\"get /$enc\",\"timestamp\":$now_us,\"duration\":1500,\"localEndpoint\":{\"serviceName\":\"édge\",\"ipv4\":\"10.1.2.3\"},\"tags\":{\"http.path\":\"/$enc\"}},{\"traceId\":\"5b8efff798038103d269b633813fc60c\",\"id\":\"eee19b7ec3c1b175\",\"parentId\":\"eee19b7ec3c1b174\",\"kind\":\"CLIENT\",\"name\":\"db\",\"timestamp\":$((now_us + 3)),\"duration\":500,\"localEndpoint\":{\"serviceName\":\"édge\"},\"remoteEndpoint\":{\"serviceName\":\"mysql\"}}]"
    assert_eq 202 "$(http_status POST "$P/api/v2/spans" -H 'Content-Type: application/json' -d "$body")" "post ($enc)"
    curl -fsS "$P/api/v2/trace/5b8efff798038103d269b633813fc60c" | jq -S . >"$T/want.$enc"
    COLLECTOR_LOG=$T/consumer-$enc.log
    start_collector --set kafka.brokers="$KAFKA_BOOTSTRAP" --set kafka.consume.topics="zipkin-$enc" \
        --set kafka.consume.encoding="$([[ $enc == otlp ]] && echo otlp || echo json)" --set kafka.consume.group="g-$enc"
    wait_until -n 600 -i 0.1 has_spans "$ZIPKIN_URL" 5b8efff798038103d269b633813fc60c 2 ||
        fail "$enc: spans not read back"
    curl -fsS "$ZIPKIN_URL/api/v2/trace/5b8efff798038103d269b633813fc60c" | jq -S . >"$T/got.$enc"
    if [[ $enc == proto3 ]]; then # proto3 carries the whole Zipkin model: the trace reads back as it was
        diff -u "$T/want.$enc" "$T/got.$enc" >&2 || fail "proto3: the trace read back differs"
    else # OTLP keeps what it has fields for; compare those
        jq -S '[.[] | {traceId, id, parentId, kind, name, timestamp, duration,
                       svc: .localEndpoint.serviceName, remote: .remoteEndpoint.serviceName}]' "$T/want.$enc" >"$T/w"
        jq -S '[.[] | {traceId, id, parentId, kind, name, timestamp, duration,
                       svc: .localEndpoint.serviceName, remote: .remoteEndpoint.serviceName}]' "$T/got.$enc" >"$T/g"
        diff -u "$T/w" "$T/g" >&2 || fail "otlp: the trace read back differs"
        assert_eq '{"http.path":"/otlp"}' "$(jq -c '.[] | select(.name == "get /otlp") | .tags' "$T/got.$enc")" "otlp tags"
    fi
    stop_pid "$COLLECTOR_PID"
    stop_pid "$PPID_"
    COLLECTOR_LOG=$T/collector.log
done

# ---- two members of one group share the partitions and hold every trace once ----
body=""
for i in $(seq 1 40); do
    body+="${body:+,}{\"traceId\":\"$(printf '%016x' $((0x7000 + i)))\",\"id\":\"00000000000000a1\",\"name\":\"op\",\"timestamp\":$((now_us + i)),\"duration\":3,\"localEndpoint\":{\"serviceName\":\"grp\"}}"
done
start_collector --set kafka.brokers="$KAFKA_BOOTSTRAP" --set kafka.spans.topic=zipkin --set kafka.producer.linger.ms=1
assert_eq 202 "$(http_status POST "$ZIPKIN_URL/api/v2/spans" -H 'Content-Type: application/json' -d "[$body]")" "post 40"
stop_pid "$COLLECTOR_PID" # flushes
COLLECTOR_LOG=$T/m1.log
# short sessions and heartbeats: a rebalance that waits for a member (the mock coordinator waits up to the
# session timeout, 45 s by default) converges in seconds even when CI's other tests load the 2 cores
member() {
    start_collector --set kafka.brokers="$KAFKA_BOOTSTRAP" --set kafka.consume.topics=zipkin --set kafka.consume.group=shared \
        --set kafka.consumer.session.timeout.ms=6000 --set kafka.consumer.heartbeat.interval.ms=500
}
member
M1=$ZIPKIN_URL
COLLECTOR_LOG=$T/m2.log
member
M2=$ZIPKIN_URL
group_holds_all() { # every one of the 40 traces is in at least one member
    local i id
    for i in $(seq 1 40); do
        id=$(printf '%016x' $((0x7000 + i)))
        [[ $(trace_len "$M1" "$id") -ge 1 || $(trace_len "$M2" "$id") -ge 1 ]] || return 1
    done
}
# a member that got partitions before the other joined may have read some twice: count traces, not spans
wait_until -n 600 -i 0.1 group_holds_all ||
    fail "the group did not read every trace: $(grep -h 'kafka consumer' "$T/m1.log" "$T/m2.log")"
both=0
for i in $(seq 1 40); do
    id=$(printf '%016x' $((0x7000 + i)))
    a=$(trace_len "$M1" "$id") b=$(trace_len "$M2" "$id")
    if (( a > 0 && b > 0 )); then both=$((both + 1)); fi
done
grep -q 'assigned' "$T/m1.log" || fail "member 1 got no partitions"
grep -q 'assigned' "$T/m2.log" || fail "member 2 got no partitions"
note "traces read by both members during the first rebalance: $both"
echo "1 passed, 0 failed"
