#!/usr/bin/env bash
# Metrics through a scaled-out collector (role ingest -> Kafka -> role store), on librdkafka's mock
# cluster. Istio-shaped OTLP DELTA counters and histograms, two rounds, go to a single-process
# collector (role all) and to an ingest member. The ingest member stores nothing and publishes each
# point keyed by its series identity; two store members in one group split the metrics topic's
# partitions. Then:
#   - every series is on exactly one store member, and the members' union equals the single
#     process's series, value for value (counters, histogram buckets, sums, counts);
#   - a real Prometheus scraping both members sums to the single process's totals;
#   - a member killed without leaving the group: its partitions move, the other member replays
#     them from the beginning and then holds every series with the single process's values.
. "$(dirname "$0")/../lib.sh"

PROMETHEUS=${PROMETHEUS:-$(command -v prometheus || true)}
[[ -x $PROMETHEUS ]] || fail "prometheus is not installed (Debian package prometheus)"

start_kafka_mock --topic zipkin:2 --topic outrider-metrics:6

# 4 source workloads (one non-ASCII) x 5 destinations x 3 codes = 60 counter series, 20 histograms
T0=$(date +%s)
otlp_round() { # ROUND -> OTLP JSON with DELTA points for that round
    python3 - "$1" "$T0" <<'PY'
import json, sys
rnd, t0 = int(sys.argv[1]), int(sys.argv[2])
def kv(k, v): return {"key": k, "value": {"stringValue": v}}
sums, hists = [], []
for si, src in enumerate(["productpage-v1", "reviews-v2", "ratings-v1", "café-ß"]):
    for di, dst in enumerate(["details", "reviews", "ratings", "mongodb", "büro"]):
        base = [kv("reporter", "source"), kv("source_workload", src), kv("source_workload_namespace", "shop"),
                kv("destination_service", f"{dst}.shop.svc.cluster.local")]
        for ci, code in enumerate(["200", "404", "503"]):
            sums.append({"attributes": base + [kv("response_code", code)],
                         "startTimeUnixNano": str((t0 - 20 + rnd) * 10**9), "timeUnixNano": str((t0 - 10 + rnd) * 10**9),
                         "asInt": str(1 + si * 100 + di * 10 + ci + rnd * 1000)})
        counts = [rnd + si, di, 1, 0]
        hists.append({"attributes": base, "startTimeUnixNano": str((t0 - 20 + rnd) * 10**9),
                      "timeUnixNano": str((t0 - 10 + rnd) * 10**9), "count": str(sum(counts)),
                      "sum": 3.5 * sum(counts), "explicitBounds": [1, 5, 10], "bucketCounts": [str(c) for c in counts]})
print(json.dumps({"resourceMetrics": [{"resource": {"attributes": [kv("service.name", "outrider-proxy")]},
    "scopeMetrics": [{"scope": {"name": "outrider"}, "metrics": [
        {"name": "istio_requests_total", "sum": {"aggregationTemporality": 1, "isMonotonic": True, "dataPoints": sums}},
        {"name": "istio_request_duration_milliseconds", "unit": "ms",
         "histogram": {"aggregationTemporality": 1, "dataPoints": hists}}]}]}]}))
PY
}
otlp_round 1 >"$T/r1.json"
otlp_round 2 >"$T/r2.json"

COLLECTOR_LOG=$T/single.log
start_collector
SINGLE=$ZIPKIN_URL SINGLE_OTLP=$OTLP_URL
COLLECTOR_LOG=$T/ingest.log
start_collector --set role=ingest --set kafka.brokers="$KAFKA_BOOTSTRAP" --set kafka.producer.linger.ms=1
INGEST_OTLP=$OTLP_URL INGEST=$ZIPKIN_URL
for r in r1 r2; do
    for url in "$SINGLE_OTLP" "$INGEST_OTLP"; do
        assert_eq 200 "$(http_status POST "$url/v1/metrics" -H 'Content-Type: application/json' --data-binary "@$T/$r.json")" \
            "POST /v1/metrics $r to $url: $(cat "$LAST_BODY")"
        jq -e '.partialSuccess.rejectedDataPoints // 0 | . == 0' "$LAST_BODY" >/dev/null || fail "points rejected: $(cat "$LAST_BODY")"
    done
done
# the ingest member keeps nothing itself
curl -s "$INGEST/metrics" >"$T/ingest.txt"
[[ -z $(metric_values "$T/ingest.txt" istio_requests_total) ]] || fail "the ingest member stored series itself"
delivered() { (( $(curl -s "$INGEST/metrics" | awk '/^outrider_kafka_records_total\{topic="outrider-metrics",result="delivered"\}/ {print $2}') + 0 == 160 )); }
wait_until -n 400 -i 0.05 delivered || fail "the ingest member did not deliver 160 points: $(curl -s "$INGEST/metrics" | grep outrider_kafka_records)"

store_member() { # log -> starts a store member
    COLLECTOR_LOG=$1
    start_collector --set role=store --set kafka.brokers="$KAFKA_BOOTSTRAP" --set kafka.consume.group=stores \
        --set kafka.consumer.session.timeout.ms=6000 --set kafka.consumer.heartbeat.interval.ms=500
}
store_member "$T/m1.log"
M1=$ZIPKIN_URL M1_PID=$COLLECTOR_PID
store_member "$T/m2.log"
M2=$ZIPKIN_URL M2_PID=$COLLECTOR_PID

# series lines "name{labels} value" of the OTLP families, sorted (the collector's own families left out)
series_of() { curl -s "$1/metrics" | grep -E '^istio_' | LC_ALL=C sort; }
series_of "$SINGLE" >"$T/single.series"
assert_eq 180 "$(wc -l <"$T/single.series")" "series lines at the single process (60 counters + 20 histograms x (4 buckets, sum, count))"
split_done() {
    series_of "$M1" >"$T/m1.series"
    series_of "$M2" >"$T/m2.series"
    [[ -s $T/m1.series && -s $T/m2.series ]] || return 1
    LC_ALL=C sort "$T/m1.series" "$T/m2.series" | cmp -s - "$T/single.series"
}
wait_until -n 400 -i 0.1 split_done ||
    fail "the store members' series do not add up to the single process's: $(diff <(LC_ALL=C sort "$T/m1.series" "$T/m2.series") "$T/single.series" | head -20); logs: $(grep -h 'kafka consumer' "$T/m1.log" "$T/m2.log")"
# no series key (name and labels) on both members
keys() { sed 's/ [^ ]*$//' "$1" | LC_ALL=C sort -u; }
assert_eq "" "$(LC_ALL=C comm -12 <(keys "$T/m1.series") <(keys "$T/m2.series") | head -3)" "series held by both members"
note "member 1 holds $(wc -l <"$T/m1.series") series lines, member 2 $(wc -l <"$T/m2.series")"

# --- a real Prometheus scrapes both members and the single process --------------------------
cat >"$T/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: single
    static_configs: [{targets: ['${SINGLE#http://}']}]
  - job_name: stores
    static_configs: [{targets: ['${M1#http://}', '${M2#http://}']}]
YAML
PROM_PORT=$(free_port)
PROM_URL=http://127.0.0.1:$PROM_PORT
"$PROMETHEUS" --config.file="$T/prometheus.yml" --storage.tsdb.path="$T/tsdb" \
    --web.listen-address="127.0.0.1:$PROM_PORT" >"$T/prometheus.log" 2>&1 &
PROM_PID=$!
track_pid "$PROM_PID"
prom_value() { # QUERY -> the single value of an instant query ("" when none)
    curl -s "$PROM_URL/api/v1/query" -G --data-urlencode "query=$1" | jq -r '.data.result[0].value[1] // empty'
}
scraped() { # all three targets up and the stores' series count in
    [[ $(prom_value 'sum(up)') == 3 ]] && [[ $(prom_value 'count(istio_requests_total{job="stores"})') == 60 ]]
}
wait_until -n 600 -i 0.1 scraped || fail "prometheus did not scrape the three targets: $(tail -5 "$T/prometheus.log")"
for q in 'sum(istio_requests_total{JOB})' 'sum by (response_code) (istio_requests_total{JOB})' \
    'sum(istio_request_duration_milliseconds_bucket{JOB,le="5"})' 'sum(istio_request_duration_milliseconds_sum{JOB})' \
    'sum(istio_request_duration_milliseconds_count{source_workload="café-ß",JOB})'; do
    single=$(curl -s "$PROM_URL/api/v1/query" -G --data-urlencode "query=${q//JOB/job=\"single\"}" | jq -c '[.data.result[] | {m: .metric, v: .value[1]}] | sort_by(.m)')
    stores=$(curl -s "$PROM_URL/api/v1/query" -G --data-urlencode "query=${q//JOB/job=\"stores\"}" | jq -c '[.data.result[] | {m: .metric, v: .value[1]}] | sort_by(.m)')
    [[ $single != '[]' ]] || fail "prometheus: no result for $q at the single process"
    assert_eq "$single" "$stores" "prometheus: $q, stores vs single process"
done
assert_eq 60 "$(prom_value 'count(count by (source_workload, destination_service, response_code) (istio_requests_total{job="stores"}))')" \
    "distinct counter series over the store members"

# --- one member dies without leaving the group: the other replays its partitions ------------
kill -9 "$M2_PID"
all_in_m1() { series_of "$M1" | cmp -s - "$T/single.series"; }
wait_until -n 400 -i 0.2 all_in_m1 ||
    fail "member 1 does not hold every series after member 2 died: $(diff <(series_of "$M1") "$T/single.series" | head); $(grep 'kafka consumer' "$T/m1.log")"
# partitions member 1 kept across the rebalances resumed where they were (its counters never went back to
# zero under Prometheus); those it took over were read from their beginning
grep -qE 'assigned [0-9]+ partitions: [1-9][0-9]* resumed, [1-9][0-9]* read from their beginning' "$T/m1.log" ||
    fail "member 1 did not resume its own partitions and replay the new ones: $(grep 'kafka consumer' "$T/m1.log")"
COLLECTOR_LOG=$T/m1.log
COLLECTOR_PID=$M1_PID
echo "1 passed, 0 failed"
