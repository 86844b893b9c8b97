#!/usr/bin/env bash
# The collector scaled out through Kafka, on librdkafka's mock cluster, against a single collector
# (role all) given the same spans: an ingest member (role ingest, which keeps nothing itself)
# publishes 40 traces; two store members (role store, one group) split the partitions, each
# holding exactly the traces of its partitions; a query member (role query) over both answers
# every trace whole and the services, span names, searches and dependencies as the single
# collector does. When one store member is killed, the other is assigned its partitions,
# replays them from the beginning, and the query member answers every trace again (saying, in
# X-Outrider-Partial, that the dead member did not answer).
. "$(dirname "$0")/../lib.sh"

start_kafka_mock --topic zipkin:4
now_us=$(( $(date +%s) * 1000000 ))
body=""
for i in $(seq 1 40); do
    t=$(printf '%016x' $((0x9000 + i)))
    # timestamps out of order: odd traces later than even ones
    ts=$(( now_us + (i % 2) * 1000000 + i * 10 ))
    body+="${body:+,}{\"traceId\":\"$t\",\"id\":\"00000000000000a1\",\"kind\":\"CLIENT\",\"name\":\"get\",\"timestamp\":$ts,\"duration\":9,\"localEndpoint\":{\"serviceName\":\"web\"},\"remoteEndpoint\":{\"serviceName\":\"api\"}}"
    body+=",{\"traceId\":\"$t\",\"id\":\"00000000000000a2\",\"parentId\":\"00000000000000a1\",\"kind\":\"SERVER\",\"name\":\"get\",\"timestamp\":$((ts + 1)),\"duration\":7,\"localEndpoint\":{\"serviceName\":\"api\"}}"
    if (( i % 5 == 0 )); then # every fifth trace calls a datastore with a non-ASCII name, and fails
        body+=",{\"traceId\":\"$t\",\"id\":\"00000000000000a3\",\"parentId\":\"00000000000000a2\",\"kind\":\"CLIENT\",\"name\":\"query\",\"timestamp\":$((ts + 2)),\"duration\":3,\"localEndpoint\":{\"serviceName\":\"api\"},\"remoteEndpoint\":{\"serviceName\":\"bücher-db\"},\"tags\":{\"error\":\"timeout\"}}"
    fi
done
# the roles say what they need
for bad in "role=ingest|role ingest publishes what it receives to Kafka: set kafka.brokers" \
    "role=store|role store reads its partitions from Kafka: set kafka.brokers"; do
    set +e
    "$OUTRIDER_BIN/outrider-collector" --set "${bad%%|*}" --set zipkin.listen=127.0.0.1:0 --set otlp.listen=127.0.0.1:0 >"$T/bad.log" 2>&1
    rc=$?
    set -e
    [[ $rc != 0 ]] || fail "${bad%%|*} without kafka.brokers started"
    grep -qF "${bad#*|}" "$T/bad.log" || fail "${bad%%|*} without kafka.brokers: no clear error: $(cat "$T/bad.log")"
done

COLLECTOR_LOG=$T/single.log
start_collector
SINGLE=$ZIPKIN_URL
assert_eq 202 "$(http_status POST "$SINGLE/api/v2/spans" -H 'Content-Type: application/json' -d "[$body]")" "post 40 traces to the single collector"

COLLECTOR_LOG=$T/ingest.log
start_collector --set role=ingest --set kafka.brokers="$KAFKA_BOOTSTRAP" --set kafka.producer.linger.ms=1
assert_eq 202 "$(http_status POST "$ZIPKIN_URL/api/v2/spans" -H 'Content-Type: application/json' -d "[$body]")" "post 40 traces"
assert_eq 404 "$(http_status GET "$ZIPKIN_URL/api/v2/trace/$(printf '%016x' $((0x9000 + 1)))")" "a trace at the ingest member, which keeps none"
assert_eq 88 "$(metric_values <(curl -s "$ZIPKIN_URL/metrics") zipkin_collector_spans_total transport=http)" "spans the ingest member accepted"
stop_pid "$COLLECTOR_PID" # flushes to Kafka
grep -q 'kafka: .* lost' "$T/ingest.log" && fail "the ingest collector lost spans: $(grep kafka "$T/ingest.log")"

store_member() { # log -> starts a store member
    COLLECTOR_LOG=$1
    start_collector --set role=store --set kafka.brokers="$KAFKA_BOOTSTRAP" \
        --set kafka.consume.group=stores --set kafka.consumer.session.timeout.ms=6000 --set kafka.consumer.heartbeat.interval.ms=500
}
store_member "$T/m1.log"
M1=$ZIPKIN_URL M1_PID=$COLLECTOR_PID
store_member "$T/m2.log"
M2=$ZIPKIN_URL M2_PID=$COLLECTOR_PID

trace_of() { # url trace -> the trace's spans, sorted by id ("" unless 200)
    [[ $(curl -s -o "$T/h.json" -w '%{http_code}' "$1/api/v2/trace/$2") == 200 ]] && jq -S -c 'sort_by(.id)' "$T/h.json"
}
holds() { # url trace -> 0 when the url answers the whole trace, as the single collector does
    local got
    got=$(trace_of "$1" "$2") || return 1
    [[ $got == "$(trace_of "$SINGLE" "$2")" ]]
}
split_done() { # every trace in exactly one member, both members holding some
    local i t a b n1=0 n2=0
    for i in $(seq 1 40); do
        t=$(printf '%016x' $((0x9000 + i)))
        a=0 b=0
        holds "$M1" "$t" && a=1
        holds "$M2" "$t" && b=1
        (( a + b == 1 )) || return 1
        n1=$((n1 + a)) n2=$((n2 + b))
    done
    (( n1 > 0 && n2 > 0 ))
}
wait_until -n 300 -i 0.2 split_done || fail "the members did not split the traces: $(grep -h 'kafka consumer' "$T/m1.log" "$T/m2.log")"
grep -qE '[1-9][0-9]* traces and [0-9]+ series of partitions now elsewhere dropped' "$T/m1.log" || note "member 1 had nothing to drop (member 2 joined before it read)"

# together they answer as one collector would: services, and dependency counts that add up
for url in "$M1" "$M2"; do
    assert_json_eq '["api","web"]' "$(http_get_json "$url/api/v2/services" services)" "services of a member"
done
end_ts=$(( now_us / 1000 + 60000 ))
deps() { http_get_json "$1/api/v2/dependencies?endTs=$end_ts&lookback=3600000" deps | jq '[.[] | select(.parent == "web" and .child == "api") | .callCount] | add // 0'; }
assert_eq 40 "$(( $(deps "$M1") + $(deps "$M2") ))" "web -> api calls summed over the members"

# ---- the query member: one collector's answers from the two store members ------------------
COLLECTOR_LOG=$T/query.log
start_collector --set role=query --set query.peers="${M1#http://},${M2#http://}" --set query.timeout=2s
Q=$ZIPKIN_URL Q_PID=$COLLECTOR_PID
every_trace_whole() { # url
    local i
    for i in $(seq 1 40); do holds "$1" "$(printf '%016x' $((0x9000 + i)))" || return 1; done
}
every_trace_whole "$Q" || fail "the query member does not answer every trace as the single collector does"
same_as_single() { # path: the query member's JSON equals the single collector's
    local want got
    want=$(http_get_json "$SINGLE$1" "single $1")
    [[ $(jq length <<<"$want") -gt 0 ]] || fail "test bug: the single collector answers $1 with nothing"
    got=$(http_get_json "$Q$1" "query $1")
    assert_json_eq "$want" "$got" "query member vs single collector: $1"
}
window="endTs=$end_ts&lookback=3600000"
for path in /api/v2/services "/api/v2/spans?serviceName=api" "/api/v2/remoteServices?serviceName=api" \
    "/api/v2/dependencies?$window" "/api/v2/traces?serviceName=api&limit=100&$window" \
    "/api/v2/traces?limit=7&$window" "/api/v2/traces?remoteServiceName=b%C3%BCcher-db&$window" \
    "/api/v2/traces?annotationQuery=error&limit=3&$window"; do
    same_as_single "$path"
done
assert_eq '8 8' "$(http_get_json "$Q/api/v2/dependencies?$window" deps | jq -r '.[] | select(.parent == "api" and .child == "bücher-db") | "\(.callCount) \(.errorCount)"')" \
    "api -> bücher-db calls and errors at the query member"
note "the query member answers as the single collector"

# ---- a store member dies without leaving the group: its partitions move and are replayed -----
kill -9 "$M2_PID"
all_in_m1() { every_trace_whole "$M1"; }
wait_until -n 300 -i 0.2 all_in_m1 || fail "member 1 does not answer every trace after member 2 died: $(grep 'kafka consumer' "$T/m1.log")"
assert_eq 40 "$(deps "$M1")" "web -> api calls at the remaining member"
every_trace_whole "$Q" || fail "the query member does not answer every trace after the replay"
for path in /api/v2/services "/api/v2/dependencies?$window" "/api/v2/traces?limit=7&$window"; do
    same_as_single "$path"
done
curl -s -D "$T/q.headers" -o /dev/null "$Q/api/v2/services"
grep -qi "^X-Outrider-Partial: 1 of 2 store members did not answer: ${M2#http://}" "$T/q.headers" ||
    fail "the query member does not say that member 2 did not answer: $(cat "$T/q.headers")"
COLLECTOR_LOG=$T/m1.log
COLLECTOR_PID=$M1_PID
echo "1 passed, 0 failed"
