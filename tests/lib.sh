# shellcheck shell=bash
# tests/lib.sh: shared helpers for the integration and compat test scripts.
#
# Source it first thing:  . "$(dirname "$0")/../lib.sh"
# It turns on `set -euo pipefail`, makes a temp dir ($T) removed on exit, and
# owns the processes the script starts: every PID started through
# start_collector or registered with track_pid is killed (by PID, never by
# name) when the script exits, however it exits.
#
# Environment (CTest sets both): OUTRIDER_BIN, the folder with the built
# binaries; OUTRIDER_SRC, the source tree. Without them the script falls back
# to build/release/bin of the tree this file lives in.
#
# Namespace variants: a script whose header has a line
#   # variants: ns-implicit ns-explicit-w2 (what they show)
# is registered by tests/CMakeLists.txt once more per variant, with
# OUTRIDER_TEST_VARIANT set to it. start_proxy then rewrites the proxy's file
# (tests/mesh_ns.py) before starting it: ns-implicit puts the Proxy in
# namespace shop and removes every other document's namespace, ns-explicit
# writes namespace shop on every document; -wN also sets spec.workers to N.
# After the start it checks at /config_dump that every document is in shop.
# MESH_NS is the namespace the documents end in (shop, or default without a
# variant): scripts write FQDN Host headers with it.
#
# Waits are readiness waits with a bounded number of tries, never timing
# assertions: a slow machine makes a test slower, not red.

set -euo pipefail

OUTRIDER_SRC=${OUTRIDER_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
OUTRIDER_BIN=${OUTRIDER_BIN:-$OUTRIDER_SRC/build/release/bin}
export OUTRIDER_SRC OUTRIDER_BIN

OUTRIDER_TEST_VARIANT=${OUTRIDER_TEST_VARIANT:-}
case $OUTRIDER_TEST_VARIANT in
    '') MESH_NS=default ;;
    ns-implicit | ns-explicit | ns-implicit-w[0-9]* | ns-explicit-w[0-9]*) MESH_NS=shop ;;
    *) echo "FAIL: unknown OUTRIDER_TEST_VARIANT '$OUTRIDER_TEST_VARIANT'" >&2; exit 1 ;;
esac
export MESH_NS

T=$(mktemp -d "${TMPDIR:-/tmp}/outrider-test.XXXXXX")
export T
COLLECTOR_LOG=$T/collector.log
COLLECTOR_PID=
LAST_BODY=$T/last_body
_TRACKED_PIDS=()
_SCANNED_LOGS=()

# _lib_cleanup [RC]: the EXIT trap; a script with a trap of its own calls it last, passing the status it
# saw (`trap '_t_rc=$?; my_cleanup; _lib_cleanup "$_t_rc"' EXIT`): under set -e, anything that returns
# that status in the trap, such as `(exit $_t_rc)`, would end the shell before the processes are stopped.
_lib_cleanup() {
    local rc=$?
    [[ $# -gt 0 ]] && rc=$1
    local pid
    for pid in "${_TRACKED_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${_TRACKED_PIDS[@]}"; do
        # bounded: a process ignoring SIGTERM gets SIGKILL after ~5 s
        local i
        for ((i = 0; i < 100; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    # sanitizer builds: a leak or error report at a process's exit fails the test
    local logf
    for logf in "$COLLECTOR_LOG" "${_SCANNED_LOGS[@]}"; do
        if [[ -s $logf ]] && grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$logf"; then
            echo "FAIL: sanitizer report in $logf:" >&2
            grep -A30 -E 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$logf" | head -80 >&2
            rc=1
        fi
    done
    if [[ -n ${KEEP_TMP:-} ]]; then
        echo "lib.sh: kept $T" >&2
    else
        rm -rf "$T"
    fi
    exit "$rc"
}
trap _lib_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# track_pid PID: kill PID when the script exits.
track_pid() {
    _TRACKED_PIDS+=("$1")
}

# log_tail [N]: the last N (40) lines of the collector log, indented.
log_tail() {
    local n=${1:-40}
    if [[ -s $COLLECTOR_LOG ]]; then
        echo "--- collector log (last $n lines of $COLLECTOR_LOG) ---" >&2
        tail -n "$n" "$COLLECTOR_LOG" | sed 's/^/  | /' >&2
        echo "--- end of collector log ---" >&2
    else
        echo "--- collector log is empty or missing ---" >&2
    fi
}

# fail MESSAGE...: print the message and the collector log tail, exit 1.
fail() {
    echo "FAIL: $*" >&2
    log_tail 40
    exit 1
}

# note MESSAGE...: progress line on stderr (CTest shows it on failure).
note() {
    echo "# $*" >&2
}

# assert_eq EXPECTED ACTUAL WHAT: fail unless the two strings are equal.
assert_eq() {
    local expected=$1 actual=$2 what=$3
    if [[ "$expected" != "$actual" ]]; then
        fail "$what: expected '$expected', got '$actual'"
    fi
}

# assert_json_eq EXPECTED_JSON ACTUAL_JSON WHAT: compare two JSON documents
# (key order ignored, array order kept); on a mismatch print a unified diff.
assert_json_eq() {
    local what=$3
    printf '%s' "$1" | jq -S . >"$T/want.json" || fail "$what: expected side is not JSON"
    printf '%s' "$2" | jq -S . >"$T/got.json" || fail "$what: actual side is not JSON: $2"
    if ! diff -u --label expected --label actual "$T/want.json" "$T/got.json" >"$T/json.diff"; then
        cat "$T/json.diff" >&2
        fail "$what: JSON differs (diff above, - expected + actual)"
    fi
}

# http_status METHOD URL [curl args...]: print the HTTP status code; the body
# is left in $LAST_BODY. Prints 000 when nothing answered.
http_status() {
    local method=$1 url=$2
    shift 2
    local code
    local mflag=(-X "$method")
    [[ $method == HEAD ]] && mflag=(--head)
    code=$(curl -sS -o "$LAST_BODY" -w '%{http_code}' --max-time 20 "${mflag[@]}" "$url" "$@" 2>"$T/curl.err") || true
    [[ -n $code ]] || code=000
    printf '%s\n' "$code"
}

# http_get_json URL WHAT [curl args...]: GET URL (extra args such as
# -G --data-urlencode 'q=a b' go to curl), require 200 and a JSON body; print
# the body.
http_get_json() {
    local url=$1 what=$2 code
    shift 2
    code=$(http_status GET "$url" "$@")
    [[ $code == 200 ]] || fail "$what: GET $url -> HTTP $code: $(head -c 2000 "$LAST_BODY" 2>/dev/null)"
    jq -e . "$LAST_BODY" >/dev/null 2>&1 || fail "$what: GET $url -> body is not JSON: $(head -c 2000 "$LAST_BODY")"
    cat "$LAST_BODY"
}

# wait_until [-n TRIES] [-i SECONDS] CMD...: run CMD until it succeeds, at
# most TRIES times (default 200) SECONDS apart (default 0.05). Returns 1 if it
# never succeeded; the caller decides what that means (usually fail).
# CMD and its arguments are expanded once, by the caller: to re-read a value on
# every try (a count, a metric), wrap the test in a function.
wait_until() {
    local tries=200 interval=0.05
    while [[ $# -gt 0 ]]; do
        case $1 in
            -n) tries=$2; shift 2 ;;
            -i) interval=$2; shift 2 ;;
            *) break ;;
        esac
    done
    local i
    for ((i = 0; i < tries; i++)); do
        if "$@" >/dev/null 2>&1; then
            return 0
        fi
        sleep "$interval"
    done
    return 1
}

# free_port: print a loopback TCP port that was free a moment ago (for
# programs that cannot bind port 0 themselves), and never one this test was
# already given: the kernel may hand the same ephemeral port out twice in a
# row, and two listeners planned on one port collide ($T/.free_ports keeps
# them, since callers run this in $(...)).
free_port() {
    local p i
    for ((i = 0; i < 50; i++)); do
        p=$(python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()')
        if ! grep -qx "$p" "$T/.free_ports" 2>/dev/null; then
            echo "$p" >>"$T/.free_ports"
            echo "$p"
            return 0
        fi
    done
    fail "free_port: no new free port in 50 tries"
}

# start_collector [args...]: start outrider-collector on ephemeral loopback
# ports with the extra args, wait until it logs both listening lines and
# export ZIPKIN_URL and OTLP_URL (http://127.0.0.1:PORT, or https:// with
# ingest.tls.certFile; no trailing slash), and QUERY_URL and METRICS_URL when
# query.listen or metrics.listen gave those listeners (else empty).
# shellcheck disable=SC2120 # args are optional
start_collector() {
    local bin=$OUTRIDER_BIN/outrider-collector
    [[ -x $bin ]] || fail "no collector binary at $bin (set OUTRIDER_BIN)"
    if [[ -s $COLLECTOR_LOG ]] && grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$COLLECTOR_LOG"; then
        fail "sanitizer report from the previous collector"
    fi
    : >"$COLLECTOR_LOG"
    "$bin" --zipkin-listen 127.0.0.1:0 --otlp-listen 127.0.0.1:0 "$@" >>"$COLLECTOR_LOG" 2>&1 &
    COLLECTOR_PID=$!
    track_pid "$COLLECTOR_PID"
    local i zipkin='' otlp=''
    for ((i = 0; i < 200; i++)); do
        zipkin=$(grep -o 'listening zipkin https\?://127\.0\.0\.1:[0-9]*' "$COLLECTOR_LOG" | head -n1 | sed 's/^listening zipkin //') || true
        otlp=$(grep -o 'listening otlp https\?://127\.0\.0\.1:[0-9]*' "$COLLECTOR_LOG" | head -n1 | sed 's/^listening otlp //') || true
        [[ -n $zipkin && -n $otlp ]] && break
        kill -0 "$COLLECTOR_PID" 2>/dev/null || fail "collector exited during startup ($bin $*)"
        sleep 0.05
    done
    [[ -n $zipkin && -n $otlp ]] || fail "collector did not log both 'listening zipkin' and 'listening otlp' lines within 200 tries"
    ZIPKIN_URL=$zipkin
    OTLP_URL=$otlp
    # the query and metrics listeners start first: their lines are there by now
    QUERY_URL=$(grep -o 'listening query http://127\.0\.0\.1:[0-9]*' "$COLLECTOR_LOG" | head -n1 | sed 's/^listening query //') || true
    METRICS_URL=$(grep -o 'listening metrics http://127\.0\.0\.1:[0-9]*' "$COLLECTOR_LOG" | head -n1 | sed 's/^listening metrics //') || true
    export ZIPKIN_URL OTLP_URL QUERY_URL METRICS_URL COLLECTOR_PID
    note "collector pid $COLLECTOR_PID: zipkin $ZIPKIN_URL, otlp $OTLP_URL${QUERY_URL:+, query $QUERY_URL}${METRICS_URL:+, metrics $METRICS_URL}"
}

# collector_alive: fail unless the collector we started still runs.
collector_alive() {
    if [[ -z $COLLECTOR_PID ]] || ! kill -0 "$COLLECTOR_PID" 2>/dev/null; then
        fail "collector (pid ${COLLECTOR_PID:-none}) is not running"
    fi
}

# npm_ready DIR: make DIR/node_modules match DIR/package-lock.json, running
# `npm ci` only when node_modules is missing or older than the lock (a stamp
# file holds the lock's checksum). Serialised with flock so parallel CTest
# jobs do not install into the same folder at once.
npm_ready() {
    local dir=$1
    command -v node >/dev/null || fail "node is not installed"
    command -v npm >/dev/null || fail "npm is not installed"
    local sum stamp=$dir/node_modules/.outrider-lock.sha256
    sum=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
    local lock
    lock=${TMPDIR:-/tmp}/outrider-npm-$(printf '%s' "$dir" | sha256sum | cut -c1-16).lock
    (
        flock -w 600 9 || { echo "npm_ready: could not lock $lock" >&2; exit 1; }
        if [[ -f $stamp && $(cat "$stamp") == "$sum" ]]; then
            exit 0
        fi
        echo "# npm ci in $dir" >&2
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2)
        printf '%s\n' "$sum" >"$stamp"
    ) 9>"$lock" || fail "npm ci failed in $dir"
}

# assert_num_eq EXPECTED ACTUAL WHAT: numeric equality (7 == 7.0 == 7e+00).
assert_num_eq() {
    local expected=$1 actual=$2 what=$3
    if ! awk -v a="$expected" -v b="$actual" 'BEGIN { exit !(b ~ /^[-+0-9.eE]+$/ && a + 0 == b + 0) }'; then
        fail "$what: expected $expected, got '${actual}'"
    fi
}

# metric_values FILE NAME [LABEL=VALUE...]: print the values of the samples
# in Prometheus/OpenMetrics text FILE named NAME that carry every given label
# pair (other labels may be there too), one a line.
metric_values() {
    local file=$1 name=$2
    shift 2
    awk -v name="$name" -v want="$(printf '%s\n' "$@")" '
        BEGIN { n = split(want, pairs, "\n"); }
        /^#/ || NF == 0 { next }
        {
            line = $0
            brace = index(line, "{")
            if (brace > 0) {
                metric = substr(line, 1, brace - 1)
                close_at = index(line, "} ")
                labels = "," substr(line, brace + 1, close_at - brace - 1)
                rest = substr(line, close_at + 2)
            } else {
                metric = $1
                labels = ","
                rest = substr(line, length($1) + 2)
            }
            if (metric != name) next
            for (i = 1; i <= n; i++) {
                if (pairs[i] == "") continue
                eq = index(pairs[i], "=")
                pat = "," substr(pairs[i], 1, eq - 1) "=\"" substr(pairs[i], eq + 1) "\""
                if (index(labels, pat) == 0) next
            }
            split(rest, f, " ")
            print f[1]
        }' "$file"
}

# start_backend NAME [args...]: start tests/backend.py (see its usage) named
# NAME on a free port; sets BACKEND_PORT (and BACKEND_PID) and tracks it.
start_backend() {
    local name=$1
    shift
    local pf=$T/backend-$name.port
    rm -f "$pf"
    python3 "$OUTRIDER_SRC/tests/backend.py" --port 0 --name "$name" --port-file "$pf" "$@" \
        >>"$T/backend-$name.log" 2>&1 &
    BACKEND_PID=$!
    track_pid "$BACKEND_PID"
    wait_until test -s "$pf" || fail "backend $name did not start: $(cat "$T/backend-$name.log")"
    BACKEND_PORT=$(cat "$pf")
}

# port_open PORT: something accepts connections on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start_nginx_backend: an nginx (one worker, keep-alive, no access log)
# serving a 1 KiB body on a free loopback port, as the benchmarks' backend
# (the peers script's shape); sets NGINX_BACKEND_PORT.
start_nginx_backend() {
    command -v nginx >/dev/null || fail "nginx is not installed"
    NGINX_BACKEND_PORT=$(free_port)
    head -c 1024 /dev/zero | tr '\0' 'x' >"$T/body.txt"
    cat >"$T/backend.conf" <<CONF
worker_processes 1; daemon off; pid $T/backend.pid; error_log $T/backend.err;
events { worker_connections 4096; }
http { access_log off; client_body_temp_path $T; proxy_temp_path $T; fastcgi_temp_path $T; uwsgi_temp_path $T; scgi_temp_path $T;
  server { listen 127.0.0.1:$NGINX_BACKEND_PORT backlog=4096; keepalive_requests 1000000;
    location / { root $T; try_files /body.txt =404; } } }
CONF
    nginx -c "$T/backend.conf" >/dev/null 2>&1 &
    track_pid $!
    wait_until -n 100 port_open "$NGINX_BACKEND_PORT" || fail "nginx backend did not start: $(cat "$T/backend.err" 2>/dev/null)"
}

# yaml_reviews_v1_v2 V1_PORT V2_PORT: the ServiceEntry and DestinationRule of
# Bookinfo's reviews in namespace shop (reviews.shop.svc.cluster.local, one
# endpoint per version on 127.0.0.1, subsets v1 and v2), as YAML documents
# that start with "---"; the routing (a VirtualService) is the caller's.
yaml_reviews_v1_v2() {
    cat <<YAML
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews}
spec:
  hosts: [reviews.shop.svc.cluster.local]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - {address: 127.0.0.1, ports: {http: $1}, labels: {app: reviews, version: v1}}
  - {address: 127.0.0.1, ports: {http: $2}, labels: {app: reviews, version: v2}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
YAML
}

# mesh_variant FILE: rewrite FILE for OUTRIDER_TEST_VARIANT (nothing without
# one); start_proxy calls it, a script may call it first to --check the file.
mesh_variant() {
    [[ -n $OUTRIDER_TEST_VARIANT ]] || return 0
    local v=${OUTRIDER_TEST_VARIANT#ns-} workers=0
    if [[ $v == *-w* ]]; then
        workers=${v##*-w}
        v=${v%-w*}
    fi
    python3 "$OUTRIDER_SRC/tests/mesh_ns.py" "$v" "$MESH_NS" "$workers" "$1" || fail "mesh_ns.py could not rewrite $1"
}

# assert_mesh_namespaces ADMIN_PORT: with a variant, every document the
# proxy serves at /config_dump is in MESH_NS (and its spec.workers is the
# variant's); without one, nothing.
assert_mesh_namespaces() {
    [[ -n $OUTRIDER_TEST_VARIANT ]] || return 0
    local dump
    dump=$(curl -sS --max-time 20 "http://127.0.0.1:$1/config_dump") || fail "/config_dump: no answer"
    local wrong
    wrong=$(jq -r --arg ns "$MESH_NS" '[.proxy, (.. | objects | select(has("kind") and has("metadata")))]
        | unique | map(select(.metadata.namespace != $ns) | "\(.kind) \(.metadata.name) in \(.metadata.namespace)")
        | .[]' <<<"$dump") || fail "/config_dump is not the expected JSON: $dump"
    [[ -z $wrong ]] || fail "variant $OUTRIDER_TEST_VARIANT: documents outside namespace $MESH_NS: $wrong"
    if [[ $OUTRIDER_TEST_VARIANT == *-w* ]]; then
        assert_eq "${OUTRIDER_TEST_VARIANT##*-w}" "$(jq -r '.proxy.spec.workers' <<<"$dump")" "variant's spec.workers"
    fi
}

# start_proxy NAME FILE: start outrider-proxy --config FILE (its listeners
# may use port 0), wait for its listening lines and set PROXY_PID,
# PROXY_LOG, PROXY_OUT (outbound port), PROXY_IN (inbound, empty without)
# and PROXY_ADMIN. Its log is checked for sanitizer reports at exit. With a
# namespace variant the file is rewritten first (mesh_variant) and the
# namespaces are checked once it runs (assert_mesh_namespaces).
start_proxy() {
    local name=$1 file=$2 bin=$OUTRIDER_BIN/outrider-proxy
    [[ -x $bin ]] || fail "no proxy binary at $bin (set OUTRIDER_BIN)"
    mesh_variant "$file"
    PROXY_LOG=$T/proxy-$name.log
    _SCANNED_LOGS+=("$PROXY_LOG")
    touch "$PROXY_LOG"
    "$bin" --config "$file" >>"$PROXY_LOG" 2>&1 &
    PROXY_PID=$!
    track_pid "$PROXY_PID"
    local i
    for ((i = 0; i < 400; i++)); do
        grep -q 'listening admin http://' "$PROXY_LOG" && break
        kill -0 "$PROXY_PID" 2>/dev/null || { cat "$PROXY_LOG" >&2; fail "proxy $name exited during startup"; }
        sleep 0.05
    done
    grep -q 'listening admin http://' "$PROXY_LOG" || { cat "$PROXY_LOG" >&2; fail "proxy $name did not start"; }
    PROXY_OUT=$(grep -o 'listening outbound http://[^ ]*' "$PROXY_LOG" | head -1 | sed 's/.*://')
    PROXY_IN=$(grep -o 'listening inbound http://[^ ]*' "$PROXY_LOG" | head -1 | sed 's/.*://') || true
    PROXY_ADMIN=$(grep -o 'listening admin http://[^ ]*' "$PROXY_LOG" | head -1 | sed 's/.*://')
    note "proxy $name pid $PROXY_PID: outbound :$PROXY_OUT inbound :${PROXY_IN:-none} admin :$PROXY_ADMIN"
    assert_mesh_namespaces "$PROXY_ADMIN"
}

# prom_sum METRIC FILTER... < PROMETHEUS_TEXT: the sum of METRIC's samples whose line holds every FILTER
# (a fixed string such as 'reporter="source"'); 0 when none.
prom_sum() {
    awk -v m="$1" -v f="${*:2}" 'BEGIN {n = split(f, w, " ")} index($0, m "{") == 1 {
        for (i = 1; i <= n; i++) if (index($0, w[i]) == 0) next; s += $NF } END {print s + 0}'
}

# stop_pid PID: SIGTERM and wait (bounded) for it to exit; sets STOP_RC to its
# exit code (call it directly, not in $(...): only this shell can wait for it).
stop_pid() {
    local pid=$1 i
    kill "$pid" 2>/dev/null || true
    for ((i = 0; i < 200; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    STOP_RC=0
    wait "$pid" 2>/dev/null || STOP_RC=$?
}

# held_sockets PID PORT: connections to local PORT whose socket PID holds
# (not the orphans the kernel finishes on its own after a close).
held_sockets() {
    ss -Htnp state connected sport = ":$2" | grep -c "pid=$1," || true
}

# none_held PID PORT: succeeds when PID holds no connection on PORT (for wait_until, which
# must run the count each try: an argument like "$(held_sockets ...)" is counted once).
none_held() {
    [[ $(held_sockets "$1" "$2") -eq 0 ]]
}

# check_lingering PID PORT CASE CODE CHECK...: 200 clients of
# tests/send_then_read.py --mode hold get CODE for CASE on PORT and keep
# their sockets open: PID must hold 200 lingering sockets while CHECK (a
# command) passes, and none once the clients have closed.
check_lingering() {
    local pid=$1 port=$2 case=$3 code=$4
    shift 4
    command -v ss >/dev/null || fail "ss (iproute2) is needed"
    wait_until -n 1200 none_held "$pid" "$port" ||
        fail "connections still held before the lingering check: $(held_sockets "$pid" "$port")"
    rm -f "$T/hold.ready" "$T/hold.release"
    python3 "$OUTRIDER_SRC/tests/send_then_read.py" --port "$port" --case "$case" --expect "$code" --mode hold \
        --tries 200 --ready "$T/hold.ready" --release "$T/hold.release" >"$T/hold.log" 2>&1 &
    local hold=$!
    track_pid "$hold"
    wait_until -n 1200 test -e "$T/hold.ready" || fail "200 lingering clients not ready: $(cat "$T/hold.log")"
    assert_eq 200 "$(held_sockets "$pid" "$port")" "sockets held while 200 clients linger"
    "$@"
    touch "$T/hold.release"
    wait "$hold" || fail "lingering clients: $(cat "$T/hold.log")"
    wait_until -n 1200 none_held "$pid" "$port" ||
        fail "lingering connections not closed after their clients: $(held_sockets "$pid" "$port") held"
}

# start_kafka_mock [--brokers N] [--topic NAME:PARTITIONS]...: librdkafka's mock
# cluster (tests/tools/kafka_mock.c: the real Kafka protocol on loopback, 3
# brokers by default); exports KAFKA_BOOTSTRAP (HOST:PORT,...). kafka_mock_cmd
# "down 2" / "up 2" sets a broker down or up.
start_kafka_mock() {
    local bin=$OUTRIDER_BIN/kafka_mock
    [[ -x $bin ]] || fail "no kafka_mock at $bin"
    rm -f "$T/kafka.in"
    mkfifo "$T/kafka.in"
    "$bin" "$@" <"$T/kafka.in" >"$T/kafka.out" 2>"$T/kafka.err" &
    KAFKA_MOCK_PID=$!
    track_pid "$KAFKA_MOCK_PID"
    exec {KAFKA_MOCK_FD}>"$T/kafka.in"
    wait_until -n 400 grep -q '^bootstrap ' "$T/kafka.out" || fail "mock cluster did not start: $(cat "$T/kafka.err")"
    KAFKA_BOOTSTRAP=$(awk '/^bootstrap / {print $2; exit}' "$T/kafka.out")
    export KAFKA_BOOTSTRAP
    note "kafka mock cluster pid $KAFKA_MOCK_PID: $KAFKA_BOOTSTRAP"
}

kafka_mock_cmd() {
    local before
    before=$(grep -cE '^(ok|error)' "$T/kafka.out" || true)
    echo "$1" >&"$KAFKA_MOCK_FD"
    _kafka_answered() { [[ $(grep -cE '^(ok|error)' "$T/kafka.out") -gt $before ]]; }
    wait_until -n 1200 _kafka_answered ||
        fail "kafka mock did not answer '$1' ($(kill -0 "$KAFKA_MOCK_PID" 2>/dev/null && echo running || echo exited);" \
            "its output: $(tail -n 3 "$T/kafka.out" | tr '\n' ' ')/ $(tail -n 5 "$T/kafka.err" | tr '\n' ' '))"
    [[ $(grep -E '^(ok|error)' "$T/kafka.out" | tail -n1) == ok ]] ||
        fail "kafka mock: $1: $(tail -n1 "$T/kafka.out")"
}

# kafka_read TOPIC DIR: every message now in TOPIC, read with kcat from the
# beginning of each partition, into DIR/N.value (the bytes) and DIR/N.key, in
# the order kcat gives; DIR/index has "N PARTITION OFFSET KEY" lines. Prints N.
kafka_read() {
    local topic=$1 dir=$2
    mkdir -p "$dir"
    kcat -C -b "$KAFKA_BOOTSTRAP" -t "$topic" -o beginning -e -q -f '%p %o %k\n' >"$dir/index.txt" 2>"$T/kcat.err" ||
        fail "kcat: $(cat "$T/kcat.err")"
    kcat -C -b "$KAFKA_BOOTSTRAP" -t "$topic" -o beginning -e -q -f '%p %o %R%s' >"$dir/values.bin" 2>"$T/kcat.err" ||
        fail "kcat: $(cat "$T/kcat.err")"
    python3 - "$dir" <<'PY'
import struct, sys
d = sys.argv[1]
data = open(d + "/values.bin", "rb").read()
index = [l.split(" ", 2) for l in open(d + "/index.txt").read().splitlines()]
vals, i = {}, 0
while i < len(data):  # "P O " then a 4-byte big-endian length, then the value
    sp1 = data.index(b" ", i); sp2 = data.index(b" ", sp1 + 1)
    part, off = data[i:sp1].decode(), data[sp1 + 1:sp2].decode()
    (n,) = struct.unpack(">I", data[sp2 + 1:sp2 + 5])
    vals[(part, off)] = data[sp2 + 5:sp2 + 5 + n]
    i = sp2 + 5 + n
with open(d + "/index", "w") as out:
    for k, (part, off, key) in enumerate(index):
        open("%s/%d.value" % (d, k), "wb").write(vals[(part, off)])
        open("%s/%d.key" % (d, k), "w").write(key)
        out.write("%d %s %s %s\n" % (k, part, off, key))
print(len(index))
PY
}

# otlp_istio_histogram TIME_S TRACE_ID: print an OTLP JSON metrics request with
# one DELTA histogram istio_request_duration_milliseconds{reporter="destination"}
# over the 10 s before TIME_S: bounds 1,5,10,25, bucket counts 0,1,2,1,0 (count
# 4), sum 31, and an exemplar of value 7 at TIME_S with TRACE_ID and span id
# 00f067aa0ba902b7.
otlp_istio_histogram() {
    cat <<JSON
{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"istio_request_duration_milliseconds","unit":"ms",
 "histogram":{"aggregationTemporality":1,"dataPoints":[{"attributes":[{"key":"reporter","value":{"stringValue":"destination"}}],
  "startTimeUnixNano":"$(($1 - 10))000000000","timeUnixNano":"${1}000000000","count":"4","sum":31,
  "explicitBounds":[1,5,10,25],"bucketCounts":["0","1","2","1","0"],
  "exemplars":[{"timeUnixNano":"${1}000000000","asDouble":7,"traceId":"$2","spanId":"00f067aa0ba902b7"}]}]}}]}]}]}
JSON
}

# prom_fail MESSAGE...: fail, after the last lines of $T/prometheus.log (where
# the scripts that start a Prometheus send its output).
prom_fail() {
    echo "--- prometheus log (last 20 lines) ---" >&2
    tail -n 20 "$T/prometheus.log" 2>/dev/null | sed 's/^/  | /' >&2
    fail "$@"
}

# prom_query QUERY: the result of an instant query to the Prometheus at
# $PROM_URL, as JSON (a vector's array, or a scalar's [time, "value"]).
prom_query() {
    local code
    code=$(http_status GET "$PROM_URL/api/v1/query" -G --data-urlencode "query=$1")
    [[ $code == 200 ]] || prom_fail "query $1: HTTP $code $(cat "$LAST_BODY")"
    jq -c '.data.result' "$LAST_BODY"
}
