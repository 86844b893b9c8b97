#!/usr/bin/env bash
# outrider-proxy lingering close: a client that writes its whole request (a
# refused head, then 4 MiB of body) before it reads gets the whole send
# through and then the answer, 100 times of 100, for 431 (100 KB field), 414
# (64 KB target), 400 (not HTTP) and an upstream's early 413 (the body not
# read yet). Before lingering the proxy closed with the body unread, the
# kernel answered the rest with a reset and the client's send failed.
# Lingering is bounded, each bound checked on a proxy where only that bound
# can end it: lingerBytes (a client sending as fast as it can), lingerTime
# (a client sending 1 KiB every 10 ms), lingerTimeout (a quiet client that
# keeps its socket open). 200 lingering connections hold sockets and the
# proxy still serves, and they are closed when their clients close.
. "$(dirname "$0")/../lib.sh"

STR="python3 $OUTRIDER_SRC/tests/send_then_read.py"

start_backend b1
BPORT=$BACKEND_PORT

# proxy_with NAME LIMITS: a proxy whose inbound listener forwards to the backend
proxy_with() {
    cat >"$T/$1.yaml" <<YAML
apiVersion: outrider.io/v1alpha1
kind: Proxy
metadata: {name: $1}
spec:
  inbound: {listen: 127.0.0.1:0, forwardTo: 127.0.0.1:$BPORT}
  outbound: {listen: 127.0.0.1:0}
  admin: {listen: 127.0.0.1:0}
  limits: $2
YAML
    start_proxy "$1" "$T/$1.yaml"
}

alive() {
    kill -0 "$PROXY_PID" 2>/dev/null || { cat "$PROXY_LOG" >&2; fail "proxy died: $1"; }
    local code
    code=$(http_status GET "http://127.0.0.1:$PROXY_IN/")
    assert_eq 200 "$code" "a plain request after $1"
}

# ---- the answer reaches a client that sends everything first ----
proxy_with main '{lingerTime: 60s, lingerTimeout: 60s}'
grep -q '"lingerTime":"60s","lingerTimeout":"60s","lingerBytes":67108864' <(
    "$OUTRIDER_BIN/outrider-proxy" --config "$T/main.yaml" --print-config
) || fail "--print-config lacks the linger limits: $("$OUTRIDER_BIN/outrider-proxy" --config "$T/main.yaml" --print-config)"
for c in "big-header 431" "long-uri 414" "malformed 400"; do
    set -- $c
    $STR --port "$PROXY_IN" --case "$1" --expect "$2" --tries 100 >"$T/$1.out" 2>&1 ||
        fail "$1: $(tail -5 "$T/$1.out")"
    note "$(tail -1 "$T/$1.out")"
done
$STR --port "$PROXY_IN" --case big-body --path /early/413 --expect 413 --tries 100 >"$T/early.out" 2>&1 ||
    fail "upstream's early 413: $(tail -5 "$T/early.out")"
note "upstream early 413: $(tail -1 "$T/early.out")"
alive "the early answers"

# ---- many lingering connections: they hold their sockets, the proxy serves on, they close with their clients ----
check_lingering "$PROXY_PID" "$PROXY_IN" big-header 431 alive "200 lingering connections"
stop_pid "$PROXY_PID"
assert_eq 0 "$STOP_RC" "exit code after SIGTERM"

# ---- each bound ends lingering by itself ----
proxy_with bytes '{lingerBytes: 1048576, lingerTime: 60s, lingerTimeout: 60s}'
$STR --port "$PROXY_IN" --case big-header --mode endless --tries 3 >"$T/endless.out" 2>&1 ||
    fail "lingerBytes: $(tail -5 "$T/endless.out")"
alive "lingerBytes"
stop_pid "$PROXY_PID"

proxy_with time '{lingerTime: 300ms, lingerTimeout: 60s, lingerBytes: 1073741824}'
$STR --port "$PROXY_IN" --case big-header --mode trickle --tries 3 >"$T/trickle.out" 2>&1 ||
    fail "lingerTime: $(tail -5 "$T/trickle.out")"
alive "lingerTime"
stop_pid "$PROXY_PID"

proxy_with timeout '{lingerTime: 60s, lingerTimeout: 100ms, lingerBytes: 1073741824}'
$STR --port "$PROXY_IN" --case big-header --mode idle --expect 431 --tries 3 >"$T/idle.out" 2>&1 ||
    fail "lingerTimeout: $(tail -5 "$T/idle.out")"
alive "lingerTimeout"

# ---- lingerTime: 0 turns lingering off (the old behaviour: the send fails) ----
stop_pid "$PROXY_PID"
proxy_with off '{lingerTime: 0s}'
if $STR --port "$PROXY_IN" --case big-header --expect 431 --tries 5 >"$T/off.out" 2>&1; then
    fail "without lingering a 4 MiB send after a refused head should fail: $(cat "$T/off.out")"
fi
alive "lingering off"
note "ok"
