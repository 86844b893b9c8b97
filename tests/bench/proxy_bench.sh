#!/usr/bin/env bash
# Proxy benchmark (figures go to docs/benchmarks.md): outrider-proxy's inbound listener
# against HAProxy and nginx on the same machine in the same run, with telemetry on.
#
# Builds nothing: uses build/release/bin/outrider-proxy and outrider-collector (or $OUTRIDER_BIN).
# For each telemetry variant (VARIANTS, default "1 100" = samplingPercent; "off" = no telemetry;
# "P-trim" and "P-upsert" = sampling P with an Istio Telemetry document, see telemetry_doc.sh):
#   1. writes a kind: Proxy config (inbound on a free port forwarding to 127.0.0.1:18080, the
#      peers script's 1 KiB nginx backend; outbound and admin on free ports; workers: 1;
#      telemetry to a local outrider-collector, flushInterval 1s) and starts the proxy;
#   2. runs ../shared/bench/proxy_peers.sh <proxy port>: best-of-ROUNDS rps (wrk, 32 connections),
#      saturated p99, and p50/p99 at 1000 rps (hey) for direct, haproxy, nginx and the proxy;
#   3. starts its own 1 KiB nginx backend on 127.0.0.1:18080 (the peers script's is gone by then),
#      drives the proxy at 1000 rps for MEASURE seconds (hey -c 4 -q 250) and reads the proxy's
#      CPU (utime+stime from /proc/PID/stat) and RSS (VmRSS, peak of the samples) meanwhile.
# Then, once (not per variant), the same CPU/RSS run for the two peers: an HAProxy (nbthread 1,
# http-reuse always) and an nginx reverse proxy (worker_processes 1, upstream keepalive 64), both
# shaped like the peers script's, started here on free ports in front of the same 1 KiB backend
# (nginx: CPU and RSS are master + worker).
# Before stopping each telemetry variant it reads the proxy's dropped/exported counters (/stats/prometheus):
# records the exporter could not take while saturated are dropped and counted, never waited for.
# Then prints the summary tables. A proxy that fails to start or exits early is reported, not fatal.
#   usage: tests/bench/proxy_bench.sh
#   env:   DUR, ROUNDS (passed to proxy_peers.sh; 5 and 2 by default), MEASURE (10 s),
#          VARIANTS ("1 100"), OUTRIDER_BIN, PEERS (the peers script, ../shared/bench/proxy_peers.sh)
# Needs: nginx haproxy wrk hey curl pgrep (Debian packages; pgrep is procps). Ports 18080-18082 must be free.
set -u
REPO=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=telemetry_doc.sh
. "$REPO/tests/bench/telemetry_doc.sh"
BIN=${OUTRIDER_BIN:-$REPO/build/release/bin}
PEERS=${PEERS:-$(cd "$REPO/.." && pwd)/shared/bench/proxy_peers.sh}
DUR=${DUR:-5}
ROUNDS=${ROUNDS:-2}
MEASURE=${MEASURE:-10}
VARIANTS=${VARIANTS:-1 100}
export DUR ROUNDS

die() {
    echo "proxy_bench: $*" >&2
    exit 1
}

for b in outrider-proxy outrider-collector; do
    [[ -x $BIN/$b ]] || die "no $BIN/$b: build the release first (cmake --preset release && cmake --build build/release)"
done
[[ -r $PEERS ]] || die "no peers script at $PEERS"
for t in nginx haproxy wrk hey curl pgrep; do
    command -v "$t" >/dev/null || die "$t is not installed"
done
for p in 18080 18081 18082; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
        die "port $p is in use (another benchmark running?); the peers script needs 18080-18082"
    fi
done

W=$(mktemp -d "${TMPDIR:-/tmp}/proxy_bench.XXXXXX")
PIDS=()
KIDS=() # nginx workers of masters in PIDS, as PID:starttime (the start time pins the PID's identity)

proc_start() { # PID: its start time (field 22 of /proc/PID/stat), or nothing if it is gone
    local s f
    s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    s=${s##*) }
    read -ra f <<<"$s"
    echo "${f[19]}"
}

# end only what this script started, by PID; bounded, then SIGKILL
cleanup() {
    local pid i
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
    for pid in "${PIDS[@]}"; do
        for ((i = 0; i < 100; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        kill -9 "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    local k # a worker outlives its master only if the master had to be SIGKILLed
    for k in "${KIDS[@]}"; do
        [[ $(proc_start "${k%%:*}") == "${k#*:}" ]] && kill -9 "${k%%:*}" 2>/dev/null
    done
    rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

stop() { # PID: SIGTERM, bounded wait, SIGKILL
    local i
    kill "$1" 2>/dev/null || return 0
    for ((i = 0; i < 100; i++)); do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.05
    done
    kill -9 "$1" 2>/dev/null
    wait "$1" 2>/dev/null
}

free_port() {
    python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

wait_port() { # PORT [tries]: until something accepts on 127.0.0.1:PORT
    local i
    for ((i = 0; i < ${2:-200}; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}

# ---- collector ----
COLLECTOR_LOG=$W/collector.log
"$BIN/outrider-collector" --zipkin-listen 127.0.0.1:0 --otlp-listen 127.0.0.1:0 >"$COLLECTOR_LOG" 2>&1 &
CPID=$!
PIDS+=("$CPID")
ZP='' OP=''
for _ in $(seq 200); do
    ZP=$(sed -n 's/.*listening zipkin http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$COLLECTOR_LOG" | head -1)
    OP=$(sed -n 's/.*listening otlp http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$COLLECTOR_LOG" | head -1)
    [[ -n $ZP && -n $OP ]] && break
    kill -0 "$CPID" 2>/dev/null || break
    sleep 0.05
done
[[ -n $ZP && -n $OP ]] || die "collector did not start: $(cat "$COLLECTOR_LOG")"

# ---- own 1 KiB backend for the CPU/RSS run (same shape as the peers script's) ----
head -c 1024 /dev/zero | tr '\0' 'x' >"$W/body.txt"
temps="client_body_temp_path $W; proxy_temp_path $W; fastcgi_temp_path $W; uwsgi_temp_path $W; scgi_temp_path $W;"
cat >"$W/backend.conf" <<CONF
worker_processes 1; daemon off; pid $W/backend.pid; error_log $W/backend.err;
events { worker_connections 4096; }
http { access_log off; $temps
  server { listen 127.0.0.1:18080 backlog=4096; keepalive_requests 1000000;
    location / { root $W; try_files /body.txt =404; } } }
CONF

proc_cpu_ticks() { # PID...: sum of utime+stime in clock ticks (fields 14 and 15; comm may hold spaces)
    local pid s f sum=0
    for pid in "$@"; do
        s=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
        s=${s##*) }
        read -ra f <<<"$s"
        sum=$((sum + f[11] + f[12]))
    done
    echo "$sum"
}
proc_rss_kib() { # PID...: sum of VmRSS in KiB over those still there
    local pid
    for pid in "$@"; do cat "/proc/$pid/status" 2>/dev/null; done | awk '/^VmRSS:/ {n += $2} END {print n + 0}'
}
now_s() { date +%s.%N; }

# Drive PORT at 1000 rps for MEASURE s while reading the CPU and RSS of PID... (summed over the
# processes: an nginx master and its worker); prints key=value pairs.
measure_cpu() {
    local port=$1 hz t0 t1 c0 c1 peak=0 r out
    shift
    local pids=("$@")
    hz=$(getconf CLK_TCK)
    c0=$(proc_cpu_ticks "${pids[@]}") || { echo "error=proxy-gone"; return; }
    t0=$(now_s)
    hey -z "${MEASURE}s" -c 4 -q 250 "http://127.0.0.1:$port/" >"$W/hey.out" 2>&1 &
    local hey_pid=$!
    PIDS+=("$hey_pid")
    while kill -0 "$hey_pid" 2>/dev/null; do
        r=$(proc_rss_kib "${pids[@]}")
        [[ -n $r && $r -gt $peak ]] && peak=$r
        sleep 0.5
    done
    wait "$hey_pid" 2>/dev/null
    t1=$(now_s)
    c1=$(proc_cpu_ticks "${pids[@]}") || { echo "error=proxy-exited-during-measurement"; return; }
    r=$(proc_rss_kib "${pids[@]}")
    [[ -n $r && $r -gt $peak ]] && peak=$r
    out=$(cat "$W/hey.out")
    local rps p50 p99 ok total
    rps=$(echo "$out" | awk '/Requests\/sec:/ {print $2}')
    p50=$(echo "$out" | awk '/ 50% in/ {printf "%.3f", $3 * 1000}')
    p99=$(echo "$out" | awk '/ 99% in/ {printf "%.3f", $3 * 1000}')
    ok=$(echo "$out" | awk '/\[200\]/ {print $2}')
    total=$(echo "$out" | awk '/\[[0-9]+\]/ {n += $2} END {print n + 0}')
    awk -v c0="$c0" -v c1="$c1" -v hz="$hz" -v t0="$t0" -v t1="$t1" -v rps="${rps:-0}" -v peak="$peak" \
        -v p50="${p50:-nan}" -v p99="${p99:-nan}" -v ok="${ok:-0}" -v total="$total" 'BEGIN {
        cpu = (c1 - c0) / hz; wall = t1 - t0; vcpu = cpu / wall
        per1k = rps > 0 ? vcpu / (rps / 1000) : 0
        printf "rps=%.1f cpu_s=%.2f wall_s=%.2f vcpu=%.4f vcpu_per_1k=%.4f rss_mib=%.1f p50_ms=%s p99_ms=%s ok=%d total=%d\n",
            rps, cpu, wall, vcpu, per1k, peak / 1024, p50, p99, ok, total }'
}

field() { # LINE KEY: the value of KEY=... in LINE
    echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p" | head -1
}

declare -A R # results: R[variant,key]

echo "# outrider-proxy benchmark, $(date -u +%F), $(nproc) cores, $(uname -r)"
echo "# DUR=$DUR ROUNDS=$ROUNDS MEASURE=$MEASURE, collector otlp :$OP, variants: $VARIANTS"

for v in $VARIANTS; do
    IN=$(free_port)
    OUT=$(free_port)
    ADM=$(free_port)
    CFG=$W/proxy-$v.yaml
    PLOG=$W/proxy-$v.log
    {
        echo "apiVersion: outrider.io/v1alpha1"
        echo "kind: Proxy"
        echo "metadata: {name: bench-$v}"
        echo "spec:"
        echo "  inbound: {listen: 127.0.0.1:$IN, forwardTo: 127.0.0.1:18080}"
        echo "  outbound: {listen: 127.0.0.1:$OUT}"
        echo "  admin: {listen: 127.0.0.1:$ADM}"
        if [[ $v != off ]]; then
            echo "  telemetry: {otlpEndpoint: http://127.0.0.1:$OP, samplingPercent: ${v%%-*}, flushInterval: 1s}"
        fi
        echo "  workers: 1"
        telemetry_doc "$v"
    } >"$CFG"
    label=$([[ $v == off ]] && echo "telemetry off" || echo "sampling ${v%%-*}%${v#"${v%%-*}"}")
    echo
    echo "== variant: $label (proxy inbound :$IN, admin :$ADM) =="
    R[$v,status]=ok

    "$BIN/outrider-proxy" --config "$CFG" >"$PLOG" 2>&1 &
    PPID_=$!
    PIDS+=("$PPID_")
    if ! wait_port "$IN" 200 || ! kill -0 "$PPID_" 2>/dev/null; then
        if kill -0 "$PPID_" 2>/dev/null; then
            rc="not listening on :$IN"
        else
            wait "$PPID_"
            rc="exit $?"
        fi
        echo "proxy did not start ($rc); its log:"
        sed 's/^/  | /' "$PLOG" | tail -20
        R[$v,status]="did not start ($rc)"
        stop "$PPID_"
        continue
    fi

    bash "$PEERS" "$IN" 2>&1 | tee "$W/peers-$v.out"
    peers=$(cat "$W/peers-$v.out")
    for who in direct haproxy nginx candidate; do
        line=$(echo "$peers" | grep "^$who rps=" | head -1)
        R[$v,$who.rps]=$(field "$line" rps)
        R[$v,$who.sat99]=$(field "$line" saturated_p99)
        R[$v,$who.p50]=$(field "$line" p50 | sed 's/ms$//')
        R[$v,$who.p99]=$(field "$line" p99 | sed 's/ms$//')
        if [[ ${R[$v,$who.rps]:-0} == 0 ]]; then # nothing answered: its latency figures mean nothing
            R[$v,$who.rps]='' R[$v,$who.sat99]='' R[$v,$who.p50]='' R[$v,$who.p99]=''
        fi
    done

    if ! kill -0 "$PPID_" 2>/dev/null; then
        wait "$PPID_"
        rc=$?
        echo "proxy exited during the peers run (exit $rc); its log:"
        sed 's/^/  | /' "$PLOG" | tail -20
        R[$v,status]="exited early (exit $rc)"
        continue
    fi

    # CPU and RSS at 1000 rps, against this script's own backend
    nginx -c "$W/backend.conf" >/dev/null 2>&1 &
    BEPID=$!
    PIDS+=("$BEPID")
    if wait_port 18080 100; then
        hey -z 1s -c 4 -q 100 "http://127.0.0.1:$IN/" >/dev/null 2>&1 # warm the upstream pool
        m=$(measure_cpu "$IN" "$PPID_")
    else
        m="error=backend-did-not-start"
    fi
    stop "$BEPID"
    echo "cpu/rss at 1000 rps: $m"
    if [[ $m == error=* ]]; then
        R[$v,status]="measurement failed: ${m#error=}"
    else
        for k in rps vcpu vcpu_per_1k rss_mib p50_ms p99_ms ok total; do
            R[$v,m.$k]=$(field "$m" "$k")
        done
    fi
    if ! kill -0 "$PPID_" 2>/dev/null; then
        wait "$PPID_"
        rc=$?
        R[$v,status]="exited early (exit $rc)"
        echo "proxy exited during the CPU run (exit $rc); its log:"
        sed 's/^/  | /' "$PLOG" | tail -20
    else
        sleep 1.5 # one flush interval: the last records reach the exporter
        R[$v,tele]=$(curl -fsS --max-time 5 "http://127.0.0.1:$ADM/stats/prometheus" 2>/dev/null |
            awk '/^outrider_proxy_telemetry_(dropped|exported)_total/ {
                     split($1, a, "[{}\"]"); n = a[1]; sub(/outrider_proxy_telemetry_/, "", n); sub(/_total/, "", n)
                     printf "%s%s.%s=%s", sep, n, a[3], $2; sep = " " }')
        echo "proxy telemetry counters: ${R[$v,tele]:-?}"
        stop "$PPID_"
    fi
done

# ---- peers: the same CPU/RSS run for HAProxy and an nginx reverse proxy, once ----
declare -A P # peer results: P[who,key]
HAPORT=$(free_port)
NXPORT=$(free_port)
cat >"$W/haproxy.cfg" <<CONF
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
  bind 127.0.0.1:$HAPORT
  default_backend be
backend be
  server s1 127.0.0.1:18080
CONF
cat >"$W/nginxproxy.conf" <<CONF
worker_processes 1; daemon off; pid $W/nginxproxy.pid; error_log $W/nginxproxy.err;
events { worker_connections 4096; }
http { access_log off; $temps
  upstream be { server 127.0.0.1:18080; keepalive 64; }
  server { listen 127.0.0.1:$NXPORT backlog=4096; keepalive_requests 1000000;
    location / { proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
CONF

nginx_workers() { # MASTER: waits for and prints the PIDs of its children (the workers)
    local i w
    for ((i = 0; i < 100; i++)); do
        w=$(pgrep -P "$1")
        [[ -n $w ]] && { echo "$w"; return 0; }
        kill -0 "$1" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

echo
echo "== peers: cpu/rss at 1000 rps (haproxy :$HAPORT, nginx :$NXPORT, backend :18080) =="
nginx -c "$W/backend.conf" >/dev/null 2>&1 &
BEPID=$!
PIDS+=("$BEPID")
backend_up=0
wait_port 18080 100 && kill -0 "$BEPID" 2>/dev/null && backend_up=1
for who in haproxy nginx; do
    P[$who,status]=ok
    if ((!backend_up)); then
        P[$who,status]="measurement failed: backend-did-not-start"
        continue
    fi
    if [[ $who == haproxy ]]; then
        port=$HAPORT
        haproxy -db -f "$W/haproxy.cfg" >"$W/haproxy.log" 2>&1 &
    else
        port=$NXPORT
        nginx -c "$W/nginxproxy.conf" >"$W/nginxproxy.log" 2>&1 &
    fi
    pid=$!
    PIDS+=("$pid")
    pids=("$pid")
    if ! wait_port "$port" 200 || ! kill -0 "$pid" 2>/dev/null; then
        P[$who,status]="did not start"
    elif [[ $who == nginx ]]; then
        if workers=$(nginx_workers "$pid"); then
            for w in $workers; do
                pids+=("$w")
                KIDS+=("$w:$(proc_start "$w")")
            done
        else
            P[$who,status]="did not start (no worker)"
        fi
    fi
    if [[ ${P[$who,status]} != ok ]]; then
        echo "$who ${P[$who,status]}; its log:"
        sed 's/^/  | /' "$W/$who"*.log "$W/$who"*.err 2>/dev/null | tail -20
        stop "$pid"
        continue
    fi
    hey -z 1s -c 4 -q 100 "http://127.0.0.1:$port/" >/dev/null 2>&1 # warm the upstream pool
    m=$(measure_cpu "$port" "${pids[@]}")
    echo "$who cpu/rss at 1000 rps (pids ${pids[*]}): $m"
    if [[ $m == error=* ]]; then
        P[$who,status]="measurement failed: ${m#error=}"
    else
        for k in rps vcpu vcpu_per_1k rss_mib p50_ms p99_ms ok total; do
            P[$who,m.$k]=$(field "$m" "$k")
        done
    fi
    stop "$pid"
done
stop "$BEPID"

# ---- summary ----
ratio() { awk -v a="${1:-0}" -v b="${2:-0}" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else printf "-" }'; }
added_us() { awk -v a="${1:-}" -v b="${2:-}" 'BEGIN { if (a != "" && b != "") printf "%+.0f", (a - b) * 1000; else printf "-" }'; }
dash() { if [[ -n ${1:-} ]]; then printf '%s' "$1"; else printf -- '-'; fi; }
vname() { if [[ $1 == off ]]; then echo tel-off; else echo "sampling=${1%%-*}%${1#"${1%%-*}"}"; fi; }

echo
echo "== summary (rps: wrk -c32, best of $ROUNDS x ${DUR}s; latency: hey at 1000 rps; targets: <0.02 vCPU and <10 MiB per 1000 rps, <50 us added p99) =="
printf '%-14s %9s %9s %9s %9s %7s %7s %7s %11s %8s\n' variant proxy_rps haproxy nginx direct px/ha px/ngx px/dir vCPU/1krps RSS_MiB
for v in $VARIANTS; do
    label=$(vname "$v")
    printf '%-14s %9s %9s %9s %9s %7s %7s %7s %11s %8s\n' "$label" \
        "$(dash "${R[$v,candidate.rps]:-}")" "$(dash "${R[$v,haproxy.rps]:-}")" "$(dash "${R[$v,nginx.rps]:-}")" \
        "$(dash "${R[$v,direct.rps]:-}")" \
        "$(ratio "${R[$v,candidate.rps]:-}" "${R[$v,haproxy.rps]:-}")" \
        "$(ratio "${R[$v,candidate.rps]:-}" "${R[$v,nginx.rps]:-}")" \
        "$(ratio "${R[$v,candidate.rps]:-}" "${R[$v,direct.rps]:-}")" \
        "$(dash "${R[$v,m.vcpu_per_1k]:-}")" "$(dash "${R[$v,m.rss_mib]:-}")"
done
echo
echo "CPU and memory at 1000 rps (hey -z ${MEASURE}s -c 4 -q 250, same 1 KiB backend; nginx = master + worker)"
printf '%-20s %11s %15s %8s %s\n' target "rps reached" "vCPU per 1krps" "RSS MiB" "p50/p99"
cpu_row() { # LABEL RPS VCPU_PER_1K RSS_MIB P50 P99
    printf '%-20s %11s %15s %8s %s\n' "$1" "$(dash "$2")" "$(dash "$3")" "$(dash "$4")" \
        "$(dash "$5")/$(dash "$6") ms"
}
for v in $VARIANTS; do
    label="proxy $(vname "$v")"
    cpu_row "$label" "${R[$v,m.rps]:-}" "${R[$v,m.vcpu_per_1k]:-}" "${R[$v,m.rss_mib]:-}" \
        "${R[$v,m.p50_ms]:-}" "${R[$v,m.p99_ms]:-}"
done
for who in haproxy nginx; do
    cpu_row "$who" "${P[$who,m.rps]:-}" "${P[$who,m.vcpu_per_1k]:-}" "${P[$who,m.rss_mib]:-}" \
        "${P[$who,m.p50_ms]:-}" "${P[$who,m.p99_ms]:-}"
done
echo
printf '%-14s %-18s %-18s %-18s %-18s %-16s\n' "latency@1krps" "direct p50/p99" "haproxy p50/p99" "nginx p50/p99" \
    "proxy p50/p99" "proxy added us"
for v in $VARIANTS; do
    label=$(vname "$v")
    pair() { printf '%s/%s ms' "$(dash "${R[$v,$1.p50]:-}")" "$(dash "${R[$v,$1.p99]:-}")"; }
    printf '%-14s %-18s %-18s %-18s %-18s %-16s\n' "$label" "$(pair direct)" "$(pair haproxy)" "$(pair nginx)" \
        "$(pair candidate)" \
        "$(added_us "${R[$v,candidate.p50]:-}" "${R[$v,direct.p50]:-}")/$(added_us "${R[$v,candidate.p99]:-}" "${R[$v,direct.p99]:-}")"
done
echo
for v in $VARIANTS; do
    label=$(vname "$v")
    printf '%-14s status: %s; cpu run: %s rps, %s/%s x 200, p50/p99 %s/%s ms, %s vCPU; saturated p99 proxy %s haproxy %s nginx %s\n' \
        "$label" "${R[$v,status]}" "$(dash "${R[$v,m.rps]:-}")" "$(dash "${R[$v,m.ok]:-}")" "$(dash "${R[$v,m.total]:-}")" \
        "$(dash "${R[$v,m.p50_ms]:-}")" "$(dash "${R[$v,m.p99_ms]:-}")" "$(dash "${R[$v,m.vcpu]:-}")" \
        "$(dash "${R[$v,candidate.sat99]:-}")" "$(dash "${R[$v,haproxy.sat99]:-}")" "$(dash "${R[$v,nginx.sat99]:-}")"
    [[ $v != off ]] && printf '%-14s telemetry (whole run, records dropped when the exporter was behind): %s\n' "$label" \
        "$(dash "${R[$v,tele]:-}")"
done
for who in haproxy nginx; do
    printf '%-14s status: %s; cpu run: %s rps, %s/%s x 200, p50/p99 %s/%s ms, %s vCPU\n' \
        "$who" "${P[$who,status]}" "$(dash "${P[$who,m.rps]:-}")" "$(dash "${P[$who,m.ok]:-}")" \
        "$(dash "${P[$who,m.total]:-}")" "$(dash "${P[$who,m.p50_ms]:-}")" "$(dash "${P[$who,m.p99_ms]:-}")" \
        "$(dash "${P[$who,m.vcpu]:-}")"
done
spans=$(curl -fsS --max-time 5 "http://127.0.0.1:$ZP/metrics" 2>/dev/null | awk '$1=="outrider_store_spans" {printf "%d", $2}')
echo "collector: ${spans:-?} spans stored (0 until the proxy exports telemetry)"
