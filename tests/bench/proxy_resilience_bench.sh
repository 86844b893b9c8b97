#!/usr/bin/env bash
# Resilience benchmark (issue 4; figures in docs/benchmarks.md): the cost of
# circuit breakers, outlier detection and a local rate limit that are
# configured but do not trip. In one run, against the same 1 KiB nginx
# backend: outrider-proxy's outbound listener routing Host: app with no
# policy, the same with a DestinationRule (maxConnections, pending and retry
# limits, outlierDetection) and a RateLimit (local token bucket far above the
# load), and HAProxy (nbthread 1) as the peer. Throughput: wrk -t1 -c32,
# best of ROUNDS x DUR s; latency: hey at 1000 rps. A fourth target adds a
# global rate limit counted in a redis-server started here (limit far above
# the load): its p50/p99 at 1000 rps, beside the proxy without it, is the
# latency a Redis round trip adds.
#   usage: tests/bench/proxy_resilience_bench.sh     env: DUR (5), ROUNDS (2), OUTRIDER_BIN
# Needs nginx haproxy wrk hey (Debian packages). Ends only what it started, by PID.
set -u
REPO=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${OUTRIDER_BIN:-$REPO/build/release/bin}
DUR=${DUR:-5}
ROUNDS=${ROUNDS:-2}
[[ -x $BIN/outrider-proxy ]] || { echo "no $BIN/outrider-proxy: build the release first" >&2; exit 1; }
for t in nginx haproxy wrk hey python3 redis-server; do command -v "$t" >/dev/null || { echo "$t is not installed" >&2; exit 1; }; done
W=$(mktemp -d "${TMPDIR:-/tmp}/resilience_bench.XXXXXX")
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
    rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
BE=$(port)
head -c 1024 /dev/zero | tr '\0' x >"$W/body.txt"
temps="client_body_temp_path $W; proxy_temp_path $W; fastcgi_temp_path $W; uwsgi_temp_path $W; scgi_temp_path $W;"
cat >"$W/be.conf" <<CONF
worker_processes 1; daemon off; pid $W/be.pid; error_log $W/be.err;
events { worker_connections 4096; }
http { access_log off; $temps
  server { listen 127.0.0.1:$BE backlog=4096; keepalive_requests 1000000;
    location / { root $W; try_files /body.txt =404; } } }
CONF
nginx -c "$W/be.conf" &
PIDS+=($!)
HA=$(port)
cat >"$W/ha.cfg" <<CONF
global
  nbthread 1
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  http-reuse always
frontend fe
  bind 127.0.0.1:$HA
  default_backend be
backend be
  server s1 127.0.0.1:$BE
CONF
haproxy -db -f "$W/ha.cfg" >/dev/null 2>&1 &
PIDS+=($!)
RP=$(port)
redis-server --port "$RP" --bind 127.0.0.1 --save '' --appendonly no >"$W/redis.log" 2>&1 &
PIDS+=($!)
proxy_conf() { # FILE PORT WITH_POLICIES
    cat >"$1" <<YAML
apiVersion: outrider.io/v1alpha1
kind: Proxy
metadata: {name: bench, labels: {app: bench}}
spec:
  outbound: {listen: 127.0.0.1:$2}
  admin: {listen: 127.0.0.1:0}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: app}
spec:
  hosts: [app]
  ports: [{number: 80, name: http}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: $BE}}]
YAML
    if [[ $3 == global ]]; then
        cat >>"$1" <<YAML
---
apiVersion: outrider.io/v1alpha1
kind: RateLimit
metadata: {name: app}
spec:
  hosts: [app]
  global:
    redis: 127.0.0.1:$RP
    limits: [{name: all, key: [{destinationService: true}], requestsPerUnit: 1000000000, unit: second}]
YAML
        return 0
    fi
    [[ $3 == yes ]] || return 0
    cat >>"$1" <<YAML
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: app}
spec:
  host: app
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 1000}
      http: {http1MaxPendingRequests: 1000, maxRetries: 100}
    outlierDetection: {consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s}
---
apiVersion: outrider.io/v1alpha1
kind: RateLimit
metadata: {name: app}
spec:
  hosts: [app]
  local: {maxTokens: 1000000000, tokensPerFill: 1000000000, fillInterval: 1s}
YAML
}
PLAIN=$(port)
POLICY=$(port)
proxy_conf "$W/plain.yaml" "$PLAIN" no
proxy_conf "$W/policy.yaml" "$POLICY" yes
GLOBAL=$(port)
proxy_conf "$W/global.yaml" "$GLOBAL" global
"$BIN/outrider-proxy" --config "$W/plain.yaml" >"$W/plain.log" 2>&1 &
PIDS+=($!)
"$BIN/outrider-proxy" --config "$W/policy.yaml" >"$W/policy.log" 2>&1 &
PIDS+=($!)
"$BIN/outrider-proxy" --config "$W/global.yaml" >"$W/global.log" 2>&1 &
PIDS+=($!)
sleep 1
for p in "$PLAIN" "$POLICY" "$GLOBAL" "$HA"; do
    code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: app' "http://127.0.0.1:$p/")
    [[ $code == 200 ]] || { echo "target :$p answers $code" >&2; cat "$W"/*.log >&2; exit 1; }
done
declare -A best lat
measure() { # NAME PORT
    local rps l
    rps=$(wrk -t1 -c32 -d"${DUR}"s -H 'Host: app' "http://127.0.0.1:$2/" | awk '/Requests\/sec/ {printf "%d", $2}')
    l=$(hey -z "${DUR}"s -c 4 -q 250 -host app "http://127.0.0.1:$2/" 2>/dev/null |
        awk '/ 50% in/ {a=$3} / 99% in/ {b=$3} END {printf "%.2f/%.2f ms", a*1000, b*1000}')
    if [[ -z ${best[$1]:-} || ${rps:-0} -gt ${best[$1]} ]]; then
        best[$1]=${rps:-0}
        lat[$1]=$l
    fi
}
for _ in $(seq "$ROUNDS"); do
    measure proxy-plain "$PLAIN"
    measure proxy-policies "$POLICY"
    measure proxy-global "$GLOBAL"
    measure haproxy "$HA"
done
echo "# proxy resilience benchmark, $(date -u +%F), DUR=$DUR ROUNDS=$ROUNDS, 1 KiB responses, wrk -t1 -c32"
printf '%-16s %10s %18s\n' target rps 'p50/p99 @1000rps'
for t in proxy-plain proxy-policies proxy-global haproxy; do printf '%-16s %10s %18s\n' "$t" "${best[$t]}" "${lat[$t]}"; done
awk -v a="${best[proxy-policies]}" -v b="${best[proxy-plain]}" -v h="${best[haproxy]}" \
    'BEGIN {printf "policies/plain=%.2f policies/haproxy=%.2f plain/haproxy=%.2f\n", a/b, a/h, b/h}'
