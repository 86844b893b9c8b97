#!/usr/bin/env bash
# Instructions per request of the proxy's worker thread (and of its telemetry exporter thread),
# counted by callgrind, for docs/benchmarks.md.
#
# For each variant (VARIANTS, default "off 1 100": "off" = no otlpEndpoint, else samplingPercent
# with access logs on and an outrider-collector receiving; "1-trim" and "1-upsert" add a Telemetry
# document, see telemetry_doc.sh), starts a 1 KiB nginx backend, the
# collector and outrider-proxy (inbound listener, workers: 1) under
# `valgrind --tool=callgrind --separate-threads=yes`, warms it with WARM requests, zeroes the
# counters (callgrind_control -z), sends N requests (hey -n N -c 4, keep-alive), dumps
# (callgrind_control -d) and prints, per thread that ran, its instructions (Ir) divided by N:
#   variant=1 thread=worker ir_per_request=...
# The worker is the thread whose profile holds http1_parse, the exporter the one holding
# exporter_main. The collector and the backend are not measured. Everything uses free loopback
# ports (not the 18080-18082 of proxy_bench.sh), so it may run beside it (but skews its numbers).
#   usage: tests/bench/proxy_callgrind.sh        env: N (5000), WARM (500), VARIANTS, OUTRIDER_BIN,
#                                                     KEEP=1 keeps the callgrind files (path printed)
# Needs: valgrind nginx hey. Uses tests/lib.sh (temp dir, collector, process cleanup).
# shellcheck source=../lib.sh
. "$(dirname "$0")/../lib.sh"
# shellcheck source=telemetry_doc.sh
. "$(dirname "$0")/telemetry_doc.sh"
N=${N:-5000}
WARM=${WARM:-500}
VARIANTS=${VARIANTS:-off 1 100}
[[ -n ${KEEP:-} ]] && KEEP_TMP=1
for t in valgrind callgrind_control nginx hey; do
    command -v "$t" >/dev/null || fail "$t is not installed"
done
[[ -x $OUTRIDER_BIN/outrider-proxy ]] || fail "build the release first (no $OUTRIDER_BIN/outrider-proxy)"

start_nginx_backend
BE=$NGINX_BACKEND_PORT
start_collector
OP=${OTLP_URL##*:}

for v in $VARIANTS; do
    IN=$(free_port)
    OUT=$(free_port)
    ADM=$(free_port)
    while [[ $OUT == "$IN" || $ADM == "$IN" || $ADM == "$OUT" ]]; do # a port handed out twice
        OUT=$(free_port)
        ADM=$(free_port)
    done
    {
        echo "apiVersion: outrider.io/v1alpha1"
        echo "kind: Proxy"
        echo "metadata: {name: cg-$v}"
        echo "spec:"
        echo "  inbound: {listen: 127.0.0.1:$IN, forwardTo: 127.0.0.1:$BE}"
        echo "  outbound: {listen: 127.0.0.1:$OUT}"
        echo "  admin: {listen: 127.0.0.1:$ADM}"
        [[ $v != off ]] && echo "  telemetry: {otlpEndpoint: http://127.0.0.1:$OP, samplingPercent: ${v%%-*}, flushInterval: 1s, accessLog: true}"
        echo "  workers: 1"
        telemetry_doc "$v"
    } >"$T/proxy-$v.yaml"
    mkdir -p "$T/cg-$v"
    valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$T/cg-$v/cg.%p" \
        "$OUTRIDER_BIN/outrider-proxy" --config "$T/proxy-$v.yaml" >"$T/proxy-$v.log" 2>&1 &
    PP=$!
    track_pid "$PP"
    wait_until -n 600 -i 0.1 port_open "$IN" || fail "proxy ($v) did not start: $(tail -5 "$T/proxy-$v.log")"
    hey -n "$WARM" -c 4 "http://127.0.0.1:$IN/" >/dev/null 2>&1
    sleep 1.5 # let a flush pass so the series exist before counting starts
    callgrind_control -z "$PP" >/dev/null 2>&1 || fail "callgrind_control -z failed"
    hey -n "$N" -c 4 "http://127.0.0.1:$IN/" >"$T/hey-$v.out" 2>&1
    ok=$(awk '/\[200\]/ {print $2}' "$T/hey-$v.out")
    sleep 1.5 # the exporter's share of these requests (one flush interval)
    callgrind_control -d "$PP" >/dev/null 2>&1 || fail "callgrind_control -d failed"
    kill "$PP" 2>/dev/null
    wait "$PP" 2>/dev/null || true
    for f in "$T/cg-$v"/cg."$PP".*; do
        [[ -f $f ]] || continue
        # dumps taken by -d are numbered (.1); the final dump at exit is not: keep only the counted one
        [[ $f =~ \.[0-9]+-[0-9]+$ ]] || continue
        ir=$(awk '/^summary:/ {print $2}' "$f" | head -1)
        [[ -n $ir ]] || ir=$(awk '/^totals:/ {print $2}' "$f" | head -1)
        who=other
        if grep -q 'exporter_main' "$f"; then
            who=exporter
        elif grep -q 'http1_parse' "$f"; then
            who=worker
        fi
        awk -v v="$v" -v who="$who" -v ir="${ir:-0}" -v n="$N" -v ok="${ok:-0}" -v f="${f##*/}" \
            'BEGIN {printf "variant=%s thread=%s ir_per_request=%.0f ir=%s requests_ok=%s file=%s\n", v, who, ir / n, ir, ok, f}'
    done
done
