#!/usr/bin/env bash
# Instructions per request of the proxy's worker thread (and of its telemetry exporter thread),
# counted by callgrind, for docs/benchmarks.md.
#
# For each variant (VARIANTS, default "off 1 100": "off" = no otlpEndpoint, else samplingPercent
# with access logs on and an outrider-collector receiving), starts a 1 KiB nginx backend, the
# collector and outrider-proxy (inbound listener, workers: 1) under
# `valgrind --tool=callgrind --separate-threads=yes`, warms it with WARM requests, zeroes the
# counters (callgrind_control -z), sends N requests (hey -n N -c 4, keep-alive), dumps
# (callgrind_control -d) and prints, per thread that ran, its instructions (Ir) divided by N:
#   variant=1 thread=worker ir_per_request=...
# The worker is the thread whose profile holds http_parser_execute, the exporter the one holding
# exporter_main. The collector and the backend are not measured. Everything uses free loopback
# ports (not the 18080-18082 of proxy_bench.sh), so it may run beside it (but skews its numbers).
#   usage: tests/bench/proxy_callgrind.sh        env: N (5000), WARM (500), VARIANTS, OUTRIDER_BIN,
#                                                     KEEP=1 keeps the callgrind files (path printed)
# Needs: valgrind nginx hey.
set -u
REPO=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${OUTRIDER_BIN:-$REPO/build/release/bin}
N=${N:-5000}
WARM=${WARM:-500}
VARIANTS=${VARIANTS:-off 1 100}

die() {
    echo "proxy_callgrind: $*" >&2
    exit 1
}
for t in valgrind callgrind_control nginx hey python3; do
    command -v "$t" >/dev/null || die "$t is not installed"
done
[[ -x $BIN/outrider-proxy && -x $BIN/outrider-collector ]] || die "build the release first (no $BIN/outrider-proxy)"

W=$(mktemp -d "${TMPDIR:-/tmp}/proxy_callgrind.XXXXXX")
PIDS=()
cleanup() {
    local pid i
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
    for pid in "${PIDS[@]}"; do
        for ((i = 0; i < 200; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        kill -9 "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    if [[ -n ${KEEP:-} ]]; then echo "kept $W"; else rm -rf "$W"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
    python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}
wait_port() { # PORT TRIES
    local i
    for ((i = 0; i < $2; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

BE=$(free_port)
head -c 1024 /dev/zero | tr '\0' 'x' >"$W/body.txt"
cat >"$W/backend.conf" <<CONF
worker_processes 1; daemon off; pid $W/backend.pid; error_log $W/backend.err;
events { worker_connections 1024; }
http { access_log off; client_body_temp_path $W; proxy_temp_path $W; fastcgi_temp_path $W; uwsgi_temp_path $W; scgi_temp_path $W;
  server { listen 127.0.0.1:$BE; keepalive_requests 1000000; location / { root $W; try_files /body.txt =404; } } }
CONF
nginx -c "$W/backend.conf" >/dev/null 2>&1 &
PIDS+=($!)
wait_port "$BE" 100 || die "backend did not start"

"$BIN/outrider-collector" --zipkin-listen 127.0.0.1:0 --otlp-listen 127.0.0.1:0 >"$W/collector.log" 2>&1 &
PIDS+=($!)
OP=''
for _ in $(seq 200); do
    OP=$(sed -n 's/.*listening otlp http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$W/collector.log" | head -1)
    [[ -n $OP ]] && break
    sleep 0.05
done
[[ -n $OP ]] || die "collector did not start"

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
        [[ $v != off ]] && echo "  telemetry: {otlpEndpoint: http://127.0.0.1:$OP, samplingPercent: $v, flushInterval: 1s, accessLog: true}"
        echo "  workers: 1"
    } >"$W/proxy-$v.yaml"
    mkdir -p "$W/cg-$v"
    valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$W/cg-$v/cg.%p" \
        "$BIN/outrider-proxy" --config "$W/proxy-$v.yaml" >"$W/proxy-$v.log" 2>&1 &
    PP=$!
    PIDS+=("$PP")
    wait_port "$IN" 600 || die "proxy ($v) did not start: $(tail -5 "$W/proxy-$v.log")"
    hey -n "$WARM" -c 4 "http://127.0.0.1:$IN/" >/dev/null 2>&1
    sleep 1.5 # let a flush pass so the series exist before counting starts
    callgrind_control -z "$PP" >/dev/null 2>&1 || die "callgrind_control -z failed"
    hey -n "$N" -c 4 "http://127.0.0.1:$IN/" >"$W/hey-$v.out" 2>&1
    ok=$(awk '/\[200\]/ {print $2}' "$W/hey-$v.out")
    sleep 1.5 # the exporter's share of these requests (one flush interval)
    callgrind_control -d "$PP" >/dev/null 2>&1 || die "callgrind_control -d failed"
    kill "$PP" 2>/dev/null
    wait "$PP" 2>/dev/null
    for f in "$W/cg-$v"/cg."$PP".*; do
        [[ -f $f ]] || continue
        # dumps taken by -d are numbered (.1); the final dump at exit is not: keep only the counted one
        [[ $f =~ \.[0-9]+-[0-9]+$ ]] || continue
        ir=$(awk '/^summary:/ {print $2} /^totals:/ {t=$2} END {}' "$f" | head -1)
        [[ -n $ir ]] || ir=$(awk '/^totals:/ {print $2}' "$f" | head -1)
        who=other
        grep -q 'http_parser_execute' "$f" && who=worker
        grep -q 'exporter_main' "$f" && who=exporter
        awk -v v="$v" -v who="$who" -v ir="${ir:-0}" -v n="$N" -v ok="${ok:-0}" -v f="${f##*/}" \
            'BEGIN {printf "variant=%s thread=%s ir_per_request=%.0f ir=%s requests_ok=%s file=%s\n", v, who, ir / n, ir, ok, f}'
    done
done
