#!/usr/bin/env bash
# Collector instructions per access-log record, counted by callgrind over the whole collector
# while a real outrider-proxy sends it its access logs (OTLP/HTTP protobuf, zstd), for
# docs/decisions.md ("OTLP log decoding").
#
# Starts a 1 KiB nginx backend, outrider-collector under `valgrind --tool=callgrind` (one server
# thread) and outrider-proxy (inbound listener, workers: 1, telemetry to the collector at
# samplingPercent SAMPLING with accessLog on, not under valgrind). Warms with WARM requests, zeroes
# the collector's counters (callgrind_control -z), sends N requests (hey -n N -c 8, keep-alive),
# waits for the exporter to deliver them, dumps (callgrind_control -d) and prints the collector's
# instructions divided by the log records it accepted in that window (read from /metrics), then
# the inclusive share of the decoder and of zstd per record:
#   records=... ir_per_record=... decode_per_record=... zstd_per_record=... file=...
# With MODE=cpu the collector runs natively instead and the line gives its CPU time (all its
# threads, from /proc/PID/task/*/schedstat) per record: records=... cpu_ns_per_record=...
#   usage: tests/bench/collector_logs_callgrind.sh    env: N (20000), WARM (1000), SAMPLING (1), MODE,
#          OUTRIDER_BIN (proxy), COLLECTOR_BIN (default $OUTRIDER_BIN/outrider-collector),
#          KEEP=1 keeps the callgrind file (path printed)
# Needs: valgrind nginx hey. Uses tests/lib.sh (temp dir, process cleanup).
# shellcheck source=../lib.sh
. "$(dirname "$0")/../lib.sh"
N=${N:-20000}
WARM=${WARM:-1000}
SAMPLING=${SAMPLING:-1}
COLLECTOR_BIN=${COLLECTOR_BIN:-$OUTRIDER_BIN/outrider-collector}
[[ -n ${KEEP:-} ]] && KEEP_TMP=1
for t in valgrind callgrind_control callgrind_annotate nginx hey curl; do
    command -v "$t" >/dev/null || fail "$t is not installed"
done
[[ -x $OUTRIDER_BIN/outrider-proxy && -x $COLLECTOR_BIN ]] || fail "build the release first"

start_nginx_backend
BE=$NGINX_BACKEND_PORT

ZP=$(free_port)
OP=$(free_port)
while [[ $OP == "$ZP" ]]; do OP=$(free_port); done
MODE=${MODE:-callgrind}
run=(valgrind --tool=callgrind --callgrind-out-file="$T/cg.%p")
[[ $MODE == cpu ]] && run=()
"${run[@]}" "$COLLECTOR_BIN" \
    --zipkin-listen "127.0.0.1:$ZP" --otlp-listen "127.0.0.1:$OP" --set server.threads=1 >"$T/collector.log" 2>&1 &
CP=$!
track_pid "$CP"
wait_until -n 600 -i 0.1 port_open "$OP" || fail "collector did not start: $(tail -5 "$T/collector.log")"
wait_until -n 600 -i 0.1 port_open "$ZP" || fail "collector did not start: $(tail -5 "$T/collector.log")"

IN=$(free_port)
OUT=$(free_port)
ADM=$(free_port)
while [[ $OUT == "$IN" || $ADM == "$IN" || $ADM == "$OUT" ]]; do
    OUT=$(free_port)
    ADM=$(free_port)
done
cat >"$T/proxy.yaml" <<YAML
apiVersion: outrider.io/v1alpha1
kind: Proxy
metadata: {name: logs-bench, namespace: default, labels: {app: logs-bench, version: v1}}
spec:
  inbound: {listen: 127.0.0.1:$IN, forwardTo: 127.0.0.1:$BE}
  outbound: {listen: 127.0.0.1:$OUT}
  admin: {listen: 127.0.0.1:$ADM}
  telemetry: {otlpEndpoint: http://127.0.0.1:$OP, samplingPercent: $SAMPLING, flushInterval: 1s, accessLog: true}
  workers: 1
YAML
"$OUTRIDER_BIN/outrider-proxy" --config "$T/proxy.yaml" >"$T/proxy.log" 2>&1 &
track_pid $!
wait_until -n 200 -i 0.1 port_open "$IN" || fail "proxy did not start: $(tail -5 "$T/proxy.log")"

records() {
    curl -s "http://127.0.0.1:$ZP/metrics" | awk '/^outrider_collector_log_records_total[{ ]/ {s += $NF} END {printf "%d\n", s}'
}
# wait until the accepted count stops moving (the exporter has delivered what was sent)
settle() {
    local prev=-1 cur i
    for ((i = 0; i < 60; i++)); do
        sleep 1.5
        cur=$(records)
        [[ $cur == "$prev" ]] && break
        prev=$cur
    done
    echo "$cur"
}

# CPU time of all the collector's threads, in ns
cpu_ns() { cat /proc/"$CP"/task/*/schedstat | awk '{s += $1} END {printf "%d\n", s}'; }

hey -n "$WARM" -c 8 "http://127.0.0.1:$IN/" >/dev/null 2>&1
before=$(settle)
if [[ $MODE == cpu ]]; then
    c0=$(cpu_ns)
else
    callgrind_control -z "$CP" >/dev/null 2>&1 || fail "callgrind_control -z failed"
fi
hey -n "$N" -c 8 "http://127.0.0.1:$IN/" >"$T/hey.out" 2>&1
after=$(settle)
n=$((after - before))
((n > 0)) || fail "no log records arrived (before $before, after $after)"
if [[ $MODE == cpu ]]; then
    c1=$(cpu_ns)
    awk -v n="$n" -v c="$((c1 - c0))" 'BEGIN {printf "records=%d cpu_ns_per_record=%.0f\n", n, c / n}'
    exit 0
fi
callgrind_control -d "$CP" >/dev/null 2>&1 || fail "callgrind_control -d failed"
f=$(ls "$T"/cg."$CP".* 2>/dev/null | grep -E '\.[0-9]+$' | head -1)
[[ -n $f ]] || fail "no callgrind dump"
ir=$(awk '/^summary:/ {print $2}' "$f" | head -1)
[[ -n $ir ]] || ir=$(awk '/^totals:/ {print $2}' "$f" | head -1)
# inclusive counts of the decoders and of zstd
incl() { { callgrind_annotate --inclusive=yes "$f" 2>/dev/null || true; } | awk -v fn="$1" '!done && index($0, fn) {gsub(",", "", $1); print $1; done = 1}'; }
dec=$(incl ":decode_logs ")
[[ -n $dec ]] || dec=0
zs=$(incl ":compress_decode ")
[[ -n $zs ]] || zs=0
awk -v n="$n" -v ir="$ir" -v dec="$dec" -v zs="$zs" -v f="$f" \
    'BEGIN {printf "records=%d ir_per_record=%.0f decode_per_record=%.0f zstd_per_record=%.0f file=%s\n", n, ir / n, dec / n, zs / n, f}'
