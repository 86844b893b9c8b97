#!/usr/bin/env bash
# Remote write: the collector pushes its metric store to a real Prometheus
# (Debian's, with --web.enable-remote-write-receiver) and what Prometheus
# stores equals what the collector's /metrics serves: a DELTA counter with
# Istio's labels and a non-ASCII label value, a histogram (buckets, sum,
# count) and its exemplar. Then: the receiver goes away and comes back on
# the same storage (every sample sent is there, nothing dropped); a queue of
# one push with the receiver away drops exactly what did not fit; a 404 is
# counted as failed and never retried; SIGTERM makes one last push.
# shellcheck source=../lib.sh
. "$(dirname "$0")/../lib.sh"

PROMETHEUS=${PROMETHEUS:-$(command -v prometheus || true)}
[[ -x $PROMETHEUS ]] || fail "prometheus is not installed (Debian package prometheus)"

PROM_PORT=$(free_port)
PROM_URL=http://127.0.0.1:$PROM_PORT
PROM_PID=
printf 'global:\n  evaluation_interval: 1m\n' >"$T/prometheus.yml" # no scrape jobs: everything arrives by remote write

prom_ready() { kill -0 "$PROM_PID" 2>/dev/null && [[ $(http_status GET "$PROM_URL/-/ready") == 200 ]]; }
start_prom() { # TSDB_DIR
    "$PROMETHEUS" --web.enable-remote-write-receiver --enable-feature=exemplar-storage --storage.tsdb.path="$1" \
        --web.listen-address="127.0.0.1:$PROM_PORT" --config.file="$T/prometheus.yml" >>"$T/prometheus.log" 2>&1 &
    PROM_PID=$!
    track_pid "$PROM_PID"
    wait_until -n 600 -i 0.05 prom_ready || prom_fail "prometheus did not become ready on $PROM_URL"
}
stop_pid() { # PID WHAT: SIGTERM and wait (bounded) until it is gone
    kill "$1" 2>/dev/null || true
    wait_until -n 600 -i 0.05 eval "! kill -0 $1" || fail "$2 (pid $1) did not exit after SIGTERM"
    wait "$1" 2>/dev/null || true
}
prom_value() { # QUERY: the value of a one-series vector, or of a scalar
    prom_query "$1" | jq -r 'if type == "array" and length == 2 and (.[0] | type) == "number" then .[1]
        elif length == 1 then .[0].value[1] else "series: \(length)" end'
}
prom_value_is() { [[ $(prom_value "$1") == "$2" ]]; }

scrape() { curl -sS --max-time 20 -o "$T/metrics.txt" "$ZIPKIN_URL/metrics" || fail "GET /metrics failed"; }
rw() { metric_values "$T/metrics.txt" outrider_remote_write_samples_total "result=$1"; } # after scrape
depth() { metric_values "$T/metrics.txt" outrider_remote_write_queue_samples; }
# every queued sample is sent, failed, dropped or still queued
check_accounting() { # WHAT
    scrape
    local q s f d p
    q=$(rw queued) s=$(rw sent) f=$(rw failed) d=$(rw dropped) p=$(depth)
    assert_num_eq "$q" "$((s + f + d + p))" "$1: queued = sent + failed + dropped + queue depth ($s + $f + $d + $p)"
}

# --- OTLP: a DELTA counter with Istio's labels, a histogram with an exemplar
WORKLOAD='productpage-v1 Grüße/東京 ☕'
EXEMPLAR_TRACE=4bf92f3577b34da6a3ce929d0e0e4736
post_counter() { # VALUE
    local t
    t=$(date +%s)
    cat >"$T/c.json" <<JSON
{"resourceMetrics":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"outrider-proxy"}}]},"scopeMetrics":[{"scope":{"name":"outrider"},"metrics":[{"name":"istio_requests_total","description":"Requests handled.",
 "sum":{"aggregationTemporality":1,"isMonotonic":true,"dataPoints":[{"attributes":[
  {"key":"reporter","value":{"stringValue":"source"}},{"key":"source_workload","value":{"stringValue":"$WORKLOAD"}},
  {"key":"destination_service","value":{"stringValue":"reviews.default.svc.cluster.local"}},{"key":"response_code","value":{"stringValue":"200"}}],
  "startTimeUnixNano":"$((t - 10))000000000","timeUnixNano":"${t}000000000","asInt":"$1"}]}}]}]}]}
JSON
    local code
    code=$(http_status POST "$OTLP_URL/v1/metrics" -H 'Content-Type: application/json' --data-binary "@$T/c.json")
    assert_eq 200 "$code" "POST /v1/metrics (counter $1); body: $(cat "$LAST_BODY")"
}
post_histogram() {
    local t
    t=$(date +%s)
    otlp_istio_histogram "$t" "$EXEMPLAR_TRACE" >"$T/h.json"
    local code
    code=$(http_status POST "$OTLP_URL/v1/metrics" -H 'Content-Type: application/json' --data-binary "@$T/h.json")
    assert_eq 200 "$code" "POST /v1/metrics (histogram); body: $(cat "$LAST_BODY")"
}
SAMPLES_PER_PUSH=8 # 1 counter + 5 buckets, _count and _sum
COUNTER_Q='istio_requests_total{response_code="200"}'

# === 1. what Prometheus stores is what /metrics serves ======================
start_prom "$T/tsdb"
start_collector --set "remoteWrite.url=$PROM_URL/api/v1/write" --set remoteWrite.interval=1s \
    --set remoteWrite.retry.maxBackoff=200ms
post_counter 5
post_counter 7
post_histogram
wait_until -n 600 -i 0.05 prom_value_is "$COUNTER_Q" 12 ||
    prom_fail "Prometheus never got istio_requests_total 12 by remote write: $(prom_query "$COUNTER_Q")"
scrape
assert_num_eq 12 "$(metric_values "$T/metrics.txt" istio_requests_total response_code=200)" "/metrics counter"
RESULT=$(prom_query "$COUNTER_Q")
assert_json_eq "{\"__name__\":\"istio_requests_total\",\"reporter\":\"source\",\"source_workload\":\"$WORKLOAD\",\"destination_service\":\"reviews.default.svc.cluster.local\",\"response_code\":\"200\"}" \
    "$(jq -c '.[0].metric' <<<"$RESULT")" "labels of the pushed counter (no job or instance: remote write adds none)"
H=istio_request_duration_milliseconds
for le in 1 5 10 25 +Inf; do
    want=$(metric_values "$T/metrics.txt" ${H}_bucket reporter=destination "le=$le")
    [[ -n $want ]] || fail "/metrics has no ${H}_bucket{le=\"$le\"}"
    assert_num_eq "$want" "$(prom_value "${H}_bucket{le=\"$le\"}")" "Prometheus ${H}_bucket{le=\"$le\"} vs /metrics"
done
for s in _sum _count; do
    assert_num_eq "$(metric_values "$T/metrics.txt" "$H$s" reporter=destination)" "$(prom_value "$H$s")" \
        "Prometheus $H$s vs /metrics"
done
exemplar_stored() {
    [[ $(http_status GET "$PROM_URL/api/v1/query_exemplars" -G --data-urlencode "query=${H}_bucket" \
        --data-urlencode "start=$(($(date +%s) - 3600))" --data-urlencode "end=$(($(date +%s) + 60))") == 200 ]] &&
        jq -e --arg t "$EXEMPLAR_TRACE" '[.data[].exemplars[] | select(.labels.trace_id == $t and .labels.span_id == "00f067aa0ba902b7" and .value == "7")] | length > 0' \
            "$LAST_BODY" >/dev/null
}
wait_until -n 600 -i 0.05 exemplar_stored || prom_fail "Prometheus has no exemplar with trace_id $EXEMPLAR_TRACE: $(cat "$LAST_BODY")"
scrape
[[ -n $(metric_values "$T/metrics.txt" outrider_remote_write_requests_total code=204) ]] || fail "no request answered 204"
assert_num_eq 0 "$(rw failed)" "failed samples while Prometheus is up"
assert_num_eq 0 "$(rw dropped)" "dropped samples while Prometheus is up"
last_ok=$(metric_values "$T/metrics.txt" outrider_remote_write_last_success_timestamp_seconds)
awk -v t="$last_ok" 'BEGIN { exit !(t > 1e9) }' || fail "last success timestamp is $last_ok"

# === 2. the receiver goes away and comes back: nothing is lost ==============
stop_pid "$PROM_PID" prometheus
post_counter 5 # 17
queued_while_away() { scrape && [[ $(rw retried) != 0 ]] && awk -v d="$(depth)" -v n=$((3 * SAMPLES_PER_PUSH)) 'BEGIN { exit !(d >= n) }'; }
wait_until -n 600 -i 0.05 queued_while_away || fail "with Prometheus away, nothing was retried or queued: $(grep remote_write "$T/metrics.txt")"
start_prom "$T/tsdb"
wait_until -n 600 -i 0.05 prom_value_is "$COUNTER_Q" 17 || prom_fail "the value posted while Prometheus was away never arrived"
drained() { scrape && [[ $(depth) -lt $((2 * SAMPLES_PER_PUSH)) ]]; }
wait_until -n 600 -i 0.05 drained || fail "the queue did not drain: $(grep remote_write "$T/metrics.txt")"
# every sample the collector counts as sent is in Prometheus: sent before <= stored <= sent after
scrape
sent_before=$(rw sent)
stored=$(prom_value "scalar(sum(count_over_time(istio_requests_total[1h]))) + scalar(sum(count_over_time(${H}_bucket[1h])))
    + scalar(sum(count_over_time(${H}_count[1h]))) + scalar(sum(count_over_time(${H}_sum[1h])))")
scrape
sent_after=$(rw sent)
awk -v a="$sent_before" -v s="$stored" -v b="$sent_after" 'BEGIN { exit !(a <= s && s <= b) }' ||
    fail "Prometheus holds $stored samples; the collector sent $sent_before before the query and $sent_after after"
assert_num_eq 0 "$(rw dropped)" "dropped samples (the default queue holds the outage)"
assert_num_eq 0 "$(rw failed)" "failed samples"
check_accounting "after the outage"

# === 3. SIGTERM: one last push ==============================================
stop_pid "$COLLECTOR_PID" collector
start_collector --set "remoteWrite.url=$PROM_URL/api/v1/write" --set remoteWrite.interval=1h
post_counter 3 # a new store: 3, seen only by the push at shutdown
stop_pid "$COLLECTOR_PID" collector
grep -q 'remote write: .* not sent' "$COLLECTOR_LOG" && fail "samples left unsent at shutdown: $(grep 'remote write' "$COLLECTOR_LOG")"
wait_until -n 100 -i 0.05 prom_value_is "$COUNTER_Q" 3 || prom_fail "the push at shutdown did not arrive: $(prom_query "$COUNTER_Q")"

# === 4. a queue of one push, receiver away: dropped is exactly what did not fit
stop_pid "$PROM_PID" prometheus
start_collector --set "remoteWrite.url=$PROM_URL/api/v1/write" --set remoteWrite.interval=200ms \
    --set remoteWrite.queue.maxSamples=$SAMPLES_PER_PUSH --set remoteWrite.retry.minBackoff=50ms \
    --set remoteWrite.retry.maxBackoff=100ms
post_counter 1
post_histogram
many_dropped() { scrape && awk -v d="$(rw dropped)" -v n=$((4 * SAMPLES_PER_PUSH)) 'BEGIN { exit !(d >= n) }'; }
wait_until -n 600 -i 0.05 many_dropped || fail "no drops with a one-push queue: $(grep remote_write "$T/metrics.txt")"
scrape
assert_num_eq 0 "$(rw sent)" "sent with the receiver away"
assert_num_eq 0 "$(rw failed)" "failed with the receiver away (no answer is retried, never failed)"
assert_num_eq "$SAMPLES_PER_PUSH" "$(depth)" "queue depth: the latest push, whole"
assert_num_eq "$(rw dropped)" "$(($(rw queued) - SAMPLES_PER_PUSH))" "dropped = queued - what the queue holds"
start_prom "$T/tsdb2"
post_counter 1 # 2
wait_until -n 600 -i 0.05 prom_value_is "$COUNTER_Q" 2 || prom_fail "the latest value never arrived after the drops"
check_accounting "after the drops"

# === 5. 404: failed at once, never retried ==================================
stop_pid "$COLLECTOR_PID" collector
start_collector --set "remoteWrite.url=$PROM_URL/api/v1/nonexistent" --set remoteWrite.interval=200ms
post_counter 1
failed_some() { scrape && [[ $(rw failed) -ge $((3 * 1)) ]]; }
wait_until -n 600 -i 0.05 failed_some || fail "a 404 receiver did not fail any samples: $(grep remote_write "$T/metrics.txt")"
scrape
assert_num_eq 0 "$(rw retried)" "retried samples after 404s"
assert_num_eq 0 "$(rw sent)" "sent samples to a 404"
[[ -n $(metric_values "$T/metrics.txt" outrider_remote_write_requests_total code=404) ]] || fail "no request counted with code 404"
check_accounting "404s"
grep -q 'HTTP 404' "$COLLECTOR_LOG" || fail "the 404 was not logged"

collector_alive
stop_pid "$COLLECTOR_PID" collector

# === 6. settings that cannot work are refused at start ======================
REFUSED_N=0
refused() { # WHAT ARGS...: the collector exits non-zero at once and says why
    local what=$1 rc=0 log=$T/refused.$((++REFUSED_N)).log
    shift
    _SCANNED_LOGS+=("$log")
    timeout 30 "$OUTRIDER_BIN/outrider-collector" --zipkin-listen 127.0.0.1:0 --otlp-listen 127.0.0.1:0 "$@" \
        >"$log" 2>&1 || rc=$?
    [[ $rc != 0 && $rc != 124 ]] || fail "$what: the collector started (exit $rc)"
    grep -q "$what" "$log" || fail "$what: not said: $(cat "$log")"
}
refused "not an http:// or https:// URL" --set remoteWrite.url=ftp://127.0.0.1/x
refused "choose one" --set "remoteWrite.url=$PROM_URL/api/v1/write" --set remoteWrite.bearerToken=t \
    --set remoteWrite.basicAuth.username=u
refused "protocol's or an auth setting's" --set "remoteWrite.url=$PROM_URL/api/v1/write" \
    --set remoteWrite.headers.Content-Encoding=gzip
refused "holds no metric series" --set role=query --set query.peers=127.0.0.1:1 \
    --set "remoteWrite.url=$PROM_URL/api/v1/write"
echo "PASS: remote write to a real Prometheus: values as /metrics serves them, kept through an outage, exact drop and failure accounting, last push at shutdown"
