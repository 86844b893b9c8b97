#!/usr/bin/env bash
# The query role (query.peers): two store members A and B each hold some of the traces, a
# reference collector holds all of them, and a query member asking A and B must answer every
# read path of the Zipkin API exactly as the reference does (names, searches with filters and
# limits, trace by id including one trace split across A and B, traceMany, dependencies,
# autocomplete, bad parameters, a missing trace). Then members that fail: one port where
# nothing listens and one that accepts but never answers (query.timeout=1s) are named in
# X-Outrider-Partial and counted; with no member answering the answer is 503; an answer past
# query.maxResponseBytes counts as too_large. A dns+localhost:PORT entry works as a member list.
. "$(dirname "$0")/../lib.sh"

# ---- a bad entry is a configuration error with the reason (--check runs the start's validation) ----
for bad in "127.0.0.1" "dns+store:0" "http://store:9411" "[::1:9411"; do
    if "$OUTRIDER_BIN/outrider-collector" --set role=query --set query.peers="127.0.0.1:9411,$bad" --check >"$T/bad.out" 2>&1; then
        fail "query.peers entry '$bad' accepted"
    fi
    grep -qF "query.peers: \"$bad\": " "$T/bad.out" || fail "no reason for '$bad': $(cat "$T/bad.out")"
done

# ---- role query and query.peers go together ----
if "$OUTRIDER_BIN/outrider-collector" --set role=query --check >"$T/bad.out" 2>&1; then fail "role query without query.peers accepted"; fi
grep -qF "role query answers from the store members: set query.peers" "$T/bad.out" || fail "role query without peers: $(cat "$T/bad.out")"
if "$OUTRIDER_BIN/outrider-collector" --set query.peers=127.0.0.1:9411 --check >"$T/bad.out" 2>&1; then fail "query.peers without role query accepted"; fi
grep -qF "query.peers is for role query (set role=query)" "$T/bad.out" || fail "peers without role query: $(cat "$T/bad.out")"

# ---- the data: traces for A, for B, and the reference's union ----
now_us=$(( $(date +%s) * 1000000 ))
python3 - "$now_us" "$T" <<'PY'
import json, sys
now, out = int(sys.argv[1]), sys.argv[2]
services = ["frontend", "backend", "café-ß"]
a, b = [], []
def span(tid, sid, svc, name, ts, dur, parent=None, kind=None, remote=None, tags=None, ann=None):
    s = {"traceId": tid, "id": "%016x" % sid, "name": name, "timestamp": ts, "duration": dur,
         "localEndpoint": {"serviceName": svc, "ipv4": "10.0.0.%d" % (sid % 200 + 1)}}
    if parent: s["parentId"] = "%016x" % parent
    if kind: s["kind"] = kind
    if remote: s["remoteEndpoint"] = {"serviceName": remote, "port": 8080}
    if tags: s["tags"] = tags
    if ann: s["annotations"] = ann
    return s
# 16 traces one second apart, posted in shuffled order; each: a root, a client call, the callee's server span
order = [5, 12, 0, 9, 3, 15, 7, 1, 14, 10, 2, 6, 13, 4, 11, 8]
for i in order:
    tid = "%032x" % (0xabc000 + i) if i % 4 == 0 else "%016x" % (0xf00d00 + i)
    ts = now - (i + 1) * 1000000
    caller, callee = services[i % 3], services[(i + 1) % 3]
    method = ["GET", "POST", "PUT"][i % 3]
    err = {"error": "boom"} if i % 5 == 0 else {}
    spans = [
        # children first: out of timestamp order within the message
        span(tid, 3, callee, "handle " + method.lower(), ts + 300, 50 + i * 10, parent=2, kind="SERVER",
             tags=dict({"http.method": method}, **err)),
        span(tid, 2, caller, "call " + callee, ts + 100, 400 + i * 10, parent=1, kind="CLIENT", remote=callee,
             tags=dict({"http.method": method, "http.status_code": "500" if err else "200"}, **err),
             ann=[{"timestamp": ts + 101, "value": "ws"}]),
        span(tid, 1, caller, "root", ts, 1000 + i * 10, kind="SERVER", tags={"http.method": method}),
    ]
    if i % 7 == 3:  # a database call
        spans.append(span(tid, 4, callee, "select", ts + 320, 20, parent=3, kind="CLIENT", remote="db"))
    (a if i % 2 == 0 else b).extend(spans)
# one trace split across A and B (two hours old), its root on both
tid = "00000000000000000000000000051175"
old = now - 7200 * 1000000
s1 = span(tid, 0x51, "frontend", "split", old, 900, kind="SERVER")
a += [s1, span(tid, 0x53, "backend", "split", old + 30, 100, parent=0x52, kind="SERVER")]
b += [s1, span(tid, 0x52, "frontend", "split", old + 20, 200, parent=0x51, kind="CLIENT", remote="backend"),
      span(tid, 0x54, "backend", "split", old + 40, 10, parent=0x53, kind="CLIENT", remote="db")]
json.dump(a, open(out + "/a.json", "w"))
json.dump(b, open(out + "/b.json", "w"))
json.dump(a + [s for s in b if s is not s1], open(out + "/all.json", "w"))
PY

collector() { # NAME [args...]: start a collector logging to $T/NAME.log; sets URL and PID
    COLLECTOR_LOG=$T/$1.log
    _SCANNED_LOGS+=("$COLLECTOR_LOG")
    shift
    start_collector "$@"
    URL=$ZIPKIN_URL PID=$COLLECTOR_PID
}
post() { # URL FILE
    assert_eq 202 "$(http_status POST "$1/api/v2/spans" -H 'Content-Type: application/json' --data-binary "@$2")" \
        "POST $2 to $1"
}
collector ref
REF=$URL
collector a
A=$URL A_PID=$PID
collector b
B=$URL
post "$REF" "$T/all.json"
post "$A" "$T/a.json"
post "$B" "$T/b.json"
A_HP=${A#http://} B_HP=${B#http://}

# same PATH [curl args...]: the query member's status and body are the reference's, byte for byte,
# and no member is missing
same() {
    local path=$1 want got
    shift
    want=$(http_status GET "$REF$path" "$@")
    cp "$LAST_BODY" "$T/want.body"
    [[ -n ${SHOW:-} ]] && note "$path $*: $want, $(jq -c 'if type == "array" then [length, (.[0] | if type == "array" then length else . end)] else . end' "$LAST_BODY" 2>/dev/null || head -c 80 "$LAST_BODY")"
    got=$(http_status GET "$Q$path" -D "$T/q.headers" "$@")
    assert_eq "$want" "$got" "status of $path $*"
    if ! cmp -s "$T/want.body" "$LAST_BODY"; then
        diff <(jq -S . "$T/want.body" 2>/dev/null || cat "$T/want.body") \
            <(jq -S . "$LAST_BODY" 2>/dev/null || cat "$LAST_BODY") >&2 || true
        fail "$path $*: the query member's answer differs from the reference's (diff above)"
    fi
    grep -qi '^X-Outrider-Partial' "$T/q.headers" && fail "$path: partial answer: $(grep -i partial "$T/q.headers")"
    return 0
}

every_read_path() {
    local end_ms=$(( now_us / 1000 + 1000 ))
    same /api/v2/services
    same /api/v2/spans -G --data-urlencode 'serviceName=café-ß'
    same /api/v2/spans -G --data-urlencode 'serviceName=FRONTEND'
    same /api/v2/remoteServices -G --data-urlencode 'serviceName=backend'
    same /api/v2/autocompleteKeys
    same /api/v2/autocompleteValues -G --data-urlencode 'key=http.method'
    same /api/v2/autocompleteValues -G --data-urlencode 'key=http.status_code'
    same "/api/v2/traces"
    same "/api/v2/traces?limit=100"
    same "/api/v2/traces?limit=3"
    same "/api/v2/traces?limit=1&endTs=$(( end_ms - 8000 ))"
    same /api/v2/traces -G --data-urlencode 'serviceName=café-ß' --data-urlencode limit=4
    same "/api/v2/traces?serviceName=frontend&limit=50"
    same "/api/v2/traces?serviceName=backend&remoteServiceName=db&lookback=3600000"
    same "/api/v2/traces?spanName=root&minDuration=1100&limit=100"
    same "/api/v2/traces?minDuration=500&maxDuration=550"
    same /api/v2/traces -G --data-urlencode 'annotationQuery=error' --data-urlencode limit=100
    same /api/v2/traces -G --data-urlencode 'annotationQuery=http.method=PUT and ws'
    same "/api/v2/traces?endTs=$(( end_ms - 5500 ))&lookback=4000"
    same "/api/v2/trace/00000000000000000000000000051175"
    same "/zipkin/api/v2/trace/51175"
    same "/api/v2/trace/0000000000abc004"
    same "/api/v2/trace/f00d05"
    same "/api/v2/trace/f00d0f"
    same "/api/v2/trace/0123456789abcdef"
    same "/api/v2/traceMany?traceIds=f00d07,00000000000000000000000000051175,f00d01,0123,f00d07"
    same "/api/v2/traceMany?traceIds=00000000000000000000000000abc008,f00d0e"
    same "/api/v2/dependencies?endTs=$end_ms&lookback=3600000"
    same "/api/v2/dependencies?endTs=$(( end_ms - 8000 ))&lookback=5000"
    # bad parameters: the same refusal
    same "/api/v2/traces?limit=x"
    same "/api/v2/traces?minDuration=5&maxDuration=1"
    same "/api/v2/trace/xyz"
    same "/api/v2/traceMany?traceIds=f00d07"
    same "/api/v2/dependencies"
    same "/api/v2/spans"
}

collector query --set role=query --set query.peers="$A_HP,$B_HP"
Q=$URL
every_read_path
note "every read path answered as the reference does"

# ---- members that fail: nothing listening, and a listener that never answers ----
DEAD=$(free_port)
python3 -c 'import os, socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(64)
open(sys.argv[1] + ".tmp", "w").write(str(s.getsockname()[1]))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
held = []
while True:
    held.append(s.accept()[0])' "$T/hang.port" >"$T/hang.log" 2>&1 &
HANG_PID=$!
track_pid "$HANG_PID"
wait_until test -s "$T/hang.port" || fail "silent listener did not start: $(cat "$T/hang.log")"
HANG=127.0.0.1:$(cat "$T/hang.port")
collector partial --set role=query --set query.peers="$A_HP,127.0.0.1:$DEAD,$B_HP,$HANG" --set query.timeout=1s
Q=$URL
for path in /api/v2/services "/api/v2/traces?limit=100" /api/v2/trace/00000000000000000000000000051175 \
    "/api/v2/dependencies?endTs=$(( now_us / 1000 + 1000 ))"; do
    assert_eq 200 "$(http_status GET "$Q$path" -D "$T/q.headers")" "$path with two dead members"
    header=$(grep -i '^X-Outrider-Partial:' "$T/q.headers" | tr -d '\r') || fail "$path: no X-Outrider-Partial header"
    note "$header"
    [[ $header == *"2 of 4 store members did not answer"* ]] || fail "$path: header counts wrong: $header"
    [[ $header == *"127.0.0.1:$DEAD ("* ]] || fail "$path: header does not name the closed port: $header"
    [[ $header == *"$HANG (timeout)"* ]] || fail "$path: header does not name the silent member's timeout: $header"
done
# what the live members gave is all there
assert_json_eq "$(http_get_json "$REF/api/v2/services" ref)" "$(http_get_json "$Q/api/v2/services" partial)" \
    "services with two dead members"
assert_json_eq "$(http_get_json "$REF/api/v2/traces?limit=100" ref)" \
    "$(http_get_json "$Q/api/v2/traces?limit=100" partial)" "traces with two dead members"
curl -sS "$Q/metrics" >"$T/metrics.txt"
m() { metric_values "$T/metrics.txt" "$@"; }
assert_num_eq 4 "$(m outrider_query_peers)" "outrider_query_peers"
(( $(m outrider_query_partial_answers_total) >= 6 )) || fail "partial answers: $(m outrider_query_partial_answers_total)"
(( $(m outrider_query_peer_requests_total peer="$HANG" result=timeout) >= 6 )) ||
    fail "timeouts of $HANG: $(grep outrider_query_peer "$T/metrics.txt")"
(( $(m outrider_query_peer_requests_total peer="127.0.0.1:$DEAD" result=error) >= 6 )) ||
    fail "errors of the closed port: $(grep outrider_query_peer "$T/metrics.txt")"
(( $(m outrider_query_peer_requests_total peer="$A_HP" result=ok) >= 6 )) || fail "A's answers not counted ok"
assert_num_eq 0 "$(m outrider_query_peer_requests_total peer="$A_HP" result=timeout)" "A's timeouts"
grep -q "query: store member $HANG left out of an answer: timeout" "$T/partial.log" || fail "no warning for $HANG"

# ---- warnings are rate-limited per member: 20 quick answers without the closed port log fewer than 20 ----
collector rate --set role=query --set query.peers="$A_HP,127.0.0.1:$DEAD"
for i in $(seq 1 20); do
    assert_eq 200 "$(http_status GET "$URL/api/v2/services")" "services without the closed port ($i)"
done
warnings=$(grep -c "store member 127.0.0.1:$DEAD left out" "$T/rate.log") || true
(( warnings >= 1 && warnings < 20 )) || fail "$warnings warnings for 20 failures of the closed port"

# ---- no member answers: 503 with the reason ----
collector dead --set role=query --set query.peers="127.0.0.1:$DEAD,$HANG" --set query.timeout=1s
assert_eq 503 "$(http_status GET "$URL/api/v2/services")" "services with every member dead"
grep -q "none of the 2 store members answered" "$LAST_BODY" || fail "503 reason: $(cat "$LAST_BODY")"
stop_pid "$HANG_PID"

# ---- an answer past query.maxResponseBytes is a failure of that member, not of the collector ----
collector small --set role=query --set query.peers="$A_HP,$B_HP" --set query.maxResponseBytes=1KiB
assert_eq 503 "$(http_status GET "$URL/api/v2/traces?limit=100")" "traces past maxResponseBytes"
grep -q "(answer larger than query.maxResponseBytes)" "$LAST_BODY" || fail "503 reason: $(cat "$LAST_BODY")"
assert_eq 200 "$(http_status GET "$URL/api/v2/services")" "services within maxResponseBytes"
curl -sS "$URL/metrics" >"$T/metrics.txt"
assert_num_eq 1 "$(m outrider_query_peer_requests_total peer="$A_HP" result=too_large)" "A's too_large count"

# ---- dns+localhost:PORT: every address localhost has; one not served by A gets an empty member ----
A_PORT=${A_HP##*:}
if python3 -c 'import socket, sys
sys.exit(0 if any(a[0] == socket.AF_INET6 for a in socket.getaddrinfo("localhost", None, 0, socket.SOCK_STREAM)) else 1)'; then
    COLLECTOR_LOG=$T/a6.log
    _SCANNED_LOGS+=("$COLLECTOR_LOG")
    "$OUTRIDER_BIN/outrider-collector" --zipkin-listen "[::1]:$A_PORT" --otlp-listen '[::1]:0' >"$COLLECTOR_LOG" 2>&1 &
    track_pid $!
    wait_until -n 400 grep -q 'listening otlp' "$COLLECTOR_LOG" || fail "no empty member on [::1]:$A_PORT: $(cat "$COLLECTOR_LOG")"
    note "localhost is also ::1: an empty member listens on [::1]:$A_PORT"
fi
collector dns --set role=query --set query.peers="dns+localhost:$A_PORT,$B_HP"
Q=$URL
want=$(python3 -c 'import socket, sys
print(len({a[4][0] for a in socket.getaddrinfo("localhost", None, 0, socket.SOCK_STREAM)}) + 1)')
curl -sS "$Q/metrics" >"$T/metrics.txt"
assert_num_eq "$want" "$(m outrider_query_peers)" "members from dns+localhost and B"
every_read_path

COLLECTOR_LOG=$T/ref.log COLLECTOR_PID=
echo "1 passed, 0 failed"
