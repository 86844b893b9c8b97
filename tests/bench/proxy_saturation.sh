#!/usr/bin/env bash
# Saturation throughput, p99 and CPU per request of outrider-proxy against HAProxy, alternating,
# for docs/benchmarks.md ("Sidecar proxy"). proxy_bench.sh takes the best of two 5-second runs of
# each target, and on this machine one run moves by 10-20%; here the two targets take turns
# ROUNDS times and every line shows the median (min-max) of the rounds, with where each
# request's CPU went.
#
# Starts a 1 KiB nginx backend, HAProxy in front of it (nbthread 1, http-reuse always, as the
# peers script's) and, per telemetry variant (VARIANTS: "off" = no otlpEndpoint, else
# samplingPercent with access logs on), a fresh outrider-collector and an outrider-proxy
# (spec.workers WORKERS, inbound listener to the backend, telemetry to that collector, flushInterval 1s).
# Each round: `wrk -t1 -c32 -d DUR s --latency` on the proxy, then on HAProxy. Around each run
# the CPU time (utime+stime, /proc/PID/task/TID/stat) of every thread of the proxy, the
# collector, HAProxy and the backend's nginx worker is read, and wrk's own (bash `times`); the
# summary divides it by the requests wrk completed: the proxy's worker thread(s), its exporter
# thread, the collector, HAProxy, the backend and the client. The last two show what the
# headers a sidecar adds (trace context, request id, peer metadata) cost the other ends.
#   usage: tests/bench/proxy_saturation.sh
#   env:   ROUNDS (5), DUR (5), VARIANTS ("off 1 100"), WORKERS (1: the proxy's spec.workers; HAProxy
#          gets as many threads), OUTRIDER_BIN (build/release/bin), COLLECTOR_NICE (unset; a niceness
#          for the collector, which in a cluster runs elsewhere: shows what sharing its cores costs)
# Needs: nginx haproxy wrk curl. Uses tests/lib.sh (temp dir, process cleanup, free ports).
# shellcheck source=../lib.sh
. "$(dirname "$0")/../lib.sh"
ROUNDS=${ROUNDS:-5}
DUR=${DUR:-5}
VARIANTS=${VARIANTS:-off 1 100}
WORKERS=${WORKERS:-1}
COLLECTOR_NICE=${COLLECTOR_NICE:-}
for t in nginx haproxy wrk curl; do
    command -v "$t" >/dev/null || fail "$t is not installed"
done
[[ -x $OUTRIDER_BIN/outrider-proxy && -x $OUTRIDER_BIN/outrider-collector ]] || fail "build the release first"

start_nginx_backend
BE=$NGINX_BACKEND_PORT
# the backend's worker process (nginx's master only waits)
wait_until -n 100 test -s "$T/backend.pid"
BACKEND_PID=$(pgrep -P "$(cat "$T/backend.pid")" | head -1)
[[ -n $BACKEND_PID ]] || fail "no nginx backend worker"

HA=$(free_port)
cat >"$T/haproxy.cfg" <<CONF
global
  nbthread $WORKERS
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
haproxy -db -f "$T/haproxy.cfg" >"$T/haproxy.log" 2>&1 &
HA_PID=$!
track_pid "$HA_PID"
wait_until -n 100 port_open "$HA" || fail "haproxy did not start: $(cat "$T/haproxy.log")"

# cpu_snapshot PID...: "TID comm ticks" for every thread of each PID
cpu_snapshot() {
    local p t
    for p in "$@"; do
        for t in /proc/"$p"/task/*; do
            [[ -r $t/stat ]] || continue
            awk -v tid="${t##*/}" -v c="$(tr -d ' ' <"$t/comm")" '{sub(/^.*\) /, ""); print tid, c, $12 + $13}' "$t/stat"
        done
    done
}

# children_cpu FILE: CPU seconds (user + system) of this shell's finished children, from the
# output of `times` (run in this shell: a subshell's children start at zero)
children_cpu() {
    awk 'NR == 2 {t = 0; for (i = 1; i <= 2; i++) {v = $i; m = v; sub(/m.*/, "", m); sub(/^[0-9]+m/, "", v); sub(/s$/, "", v); t += m * 60 + v}; printf "%.3f", t}' "$1"
}

# run_wrk PORT NAME PIDS...: one wrk run; prints "rps p99_ms cpu-by-thread-class (ticks)"
run_wrk() {
    local port=$1 name=$2
    shift 2
    local c0 c1
    cpu_snapshot "$@" "$BACKEND_PID" >"$T/cpu.a"
    times >"$T/times.a"
    wrk -t1 -c32 -d"$DUR"s --latency "http://127.0.0.1:$port/" >"$T/wrk.$name" 2>&1
    times >"$T/times.b"
    c0=$(children_cpu "$T/times.a")
    c1=$(children_cpu "$T/times.b")
    cpu_snapshot "$@" "$BACKEND_PID" >"$T/cpu.b"
    local rps p99 n
    rps=$(awk '/Requests\/sec/ {printf "%d", $2}' "$T/wrk.$name")
    n=$(awk '/requests in/ {print $1}' "$T/wrk.$name")
    p99=$(awk '/ 99%/ {v = $2; if (v ~ /us$/) {sub(/us/, "", v); v /= 1000} else if (v ~ /ms$/) sub(/ms/, "", v); else if (v ~ /s$/) {sub(/s/, "", v); v *= 1000}; print v}' "$T/wrk.$name")
    [[ -n $rps && -n $n && -n $p99 ]] || fail "wrk on :$port printed no figures: $(cat "$T/wrk.$name")"
    # ticks per thread class, by thread name: the proxy's workers, its exporter, the collector, haproxy
    join <(sort "$T/cpu.a") <(sort "$T/cpu.b") | awk -v n="$n" -v rps="$rps" -v p99="$p99" -v hz="$(getconf CLK_TCK)" -v wrk0="$c0" -v wrk1="$c1" '
        { d = $5 - $3; cls = "other"
          if ($2 == "outrider-worker") cls = "worker"
          else if ($2 == "outrider-export") cls = "exporter"
          else if ($2 == "haproxy") cls = "haproxy"
          else if ($2 == "MHD-worker" || $2 == "outrider-collec") cls = "collector"
          else if ($2 == "nginx") cls = "backend"
          t[cls] += d }
        END { us = 1e6 / hz / n
              printf "%d %.2f %.1f %.1f %.1f %.1f %.1f %.1f\n", rps, p99, t["worker"] * us, t["exporter"] * us, t["collector"] * us, t["haproxy"] * us,
                  t["backend"] * us, (wrk1 - wrk0) * 1e6 / n }'
}

median() { sort -g | awk '{v[NR] = $1} END {m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%s (%s-%s)", m, v[1], v[NR]}'; }

echo "# proxy saturation: wrk -t1 -c32 -d${DUR}s, proxy and HAProxy alternating, $ROUNDS rounds, $WORKERS worker(s) each, $(nproc) cores, $(date -u +%F)"
for v in $VARIANTS; do
    COL_PID=''
    if [[ $v != off ]]; then
        start_collector
        COL_PID=$COLLECTOR_PID
        if [[ -n $COLLECTOR_NICE ]]; then # per thread: on Linux a niceness belongs to a thread
            for t in /proc/"$COL_PID"/task/*; do renice -n "$COLLECTOR_NICE" -p "${t##*/}" >/dev/null; done
        fi
        tele="  telemetry: {otlpEndpoint: $OTLP_URL, samplingPercent: $v, flushInterval: 1s}"
    else
        tele=''
    fi
    cfg=$T/proxy-$v.yaml
    cat >"$cfg" <<CONF
apiVersion: outrider.io/v1alpha1
kind: Proxy
metadata: {name: saturation-$v}
spec:
  inbound: {listen: 127.0.0.1:0, forwardTo: 127.0.0.1:$BE}
  outbound: {listen: 127.0.0.1:0}
  admin: {listen: 127.0.0.1:0}
$tele
  workers: $WORKERS
CONF
    start_proxy "sat-$v" "$cfg"
    wrk -t1 -c8 -d1s "http://127.0.0.1:$PROXY_IN/" >/dev/null 2>&1 # warm-up
    : >"$T/rounds.proxy"
    : >"$T/rounds.haproxy"
    for ((r = 0; r < ROUNDS; r++)); do
        run_wrk "$PROXY_IN" proxy "$PROXY_PID" ${COL_PID:+"$COL_PID"} >>"$T/rounds.proxy"
        run_wrk "$HA" haproxy "$HA_PID" >>"$T/rounds.haproxy"
    done
    drops=$(curl -s "http://127.0.0.1:$PROXY_ADMIN/stats/prometheus" |
        awk '/^outrider_proxy_telemetry_dropped_total/ {d += $NF} /^outrider_proxy_telemetry_exported_total/ {e += $NF} END {printf "dropped %d, exported %d", d, e}')
    label=$([[ $v == off ]] && echo "telemetry off" || echo "sampling $v%")
    echo "== $label"
    printf '%-8s %-26s %-24s %-22s %-22s %-22s %-22s %-22s %-22s\n' target rps p99_ms worker_us/req exporter_us/req collector_us/req haproxy_us/req \
        backend_us/req client_us/req
    for who in proxy haproxy; do
        f=$T/rounds.$who
        printf '%-8s %-26s %-24s %-22s %-22s %-22s %-22s %-22s %-22s\n' "$who" "$(cut -d' ' -f1 "$f" | median)" "$(cut -d' ' -f2 "$f" | median)" \
            "$(cut -d' ' -f3 "$f" | median)" "$(cut -d' ' -f4 "$f" | median)" "$(cut -d' ' -f5 "$f" | median)" "$(cut -d' ' -f6 "$f" | median)" \
            "$(cut -d' ' -f7 "$f" | median)" "$(cut -d' ' -f8 "$f" | median)"
    done
    paste -d' ' "$T/rounds.proxy" "$T/rounds.haproxy" | awk '{r = $1 / $9; q = $2 / $10; printf "%s %s\n", r, q}' >"$T/ratios"
    echo "proxy/haproxy per round: rps $(cut -d' ' -f1 "$T/ratios" | median), p99 $(cut -d' ' -f2 "$T/ratios" | median); telemetry records: $drops"
    stop_pid "$PROXY_PID"
    [[ -n $COL_PID ]] && stop_pid "$COL_PID"
done
