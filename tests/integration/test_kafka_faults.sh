#!/usr/bin/env bash
# Kafka faults, against librdkafka's mock cluster: a broker down mid-stream loses nothing; with
# every broker down, spans wait in the bounded queue, what does not fit is dropped and counted
# (the drop counter equals what is missing once the brokers are back); /health says DOWN
# meanwhile; Kafka absent at start leaves the collector serving; SIGTERM drains, then counts
# and logs what could not be sent. Ingest answers at once throughout.
. "$(dirname "$0")/../lib.sh"
command -v kcat >/dev/null || fail "kcat is needed (scripts/deps.sh installs it)"

metric() { # name labels -> value (0 when absent)
    curl -fsS "$ZIPKIN_URL/metrics" | awk -v n="$1" -v l="$2" '$1 == n l {print $2; f=1} END {if (!f) print 0}'
}
records() { metric outrider_kafka_records_total "{topic=\"zipkin\",result=\"$1\"}"; }
messages() { metric outrider_kafka_messages_total "{topic=\"zipkin\",result=\"$1\"}"; }
kafka_status() {
    curl -fsS "$ZIPKIN_URL/health" |
        jq -r '.zipkin.details | to_entries[] | select(.key | startswith("KafkaSender")) | .value.status'
}

# send N SEED: one request of N traces of 2 spans each, fresh ids; answered 202 at once
now_us=$(( $(date +%s) * 1000000 ))
send() {
    local n=$1 seed=$2 i body=""
    for ((i = 1; i <= n; i++)); do
        local t
        t=$(printf '%08x%08x' "$seed" "$i")
        body+="${body:+,}{\"traceId\":\"$t\",\"id\":\"00000000000000a1\",\"name\":\"op\",\"timestamp\":$((now_us + i)),\"duration\":5,\"localEndpoint\":{\"serviceName\":\"svc\"}}"
        body+=",{\"traceId\":\"$t\",\"id\":\"00000000000000a2\",\"parentId\":\"00000000000000a1\",\"name\":\"op2\",\"timestamp\":$((now_us + i + 1)),\"duration\":2,\"localEndpoint\":{\"serviceName\":\"svc\"}}"
    done
    assert_eq 202 "$(http_status POST "$ZIPKIN_URL/api/v2/spans" -H 'Content-Type: application/json' -d "[$body]")" \
        "post of $n traces"
}
kafka_is() { [[ $(kafka_status) == "$1" ]]; }
all_delivered() { [[ $(records delivered) == "$(records queued)" ]]; }

start_kafka_mock --topic zipkin:3
start_collector --set kafka.brokers="$KAFKA_BOOTSTRAP" --set kafka.spans.batch=false --set kafka.unhealthyAfter=1s \
    --set kafka.queue.maxMessages=40 --set kafka.producer.linger.ms=1
send 10 1
wait_until -n 400 all_delivered || fail "first 10 traces not delivered"
assert_eq 20 "$(records delivered)" "spans delivered"

# one broker down mid-stream, then back: nothing lost
kafka_mock_cmd "down 2"
send 15 2
kafka_mock_cmd "up 2"
wait_until -n 1200 -i 0.1 all_delivered || fail "after broker 2 came back: queued $(records queued), delivered $(records delivered)"
assert_eq 50 "$(records delivered)" "spans delivered after the broker came back"
assert_eq 0 "$(records failed)" "spans failed"

# every broker down: messages wait, health says DOWN, the queue bound drops the excess
for b in 1 2 3; do kafka_mock_cmd "down $b"; done
send 25 3
wait_until -n 400 -i 0.1 kafka_is DOWN || fail "health did not say DOWN: $(curl -fsS "$ZIPKIN_URL/health")"
assert_eq 0 "$(metric outrider_kafka_up '')" "outrider_kafka_up while brokers are down"
curl -fsS "$ZIPKIN_URL/health" | grep -q 'no broker reachable' || fail "health gives no reason: $(curl -fsS "$ZIPKIN_URL/health")"
assert_eq 25 "$(metric outrider_kafka_queue_messages '')" "messages waiting in the queue"
send 30 4 # 40 fit in the queue: 15 more go in, 15 are dropped
assert_eq 15 "$(messages dropped)" "messages dropped past kafka.queue.maxMessages"
assert_eq 30 "$(records dropped)" "spans dropped past kafka.queue.maxMessages"
# the store still took everything: ingest does not depend on Kafka
assert_eq 2 "$(http_get_json "$ZIPKIN_URL/api/v2/trace/$(printf %08x%08x 4 30)" t | jq length)" "a trace whose message was dropped is stored"

for b in 1 2 3; do kafka_mock_cmd "up $b"; done
wait_until -n 1200 -i 0.1 all_delivered || fail "after the brokers came back: queued $(records queued), delivered $(records delivered)"
wait_until -n 400 -i 0.1 kafka_is UP || fail "health did not come back UP"
sent=$(( 10 + 15 + 25 + 30 ))
n=$(kafka_read zipkin "$T/all")
assert_eq "$(( sent - $(messages dropped) ))" "$n" "messages in Kafka = sent - dropped"
assert_eq "$n" "$(sort -u -k4 "$T/all/index" | wc -l)" "no message twice"
for i in $(seq 1 30); do # the dropped ones are exactly the missing ones: the last 15 of the last request
    t=$(printf '%08x%08x' 4 "$i")
    if (( i <= 15 )); then
        grep -q " $t\$" "$T/all/index" || fail "trace $t was queued but is missing"
    else
        ! grep -q " $t\$" "$T/all/index" || fail "trace $t was counted dropped but is in Kafka"
    fi
done

# SIGTERM while brokers are away: drain for kafka.drainTimeout, then count and log the loss
stop_pid "$COLLECTOR_PID"
start_collector --set kafka.brokers="$KAFKA_BOOTSTRAP" --set kafka.spans.batch=false --set kafka.drainTimeout=500ms --set kafka.producer.linger.ms=1
send 3 5
wait_until -n 400 all_delivered || fail "3 traces not delivered"
for b in 1 2 3; do kafka_mock_cmd "down $b"; done
send 4 6
stop_pid "$COLLECTOR_PID"
assert_eq 0 "$STOP_RC" "collector exit status after a drain that timed out"
grep -q 'kafka: 8 spans not sent to zipkin within kafka.drainTimeout: lost' "$COLLECTOR_LOG" ||
    fail "no loss line in the log: $(grep kafka "$COLLECTOR_LOG")"
for b in 1 2 3; do kafka_mock_cmd "up $b"; done

# Kafka absent at start: the collector serves, and says so
port=$(free_port)
start_collector --set kafka.brokers="127.0.0.1:$port" --set kafka.unhealthyAfter=1s
send 2 7
assert_eq 2 "$(http_get_json "$ZIPKIN_URL/api/v2/trace/0000000700000001" t | jq length)" "stored without Kafka"
wait_until -n 400 -i 0.1 kafka_is DOWN || fail "health did not say DOWN: $(curl -fsS "$ZIPKIN_URL/health")"
assert_eq '"UP"' "$(curl -fsS "$ZIPKIN_URL/health" | jq .status)" "the collector itself stays UP"
assert_eq 0 "$(metric outrider_kafka_up '')" "outrider_kafka_up without brokers"
assert_eq 2 "$(metric outrider_kafka_queue_messages '')" "messages waiting for Kafka"
echo "1 passed, 0 failed"
