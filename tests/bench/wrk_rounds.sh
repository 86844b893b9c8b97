# shellcheck shell=bash
# Sourced by the proxy benchmarks that compare variants (each a proxy on its own port) with wrk in
# the same run: the work directory and its cleanup, ports, an nginx backend (1 KiB, keep-alive), and
# the rounds, whose order rotates every round, with the proxy's CPU per request
# (utime+stime from /proc/PID/stat) and a summary of medians and ratios to a base variant.
#   before sourcing: NAME (for messages and the directory); DUR (5 s), ROUNDS (3) may be set
#   after: start variants (start_variant, with outrider_yaml or haproxy_head/_tail), set VARIANTS, then
#          wrk_rounds "TITLE" LUA_SCRIPT BASE_SUFFIX    (a variant's base is ${v%-*}-BASE_SUFFIX)
set -u
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${OUTRIDER_BIN:-$REPO/build/release/bin}
DUR=${DUR:-5}
ROUNDS=${ROUNDS:-3}
HZ=$(getconf CLK_TCK)

die() {
    echo "$NAME: $*" >&2
    exit 1
}
[[ -x $BIN/outrider-proxy ]] || die "no $BIN/outrider-proxy: build the release first"
for t in nginx haproxy wrk curl; do command -v "$t" >/dev/null || die "$t is not installed"; done

W=$(mktemp -d "${TMPDIR:-/tmp}/$NAME.XXXXXX")
PIDS=()
declare -A PORT PID
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
    rm -rf "$W"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
    local i
    for ((i = 0; i < 200; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}
cpu_ticks() {
    local s
    s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
    s=${s##*) }
    awk '{print $12 + $13}' <<<"$s"
}

# start_backend: nginx, one worker, a 1 KiB body on every path; its port in BE
start_backend() {
    BE=$(free_port)
    mkdir -p "$W/www"
    head -c 1024 /dev/zero | tr '\0' 'x' >"$W/www/index.html"
    cat >"$W/nginx.conf" <<CONF
worker_processes 1; daemon off; pid $W/nginx.pid; error_log $W/nginx.err;
events { worker_connections 4096; }
http { access_log off; client_body_temp_path $W; proxy_temp_path $W; fastcgi_temp_path $W; uwsgi_temp_path $W;
  scgi_temp_path $W;
  server { listen 127.0.0.1:$BE backlog=4096; keepalive_requests 1000000;
    location / { root $W/www; try_files /index.html =404; } } }
CONF
    nginx -c "$W/nginx.conf" >"$W/nginx.log" 2>&1 &
    PIDS+=($!)
    wait_port "$BE" || die "nginx did not start: $(cat "$W/nginx.err")"
}

# outrider_yaml PORT: the Proxy document of an inbound sidecar on PORT in front of the backend (one worker)
outrider_yaml() {
    cat <<YAML
apiVersion: outrider.io/v1alpha1
kind: Proxy
metadata: {name: reviews-v1, namespace: shop, labels: {app: reviews}}
spec:
  inbound: {listen: 127.0.0.1:$1, forwardTo: 127.0.0.1:$BE}
  outbound: {listen: 127.0.0.1:0}
  admin: {listen: 127.0.0.1:0}
  workers: 1
YAML
}

# haproxy_head PORT / haproxy_tail: a one-thread HAProxy frontend on PORT (its rules go between) and
# the backend
haproxy_head() {
    printf 'global\n  nbthread 1\n  maxconn 4096\ndefaults\n  mode http\n  timeout connect 5s\n'
    printf '  timeout client 30s\n  timeout server 30s\n  http-reuse always\nfrontend fe\n  bind 127.0.0.1:%s\n' "$1"
}
haproxy_tail() { printf '  default_backend app\nbackend app\n  server s 127.0.0.1:%s\n' "$BE"; }

# start_variant VARIANT PORT FILE: check FILE and start outrider-proxy (*.yaml) or haproxy (*.cfg) with it
start_variant() {
    local v=$1 p=$2 f=$3
    if [[ $f == *.yaml ]]; then
        "$BIN/outrider-proxy" --check --config "$f" >/dev/null 2>&1 || die "$f does not load"
        "$BIN/outrider-proxy" --config "$f" >"$f.log" 2>&1 &
    else
        haproxy -c -f "$f" >/dev/null 2>&1 || die "$f: $(haproxy -c -f "$f" 2>&1 | tail -3)"
        haproxy -db -f "$f" >"$f.log" 2>&1 &
    fi
    PIDS+=($!)
    PID[$v]=$!
    PORT[$v]=$p
    wait_port "$p" || die "$v did not start: $(cat "$f.log")"
}

to_ms() {
    awk -v v="$1" 'BEGIN { if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
        else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v } else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 } }'
}
med() { printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

# wrk_rounds TITLE LUA BASE: ROUNDS rounds of every variant in $VARIANTS, then the medians
wrk_rounds() {
    local title=$1 lua=$2 base_suffix=$3 r v k order out c rps n p50 p99 bad cpu base
    declare -A R
    echo "# $title, $(date -u '+%F %T') UTC, $(nproc) cores; DUR=$DUR ROUNDS=$ROUNDS;" \
        "tree $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null)"
    for ((r = 1; r <= ROUNDS; r++)); do
        set -- $VARIANTS
        order=$(for ((k = 0; k < $#; k++)); do i=$(((k + r - 1) % $# + 1)); echo "${!i}"; done)
        for v in $order; do
            c0=$(cpu_ticks "${PID[$v]}")
            out=$(wrk -t2 -c64 -d"${DUR}s" --latency -s "$lua" "http://127.0.0.1:${PORT[$v]}/" 2>&1)
            c=$(($(cpu_ticks "${PID[$v]}") - c0))
            rps=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' <<<"$out")
            n=$(awk '/requests in/ {print $1}' <<<"$out")
            p50=$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")
            p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
            bad=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
            cpu=$(awk -v t="$c" -v n="$n" -v hz="$HZ" 'BEGIN { if (n > 0) printf "%.2f", t * 1e6 / hz / n }')
            echo "round $r $v: rps=$rps p50=${p50}ms p99=${p99}ms cpu_us/request=$cpu non2xx=${bad:-0}"
            R[$v,rps]+=" $rps" R[$v,p50]+=" $p50" R[$v,p99]+=" $p99" R[$v,cpu]+=" $cpu"
        done
    done
    echo
    echo "== median of $ROUNDS rounds x ${DUR}s (wrk -t2 -c64, keep-alive); ratios to the same proxy's -$base_suffix =="
    printf '%-16s %9s %7s %7s %9s | %9s %9s %9s\n' variant rps p50_ms p99_ms cpu_us/rq rps_ratio p99_ratio cpu_ratio
    for v in $VARIANTS; do
        # shellcheck disable=SC2086 # the rounds' values, one word each
        for k in rps p50 p99 cpu; do R[$v,m$k]=$(med ${R[$v,$k]}); done
        base=${v%-*}-$base_suffix
        printf '%-16s %9.0f %7.2f %7.2f %9.2f | %9.3f %9.3f %9.3f\n' "$v" "${R[$v,mrps]}" "${R[$v,mp50]}" \
            "${R[$v,mp99]}" "${R[$v,mcpu]}" "$(awk -v a="${R[$v,mrps]}" -v b="${R[$base,mrps]}" 'BEGIN {print a / b}')" \
            "$(awk -v a="${R[$v,mp99]}" -v b="${R[$base,mp99]}" 'BEGIN {print a / b}')" \
            "$(awk -v a="${R[$v,mcpu]}" -v b="${R[$base,mcpu]}" 'BEGIN {print a / b}')"
    done
}
