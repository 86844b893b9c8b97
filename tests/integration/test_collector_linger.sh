#!/usr/bin/env bash
# outrider-collector lingering close: a client that writes its whole request
# (4 MiB of body after the head) before it reads gets the whole send through
# and then the answer, 100 times of 100: 413 for a Content-Length past
# limits.maxBodyBytes (OTLP and Zipkin ports, answered before the body is
# read), and libmicrohttpd's own 431 (100 KB field), 414 (64 KB target) and
# 400 (not HTTP); a chunked body past the limit still gets its 413 at its
# end. Before lingering, MHD closed with the body unread, the kernel reset
# the connection and the client's send failed. Lingering is bounded, each
# bound checked on a collector where only that bound can end it:
# limits.lingerBytes (a client sending as fast as it can, Content-Length or
# chunked), limits.lingerTime (1 KiB every 10 ms), limits.lingerTimeout (a
# quiet client keeping its socket open). 200 lingering connections hold
# sockets while the collector serves on, and close with their clients.
. "$(dirname "$0")/../lib.sh"

STR="python3 $OUTRIDER_SRC/tests/send_then_read.py"

port_of() { echo "${1##*:}"; }
alive() {
    collector_alive
    assert_eq 200 "$(http_status GET "$ZIPKIN_URL/health")" "/health after $1"
    assert_eq 200 "$(http_status POST "$OTLP_URL/v1/traces" -H 'Content-Type: application/json' --data '{}')" \
        "an OTLP export after $1"
}
start() {
    [[ -z $COLLECTOR_PID ]] || stop_pid "$COLLECTOR_PID"
    start_collector --set limits.maxBodyBytes=1MiB "$@"
    OTLP=$(port_of "$OTLP_URL")
    ZIPKIN=$(port_of "$ZIPKIN_URL")
}

# ---- the answer reaches a client that sends everything first ----
start --set limits.lingerTime=60s --set limits.lingerTimeout=60s
run() { # PORT CASE CODE [args]: 100 tries
    local port=$1 case=$2 code=$3
    shift 3
    $STR --port "$port" --case "$case" --expect "$code" --tries 100 "$@" >"$T/$case.out" 2>&1 ||
        fail "$case on :$port: $(tail -5 "$T/$case.out")"
    note "$(tail -1 "$T/$case.out")"
}
run "$OTLP" big-body 413
run "$ZIPKIN" big-body 413 --path /api/v2/spans
run "$OTLP" big-header 431
run "$OTLP" long-uri 414
run "$OTLP" malformed 400
run "$OTLP" chunked 413
alive "the early answers"

# ---- many lingering connections: they hold their sockets, the collector serves on, they close with their clients ----
check_lingering "$COLLECTOR_PID" "$OTLP" big-body 413 alive "200 lingering connections"

# ---- each bound ends lingering by itself ----
start --set limits.lingerBytes=1MiB --set limits.lingerTime=60s --set limits.lingerTimeout=60s
for c in big-body chunked; do
    $STR --port "$OTLP" --case $c --mode endless --tries 3 >"$T/endless.out" 2>&1 ||
        fail "lingerBytes ($c): $(tail -5 "$T/endless.out")"
done
alive "lingerBytes"

# (a 64 KiB body limit, so that the trickling chunked body passes it soon)
start --set limits.lingerTime=300ms --set limits.lingerTimeout=60s --set limits.lingerBytes=1GiB --set limits.maxBodyBytes=64KiB
for c in big-body chunked; do
    $STR --port "$OTLP" --case $c --mode trickle --tries 3 >"$T/trickle.out" 2>&1 ||
        fail "lingerTime ($c): $(tail -5 "$T/trickle.out")"
done
alive "lingerTime"

start --set limits.lingerTime=60s --set limits.lingerTimeout=100ms --set limits.lingerBytes=1GiB
$STR --port "$OTLP" --case big-body --mode idle --expect 413 --tries 3 >"$T/idle.out" 2>&1 ||
    fail "lingerTimeout: $(tail -5 "$T/idle.out")"
alive "lingerTimeout"

# ---- limits.lingerTime=0 turns lingering off (the old behaviour: the send fails) ----
start --set limits.lingerTime=0
if $STR --port "$OTLP" --case big-body --expect 413 --tries 5 >"$T/off.out" 2>&1; then
    fail "without lingering a 4 MiB send after an early 413 should fail: $(cat "$T/off.out")"
fi
alive "lingering off"
stop_pid "$COLLECTOR_PID"
assert_eq 0 "$STOP_RC" "collector exit code after SIGTERM"
note "ok"
